"""Console sessions: an API key signs in once, then a signed, expiring cookie stands for it.

The cookie holds the key's *name*, a tag of the key (an HMAC of it: never the key), when
the session ends, and the session's CSRF token; it is signed with HMAC-SHA256 under a
secret derived from every configured key's secret, so each API process of a deployment
reads the others' sessions and every session ends when a key is rotated. Each request
checks the signature, the expiry, that the key still exists with the same secret, its
scopes and that it is not limited to some channels and accounts: removing a key or its
scope, or limiting it, ends its sessions at once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from orderhub.entrypoints.web.settings import CONSOLE_READ, OPS, ApiKey

COOKIE: Final = "orderhub_console"
LOGIN_COOKIE: Final = "orderhub_console_login"  # the sign-in form's CSRF token
SESSION_SECONDS: Final = 8 * 3600
LOGIN_SECONDS: Final = 1800
_CONTEXT: Final = b"orderhub console session v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, kw_only=True, slots=True)
class Session:
    key_name: str
    can_act: bool  # ``ops``; ``console:read`` only looks
    csrf: str
    expires: datetime


class Sessions:
    """Issues and reads session cookies for the configured keys."""

    def __init__(self, keys: Iterable[ApiKey], *, seconds: int = SESSION_SECONDS) -> None:
        self._keys = {key.name: key for key in keys}
        material = hashlib.sha256()
        for key in sorted(self._keys.values(), key=lambda k: k.name):
            material.update(hashlib.sha256(f"{key.name}\0{key.key}".encode()).digest())
        self._secret = hmac.new(material.digest(), _CONTEXT, hashlib.sha256).digest()
        self._digests = [
            (hashlib.sha256(key.key.encode()).digest(), key) for key in self._keys.values()
        ]
        self.seconds = seconds

    def identify(self, presented: str) -> ApiKey | None:
        """The key presented at sign-in (every key compared in constant time)."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        found = None
        for known, key in self._digests:
            if hmac.compare_digest(known, digest):
                found = key
        return found

    @staticmethod
    def may_look(key: ApiKey) -> bool:
        """``ops`` or ``console:read``, and no limit: the console shows every account."""
        return key.limit is None and (OPS in key.scopes or CONSOLE_READ in key.scopes)

    def _tag(self, key: ApiKey) -> str:
        return _b64(hmac.new(self._secret, key.key.encode(), hashlib.sha256).digest()[:16])

    def _sign(self, payload: bytes) -> str:
        return _b64(hmac.new(self._secret, payload, hashlib.sha256).digest())

    def _seal(self, data: dict[str, object]) -> str:
        payload = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(payload)}.{self._sign(payload)}"

    def _open(self, cookie: str | None) -> dict[str, object] | None:
        if not cookie or cookie.count(".") != 1 or len(cookie) > 4096:
            return None
        encoded, signature = cookie.split(".")
        try:
            payload = _unb64(encoded)
        except ValueError:
            return None
        if not hmac.compare_digest(self._sign(payload), signature):
            return None
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def issue(self, key: ApiKey, *, now: datetime) -> str:
        expires = now + timedelta(seconds=self.seconds)
        return self._seal(
            {
                "n": key.name,
                "k": self._tag(key),
                "e": int(expires.timestamp()),
                "c": secrets.token_urlsafe(24),
            }
        )

    def read(self, cookie: str | None, *, now: datetime) -> Session | None:
        data = self._open(cookie)
        if data is None:
            return None
        name, tag, expires, csrf = data.get("n"), data.get("k"), data.get("e"), data.get("c")
        if not (isinstance(name, str) and isinstance(tag, str) and isinstance(csrf, str)):
            return None
        if not isinstance(expires, int) or expires <= now.timestamp():
            return None
        key = self._keys.get(name)
        if key is None or not hmac.compare_digest(self._tag(key), tag):
            return None
        if not self.may_look(key):
            return None
        return Session(
            key_name=name,
            can_act=OPS in key.scopes,
            csrf=csrf,
            expires=datetime.fromtimestamp(expires, tz=now.tzinfo),
        )

    def login_token(self, *, now: datetime) -> tuple[str, str]:
        """A CSRF token for the sign-in form and the cookie that vouches for it."""
        token = secrets.token_urlsafe(24)
        return token, self._seal({"l": token, "e": int(now.timestamp()) + LOGIN_SECONDS})

    def login_token_valid(self, cookie: str | None, token: str, *, now: datetime) -> bool:
        data = self._open(cookie)
        if data is None:
            return False
        expected, expires = data.get("l"), data.get("e")
        if not isinstance(expected, str) or not isinstance(expires, int):
            return False
        return expires > now.timestamp() and hmac.compare_digest(
            expected.encode(), token.encode("utf-8", "surrogatepass")
        )


def csrf_valid(session: Session, token: str | None) -> bool:
    return token is not None and hmac.compare_digest(
        session.csrf.encode(), token.encode("utf-8", "surrogatepass")
    )
