"""The verdict of a chaos run, from what the marketplaces and the warehouse can see: the
simulators' orders, call logs and webhook logs, and the hub's public API (orders, feed,
ops lists), never its tables. :func:`check` is a pure function of an observation (plain
JSON), so that it is tested on fabricated logs (``tests/unit/chaos``).

An observation::

    {"max_attempts": 8, "retry_horizon": 120.0, "observed_at": <epoch>,
     "channels": {"topi": {"orders": [{"id", "status"}], "calls": [...], "webhooks": [...]}},
     "hub_orders": [<GET /orders/{id}>...], "feed": [<events from after=0>],
     "wms": [<chaos.wms ledger entries>], "failed_messages": [...], "timeline": [...]}
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from chaos.cancellations import Cancelled, cancellations, live_lines, serves
from chaos.effects import (
    CALL_EFFECTS,
    Effect,
    is_cancel,
    named_lines,
    satisfies,
    statuses_agree,
    wms_key,
)

TERMINAL_EVENTS: Final = ("command.succeeded", "command.failed")
NEARBY_SECONDS: Final = 5.0


@dataclass
class Violation:
    kind: str
    detail: str
    channel: str | None = None
    order: str | None = None
    """The order's id at its marketplace."""
    hub_order: str | None = None
    timeline: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def epoch(value: Any) -> float:
    """Seconds since the epoch from a float or an ISO 8601 string (0 when unknown)."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value:
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return 0.0
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.timestamp()
    return 0.0


class Checker:
    def __init__(self, observation: dict[str, Any]) -> None:
        self.obs = observation
        self.violations: list[Violation] = []
        self.hub_by_key: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for order in observation.get("hub_orders", []):
            self.hub_by_key[(order["channel"], order["channel_order_id"])].append(order)
        self.hub_by_id = {o["id"]: o for o in observation.get("hub_orders", [])}
        # per marketplace order: its cancellation requests' lines, as the marketplace lists them
        self.requests: dict[tuple[str, str], dict[str, list[str]]] = {
            (name, mp["id"]): mp.get("requests", {})
            for name, seen in observation.get("channels", {}).items()
            for mp in seen.get("orders", [])
        }
        self.feed: list[dict[str, Any]] = observation.get("feed", [])
        self.terminal: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in self.feed:
            if event.get("type") in TERMINAL_EVENTS:
                self.terminal[str(event["data"].get("command_id"))].append(event)
        # commands waiting behind a failed one of their order (the hub's rule: an operator
        # retries or abandons the failed one first); not stuck, not yet ended
        failed = {c for c, ends in self.terminal.items() if ends[0]["type"] == "command.failed"}
        if "failed_commands" in observation:  # the hub's list: one retried or abandoned is not
            failed = {str(c.get("id")) for c in observation["failed_commands"]}
        self.held = {
            str(c.get("id"))
            for order in observation.get("hub_orders", [])
            for c in waiting_for_operator(order.get("pending_commands", []), failed)
        }
        # per channel: every effect call (any answer), in the simulator's order
        self.effects: dict[str, list[tuple[Effect, dict[str, Any]]]] = {}
        for name, seen in observation.get("channels", {}).items():
            mapper = CALL_EFFECTS.get(name)
            calls = sorted(seen.get("calls", []), key=lambda c: c.get("seq", 0))
            found = [(mapper(c), c) for c in calls] if mapper else []
            self.effects[name] = [(e, c) for e, c in found if e is not None]
        # per (channel, marketplace order): the cancellations it took, line by line
        self.cancelled: dict[tuple[str, str], list[Cancelled]] = {}
        taken: dict[tuple[str, str], list[tuple[Effect, dict[str, Any]]]] = defaultdict(list)
        for name, effects in self.effects.items():
            for effect, call in effects:
                if is_cancel(effect.key) and 200 <= (call.get("status_code") or 0) < 300:
                    taken[(name, effect.order)].append((effect, call))
        for key, calls in taken.items():
            hub = self.hub_by_key.get(key)
            self.cancelled[key] = cancellations(calls, live_lines(hub[0] if hub else None))

    def flag(
        self,
        kind: str,
        detail: str,
        *,
        channel: str | None = None,
        order: str | None = None,
        hub_order: str | None = None,
    ) -> None:
        if hub_order is None and channel and order:
            found = self.hub_by_key.get((channel, order))
            hub_order = found[0]["id"] if found else None
        if order is None and hub_order in self.hub_by_id:
            order = self.hub_by_id[hub_order]["channel_order_id"]
            channel = channel or self.hub_by_id[hub_order]["channel"]
        self.violations.append(
            Violation(
                kind,
                detail,
                channel,
                order,
                hub_order,
                self.timeline_of(channel, order, hub_order),
            )
        )

    # --- the checks --------------------------------------------------------------------

    def run(self) -> list[Violation]:
        self.check_orders()
        self.check_commands()
        self.check_effects_once()
        self.check_feed()
        self.check_webhooks()
        self.check_stuck()
        return self.violations

    def check_orders(self) -> None:
        """Every marketplace order is in the hub exactly once, its state agreeing with the
        marketplace's or carrying an attention reason; the hub has no other order."""
        known: set[tuple[str, str]] = set()
        for name, seen in self.obs.get("channels", {}).items():
            for mp in seen.get("orders", []):
                key = (name, mp["id"])
                known.add(key)
                found = self.hub_by_key.get(key, [])
                if not found:
                    self.flag(
                        "order-missing",
                        f"{name} order {mp['id']} ({mp['status']}) is not in the hub",
                        channel=name,
                        order=mp["id"],
                    )
                    continue
                if len(found) > 1:
                    ids = ", ".join(o["id"] for o in found)
                    self.flag(
                        "order-duplicated",
                        f"{name} order {mp['id']} is in the hub {len(found)} times: {ids}",
                        channel=name,
                        order=mp["id"],
                    )
                hub = found[0]
                agree = statuses_agree(name, mp["status"], hub.get("channel_status"))
                if not agree and not hub.get("attention"):
                    self.flag(
                        "state-disagrees",
                        f"{name} shows {mp['status']!r}, the hub {hub.get('channel_status')!r}"
                        f" (status {hub.get('status')}) and no attention reason",
                        channel=name,
                        order=mp["id"],
                    )
        for key, orders in self.hub_by_key.items():
            if key[0] in self.obs.get("channels", {}) and key not in known:
                self.flag(
                    "order-unknown",
                    f"the hub has {key[0]} order {key[1]} that {key[0]} never created",
                    channel=key[0],
                    hub_order=orders[0]["id"],
                    order=key[1],
                )

    def check_commands(self) -> None:
        """Every command the warehouse got a 2xx for ended with exactly one terminal event,
        made its channel effect exactly once if it succeeded (none if it failed, unless
        the order carries an attention reason), after the order's earlier commands, and
        was not called more than max_attempts times."""
        max_attempts = int(self.obs.get("max_attempts", 0))
        per_order: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for entry in self.obs.get("wms", []):
            command_id = entry.get("command_id")
            status = entry.get("status")
            if not command_id or status is None or not 200 <= status < 300:
                continue
            channel, order = entry["channel"], entry["channel_order_id"]
            where = {"channel": channel, "order": order, "hub_order": entry["order_id"]}
            ends = self.terminal.get(command_id, [])
            if not ends and command_id in self.held:
                continue
            if len(ends) != 1:
                self.flag(
                    "terminal-events",
                    f"{entry['action']} command {command_id} has {len(ends)} terminal events "
                    f"({', '.join(e['type'] + ' seq ' + str(e['seq']) for e in ends) or 'none'})",
                    **where,
                )
            if not ends or channel not in self.effects:
                continue
            end = ends[0]
            key = self._wms_key(entry)
            if key is None:
                continue
            calls = [
                c for e, c in self.effects[channel] if e.order == order and satisfies(e.key, key)
            ]
            ok = [c for c in calls if 200 <= (c.get("status_code") or 0) < 300]
            if is_cancel(key):  # a call that cancelled (at least) the request's lines
                ok = [x.call for x in self.cancelled.get((channel, order), []) if serves(x, key)]
            if max_attempts and len(calls) > max_attempts:
                self.flag(
                    "too-many-attempts",
                    f"{entry['action']} command {command_id}: {len(calls)} calls to {channel} "
                    f"(max_attempts {max_attempts})",
                    **where,
                )
            attempts = end["data"].get("attempts")
            if max_attempts and isinstance(attempts, int) and attempts > max_attempts:
                self.flag(
                    "too-many-attempts",
                    f"{entry['action']} command {command_id} reports {attempts} attempts",
                    **where,
                )
            if end["type"] == "command.succeeded":
                if not ok:
                    self.flag(
                        "effect-missing",
                        f"{entry['action']} command {command_id} succeeded but {channel} "
                        f"never took {key!r} ({len(calls)} calls, none 2xx)",
                        **where,
                    )
                else:
                    per_order[(channel, order)].append((key, ok[0]))
            elif ok and not self._attention(entry["order_id"]):
                self.flag(
                    "failed-but-done",
                    f"{entry['action']} command {command_id} failed, yet {channel} took "
                    f"{key!r}, and the order carries no attention reason",
                    **where,
                )
        for (channel, order), done in per_order.items():
            by_call = sorted(done, key=lambda item: item[1].get("seq", 0))
            if [k for k, _ in by_call] != [k for k, _ in done]:
                self.flag(
                    "effects-out-of-order",
                    f"{channel} took {[k for k, _ in by_call]}, the warehouse sent "
                    f"{[k for k, _ in done]}",
                    channel=channel,
                    order=order,
                )

    def check_effects_once(self) -> None:
        """No effect taken twice: no second acceptance, no second parcel, no line
        cancelled twice; and no line cancelled that the warehouse did not ask to cancel."""
        for channel, effects in self.effects.items():
            taken = Counter(
                e
                for e, c in effects
                if 200 <= (c.get("status_code") or 0) < 300 and not is_cancel(e.key)
            )
            for effect, count in taken.items():
                if count > 1:
                    self.flag(
                        "effect-duplicated",
                        f"{channel} took {effect.key!r} {count} times",
                        channel=channel,
                        order=effect.order,
                    )

        asked = self._cancellations_asked()
        for (channel, order), done in self.cancelled.items():
            wanted = asked.get((channel, order), frozenset())
            for cancelled in done:
                if cancelled.again:
                    self.flag(
                        "effect-duplicated",
                        f"{channel} cancelled {', '.join(sorted(cancelled.again))} again",
                        channel=channel,
                        order=order,
                    )
                unasked = set() if wanted is None else cancelled.lines - wanted
                if unasked:
                    self.flag(
                        "effect-unasked",
                        f"{channel} cancelled {', '.join(sorted(unasked))}, which no "
                        "cancellation the warehouse sent asked for",
                        channel=channel,
                        order=order,
                    )

    def _wms_key(self, entry: dict[str, Any]) -> str | None:
        hub = self.hub_by_id.get(entry["order_id"])
        requests = self.requests.get((entry["channel"], entry["channel_order_id"]))
        return wms_key(entry["action"], entry.get("body"), hub, requests)

    def _cancellations_asked(self) -> dict[tuple[str, str], frozenset[str] | None]:
        """Per marketplace order: the lines the warehouse's cancellations asked to cancel
        (answered 2xx, or never answered: the hub may have taken one); None when one asked
        for the whole order."""
        asked: dict[tuple[str, str], frozenset[str] | None] = {}
        for entry in self.obs.get("wms", []):
            status = entry.get("status")
            if status is not None and not 200 <= status < 300:
                continue
            key = self._wms_key(entry)
            if key is None or not is_cancel(key):
                continue
            where = (entry["channel"], entry["channel_order_id"])
            want, before = named_lines(key), asked.get(where, frozenset())
            asked[where] = None if want is None or before is None else before | want
        return asked

    def check_feed(self) -> None:
        """Read from 0, the feed is 1..N without a gap or a repeated event."""
        seqs = [int(e["seq"]) for e in self.feed]
        for index, seq in enumerate(seqs):
            expected = seqs[index - 1] + 1 if index else 1
            if seq != expected:
                self.flag("feed-gap", f"feed seq {seq} follows {expected - 1}")
        repeated = Counter(
            (e["type"], str(e["data"].get("command_id")))
            for e in self.feed
            if e.get("type") in TERMINAL_EVENTS
        )
        for (type_, command_id), count in repeated.items():
            if count > 1:
                self.flag(
                    "feed-duplicate",
                    f"{type_} of command {command_id} is on the feed {count} times",
                    hub_order=next(
                        (e.get("order_id") for e in self.terminal.get(command_id, [])), None
                    ),
                )

    def check_webhooks(self) -> None:
        """A webhook the hub answered 2xx is not lost: its order is in the hub and, where
        it told the marketplace's current status, the hub shows that status (or an
        attention reason)."""
        for name, seen in self.obs.get("channels", {}).items():
            current = {o["id"]: o["status"] for o in seen.get("orders", [])}
            for hook in seen.get("webhooks", []):
                if not hook.get("delivered"):
                    continue
                order = str(hook.get("order_id"))
                found = self.hub_by_key.get((name, order))
                if not found:
                    self.flag(
                        "webhook-lost",
                        f"{name} webhook {hook.get('id')} ({hook.get('status')}) got a 2xx, "
                        "its order is not in the hub",
                        channel=name,
                        order=order,
                    )
                    continue
                status = hook.get("status")
                hub = found[0]
                if (
                    status
                    and current.get(order) == status
                    and not statuses_agree(name, status, hub.get("channel_status"))
                    and not hub.get("attention")
                ):
                    self.flag(
                        "webhook-lost",
                        f"{name} webhook {hook.get('id')} said {status!r} (got a 2xx); the hub "
                        f"shows {hub.get('channel_status')!r}",
                        channel=name,
                        order=order,
                    )

    def check_stuck(self) -> None:
        """Nothing left pending longer than the retry horizon (but what waits for an
        operator behind a failed command); no inbox message failed."""
        horizon = float(self.obs.get("retry_horizon", 0))
        now = float(self.obs.get("observed_at", 0))
        for order in self.obs.get("hub_orders", []):
            for command in order.get("pending_commands", []):
                if str(command.get("id")) in self.held:
                    continue
                age = now - epoch(command.get("created_at"))
                if age > horizon:
                    self.flag(
                        "command-stuck",
                        f"{command.get('kind')} command {command.get('id')} still "
                        f"{command.get('state')} after {age:.0f} s (attempts "
                        f"{command.get('attempts')}, held_by {command.get('held_by')}, "
                        f"last error {command.get('last_error')})",
                        hub_order=order["id"],
                    )
        gauges = self.obs.get("gauges", {})
        oldest = float(gauges.get("inbox_backlog_oldest_age_seconds", 0))
        if oldest > horizon:
            self.flag(
                "message-stuck",
                f"{gauges.get('inbox_backlog'):.0f} channel messages not applied, the oldest "
                f"for {oldest:.0f} s (GET /metrics, overview {gauges.get('overview_age_seconds')}"
                " s old)",
            )
        for message in self.obs.get("failed_messages", []):
            self.flag(
                "message-failed",
                f"inbox message {message.get('id')} failed: {message.get('error')}",
                channel=message.get("channel"),
                order=message.get("order_key"),
            )

    # --- helpers -----------------------------------------------------------------------

    def _attention(self, hub_order: str) -> bool:
        return bool(self.hub_by_id.get(hub_order, {}).get("attention"))

    def timeline_of(
        self, channel: str | None, order: str | None, hub_order: str | None
    ) -> list[str]:
        """What happened to one order, from every log, in time order."""
        if order is None and hub_order is None:
            return []
        rows: list[tuple[float, str]] = []
        for entry in self.obs.get("timeline", []):
            if (order and entry.get("order") == order) or (
                hub_order and entry.get("hub_order") == hub_order
            ):
                rest = {k: v for k, v in entry.items() if k not in ("at", "kind")}
                rows.append((epoch(entry.get("at")), f"{entry.get('kind')} {rest}"))
            elif entry.get("kind") in ("kill", "restart"):
                rows.append((epoch(entry.get("at")), f"{entry['kind']} {entry.get('process')}"))
            elif entry.get("kind") == "fault.network":
                text = f"network {entry.get('fault')} {entry.get('seconds')} s"
                rows.append((epoch(entry.get("at")), text))
        for effect, call in self.effects.get(channel or "", []):
            if effect.order == order:
                rows.append(
                    (
                        epoch(call.get("at")),
                        f"{channel} call {call.get('method')} {call.get('path')} {effect.key} "
                        f"-> {call.get('status_code')}",
                    )
                )
        for event in self.feed:
            if hub_order and event.get("order_id") == hub_order:
                data = event.get("data", {})
                extra = data.get("command_id") or data.get("channel_status") or ""
                text = f"feed {event['seq']} {event['type']} {extra}"
                rows.append((epoch(event.get("occurred_at")), text))
        rows.sort(key=lambda r: r[0])
        mine = [at for at, text in rows if not text.startswith(("kill", "restart", "network"))]
        # a kill, a restart or a network fault shows when it happened near one of the
        # order's own steps
        kept = [
            (at, text)
            for at, text in rows
            if not text.startswith(("kill", "restart", "network"))
            or any(abs(at - own) <= NEARBY_SECONDS for own in mine)
        ]
        return [
            f"{dt.datetime.fromtimestamp(at, dt.UTC).strftime('%H:%M:%S.%f')[:-3]} {text}"
            for at, text in kept
        ]


def waiting_for_operator(
    pending: list[dict[str, Any]], failed: set[str] | None = None
) -> list[dict[str, Any]]:
    """An order's pending commands that wait for an operator: one held by a failed command
    (``held_by``; in ``failed`` when given) and every later one of that order, which the
    hub dispatches only after it. The hub holds those too, naming the failure, but one
    whose claim raced the failure is held only by the next sweep: until then its
    ``held_by`` is empty."""
    waiting: list[dict[str, Any]] = []
    for command in sorted(pending, key=lambda c: c.get("seq", 0)):
        held_by = command.get("held_by")
        if waiting or (held_by and (failed is None or held_by in failed)):
            waiting.append(command)
    return waiting


def check(observation: dict[str, Any]) -> list[Violation]:
    """Every violation the observation shows (none: the run kept every promise)."""
    return Checker(observation).run()
