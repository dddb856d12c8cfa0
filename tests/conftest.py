"""Shared fixtures. Journals are real SQLite files in tmp_path, never mocks."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ballast.engine.kernel.clock import SimulatedClock
from ballast.engine.kernel.redaction import forget_secrets
from tests.support.listening import socket_inodes, tcp_sockets

START_NS = 1_700_000_000_000_000_000


@pytest.fixture
def sim_clock() -> SimulatedClock:
    return SimulatedClock(START_NS)


@pytest.fixture(autouse=True)
def _no_leftover_secrets() -> None:
    forget_secrets()


_FDS = Path("/proc/self/fd")  # Linux; elsewhere the checks below find nothing and do nothing


def _open_sockets() -> set[str]:
    """Inodes of this process's open sockets (none where there is no ``/proc``)."""
    return socket_inodes(os.getpid()) if _FDS.exists() else set()


@pytest.fixture(autouse=True)
def _sockets_closed_by_each_test() -> Iterator[None]:
    """A socket left unclosed (in a reference cycle, in the server of a closed event loop) warns
    only when the garbage collector finds it, often during some later, unrelated test. If a
    socket opened during the test is still open after it, collect now: the ResourceWarning (an
    error here) then fails the teardown of the test that left it. Costs a listing of
    ``/proc/self/fd`` before and after each test (well under a millisecond)."""
    before = _open_sockets()
    yield
    if _open_sockets() - before:
        gc.collect()


@pytest.fixture(autouse=True, scope="module")
def _no_tcp_socket_outlives_its_module() -> Iterator[None]:
    """What a module opened is closed when it ends, its module fixtures' servers and clients too.
    A socket something still holds (a server a test restarted and nobody stopped, which aiohttp's
    handler cache kept alive for hundreds of tests) fails the teardown of the module's last test,
    named, instead of warning at garbage collection in another module much later."""
    before = _open_sockets()
    yield
    if not _open_sockets() - before:
        return
    gc.collect()  # the ResourceWarning of one that was garbage fails this teardown
    left = tcp_sockets(os.getpid(), _open_sockets() - before)
    assert not left, f"TCP sockets this module left open: {left}"


CHECKOUT_VAR = Path(__file__).resolve().parents[1] / "var"


def _entries_under(folder: Path) -> dict[Path, tuple[int, int]]:
    """(mtime, size) of every file and folder under ``folder``; nothing if it does not exist."""
    found: dict[Path, tuple[int, int]] = {}
    for path in folder.rglob("*"):
        with contextlib.suppress(FileNotFoundError):  # removed while listed
            stat = path.stat()
            found[path] = (stat.st_mtime_ns, stat.st_size)
    return found


@pytest.fixture(autouse=True)
def _checkout_var_untouched() -> Iterator[None]:
    """No test writes the checkout's var/ (the CLI's default journal and report folders): the
    suite runs in parallel (pytest-xdist), where two tests writing there would collide. Run the
    CLI with ``cwd=tmp_path`` or give it paths in tmp_path."""
    before = _entries_under(CHECKOUT_VAR)
    yield
    written = sorted(
        str(p) for p, seen in _entries_under(CHECKOUT_VAR).items() if before.get(p) != seen
    )
    assert not written, f"this test (or one running beside it) wrote into the checkout: {written}"


def _rank(item: pytest.Item) -> int:
    """0: marked slow, 1: marked reliability (live campaigns), 2: the rest."""
    if item.get_closest_marker("slow") is not None:
        return 0
    return 1 if item.get_closest_marker("reliability") is not None else 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules holding the long tests (marked ``slow`` or ``reliability``) first, each module
    whole and in its own order (module fixtures stay shared): pytest-xdist hands the tests out in
    this order, so a minute-long campaign starts early beside the short tests, not last while the
    other worker has nothing left."""
    modules: dict[str, int] = {}
    for item in items:
        path = str(item.path)
        modules[path] = min(modules.get(path, 2), _rank(item))
    order = {id(item): index for index, item in enumerate(items)}
    items.sort(key=lambda item: (modules[str(item.path)], order[id(item)]))


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto`` (``make test``): one worker per core and one more. The live tests spend much of
    their wall time waiting (subprocess exchanges replaying at a real-time pace, minute weight
    windows, restarts), which left a core idle with one worker per core: on 2 cores, 3 workers ran
    the suite in 515 s where 2 took 664 s (same commit, same machine, CPU 913 s vs 851 s).
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides when set (pytest-xdist's own hook reads it)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return len(os.sched_getaffinity(0)) + 1
