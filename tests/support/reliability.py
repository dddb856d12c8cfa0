"""The reliability campaign's shared contract: sizes and the records its table is made of.

Every part of the campaign (fault injection, kills, fuzzing, resource faults, soak, secrets) is an
ordinary pytest test. ``make test`` runs each at its fast size; ``make reliability`` runs the same
tests with ``BALLAST_RELIABILITY=full`` (each picks its full size through :func:`size`) and
``BALLAST_RELIABILITY_OUT=DIR``, where each test leaves what it counted through :func:`record`;
the campaign's runner adds the records up into one table.

Counts are integers and add up across records; growth figures (``*_growth_pct``) take the
largest across records. Known keys (a part may add others; the table shows them too):

- ``faults.<kind>``: faults injected of that kind (e.g. ``faults.rest_5xx``, ``faults.ws_drop``)
- ``kills``: SIGKILLs of the engine
- ``duplicate_orders``, ``lost_fills``, ``journal_gaps``: should be zero
- ``fuzz_cases``: generated inputs sent through the live path
- ``crashes``: engine processes or actors that died of an input, should be zero
- ``orders_on_bad_data``: orders sent while bad data was the latest price, should be zero
- ``rss_growth_pct``, ``fd_growth_pct``, ``task_growth_pct``: soak growth after warm-up (< 5)
- ``secrets_found``: key or secret text found in logs, journal, metrics, errors; should be zero
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Final

FULL: Final = "full"

SHOULD_BE_ZERO: Final = (
    "duplicate_orders",
    "lost_fills",
    "journal_gaps",
    "crashes",
    "orders_on_bad_data",
    "secrets_found",
)
"""Keys whose every non-zero value is a bug (the runner fails the campaign on one)."""

GROWTH_LIMIT_PCT: Final = 5.0


def full() -> bool:
    """Whether this run is the full campaign (``make reliability``)."""
    return os.environ.get("BALLAST_RELIABILITY", "") == FULL


def size(fast: int, full_size: int) -> int:
    """The fast size in ``make test``, the full size in ``make reliability``."""
    return full_size if full() else fast


def record(part: str, **counts: int | float) -> None:
    """Leave what a test counted for the campaign's table (nothing without
    ``BALLAST_RELIABILITY_OUT``). ``part`` names the test (one line of the table's detail)."""
    out = os.environ.get("BALLAST_RELIABILITY_OUT")
    if not out:
        return
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{part}-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps({"part": part, "counts": counts}, sort_keys=True))


def collect(folder: Path) -> list[dict[str, object]]:
    """Every record left in ``folder``, in file name order."""
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
