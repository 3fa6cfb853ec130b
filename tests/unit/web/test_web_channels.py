from __future__ import annotations

from .support import (
    BEARER_TOKEN,
    FULL,
    OLD_SECRET,
    PATH_TOKEN,
    PLAIN,
    SECRET,
    Harness,
    auth,
)


async def test_installed_channels_with_accounts_and_capabilities(harness: Harness) -> None:
    response = await harness.client.get("/api/v1/channels", headers=auth("reader"))
    assert response.status_code == 200
    channels = response.json()["channels"]
    assert [c["name"] for c in channels] == ["idle", "stub"]
    idle, stub = channels
    assert idle == {"name": "idle", "distribution": "idle-dist", "version": "2.0", "accounts": []}
    assert (stub["distribution"], stub["version"]) == ("orderhub-stub", "0.1.0")
    accounts = {a["name"]: a["capabilities"] for a in stub["accounts"]}
    assert list(accounts) == ["closed", "main", "pathtoken", "plain"]
    assert accounts["main"] == FULL.as_dict()
    assert accounts["plain"] == PLAIN.as_dict()
    for secret in (SECRET, OLD_SECRET, BEARER_TOKEN, PATH_TOKEN):
        assert secret not in response.text
