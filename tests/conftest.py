"""Shared fixtures. Journals are real SQLite files in tmp_path, never mocks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from ballast.engine.kernel.clock import SimulatedClock
from ballast.engine.kernel.redaction import forget_secrets

START_NS = 1_700_000_000_000_000_000


@pytest.fixture
def sim_clock() -> SimulatedClock:
    return SimulatedClock(START_NS)


@pytest.fixture(autouse=True)
def _no_leftover_secrets() -> None:
    forget_secrets()


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
