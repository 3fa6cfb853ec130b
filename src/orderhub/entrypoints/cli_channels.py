"""``orderhub channels setup|check <channel> <account>``: provision an account at its
channel (the adapter's :meth:`~orderhub.channels.spi.ChannelAccount.setup`, idempotent:
webhooks pointed at this hub) or check it (:meth:`~orderhub.channels.spi.ChannelAccount.check`,
which changes nothing), and print the adapter's report.

Only the account asked for is opened, and it is closed (``aclose``) whatever happens.
Exit codes: 0 every step or check went well (``manual`` steps and ``skipped`` checks
included: the report says what an operator must do); 1 a step or a check failed, or the
hook raised (its message is printed, not its traceback); 2 an unknown channel or account,
or a bad ``--public-url``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Final, TextIO
from urllib.parse import quote, urlsplit

import msgspec

from orderhub.adapters.persistence import create_engine
from orderhub.adapters.persistence.budgets import SqlRateBudget
from orderhub.channels.registry import PluginLoadError, discover
from orderhub.channels.spi import (
    AccountServices,
    ChannelAccount,
    ChannelError,
    CheckReport,
    CheckStatus,
    SetupAction,
    SetupReport,
)
from orderhub.config import Settings

__all__ = ["add_channels_parser", "run_channels"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_UNKNOWN: Final = 2
CHECK_FAILURES: Final = frozenset({CheckStatus.FAILED, CheckStatus.MISCONFIGURED})


def add_channels_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    channels = commands.add_parser(
        "channels", parents=[common], help="set an account up at its channel, or check it"
    )
    actions = channels.add_subparsers(dest="channels_command", required=True, metavar="ACTION")
    target = argparse.ArgumentParser(add_help=False)
    target.add_argument("channel", help="the channel's name (its plugin)")
    target.add_argument("account", help="the account's name in channels.accounts")
    target.add_argument("--json", action="store_true", help="print the report as JSON")
    setup = actions.add_parser(
        "setup",
        parents=[common, target],
        help="create or update what the account needs at the channel (webhooks); idempotent",
    )
    setup.add_argument(
        "--public-url",
        required=True,
        type=public_url,
        metavar="URL",
        help="where the channel reaches this hub, e.g. https://orders.example.com",
    )
    actions.add_parser(
        "check",
        parents=[common, target],
        help="check the account's credentials and set-up; changes nothing at the channel",
    )


def public_url(value: str) -> str:
    """An absolute http(s) URL without query or fragment: webhook paths are appended."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError("must be an absolute http:// or https:// URL")
    if parts.query or parts.fragment:
        raise argparse.ArgumentTypeError("must have no query string or fragment")
    return value.strip().rstrip("/")


def run_channels(args: argparse.Namespace, settings: Settings) -> int:
    command = f"orderhub channels {args.channels_command}"
    try:
        account = open_account(settings, args.channel, args.account)
    except PluginLoadError:
        raise  # the configuration's problem: reported by main
    except Exception as exc:
        print(
            f"{command}: opening {args.channel}/{args.account}: {_describe(exc)}", file=sys.stderr
        )
        return EXIT_FAILED
    if isinstance(account, str):
        print(f"{command}: {account}", file=sys.stderr)
        return EXIT_UNKNOWN
    return asyncio.run(_run(account, args, command, settings.database.url))


def open_account(settings: Settings, channel: str, name: str) -> ChannelAccount | str:
    """The configured account, opened; or why it cannot be."""
    plugins = discover(enabled=settings.channels.enabled_names)
    loaded = plugins.get(channel)
    if loaded is None:
        return f"channel {channel!r} is not installed or not enabled{_among(plugins)}"
    configs = [c for c in settings.channels.account_configs() if c.channel == channel]
    config = next((c for c in configs if c.name == name), None)
    if config is None:
        names = (c.name for c in configs)
        return f"no account {name!r} is configured for channel {channel!r}{_among(names)}"
    return loaded.plugin.open_account(config)


def _among(names: Iterable[str]) -> str:
    known = sorted(names)
    return f" (known: {', '.join(known)})" if known else " (none is configured)"


async def _run(
    account: ChannelAccount, args: argparse.Namespace, command: str, database_url: str
) -> int:
    where = f"{account.channel}/{account.name}"
    # what the check asks of the channel counts in the hub's shared budget (a token quota)
    engine = create_engine(database_url)
    account.bind(AccountServices(budget=SqlRateBudget(engine)))
    try:
        if args.channels_command == "setup":
            report = await account.setup(args.public_url)
            show_setup(account, args.public_url, report, json=args.json)
            return EXIT_FAILED if report.failed else EXIT_OK
        checked = await account.check()
        show_check(account, checked, json=args.json)
        return EXIT_FAILED if checked.status in CHECK_FAILURES else EXIT_OK
    except Exception as exc:  # the adapter's message, not a traceback
        print(f"{command}: {where}: {_describe(exc)}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        try:
            await account.aclose()
        except Exception as exc:
            print(f"{command}: {where}: closing the account: {_describe(exc)}", file=sys.stderr)
        await engine.dispose()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ChannelError):
        status = f" (HTTP {exc.status})" if exc.status is not None else ""
        return f"{type(exc).__name__}{status}: {exc.message}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# --- reports ---------------------------------------------------------------------------


def show_setup(
    account: ChannelAccount,
    url: str,
    report: SetupReport,
    *,
    json: bool,
    out: TextIO | None = None,
) -> None:
    out = out or sys.stdout
    if json:
        _dump(
            {
                "channel": account.channel,
                "account": account.name,
                "public_url": url,
                "webhook_url": _shown_url(account, url),
                "changed": report.changed,
                "failed": report.failed,
                "steps": [
                    {"what": s.what, "action": s.action.value, "detail": s.detail}
                    for s in report.steps
                ],
            },
            out,
        )
        return
    out.write(f"{account.channel}/{account.name}: webhooks to {_shown_url(account, url)}\n")
    _table(((s.action.value, s.what, s.detail) for s in report.steps), out)
    out.write(f"{_setup_summary(report)}\n")


def _shown_url(account: ChannelAccount, url: str) -> str:
    """The account's webhook URL with its path token masked, like ``check-config`` does."""
    shown = account.webhook_url(url)
    for token in account.config.webhook.path_tokens:
        shown = shown.replace(quote(token, safe=""), "***")
    return shown


def _setup_summary(report: SetupReport) -> str:
    if not report.steps:
        return "nothing to set up for this channel"
    counts = Counter(step.action for step in report.steps)
    parts = [f"{counts[action]} {action.value}" for action in SetupAction if counts[action]]
    if report.failed:
        verdict = "FAILED: run it again once the cause is fixed"
    elif report.changed:
        verdict = "changed at the channel"
    else:
        verdict = "nothing changed at the channel"
    manual = counts[SetupAction.MANUAL]
    todo = f"; {manual} step(s) for an operator, see above" if manual and not report.failed else ""
    return f"{', '.join(parts)}: {verdict}{todo}"


def show_check(
    account: ChannelAccount, report: CheckReport, *, json: bool, out: TextIO | None = None
) -> None:
    out = out or sys.stdout
    if json:
        _dump(
            {
                "channel": account.channel,
                "account": account.name,
                "status": report.status.value,
                "items": [
                    {"what": i.what, "status": i.status.value, "detail": i.detail}
                    for i in report.items
                ],
            },
            out,
        )
        return
    out.write(f"{account.channel}/{account.name}: {report.status.value}\n")
    _table(((i.status.value, i.what, i.detail) for i in report.items), out)


def _table(rows: Iterable[tuple[str, str, str]], out: TextIO) -> None:
    listed: Sequence[tuple[str, str, str]] = list(rows)
    if not listed:
        return
    first = max(len(row[0]) for row in listed)
    second = max(len(row[1]) for row in listed)
    for status, what, detail in listed:
        line = f"  {status:<{first}}  {what:<{second}}  {_one_line(detail)}"
        out.write(line.rstrip() + "\n")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _dump(data: dict[str, Any], out: TextIO) -> None:
    out.write(msgspec.json.format(msgspec.json.encode(data)).decode())
    out.write("\n")
