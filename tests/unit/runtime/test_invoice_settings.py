"""Invoice settings: ``[documents]`` and ``[invoices]`` reach the hub, the web app and the
scheduler's ``invoices`` job."""

from __future__ import annotations

from pathlib import Path

from orderhub.adapters.persistence import SqlUnitOfWorkFactory
from orderhub.adapters.persistence.documents import DirectoryDocumentStore, SqlDocumentStore
from orderhub.bootstrap import aclose, bootstrap
from orderhub.config import SchedulerSettings, load_settings
from orderhub.entrypoints.cli import web_settings
from orderhub.entrypoints.scheduler import INVOICES_JOB, Scheduler
from orderhub.testing.fakes import RecordingQueue

from .support import make_hub


def test_defaults_keep_documents_in_the_database(tmp_path: Path) -> None:
    settings = load_settings(environ={})
    assert settings.documents.directory is None
    assert settings.documents.max_bytes == 10 * 1024 * 1024
    assert web_settings(settings).max_document_bytes == 10 * 1024 * 1024


async def test_the_configured_directory_and_limits_reach_the_hub(tmp_path: Path) -> None:
    config = tmp_path / "orderhub.toml"
    config.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "db.sqlite"}"\n'
        f'[documents]\ndirectory = "{tmp_path / "docs"}"\nmax_bytes = 4096\n'
        "[invoices]\ncheck_seconds = 30\nmax_checks = 4\n"
    )
    settings = load_settings(config, environ={"ORDERHUB_INVOICES__CHECK_LIMIT": "7"})
    hub = bootstrap(settings, queue=RecordingQueue())
    try:
        assert (hub.invoices.max_document_bytes, hub.invoices.check_seconds) == (4096, 30.0)
        assert (hub.invoices.max_checks, hub.invoices.check_limit) == (4, 7)
        assert isinstance(hub.uow, SqlUnitOfWorkFactory)
        uow = hub.uow()
        assert isinstance(uow.documents, DirectoryDocumentStore)
        assert uow.documents.directory == tmp_path / "docs"
        assert web_settings(settings).max_document_bytes == 4096
    finally:
        await aclose(hub)
    default = bootstrap(load_settings(environ={}), queue=RecordingQueue())
    try:
        assert type(default.uow().documents) is SqlDocumentStore  # type: ignore[attr-defined]
    finally:
        await aclose(default)


async def test_the_scheduler_runs_the_invoice_checks() -> None:
    hub = make_hub(RecordingQueue())
    scheduler = Scheduler(hub, SchedulerSettings(), invoice_interval_seconds=42.0)
    [job] = [p for p in scheduler.periodics() if p.name == INVOICES_JOB]
    assert job.interval_seconds == 42.0
    assert await scheduler.run_once(job)  # nothing due: a quiet, successful run
