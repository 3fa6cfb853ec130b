"""The token quota is the hub's, not a process's: accounts opened by several processes
(each its own client, its own database connection) spend from one budget in the database,
so a storm of refused tokens in all of them still asks Octopia at most the quota. And
warming an account up (an API process starting) reads the carriers once; each token
fetch is noted as the account's health."""

from __future__ import annotations

from pathlib import Path

import pytest
from octopia_helpers import account_config

from orderhub.adapters.clock import SystemClock
from orderhub.adapters.persistence import create_engine, migrate
from orderhub.adapters.persistence.budgets import SqlRateBudget
from orderhub.channels.health import LocalAccountHealth
from orderhub.channels.spi import AccountServices, TransientChannelError
from orderhub_octopia.plugin import OctopiaAccount, plugin
from orderhub_octopia.simulator import TOKEN_PATH, SimulatorControl

PROCESSES = 3
QUOTA = 4


async def test_processes_share_one_token_quota(sim: SimulatorControl, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    await migrate(url)
    engines = [create_engine(url) for _ in range(PROCESSES)]
    accounts: list[OctopiaAccount] = []
    try:
        for engine in engines:  # one per process: its own client, token and connection
            account = plugin.open_account(account_config(sim.url, token_requests_per_hour=QUOTA))
            assert isinstance(account, OctopiaAccount)
            account.bind(AccountServices(budget=SqlRateBudget(engine, SystemClock())))
            accounts.append(account)
        order_id = str(sim.create_order(sales_channel="OCTOBE")["orderId"])
        refusals: list[str] = []
        for _ in range(6):  # every token revoked at once: each process needs a new one
            sim.revoke_tokens()
            for account in accounts:
                account.client.tokens._paused_until = 0.0  # no pause: only the quota holds
                try:
                    await account.client.get_order(order_id)
                except TransientChannelError as exc:
                    refusals.append(exc.message)
        assert sim.tokens_issued() == QUOTA  # not QUOTA per process
        assert len(refusals) >= 6 * PROCESSES - QUOTA
        assert all("quota" in message for message in refusals)
    finally:
        for account in accounts:
            await account.aclose()
        for engine in engines:
            await engine.dispose()


async def test_warming_up_loads_the_carriers_once(
    sim: SimulatorControl,
) -> None:
    account = plugin.open_account(account_config(sim.url))
    assert isinstance(account, OctopiaAccount)
    try:
        await account.warm()
        assert account.known_carriers()  # loaded: no background load pending
        assert len(sim.calls(path="/carriers")) == 1
        await account.warm()  # a second warm-up asks nothing
        assert len(sim.calls(path="/carriers")) == 1
    finally:
        await account.aclose()


@pytest.fixture(autouse=True)
def _no_stray_faults(sim: SimulatorControl) -> None:
    sim.clear_faults()


async def test_each_token_fetch_is_noted_as_the_accounts_health(sim: SimulatorControl) -> None:
    account = plugin.open_account(account_config(sim.url))
    assert isinstance(account, OctopiaAccount)
    health = LocalAccountHealth()
    account.bind(AccountServices(health=health))
    order_id = str(sim.create_order(sales_channel="OCTOBE")["orderId"])
    try:
        sim.add_fault(TOKEN_PATH, status=503, times=1)
        with pytest.raises(TransientChannelError):
            await account.client.get_order(order_id)
        ok, detail = health.last[("octopia", "main", "token")]
        assert not ok
        assert "503" in detail
        account.client.tokens._paused_until = 0.0
        await account.client.get_order(order_id)
        assert health.last[("octopia", "main", "token")] == (True, "")
    finally:
        await account.aclose()
