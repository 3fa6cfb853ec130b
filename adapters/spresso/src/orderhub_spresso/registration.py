"""Webhook registration: thin and swappable, since Spresso's registration API is not public.

The account's ``registration`` setting picks a :class:`Registrar`:

* ``rest`` (default, [inferred] shape): ``GET /v1/webhooks`` lists ``[{id, url, event}]``,
  ``POST /v1/webhooks {url, event}`` creates one, ``PUT /v1/webhooks/{id} {url, event}``
  moves one; one registration per event, so a second run changes nothing;
* ``manual``: nothing is called; the report says what to give Spresso's support;
* ``package.module:factory``: any callable taking the account's settings and returning a
  :class:`Registrar` (once Spresso's real API is known, without touching the adapter).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from orderhub.channels.spi import CheckItem, CheckStatus, SetupAction, SetupStep
from orderhub_spresso import wire
from orderhub_spresso.client import SpressoAuthError, SpressoClient, SpressoError


class Registrar(Protocol):
    async def register(
        self, client: SpressoClient, urls: Mapping[str, str]
    ) -> Sequence[SetupStep]: ...

    async def check(self, client: SpressoClient, urls: Mapping[str, str]) -> Sequence[CheckItem]:
        """``urls``: event -> where it must go (None: unknown, only the API is checked)."""
        ...


def _step(event: str, action: SetupAction, detail: str = "") -> SetupStep:
    return SetupStep(what=f"webhook {event}", action=action, detail=detail)


class RestRegistrar:
    async def _existing(self, client: SpressoClient) -> list[wire.WebhookRegistration]:
        response = await client.request("GET", wire.WEBHOOKS_PATH)
        return client.decode(response, list[wire.WebhookRegistration])

    async def register(self, client: SpressoClient, urls: Mapping[str, str]) -> Sequence[SetupStep]:
        try:
            existing = {hook.event: hook for hook in await self._existing(client)}
        except SpressoError as exc:
            return [_step(event, SetupAction.FAILED, _why(exc)) for event in urls]
        steps = []
        for event, url in urls.items():
            hook = existing.get(event)
            body = wire.WebhookRegistrationRequest(url=url, event=event)
            try:
                if hook is None:
                    await client.request("POST", wire.WEBHOOKS_PATH, body)
                    steps.append(_step(event, SetupAction.CREATED, url))
                elif hook.url != url:
                    path = wire.WEBHOOK_PATH.format(webhook_id=hook.id)
                    await client.request("PUT", path, body)
                    steps.append(_step(event, SetupAction.UPDATED, f"{hook.url} -> {url}"))
                else:
                    steps.append(_step(event, SetupAction.UNCHANGED, url))
            except SpressoError as exc:
                steps.append(_step(event, SetupAction.FAILED, _why(exc)))
        return steps

    async def check(self, client: SpressoClient, urls: Mapping[str, str]) -> Sequence[CheckItem]:
        try:
            existing = {hook.event: hook for hook in await self._existing(client)}
        except SpressoAuthError as exc:
            return [
                CheckItem(what="credentials", status=CheckStatus.MISCONFIGURED, detail=_why(exc))
            ]
        except SpressoError as exc:
            return [CheckItem(what="api", status=CheckStatus.FAILED, detail=_why(exc))]
        items = [CheckItem(what="credentials", status=CheckStatus.OK)]
        for event in wire.EVENTS:
            hook = existing.get(event)
            if hook is None:
                items.append(
                    CheckItem(
                        what=f"webhook {event}",
                        status=CheckStatus.FAILED,
                        detail="not registered: run `orderhub channels setup`",
                    )
                )
            elif urls.get(event) and hook.url != urls[event]:
                detail = f"goes to {hook.url}, not {urls[event]}"
                items.append(
                    CheckItem(what=f"webhook {event}", status=CheckStatus.FAILED, detail=detail)
                )
            else:
                items.append(
                    CheckItem(what=f"webhook {event}", status=CheckStatus.OK, detail=hook.url)
                )
        return items


class ManualRegistrar:
    """Spresso's support registers the webhooks: the report says what to send them."""

    def __init__(self, secret_hint: str = "the client secret Spresso gave this account") -> None:
        self.secret_hint = secret_hint

    async def register(self, client: SpressoClient, urls: Mapping[str, str]) -> Sequence[SetupStep]:
        return [
            _step(
                event,
                SetupAction.MANUAL,
                f"ask Spresso's support to send {event} webhooks to {url}, signed "
                f"(X-Spresso-Hmac-SHA256) with {self.secret_hint}",
            )
            for event, url in urls.items()
        ]

    async def check(self, client: SpressoClient, urls: Mapping[str, str]) -> Sequence[CheckItem]:
        return [
            CheckItem(
                what=f"webhook {event}",
                status=CheckStatus.SKIPPED,
                detail="registered by Spresso's support (manual mode): cannot be checked",
            )
            for event in wire.EVENTS
        ]


def _why(exc: SpressoError) -> str:
    return f"Spresso answered {exc.status}: {exc.message}" if exc.status else exc.message


def registrar(settings: Mapping[str, Any]) -> Registrar:
    choice = str(settings.get("registration") or "rest")
    if choice == "rest":
        return RestRegistrar()
    if choice == "manual":
        return ManualRegistrar()
    module_name, sep, attr = choice.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(
            f"spresso registration {choice!r}: 'rest', 'manual' or 'package.module:factory'"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"spresso registration {choice!r} cannot be loaded: {exc}") from exc
    made: Registrar = factory(settings)
    return made


__all__ = ["ManualRegistrar", "Registrar", "RestRegistrar", "registrar"]
