"""``make reliability``: every test marked ``reliability`` at its full size, then one table.

``python -m tests.reliability_campaign [--out DIR] [--expect PART,...] [PYTEST ARGS...]`` runs
pytest (``-m reliability``, pytest-xdist on the machine's cores) with ``BALLAST_RELIABILITY=full``
and ``BALLAST_RELIABILITY_OUT`` a fresh folder (a new temporary one by default: not the checkout's
var/, which no test may write), adds up
the records the tests left there (:mod:`tests.support.campaign_table`) and prints the table with
the wall time, the date and the commit; the table is also written to ``table.md`` in that folder.

Exit status: 0 when the campaign passed; 1 when a should-be-zero count is not zero, a growth
figure reached the limit, a test failed, or an expected part left no record (each named).
``--expect`` narrows the expected parts (e.g. with PYTEST ARGS selecting a few test files);
PYTEST ARGS go to pytest after the campaign's own (e.g. ``tests/test_live_kill.py``, ``-x``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from tests.support.campaign_table import EXPECTED_PARTS, add_up, problems, render
from tests.support.reliability import FULL, collect

ROOT = Path(__file__).resolve().parents[1]
PYTEST = ("-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "reliability")
PARALLEL = ("-n", "auto", "--dist", "loadgroup")


def commit() -> str:
    """The checkout's commit (short), ``+changes`` when its tracked files differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+changes" if dirty else head


def arguments(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m tests.reliability_campaign",
        description="Run the reliability campaign at full size and print its table.",
    )
    parser.add_argument("--out", type=Path, help="the records' folder (must not exist yet)")
    parser.add_argument(
        "--expect",
        help="the parts expected to leave a record, comma-separated (default: all of them)",
    )
    parser.add_argument(
        "--workers", default="auto", help="pytest-xdist workers (default: one per core)"
    )
    return parser.parse_known_args(list(argv))


def main(argv: Sequence[str] = ()) -> int:
    options, pytest_args = arguments(argv)
    started = datetime.now(UTC)
    if options.out is None:
        out = Path(tempfile.mkdtemp(prefix="ballast-reliability-"))
    elif options.out.exists():
        print(f"--out {options.out}: exists already; the campaign needs a fresh folder")
        return 2
    else:
        out = options.out
        out.mkdir(parents=True)
    expected = (
        [p.strip() for p in options.expect.split(",") if p.strip()]
        if options.expect
        else list(EXPECTED_PARTS)
    )
    env = {**os.environ, "BALLAST_RELIABILITY": FULL, "BALLAST_RELIABILITY_OUT": str(out)}
    workers = ("-n", options.workers, "--dist", "loadgroup") if options.workers != "0" else ()
    command = [sys.executable, *PYTEST, *workers, *pytest_args]
    begin = time.monotonic()
    tests = subprocess.run(command, cwd=ROOT, env=env, check=False)
    wall_s = time.monotonic() - begin
    totals = add_up(collect(out))
    found = problems(totals, expected=expected, pytest_status=tests.returncode)
    table = render(
        totals,
        found=found,
        wall_s=wall_s,
        when=started.strftime("%Y-%m-%d %H:%M UTC"),
        commit=commit(),
        command=" ".join(["python -m tests.reliability_campaign", *argv])
        if argv
        else "make reliability",
    )
    (out / "table.md").write_text(table + "\n")
    print()
    print(table)
    print(f"\nrecords and this table: {out}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
