"""The ``DocumentStore`` port: invoice documents, in the database or in a directory.

Every document has a ``documents`` row (its type, size, sha256, file name, and where its
bytes are), written in the unit of work's transaction, so the document, the invoice that
names it and the command that sends it commit together or not at all.

* :class:`SqlDocumentStore` (the default) keeps the bytes in the row (``content``);
* :class:`DirectoryDocumentStore` (``[documents] directory = "..."``) writes them to a
  file named by the document's id, atomically (a temporary file in the same directory,
  flushed to disk, then renamed over the final name) and off the event loop, before the
  row. A transaction that rolls back leaves the file behind, unreferenced: harmless.

Each row says where its bytes are, so documents stored before the setting changed stay
readable (a directory document needs the directory to be configured still).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from pathlib import Path
from typing import Final

import sqlalchemy as sa

from orderhub.adapters.persistence.repositories import Transaction
from orderhub.adapters.persistence.tables import documents
from orderhub.application.ports import StoredDocument

DATABASE: Final = "database"
DIRECTORY: Final = "directory"
_SAFE_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_METADATA: Final = tuple(
    documents.c[name]
    for name in ("id", "order_id", "content_type", "size", "sha256", "filename", "created_at")
)


class SqlDocumentStore:
    """Document bytes in the ``documents`` row (``directory``: where documents stored by
    a :class:`DirectoryDocumentStore` are read from)."""

    storage: str = DATABASE

    def __init__(self, tx: Transaction, *, directory: Path | None = None) -> None:
        self._tx = tx
        self.directory = directory

    async def put(self, document: StoredDocument, content: bytes) -> None:
        if len(content) != document.size:
            raise ValueError(f"document {document.id}: {len(content)} bytes, not {document.size}")
        stored = await self._write(document, content)
        await self._tx.conn().execute(
            sa.insert(documents).values(
                id=document.id,
                order_id=document.order_id,
                content_type=document.content_type,
                size=document.size,
                sha256=document.sha256,
                filename=document.filename,
                created_at=document.created_at,
                storage=self.storage,
                content=stored,
            )
        )

    async def _write(self, document: StoredDocument, content: bytes) -> bytes | None:
        """Keep the bytes; what goes in the row's ``content``."""
        return content

    async def get(self, document_id: str) -> StoredDocument | None:
        result = await self._tx.conn().execute(
            sa.select(*_METADATA).where(documents.c.id == document_id)
        )
        row = result.mappings().one_or_none()
        if row is None:
            return None
        return StoredDocument(**{str(key): value for key, value in row.items()})

    async def read(self, document_id: str) -> bytes | None:
        result = await self._tx.conn().execute(
            sa.select(documents.c.storage, documents.c.content).where(documents.c.id == document_id)
        )
        row = result.one_or_none()
        if row is None:
            return None
        storage, content = row
        if storage == DATABASE:
            return None if content is None else bytes(content)
        if self.directory is None:
            raise RuntimeError(
                f"document {document_id} is stored in a directory: set [documents] directory"
            )
        return await asyncio.to_thread(_read_file, self.directory, document_id)


class DirectoryDocumentStore(SqlDocumentStore):
    """Document bytes in files under ``directory`` (one per document, named by its id)."""

    storage = DIRECTORY

    def __init__(self, tx: Transaction, *, directory: Path) -> None:
        super().__init__(tx, directory=directory)

    async def _write(self, document: StoredDocument, content: bytes) -> bytes | None:
        assert self.directory is not None
        await asyncio.to_thread(write_atomically, self.directory, document.id, content)
        return None


def _path(directory: Path, document_id: str) -> Path:
    if not _SAFE_ID.match(document_id):  # ids are the hub's; never a path from outside
        raise ValueError(f"not a document id: {document_id!r}")
    return directory / document_id


def write_atomically(directory: Path, document_id: str, content: bytes) -> Path:
    """Write ``content`` as ``directory/<id>``: whole or not at all, even across a crash."""
    final = _path(directory, document_id)
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{document_id}.{secrets.token_hex(4)}.tmp"
    try:
        with temporary.open("xb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _sync_directory(directory)
    return final


def _sync_directory(directory: Path) -> None:
    """Make the rename durable (where the platform lets a directory be synced)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_file(directory: Path, document_id: str) -> bytes | None:
    try:
        return _path(directory, document_id).read_bytes()
    except FileNotFoundError:
        return None
