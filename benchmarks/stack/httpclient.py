"""A small HTTP/1.1 client on asyncio streams: keep-alive connections to one loopback
server, Content-Length or chunked answers. A load generator needs little per request;
httpx would cost the generator more CPU than the server it measures."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

MAX_HEADER: Final = 64 * 1024


class HttpError(Exception):
    pass


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def request(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        head = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if body or method in ("POST", "PUT"):
            head.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await self.writer.drain()
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                fields[name.strip().lower()] = value.strip()
        if "content-length" in fields:
            data = await self.reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            data = await self._chunked()
        else:
            data = b""
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, data

    async def _chunked(self) -> bytes:
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    @property
    def closed(self) -> bool:
        return self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Up to ``size`` keep-alive connections to ``url``'s host and port."""

    def __init__(self, url: str, size: int) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.size = size
        self.opened = 0
        self.waited = 0  # requests that found every connection busy
        self._idle: list[Connection] = []
        self._free = asyncio.Semaphore(size)

    async def request(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        if self._free.locked():
            self.waited += 1
        async with self._free:
            conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, limit=MAX_HEADER * 64
                )
                conn = Connection(reader, writer)
                self.opened += 1
            try:
                answer = await conn.request(method, target, headers, body)
            except BaseException:
                conn.close()
                raise
            if not conn.closed:
                self._idle.append(conn)
            return answer

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
