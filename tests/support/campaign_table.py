"""The reliability campaign's table: the records of every part added up, and its verdict.

Each test of the campaign leaves records (:func:`tests.support.reliability.record`: a part name
and counts). :func:`add_up` sums the counts across records and takes the largest of each growth
figure (``*_growth_pct``); :func:`problems` says what fails the campaign: a should-be-zero key
that is not zero, a growth at or above the limit, a test that failed, an expected part that left
no record. :func:`render` prints it all as one Markdown table (the one README shows).

:data:`EXPECTED_PARTS` is the one list of the campaign's parts: a new part adds its name there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from tests.support.reliability import GROWTH_LIMIT_PCT, SHOULD_BE_ZERO

EXPECTED_PARTS: Final = (
    "kills",  # tests/test_live_kill.py
    "kills_websocket",  # tests/test_live_kill.py (orders over the WebSocket API)
    "live_disconnect",  # tests/test_live_disconnect.py
    "live_stale",  # tests/test_live_stale.py
    "faults_rest",  # tests/test_faults_rest.py
    "faults_ws_api",  # tests/test_faults_ws_api.py
    "faults_stream",  # tests/test_faults_stream.py
    "fuzz_live_market",  # tests/test_fuzz_live.py (market data on the wire)
    "fuzz_live_user",  # tests/test_fuzz_live.py (user-stream messages)
    "journal_faults",  # tests/test_journal_faults.py
    "soak",  # tests/test_soak.py
    "secrets",  # tests/test_secrets.py
)
"""Every part the full campaign must hear from (a record each at least)."""

BUDGET_S: Final = 20 * 60
"""The campaign's wall-time budget on 2 cores (issue 14), shown beside the measured wall."""

GROWTH_SUFFIX: Final = "_growth_pct"

ROWS: Final = (
    ("kills", "engine SIGKILLs (restarted each time)"),
    ("duplicate_orders", "duplicate orders at the exchange"),
    ("lost_fills", "lost fills"),
    ("journal_gaps", "journal gaps"),
    ("fuzz_cases", "fuzz cases through the live path"),
    ("crashes", "crashes"),
    ("orders_on_bad_data", "orders on bad data"),
    ("rss_growth_pct", "RSS growth after warm-up, %"),
    ("fd_growth_pct", "open FD growth after warm-up, %"),
    ("task_growth_pct", "asyncio task growth after warm-up, %"),
    ("secrets_found", "secrets found in logs, journal, metrics, errors"),
)
"""The table's rows after the faults by kind, in order, with their labels; keys not named here
(a part may add its own) follow under their own names."""

FAULT_PREFIX: Final = "faults."


def is_growth(key: str) -> bool:
    return key.endswith(GROWTH_SUFFIX)


@dataclass
class Totals:
    """The campaign's counts: summed across records (growth: the largest), and per part."""

    counts: dict[str, int | float] = field(default_factory=dict)
    parts: dict[str, int] = field(default_factory=dict)
    """Records per part."""
    by_part: dict[str, dict[str, int | float]] = field(default_factory=dict)


def _merge(into: dict[str, int | float], key: str, value: int | float) -> None:
    if key in into:
        into[key] = max(into[key], value) if is_growth(key) else into[key] + value
    else:
        into[key] = value


def add_up(records: Iterable[Mapping[str, object]]) -> Totals:
    """Sum the records' counts (the largest of a growth figure), in total and per part. A record
    that is not ``{"part": str, "counts": {str: number}}`` is an error naming it."""
    totals = Totals()
    for record in records:
        part, counts = record.get("part"), record.get("counts")
        if not isinstance(part, str) or not isinstance(counts, dict):
            raise ValueError(f"not a campaign record: {dict(record)}")
        totals.parts[part] = totals.parts.get(part, 0) + 1
        mine = totals.by_part.setdefault(part, {})
        for key, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"record of {part}: {key} = {value!r} is not a number")
            _merge(totals.counts, str(key), value)
            _merge(mine, str(key), value)
    return totals


def problems(
    totals: Totals, *, expected: Sequence[str] = EXPECTED_PARTS, pytest_status: int
) -> list[str]:
    """What fails the campaign (empty: it passed); ``pytest_status``: pytest's exit status."""
    found: list[str] = []
    if pytest_status == 1:
        found.append("a test of the campaign failed (see pytest's report above)")
    elif pytest_status:
        found.append(f"pytest exited with status {pytest_status} (see its output above)")
    missing = [part for part in expected if part not in totals.parts]
    if missing:
        found.append(f"parts that left no record: {', '.join(missing)}")
    for key in SHOULD_BE_ZERO:
        value = totals.counts.get(key, 0)
        if value:
            found.append(f"{key} = {value} (should be zero)")
    for key, value in sorted(totals.counts.items()):
        if is_growth(key) and value >= GROWTH_LIMIT_PCT:
            found.append(f"{key} = {value:.2f} (limit: below {GROWTH_LIMIT_PCT:g})")
    return found


def _shown(key: str, value: int | float | None) -> str:
    if value is None:
        return "not measured"
    if is_growth(key):
        return f"{value:.2f}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def table_rows(totals: Totals) -> list[tuple[str, str]]:
    """(label, value) of every row: the faults by kind, then :data:`ROWS`, then other keys."""
    counts = totals.counts
    faults = sorted(k for k in counts if k.startswith(FAULT_PREFIX))
    rows = [(f"faults injected: {k.removeprefix(FAULT_PREFIX)}", str(counts[k])) for k in faults]
    if faults:
        rows.append(("faults injected, all kinds", str(sum(counts[k] for k in faults))))
    else:
        rows.append(("faults injected", "not measured"))
    rows += [(label, _shown(key, counts.get(key))) for key, label in ROWS]
    named = {key for key, _ in ROWS}
    rows += [
        (key, _shown(key, counts[key]))
        for key in sorted(counts)
        if key not in named and not key.startswith(FAULT_PREFIX)
    ]
    return rows


def render(
    totals: Totals,
    *,
    found: Sequence[str],
    wall_s: float,
    when: str,
    commit: str,
    command: str,
) -> str:
    """The table (Markdown), the detail per part, and the verdict."""
    lines = [
        f"Reliability campaign: `{command}`, {when}, commit {commit}, "
        f"wall {wall_s / 60:.1f} min ({wall_s:.0f} s; budget {BUDGET_S // 60} min)",
        "",
        "| what | count |",
        "| --- | ---: |",
        *(f"| {label} | {value} |" for label, value in table_rows(totals)),
        "",
        "Per part (records: counts):",
    ]
    for part in sorted(totals.by_part):
        counts = ", ".join(f"{k}={_shown(k, v)}" for k, v in sorted(totals.by_part[part].items()))
        lines.append(f"- {part} ({totals.parts[part]}): {counts or 'no counts'}")
    if not totals.by_part:
        lines.append("- none")
    lines.append("")
    if found:
        lines.append("FAILED:")
        lines += [f"- {problem}" for problem in found]
    else:
        lines.append("PASSED: every should-be-zero count is zero, growth below the limit.")
    return "\n".join(lines)
