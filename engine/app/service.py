"""What the two long-running runners share (``ballast run`` on the simulated venue,
:mod:`ballast.engine.app.cli.cmd_run`, and on a live one, :mod:`ballast.engine.app.live_run`):
the journal's path, the seq a restarted session resumes from, and the metrics server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from ballast.engine.app.session import Session
from ballast.engine.kernel.config import Config
from ballast.engine.kernel.errors import BallastError, JournalError
from ballast.engine.kernel.journal import Journal
from ballast.engine.observe.http_server import MetricsServer, serve_metrics


def journal_path(config: Config) -> Path:
    """The journal file, its folder created (a folder that cannot be is a journal error)."""
    path = Path(config.journal.path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JournalError(f"{path}: cannot create its folder: {exc.strerror}") from None
    return path


def resume_point(journal: Journal, last_seq: int | None) -> int:
    """The seq a session resumes from: the journal's last seq as it was read before starting
    (None: a fresh start, 0); the journal must not have grown since (another writer?)."""
    if last_seq is None:
        return 0
    if journal.opened_at_seq != last_seq:
        raise JournalError(
            f"{journal.path}: grew from seq {last_seq} to {journal.opened_at_seq} while the "
            "run was starting (another writer?)"
        )
    return last_seq


@contextlib.asynccontextmanager
async def metrics_server(
    session: Session, address: str | None
) -> AsyncIterator[MetricsServer | None]:
    """The metrics server of ``[metrics]`` (at ``address`` if given), or None when disabled."""
    if not session.config.metrics.enabled:
        yield None
        return
    where = address or session.config.metrics.address
    async with contextlib.AsyncExitStack() as stack:
        try:
            server = await stack.enter_async_context(serve_metrics(session, where))
        except OSError as exc:
            raise BallastError(f"metrics: cannot listen on {where}: {exc.strerror}") from None
        yield server


def host_port(server: MetricsServer) -> str:
    host = f"[{server.host}]" if ":" in server.host else server.host
    return f"{host}:{server.port}"
