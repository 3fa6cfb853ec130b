"""OAuth2 client credentials against Octopia's Keycloak, within the token quota.

One :class:`TokenSource` per account: the token is reused for its lifetime (2 h) less a
margin, shared by every task (one fetch at a time), and the token endpoint is never asked
more than ``per_hour`` times in any hour, failures included: each request is spent from a
:class:`~orderhub.channels.budget.RateBudget` keyed by the client id, which the hub shares
between all its processes (:meth:`TokenSource.share`; alone, one process counts for
itself). After a failed fetch the endpoint is not asked again before a growing pause.
Either limit answers a transient error with the time to wait, so the hub's outbox retries
later instead of burning the quota.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import httpx
import msgspec

from orderhub.channels.budget import LocalRateBudget, RateBudget
from orderhub.channels.spi import ChannelConfigurationError, ChannelError, TransientChannelError
from orderhub_octopia import wire

WINDOW_SECONDS: Final = 3600.0
FIRST_PAUSE: Final = 2.0
MAX_PAUSE: Final = 300.0
BUDGET_SECONDS: Final = 10.0  # the longest a token request waits for the shared budget
MIN_TTL: Final = 60.0  # a token said to live less (or negative) is kept this long


class TokenUnavailable(TransientChannelError):
    """No token now (quota, a pause after a failure, the endpoint down): try later."""


@dataclass(frozen=True, kw_only=True)
class Credentials:
    client_id: str
    client_secret: str
    token_url: str = wire.TOKEN_URL

    def __repr__(self) -> str:  # never the secret
        return f"Credentials(client_id={self.client_id!r}, token_url={self.token_url!r})"


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float


class TokenSource:
    def __init__(
        self,
        credentials: Credentials,
        http: httpx.AsyncClient,
        *,
        per_hour: int = wire.TOKENS_PER_HOUR,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_hour < 1:
            raise ValueError("token_requests_per_hour must be at least 1")
        self.credentials = credentials
        self._http = http
        self._per_hour = per_hour
        self._margin = refresh_margin
        self.clock = clock
        self._token: _Token | None = None
        self._lock = asyncio.Lock()
        self._budget: RateBudget = LocalRateBudget(lambda: self.clock())
        self._report: Callable[[bool, str], Awaitable[None]] | None = None
        self._paused_until = 0.0
        self._pause = FIRST_PAUSE
        self.fetched = 0  # token requests sent (for tests and logs)

    @property
    def budget_key(self) -> str:
        """One quota per client: accounts that share a client share its budget (a client
        id too long or odd for a key is named by its hash)."""
        client = self.credentials.client_id
        if not (0 < len(client) <= 100 and client.isascii() and client.isprintable()):
            client = "sha256:" + hashlib.sha256(client.encode()).hexdigest()
        return f"octopia:token:{client}"

    def share(self, budget: RateBudget) -> None:
        """Count token requests in ``budget`` (the hub's, shared by all its processes)."""
        self._budget = budget

    def report_to(self, report: Callable[[bool, str], Awaitable[None]]) -> None:
        """Tell ``report`` how each token fetch went (ok, or failed and why)."""
        self._report = report

    async def _reported(self, ok: bool, detail: str = "") -> None:
        if self._report is not None:
            await self._report(ok, detail)

    async def token(self) -> str:
        cached = self._token
        if cached is not None and self.clock() < cached.refresh_at:
            return cached.value
        async with self._lock:
            cached = self._token
            if cached is not None and self.clock() < cached.refresh_at:
                return cached.value
            try:
                self._token = await self._fetch()
            except ChannelError as exc:
                await self._reported(False, exc.message)
                raise
            await self._reported(True)
            return self._token.value

    async def invalidate(self, value: str) -> None:
        """A call was refused with this token: forget it (unless already replaced)."""
        async with self._lock:
            if self._token is not None and self._token.value == value:
                self._token = None

    async def refused(self, value: str) -> None:
        """A fresh token was refused too (credentials revoked, SellerId unlinked): forget
        it and pause the token endpoint like after a failure, so that a 401 on every call
        does not buy a token per call until the hour's budget is gone."""
        async with self._lock:
            if self._token is not None and self._token.value == value:
                self._token = None
            self._failed()
        await self._reported(False, "Octopia refused a fresh token (401)")

    def accepted(self) -> None:
        """A call went through: the pause after failures starts short again."""
        self._pause = FIRST_PAUSE

    async def _admit(self) -> None:
        now = self.clock()
        if now < self._paused_until:
            wait = self._paused_until - now
            raise TokenUnavailable(
                f"Octopia token endpoint: paused {wait:.0f} s after a failure", retry_after=wait
            )
        try:
            async with asyncio.timeout(BUDGET_SECONDS):
                wait_for = await self._budget.spend(
                    self.budget_key, limit=self._per_hour, window_seconds=WINDOW_SECONDS
                )
        except Exception as exc:  # the shared budget unreadable: its database down or busy
            pause = self._failed()  # a growing pause, as after a failed fetch
            raise TokenUnavailable(
                f"Octopia token quota unreadable, no token asked for: "
                f"{type(exc).__name__}: {str(exc)[:300]}",
                retry_after=pause,
            ) from exc
        if wait_for is not None:
            raise TokenUnavailable(
                f"Octopia token quota: {self._per_hour} token requests in the last hour; "
                f"next one in {wait_for:.0f} s",
                retry_after=wait_for,
            )
        self.fetched += 1

    def _failed(self) -> float:
        pause = self._pause
        self._paused_until = self.clock() + pause
        self._pause = min(self._pause * 2, MAX_PAUSE)
        return pause

    async def _fetch(self) -> _Token:
        await self._admit()
        creds = self.credentials
        form = {
            "grant_type": "client_credentials",
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
        }
        started = self.clock()
        try:
            resp = await self._http.post(
                creds.token_url, data=form, headers={"Accept": "application/json"}
            )
        except httpx.HTTPError as exc:
            pause = self._failed()
            raise TokenUnavailable(
                f"Octopia token endpoint unreachable ({type(exc).__name__})", retry_after=pause
            ) from exc
        code = resp.status_code
        if code >= 500 or code in (408, 429):
            pause = self._failed()
            retry = _retry_after(resp.headers.get("Retry-After"))
            raise TokenUnavailable(
                f"Octopia token endpoint answered {code}",
                status=code,
                retry_after=max(pause, retry or 0.0),
            )
        if code >= 400:
            self._failed()
            problem = wire.decode_problem(resp.content)
            said = ""
            if problem is not None:
                said = problem.error_description or problem.detail or problem.error or ""
            raise ChannelConfigurationError(
                f"Octopia refused the client credentials of client {creds.client_id!r} "
                f"(HTTP {code}){': ' + said if said else ''}",
                status=code,
            )
        try:
            answer = msgspec.json.decode(resp.content, type=wire.TokenResponse)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            pause = self._failed()
            raise TokenUnavailable(
                f"Octopia token endpoint sent no token: {exc}", retry_after=pause
            ) from exc
        # the pause starts short again once a call goes through (accepted()), not here:
        # a token Octopia then refuses is no recovery
        ttl = float(answer.expires_in or wire.TOKEN_TTL_SECONDS)
        if not math.isfinite(ttl) or ttl < MIN_TTL:  # else one token per call: a 401 cures
            ttl = MIN_TTL  # a token held too long, nothing cures a budget spent
        margin = min(self._margin, ttl / 2)
        return _Token(value=answer.access_token, refresh_at=started + ttl - margin)


def _retry_after(raw: str | None) -> float | None:
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None
