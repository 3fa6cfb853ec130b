"""Which event loop a process runs (``[runtime] event_loop``)."""

from __future__ import annotations

import asyncio
import importlib
from types import ModuleType

import pytest
import uvloop

from orderhub.config import ConfigError, load_settings
from orderhub.entrypoints import event_loop
from orderhub.entrypoints.cli import EXIT_CONFIG, main
from orderhub.entrypoints.event_loop import install_event_loop, loop_name


def run_and_name() -> str:
    async def name() -> str:
        return loop_name(asyncio.get_running_loop())

    return asyncio.run(name())


def test_auto_runs_later_coroutines_on_uvloop() -> None:
    assert install_event_loop("auto") == "uvloop"
    assert run_and_name() == "uvloop"
    loop = asyncio.new_event_loop()  # how dramatiq's AsyncIO middleware makes its loop
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_asyncio_undoes_an_earlier_choice() -> None:
    install_event_loop("uvloop")
    assert install_event_loop("asyncio") == "asyncio"
    assert run_and_name() == "asyncio"


def without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def refuse(name: str, package: str | None = None) -> ModuleType:
        if name == "uvloop":
            raise ImportError("No module named 'uvloop'")
        return real(name, package)

    monkeypatch.setattr(event_loop.importlib, "import_module", refuse)


def test_auto_falls_back_to_asyncio_where_uvloop_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    without_uvloop(monkeypatch)
    assert install_event_loop("auto") == "asyncio"
    assert run_and_name() == "asyncio"


def test_asking_for_uvloop_where_it_is_missing_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    without_uvloop(monkeypatch)
    with pytest.raises(ConfigError, match="uvloop is not installed"):
        install_event_loop("uvloop")


def test_the_setting_is_read_from_the_environment_and_checked() -> None:
    assert load_settings(environ={}).runtime.event_loop == "auto"
    env = {"ORDERHUB_RUNTIME__EVENT_LOOP": "asyncio"}
    assert load_settings(environ=env).runtime.event_loop == "asyncio"
    with pytest.raises(ConfigError):
        load_settings(environ={"ORDERHUB_RUNTIME__EVENT_LOOP": "trio"})


def test_check_config_refuses_uvloop_asked_for_and_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    without_uvloop(monkeypatch)
    monkeypatch.setenv("ORDERHUB_RUNTIME__EVENT_LOOP", "uvloop")

    assert main(["check-config"]) == EXIT_CONFIG
    assert "uvloop is not installed" in capsys.readouterr().err
