"""MarketGuard: absurd points are rejected, real moves are accepted after confirmation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ballast.engine.trading.market_guard import (
    CROSSED,
    NON_POSITIVE,
    OUT_OF_ORDER,
    PRICE_JUMP,
    MarketGuard,
    Rejection,
)

D = Decimal
SYM = "BTC/USDT"


def reason(result: Rejection | None) -> str | None:
    return None if result is None else result.reason


@pytest.fixture
def guard() -> MarketGuard:
    g = MarketGuard(D("0.10"), confirmations=3)
    assert g.check(SYM, D(40_000), 100) is None
    return g


def test_first_point_is_accepted_and_remembered(guard: MarketGuard) -> None:
    assert guard.last_price(SYM) == D(40_000)
    assert guard.accepted == 1


@pytest.mark.parametrize("price", [D(0), D(-1), D("NaN"), D("Infinity")])
def test_non_positive_or_non_finite_prices_are_rejected(guard: MarketGuard, price: D) -> None:
    assert reason(guard.check(SYM, price, 200)) == NON_POSITIVE
    assert guard.last_price(SYM) == D(40_000)


def test_crossed_quote_is_rejected_locked_is_not(guard: MarketGuard) -> None:
    crossed = guard.check_quote(SYM, D(40_010), D(40_000), 200)
    assert crossed is not None
    assert crossed.reason == CROSSED
    assert "40010" in crossed.detail
    assert guard.check_quote(SYM, D(40_000), D(40_000), 300) is None


def test_quote_mid_is_the_checked_price(guard: MarketGuard) -> None:
    assert guard.check_quote(SYM, D(40_999), D(41_001), 200) is None
    assert guard.last_price(SYM) == D(41_000)


def test_zero_bid_is_not_positive(guard: MarketGuard) -> None:
    assert reason(guard.check_quote(SYM, D(0), D(40_000), 200)) == NON_POSITIVE


def test_out_of_order_point_is_rejected(guard: MarketGuard) -> None:
    assert reason(guard.check(SYM, D(40_100), 99)) == OUT_OF_ORDER
    assert guard.check(SYM, D(40_100), 100) is None  # same time is not out of order


def test_move_within_the_band_is_accepted_up_to_the_edge(guard: MarketGuard) -> None:
    assert guard.check(SYM, D(44_000), 200) is None  # exactly +10 %
    assert guard.last_price(SYM) == D(44_000)


def test_jump_is_rejected_until_confirmed_by_consistent_points(guard: MarketGuard) -> None:
    first = guard.check(SYM, D(20_000), 200)
    assert first is not None
    assert first.reason == PRICE_JUMP
    assert "50.00%" in first.detail
    assert "1/3" in first.detail
    assert reason(guard.check(SYM, D(20_400), 300)) == PRICE_JUMP
    assert guard.check(SYM, D(19_800), 400) is None  # third consistent point: a real crash
    assert guard.last_price(SYM) == D(19_800)
    assert guard.check(SYM, D(19_700), 500) is None


def test_a_point_back_in_the_band_clears_unconfirmed_jumps(guard: MarketGuard) -> None:
    assert reason(guard.check(SYM, D(20_000), 200)) == PRICE_JUMP
    assert reason(guard.check(SYM, D(20_000), 300)) == PRICE_JUMP
    assert guard.check(SYM, D(40_010), 400) is None
    assert reason(guard.check(SYM, D(20_000), 500)) == PRICE_JUMP  # counting starts again


def test_inconsistent_jumps_do_not_confirm_each_other(guard: MarketGuard) -> None:
    assert reason(guard.check(SYM, D(20_000), 200)) == PRICE_JUMP
    assert reason(guard.check(SYM, D(80_000), 300)) == PRICE_JUMP
    assert reason(guard.check(SYM, D(20_000), 400)) == PRICE_JUMP
    assert guard.last_price(SYM) == D(40_000)


def test_repeats_at_the_same_time_do_not_confirm(guard: MarketGuard) -> None:
    for _ in range(5):
        assert reason(guard.check(SYM, D(20_000), 200)) == PRICE_JUMP
    assert guard.last_price(SYM) == D(40_000)


def test_series_are_per_symbol_and_source(guard: MarketGuard) -> None:
    assert guard.check("ETH/USDT", D(2_000), 50) is None
    assert guard.check(SYM, D(39_000), 50, source="mark") is None
    assert guard.last_price(SYM, "mark") == D(39_000)
    assert guard.last_price(SYM) == D(40_000)


def test_rejects_are_counted_per_symbol_and_reason(guard: MarketGuard) -> None:
    guard.check(SYM, D(0), 200)
    guard.check(SYM, D(20_000), 200)
    guard.check(SYM, D(20_000), 300)
    guard.check_quote("ETH/USDT", D(2), D(1), 200)
    assert guard.rejects[(SYM, PRICE_JUMP)] == 2
    assert guard.reject_count(SYM) == 3
    assert guard.reject_count(reason=CROSSED) == 1
    assert guard.reject_count() == 4


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="max_deviation"):
        MarketGuard(D(0))
    with pytest.raises(ValueError, match="confirmations"):
        MarketGuard(confirmations=0)


def test_one_confirmation_accepts_every_jump() -> None:
    guard = MarketGuard(D("0.05"), confirmations=1)
    guard.check(SYM, D(100), 1)
    assert guard.check(SYM, D(200), 2) is None


def test_live_a_first_quote_is_traded_on_only_once_the_next_agrees() -> None:
    """``confirm_first`` (a live venue): nothing to compare the first quote with, so it is held
    until the next one agrees; the backtest default accepts it at once."""
    assert MarketGuard(D("0.10")).check_quote(SYM, D(99), D(101), 1) is None
    guard = MarketGuard(D("0.10"), confirm_first=True)

    held = guard.check_quote(SYM, D(99), D(101), 1)
    assert reason(held) == "unconfirmed_first"
    assert guard.last_price(SYM) is None
    assert guard.check_quote(SYM, D(104), D(106), 2) is None  # 5 % away: agrees
    assert guard.last_price(SYM) == D(105)
    assert guard.check_quote(SYM, D(104), D(106), 3) is None  # the usual checks from now on
    assert guard.reject_count(SYM, "unconfirmed_first") == 1


def test_live_an_absurd_first_quote_is_rejected_and_the_series_starts_on_agreeing_ones() -> None:
    guard = MarketGuard(D("0.10"), confirm_first=True)

    assert reason(guard.check_quote(SYM, D(999), D(1001), 1)) == "unconfirmed_first"  # absurd
    assert reason(guard.check_quote(SYM, D(99), D(101), 2)) == "unconfirmed_first"  # disagrees
    assert reason(guard.check_quote(SYM, D(99), D(101), 1)) == OUT_OF_ORDER
    assert guard.check_quote(SYM, D(100), D(102), 3) is None  # agrees with the one before
    assert guard.last_price(SYM) == D(101)
    assert guard.reject_count(SYM, "unconfirmed_first") == 2
    # each symbol on its own; marks (their own series) are not held
    assert reason(guard.check_quote("ETH/USDT", D(9), D(11), 3)) == "unconfirmed_first"
    assert guard.check("BTC/USDT:USDT", D(100), 3, source="mark") is None
