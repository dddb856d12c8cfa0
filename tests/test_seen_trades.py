"""SeenTrades: the trade ids a live venue already emitted, bounded for a process that runs for
weeks (``adapters/ccxt/seen_trades.py``). The venue-level behaviour (fills across reconnect
catch-ups, none lost or doubled) is in ``tests/test_ccxt_venue.py``."""

from __future__ import annotations

import pytest

from ballast.adapters.ccxt.seen_trades import SeenTrades

MIN = 60_000


def test_ids_within_the_window_are_remembered_older_ones_forgotten_but_still_seen() -> None:
    seen = SeenTrades(keep_ms=15 * MIN)
    for n in range(100):  # one fill a minute for 100 minutes
        seen.add(f"t{n}", "BTC/USDT", n * MIN, n * MIN)

    assert len(seen) == 16  # the last quarter hour, and the fill at its edge
    assert seen.seen("t99", "BTC/USDT", 99 * MIN)
    assert seen.seen("t84", "BTC/USDT", 84 * MIN)
    # forgotten: a trade that old comes only from a re-read, and is dropped by its time
    assert seen.seen("t3", "BTC/USDT", 3 * MIN)
    # a trade not seen, of the window, or of another symbol, is news
    assert not seen.seen("t-new", "BTC/USDT", 99 * MIN)
    assert not seen.seen("t3", "BTC/USDT:USDT", 3 * MIN)
    assert not seen.seen("t-untimed", "BTC/USDT", None)


def test_each_symbol_keeps_its_own_window() -> None:
    seen = SeenTrades(keep_ms=15 * MIN)
    seen.add("perp-old", "BTC/USDT:USDT", 0, 0)  # the perp's only fill
    for n in range(60):
        seen.add(f"s{n}", "BTC/USDT", n * MIN, n * MIN)

    # the perp's latest fill is still its only one: a catch-up reads from before it
    assert seen.seen("perp-old", "BTC/USDT:USDT", 0)
    assert not seen.seen("perp-new", "BTC/USDT:USDT", 0)


def test_untimed_trades_and_bursts_stay_under_the_hard_bound() -> None:
    seen = SeenTrades(keep_ms=15 * MIN, max_ids=50)
    for n in range(500):
        seen.add(f"u{n}", "BTC/USDT", None, None)
    for n in range(500):
        seen.add(f"b{n}", "BTC/USDT", 7, 7)  # a burst in one ms

    assert len(seen) == 50
    assert seen.seen("b499", "BTC/USDT", 7)
    assert seen.seen("b0", "BTC/USDT", 6)  # older than a forgotten one


def test_a_restart_keeps_the_ids_the_journal_seeded() -> None:
    seen = SeenTrades({"j1", "j2"}, keep_ms=MIN)
    for n in range(10):
        seen.add(f"t{n}", "BTC/USDT", n * MIN, n * MIN)

    assert seen.seen("j1", "BTC/USDT", None)
    assert seen.seen("j2", "BTC/USDT:USDT", None)
    assert len(seen) == 2 + 2


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="keep_ms"):
        SeenTrades(keep_ms=-1)
    with pytest.raises(ValueError, match="max_ids"):
        SeenTrades(keep_ms=0, max_ids=0)
