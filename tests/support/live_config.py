"""A live configuration for a test run of ``ballast run`` through the real ccxt.pro client.

``live_config(tmp_path)`` writes ``tmp_path/live.toml``: deploy/paper.toml with ``venue.kind =
"paper"`` (the loopback Binance-compatible exchange started in-process by ``ballast run``, its keys
generated per run), the journal in ``tmp_path`` (the exchange's state beside it,
``journal.db.venue.db``), this checkout's data cut to a short recent slice (``[paper] start`` ..
``end``), metrics on 127.0.0.1 (pass ``--metrics-address 127.0.0.1:0`` to ``ballast run`` for a
free port), data stale after 5 s and a fast rebalance cadence. ``kind =
"binance"`` with ``rest_url``/``ws_url`` points it at an exchange already running (a ``ballast
venue serve``; its keys from ``BALLAST_API_KEY``/``BALLAST_API_SECRET`` unless overridden).
``overrides`` ({section: {key: value}}) change more keys, as
:func:`tests.support.paper_config.paper_config` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from tests.support.paper_config import DATA, Overrides, Value, paper_config

START = "2024-04-10T00:00"
"""Start of the default data slice (the bundled hourly data ends 2024-04-18T00:00)."""
END = "2024-04-18T00:00"


def live_config(
    tmp_path: Path,
    *,
    kind: Literal["paper", "binance"] = "paper",
    rest_url: str | None = None,
    ws_url: str | None = None,
    start: str = START,
    end: str = END,
    overrides: Mapping[str, Mapping[str, Value]] | None = None,
    name: str = "live.toml",
) -> Path:
    """Write the live config (module docstring) to ``tmp_path / name``; return its path."""
    venue: dict[str, Value] = {"kind": kind}
    if rest_url is not None:
        venue["rest_url"] = rest_url
    if ws_url is not None:
        venue["ws_url"] = ws_url
    sections: dict[str, dict[str, Value]] = {
        "venue": venue,
        "journal": {"path": str(tmp_path / "journal.db")},
        "paper": {"data_dir": str(DATA), "start": start, "end": end},
        "metrics": {"address": "127.0.0.1:9464"},  # run it with --metrics-address 127.0.0.1:0
        "risk": {"stale_after_s": 5},
        "execution": {"cooldown_s": 2.0, "check_interval_s": 1.0},
    }
    for section, keys in (overrides or {}).items():
        sections.setdefault(section, {}).update(keys)
    merged: Overrides = sections
    return paper_config(tmp_path / name, merged)
