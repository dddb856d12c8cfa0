"""The ledger: exact valuation, perp mechanics, fees, funding and the attribution identity.

Every amount is asserted with exact Decimal equality, to the cent and beyond.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballast.engine.kernel.events import (
    AccountKind,
    BalanceUpdated,
    FundingPaid,
    OrderFilled,
    PositionUpdated,
    Side,
)
from ballast.engine.trading.ledger import Ledger, LedgerError

D = Decimal
ZERO = Decimal(0)
BTC_SPOT, BTC_PERP, ETH_SPOT, ETH_PERP = "BTC/USDT", "BTC/USDT:USDT", "ETH/USDT", "ETH/USDT:USDT"
_trade_ids = iter(range(1, 10**9))


def balance(asset: str, qty: str | Decimal, account: AccountKind = "spot") -> BalanceUpdated:
    return BalanceUpdated(0, 0, account, asset, D(qty), D(0))


def fill(
    symbol: str,
    side: Side,
    qty: str | Decimal,
    price: str | Decimal,
    fee: str | Decimal = "0",
    fee_asset: str = "USDT",
) -> OrderFilled:
    n = next(_trade_ids)
    return OrderFilled(
        0, 0, f"c{n}", f"v{n}", f"t{n}", symbol, side, D(qty), D(price), D(fee), fee_asset, "taker"
    )


def funding(symbol: str, amount: str | Decimal, rate: str = "0.0001") -> FundingPaid:
    return FundingPaid(0, 0, symbol, D(0), D(0), D(rate), D(amount), "USDT")


def position(
    symbol: str,
    qty: str | Decimal,
    entry: str | Decimal,
    mark: str | Decimal = "0",
    margin: str | Decimal = "0",
    liquidation: Decimal | None = None,
) -> PositionUpdated:
    return PositionUpdated(0, 0, symbol, D(qty), D(entry), D(mark), D(0), D(margin), liquidation)


def example_one() -> Ledger:
    """MISSION.md example 1 before the move: BTC $40,000 (1 BTC at 40,000), ETH $20,000
    (10 ETH at 2,000), USDT $40,000 — NAV $100,000."""
    ledger = Ledger()
    for event in (balance("USDT", "40000"), balance("BTC", "1"), balance("ETH", "10")):
        ledger.apply_balance(event)
    ledger.mark_spot("BTC", D(40_000))
    ledger.mark_spot("ETH", D(2_000))
    return ledger


def test_a_remark_needing_more_than_100_digits_is_a_ledger_error() -> None:
    """The fast re-mark path (no context switch) keeps the exact context's Inexact trap."""
    ledger = example_one()
    pnl = ledger.price_pnl
    ledger.mark_spot("BTC", D(52_000))
    assert ledger.price_pnl == pnl + D(12_000)
    with pytest.raises(LedgerError, match="mark_spot: result needs more than 100 digits"):
        ledger.mark_spot("BTC", D("1." + "1" * 100))


# ------------------------------------------------------------------ worked example 1


def test_example_one_opening_nav_and_weights() -> None:
    ledger = example_one()
    assert ledger.nav() == D("100000.00")
    assert ledger.nav0 == D("100000.00")
    assert ledger.weight("BTC") == D("0.40")
    assert ledger.weight("ETH") == D("0.20")
    assert ledger.cash() == D("40000.00")


def test_example_one_btc_up_30_percent() -> None:
    ledger = example_one()
    ledger.mark_spot("BTC", D(52_000))
    assert ledger.nav() == D("112000.00")
    assert ledger.weight("BTC") == D("0.4642857142857142857142857143")  # 52,000 / 112,000
    assert ledger.weight("BTC").quantize(D("0.0001")) == D("0.4643")  # 46.43 % > 45 %
    assert ledger.price_pnl == D("12000.00")
    assert ledger.identity_residual() == 0


def test_example_one_overlay_short_brings_net_exposure_to_target() -> None:
    """Overlay mode: a $7,200 BTC perp short. The perp trades at 50,000 here (a discount to the
    52,000 spot) so that the short is a whole number of 0.001 BTC lots: 0.144 × 50,000 = 7,200.
    (At a mark equal to spot, 7,200 / 52,000 BTC is no finite decimal.)"""
    ledger = example_one()
    ledger.mark_spot("BTC", D(52_000))
    ledger.mark_perp("BTC", D(50_000))
    ledger.apply_fill(fill(BTC_PERP, "sell", "0.144", "50000"))
    assert ledger.perp_notional("BTC") == D("-7200.00")
    assert ledger.net_exposure("BTC") == D("44800.00")
    assert ledger.nav() == D("112000.00")
    assert ledger.weight("BTC") == D("0.40")  # 40.00 %
    assert ledger.identity_residual() == 0


def test_example_one_taker_fee_reduces_nav_by_exactly_the_fee() -> None:
    ledger = example_one()
    ledger.mark_spot("BTC", D(52_000))
    ledger.mark_perp("BTC", D(50_000))
    before = ledger.nav()
    ledger.apply_fill(fill(BTC_PERP, "sell", "0.144", "50000", fee="3.60"))  # 0.05 % of 7,200
    assert ledger.nav() == before - D("3.60") == D("111996.40")
    assert ledger.fees_paid == D("3.60")
    assert ledger.net_exposure("BTC") == D("44800.00")
    assert ledger.weight("BTC").quantize(D("0.0001")) == D("0.4000")
    assert ledger.identity_residual() == 0


def test_sizing_rule_example_two() -> None:
    """Example 2: BTC spot $42,000, NAV $103,000, target 35 % → excess $5,950."""
    ledger = Ledger()
    ledger.apply_balance(balance("USDT", "61000"))
    ledger.apply_balance(balance("BTC", "1"))
    ledger.mark_spot("BTC", D(42_000))
    assert ledger.nav() == D("103000.00")
    assert ledger.spot_value("BTC") - D("0.35") * ledger.nav() == D("5950.00")


# ------------------------------------------------------------------ opening and transfers


def test_nav_undefined_until_every_holding_is_priced() -> None:
    ledger = Ledger()
    ledger.apply_balance(balance("USDT", "1000"))
    ledger.apply_balance(balance("ETH", "1"))
    ledger.mark_spot("BTC", D(40_000))
    # one comparison: `assert not ledger.valued` would pin it to False for mypy past mark_spot
    assert (ledger.unpriced(), ledger.valued) == (["ETH"], False)
    with pytest.raises(LedgerError, match="no price for ETH"):
        ledger.nav()
    ledger.mark_spot("ETH", D(2_000))
    assert ledger.valued
    assert ledger.nav0 == D(3_000)
    assert ledger.transfers == 0


def test_deposit_and_withdrawal_are_transfers_at_current_price() -> None:
    ledger = example_one()
    ledger.apply_balance(balance("BTC", "1.5"))
    assert ledger.transfers == D("20000.0")
    ledger.apply_balance(balance("USDT", "30000"))
    assert ledger.transfers == D("10000.0")
    assert ledger.nav() == D("110000")
    assert ledger.identity_residual() == 0


def test_deposit_of_an_unpriced_asset_is_booked_when_its_price_arrives() -> None:
    ledger = example_one()
    ledger.apply_balance(balance("SOL", "20"))
    assert ledger.unpriced() == ["SOL"]
    ledger.mark_spot("SOL", D(150))
    assert ledger.transfers == D(3_000)
    assert ledger.nav() == D(103_000)
    assert ledger.identity_residual() == 0


def test_transfers_do_not_count_as_drawdown() -> None:
    ledger = example_one()
    ledger.mark_spot("BTC", D(30_000))  # NAV 90,000 vs peak 100,000: 10 % drawdown
    assert ledger.drawdown() == D("0.1")
    ledger.apply_balance(balance("USDT", "0"))  # withdraw 40,000 of the 90,000
    assert ledger.nav() == D(50_000)
    # the peak is rescaled by 50,000 / 90,000 (a 28-digit ratio, the only rounding involved)
    assert ledger.drawdown().quantize(D("1e-20")) == D("0.1")
    assert ledger.identity_residual() == 0


def test_the_peak_is_taken_at_valuations_not_between_the_marks_of_one_instant() -> None:
    ledger = example_one()
    ledger.apply_fill(fill(BTC_PERP, "sell", "1", "40000"))  # spot BTC hedged by a perp short
    ledger.mark_perp("BTC", D(40_000))
    assert ledger.snapshot(0, "fill").peak_nav == D(100_000)
    # One instant, its prices one by one: BTC +10 % (spot and perp), ETH −10 %.
    ledger.mark_spot("BTC", D(44_000))
    assert ledger.nav() == D(104_000)  # a spot leg repriced before its hedge: never a real value
    ledger.mark_spot("ETH", D(1_800))
    ledger.mark_perp("BTC", D(44_000))
    snapshot = ledger.snapshot(1, "price")
    assert snapshot.nav == D(98_000)
    assert snapshot.peak_nav == D(100_000)
    assert snapshot.drawdown == D("0.02")
    ledger.mark_spot("ETH", D(2_500))  # NAV 105,000: a new peak once valued
    assert ledger.snapshot(2, "price").peak_nav == D(105_000)
    assert ledger.identity_residual() == 0


def test_stablecoins_are_cash_at_one() -> None:
    ledger = example_one()
    ledger.apply_balance(balance("USDC", "500"))
    ledger.apply_balance(balance("FDUSD", "250", account="futures"))
    assert ledger.cash() == D(40_750)
    assert "USDC" not in ledger.assets()
    assert ledger.transfers == D(750)


# ------------------------------------------------------------------ spot fills and fees


def test_spot_buy_fee_in_quote() -> None:
    ledger = example_one()
    ledger.apply_fill(fill(BTC_SPOT, "buy", "0.5", "40000", fee="20", fee_asset="USDT"))
    assert ledger.spot_qty("BTC") == D("1.5")
    assert ledger.cash() == D(19_980)
    assert ledger.fees_paid == D(20)
    assert ledger.nav() == D(99_980)
    assert ledger.identity_residual() == 0


def test_spot_buy_fee_in_base_reduces_quantity_received() -> None:
    ledger = example_one()
    ledger.mark_spot("BTC", D(41_000))
    ledger.apply_fill(fill(BTC_SPOT, "buy", "0.5", "40000", fee="0.0005", fee_asset="BTC"))
    assert ledger.spot_qty("BTC") == D("1.4995")
    assert ledger.fees_paid == D("20.0000")  # valued at the fill price
    # bought 0.4995 net at 40,000 while the mark is 41,000: +499.5 of price PnL on top of +1,000
    assert ledger.price_pnl == D("1499.5")
    assert ledger.identity_residual() == 0


def test_fee_in_another_asset_is_valued_at_its_last_price() -> None:
    ledger = example_one()
    ledger.apply_balance(balance("BNB", "1"))
    ledger.mark_spot("BNB", D(300))
    ledger.apply_fill(fill(ETH_SPOT, "sell", "1", "2000", fee="0.05", fee_asset="BNB"))
    assert ledger.spot_qty("BNB") == D("0.95")
    assert ledger.fees_paid == D("15.00")
    assert ledger.identity_residual() == 0


def test_fee_in_an_unpriced_asset_is_refused_and_nothing_is_booked() -> None:
    ledger = example_one()
    with pytest.raises(LedgerError, match="fee in BNB"):
        ledger.apply_fill(fill(ETH_SPOT, "sell", "1", "2000", fee="0.05", fee_asset="BNB"))
    assert ledger.spot_qty("ETH") == D(10)
    assert ledger.nav() == D(100_000)


def test_fill_away_from_mark_is_price_pnl() -> None:
    ledger = example_one()
    ledger.apply_fill(fill(BTC_SPOT, "sell", "0.25", "40400"))
    assert ledger.price_pnl == D("100.00")
    assert ledger.nav() == D("100100.00")


# ------------------------------------------------------------------ perp mechanics


def test_perp_increase_uses_weighted_entry() -> None:
    ledger = example_one()
    ledger.mark_perp("BTC", D(40_000))
    ledger.apply_fill(fill(BTC_PERP, "buy", "0.1", "40000"))
    ledger.apply_fill(fill(BTC_PERP, "buy", "0.3", "40000"))
    ledger.mark_perp("BTC", D(44_000))
    ledger.apply_fill(fill(BTC_PERP, "buy", "0.1", "44000"))
    pos = ledger.positions["BTC"]
    assert pos.qty == D("0.5")
    assert pos.entry_price == D(40_800)
    assert ledger.unrealized_pnl() == D("1600.0")
    assert ledger.identity_residual() == 0


def test_perp_partial_close_keeps_entry_and_realises_into_cash() -> None:
    ledger = example_one()
    ledger.mark_perp("BTC", D(40_000))
    ledger.apply_fill(fill(BTC_PERP, "buy", "0.3", "40000"))
    ledger.mark_perp("BTC", D(42_000))
    ledger.apply_fill(fill(BTC_PERP, "sell", "0.1", "42000"))
    pos = ledger.positions["BTC"]
    assert pos.qty == D("0.2")
    assert pos.entry_price == D(40_000)
    assert pos.realized_pnl == ledger.realized_pnl == D("200.0")
    assert ledger.cash() == D("40200.0")
    assert ledger.unrealized_pnl() == D("400.0")
    assert ledger.identity_residual() == 0


def test_perp_flip_through_zero_realises_all_and_opens_the_rest_at_fill() -> None:
    ledger = example_one()
    ledger.mark_perp("BTC", D(40_000))
    ledger.apply_fill(fill(BTC_PERP, "sell", "0.2", "40000"))
    ledger.mark_perp("BTC", D(38_000))
    ledger.apply_fill(fill(BTC_PERP, "buy", "0.5", "38000"))
    pos = ledger.positions["BTC"]
    assert pos.qty == D("0.3")
    assert pos.entry_price == D(38_000)
    assert ledger.realized_pnl == D("400.0")
    assert ledger.unrealized_pnl() == 0
    assert ledger.identity_residual() == 0


def test_perp_partial_close_rounds_the_remaining_cost_into_realised_pnl() -> None:
    ledger = example_one()
    for qty, price in (("0.001", "40000.01"), ("0.002", "40000.02"), ("0.004", "40000.05")):
        ledger.mark_perp("BTC", D(price))
        ledger.apply_fill(fill(BTC_PERP, "buy", qty, price))
    assert ledger.positions["BTC"].cost == D("280.00025")
    ledger.apply_fill(fill(BTC_PERP, "sell", "0.003", "40001"))
    # 280.00025 × 4/7 = 160.000142857142857…, kept to 1e-12; realised = new − old cost + proceeds
    assert ledger.positions["BTC"].cost == D("160.000142857143")
    assert ledger.realized_pnl == D("160.000142857143") - D("280.00025") + D("120.003")
    assert ledger.identity_residual() == 0
    ledger.apply_fill(fill(BTC_PERP, "sell", "0.004", "40002"))
    assert ledger.positions["BTC"].cost == 0
    # closed in full: realised = proceeds − cost = 120.003 + 160.008 − 280.00025, exactly
    assert ledger.realized_pnl == D("0.01075")
    assert ledger.identity_residual() == 0


def test_unified_and_split_wallet_statements_both_reconcile() -> None:
    """A perp fill's realised PnL and fee: one venue states them in its single (spot) wallet,
    another in its futures wallet. Either way the books agree: no transfer."""
    accounts: tuple[AccountKind, ...] = ("spot", "futures")
    for account in accounts:
        ledger = example_one()
        ledger.apply_balance(balance("USDT", "0", "futures"))
        ledger.mark_perp("BTC", D(40_000))
        ledger.apply_fill(fill(BTC_PERP, "buy", "0.5", "40000", fee="10"))
        ledger.mark_perp("BTC", D(41_000))
        ledger.apply_fill(fill(BTC_PERP, "sell", "0.5", "41000", fee="10.25"))
        wallet = D(40_000) if account == "spot" else D(0)
        ledger.apply_balance(balance("USDT", wallet + D("479.75"), account))
        assert ledger.transfers == 0, account
        assert ledger.cash() == D("40479.75")


def test_a_move_between_venue_wallets_nets_to_no_transfer() -> None:
    ledger = example_one()
    ledger.apply_balance(balance("USDT", "30000", "spot"))
    assert ledger.transfers == D(-10_000)
    ledger.apply_balance(balance("USDT", "10000", "futures"))
    assert ledger.transfers == 0
    assert ledger.nav() == D(100_000)


def test_venue_position_is_adopted_with_liquidation_price_and_margin() -> None:
    ledger = example_one()
    ledger.mark_perp("BTC", D(40_000))
    ledger.apply_fill(fill(BTC_PERP, "sell", "0.5", "40000"))
    assert ledger.margin_used() == D(20_000)  # |notional| / leverage 1
    ledger.apply_position(position(BTC_PERP, "-0.5", "40000", "40000", "4000", D(70_000)))
    assert ledger.transfers == 0
    assert ledger.margin_used() == D(4_000)
    assert ledger.positions["BTC"].liquidation_price == D(70_000)
    ledger.apply_position(position(BTC_PERP, "-0.6", "40000", "40000", "4800", D(70_000)))
    assert ledger.transfers == 0  # more size at the mark is worth nothing yet
    ledger.apply_position(position(BTC_PERP, "-0.6", "39000", "40000", "4800", D(70_000)))
    assert ledger.transfers == D("-600.0")  # the venue's entry is worse: 0.6 × 1,000
    assert ledger.identity_residual() == 0


def test_perp_margin_uses_the_leverage_setting() -> None:
    ledger = Ledger(leverage=D(4))
    ledger.apply_balance(balance("USDT", "10000", account="futures"))
    ledger.mark_perp("ETH", D(2_000))
    ledger.apply_fill(fill(ETH_PERP, "buy", "5", "2000"))
    assert ledger.margin_used() == D(2_500)
    assert ledger.gross_leverage() == D(1)
    assert ledger.net_leverage() == D(1)


def test_net_leverage_is_the_sum_of_absolute_net_exposures() -> None:
    """MISSION.md: Σ |net exposure| / NAV; a 1:1 hedge adds nothing, a short is not a credit."""
    ledger = Ledger()
    ledger.apply_balance(balance("USDT", "100000"))
    ledger.mark_spot("BTC", D(40_000))
    ledger.mark_perp("BTC", D(40_000))
    ledger.mark_perp("ETH", D(2_000))
    ledger.apply_fill(fill(BTC_SPOT, "buy", "1", "40000"))
    ledger.apply_fill(fill(BTC_PERP, "sell", "1", "40000"))  # BTC hedged 1:1: net 0
    assert ledger.net_leverage() == 0
    assert ledger.gross_leverage() == D("0.8")
    ledger.apply_fill(fill(ETH_PERP, "sell", "10", "2000"))  # ETH 20,000 short
    assert ledger.net_leverage() == D("0.2")


# ------------------------------------------------------------------ funding


def long_btc_perp() -> Ledger:
    ledger = example_one()
    ledger.mark_perp("BTC", D(40_000))
    ledger.apply_fill(fill(BTC_PERP, "buy", "0.5", "40000"))
    return ledger


def test_long_pays_funding_when_rate_is_positive() -> None:
    ledger = long_btc_perp()
    due = ledger.funding_due("BTC", D("0.0001"))
    assert due == D("-2.0000")  # notional 20,000 × 0.01 %, paid
    ledger.apply_funding(funding(BTC_PERP, due))
    assert ledger.funding_pnl == D("-2.00")
    assert ledger.positions["BTC"].funding == D("-2.00")
    assert ledger.cash() == D("39998.00")
    assert ledger.identity_residual() == 0


def test_long_receives_funding_when_rate_is_negative() -> None:
    ledger = long_btc_perp()
    ledger.mark_perp("BTC", D(42_000))
    due = ledger.funding_due("BTC", D("-0.0003"))
    assert due == D("6.30")  # notional at mark 21,000 × 0.03 %, received
    ledger.apply_funding(funding(BTC_PERP, due, rate="-0.0003"))
    assert ledger.funding_pnl == D("6.30")
    assert ledger.snapshot(1, "funding").assets[0].perp_funding == D("6.30")
    assert ledger.identity_residual() == 0


def test_short_receives_funding_when_rate_is_positive() -> None:
    ledger = example_one()
    ledger.mark_perp("ETH", D(2_000))
    ledger.apply_fill(fill(ETH_PERP, "sell", "10", "2000"))
    assert ledger.funding_due("ETH", D("0.0001")) == D("2.0000")


# ------------------------------------------------------------------ identity: properties

ASSETS = ("BTC", "ETH")
WALLETS: list[tuple[AccountKind, str]] = [
    (account, asset)
    for account in ("spot", "futures")
    for asset in ("USDT", "USDC", "BTC", "ETH", "BNB")
]
_price = st.integers(100, 10_000_000).map(lambda n: D(n) / 100)
_qty = st.integers(1, 5_000).map(lambda n: D(n) / 1000)
_fee = st.integers(0, 2_000).map(lambda n: D(n) / 10**6)
_side = st.sampled_from(["buy", "sell"])
_asset = st.sampled_from(ASSETS)
_rate = st.integers(-1_000, 1_000).map(lambda n: D(n) / 10**6)

_deposit_op = st.tuples(
    st.just("deposit"),
    st.sampled_from(WALLETS),
    st.integers(-1_000_000, 1_000_000).map(lambda n: D(n) / 1000),
)
_spot_fill_op = st.tuples(
    st.just("spot_fill"),
    _asset,
    _side,
    _qty,
    _price,
    _fee,
    st.sampled_from(["quote", "base", "BNB"]),
)
_perp_fill_op = st.tuples(st.just("perp_fill"), _asset, _side, _qty, _price, _fee)
_mark_op = st.tuples(st.sampled_from(["mark_spot", "mark_perp"]), _asset, _price)
_bnb_op = st.tuples(st.just("mark_spot"), st.just("BNB"), _price)
_funding_op = st.tuples(st.just("funding"), _asset, _rate)
_ops = st.lists(
    st.one_of(_deposit_op, _spot_fill_op, _perp_fill_op, _mark_op, _bnb_op, _funding_op),
    max_size=30,
)


@dataclass
class Model:
    """An independent bookkeeping of the same events: quantities and cash flows, no cost basis.

    Perp value = position × mark + Σ(−signed qty × fill price): realised and unrealised together.
    """

    holdings: dict[str, Decimal] = field(default_factory=dict)
    spot: dict[str, Decimal] = field(default_factory=dict)
    marks: dict[str, Decimal] = field(default_factory=dict)
    perp_qty: dict[str, Decimal] = field(default_factory=dict)
    perp_flow: dict[str, Decimal] = field(default_factory=dict)
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    transfers: Decimal = ZERO

    def add(self, asset: str, delta: Decimal) -> None:
        self.holdings[asset] = self.holdings.get(asset, ZERO) + delta

    def price(self, asset: str) -> Decimal:
        return D(1) if asset in ("USDT", "USDC") else self.spot[asset]

    def nav(self) -> Decimal:
        held = sum((q * self.price(a) for a, q in self.holdings.items()), ZERO)
        perps = sum((q * self.marks[a] + self.perp_flow[a] for a, q in self.perp_qty.items()), ZERO)
        return held + perps


START: dict[tuple[AccountKind, str], Decimal] = {
    ("spot", "USDT"): D(50_000),
    ("spot", "USDC"): D(1_000),
    ("futures", "USDT"): D(20_000),
    ("spot", "BTC"): D(1),
    ("spot", "ETH"): D(10),
    ("spot", "BNB"): D(5),
}
PRICES = {"BTC": D(40_000), "ETH": D(2_000), "BNB": D(300)}


def opened() -> tuple[Ledger, Model]:
    ledger, model = Ledger(), Model(spot=dict(PRICES))
    for (account, asset), qty in START.items():
        ledger.apply_balance(balance(asset, qty, account))
        model.add(asset, qty)
    for asset, price in PRICES.items():
        ledger.mark_spot(asset, price)
    for asset in ASSETS:
        ledger.mark_perp(asset, PRICES[asset])
        model.marks[asset] = PRICES[asset]
        model.perp_qty[asset] = model.perp_flow[asset] = ZERO
    return ledger, model


def apply(ledger: Ledger, model: Model, op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "deposit":
        _deposit(ledger, model, *op[1:])
    elif kind == "spot_fill":
        _spot_fill(ledger, model, *op[1:])
    elif kind == "perp_fill":
        _perp_fill(ledger, model, *op[1:])
    elif kind == "mark_spot":
        model.spot[op[1]] = op[2]
        ledger.mark_spot(op[1], op[2])
    elif kind == "mark_perp":
        model.marks[op[1]] = op[2]
        ledger.mark_perp(op[1], op[2])
    else:
        _funding(ledger, model, op[1], op[2])


def _deposit(
    ledger: Ledger, model: Model, wallet: tuple[AccountKind, str], amount: Decimal
) -> None:
    """A venue statement for one wallet that agrees with the books plus a deposit of ``amount``
    (negative: a withdrawal)."""
    account, asset = wallet
    others = sum(
        (v for (acc, a), v in ledger.reported.items() if a == asset and acc != account), ZERO
    )
    statement = ledger.spot_qty(asset) + amount - others
    model.add(asset, amount)
    model.transfers += amount * model.price(asset)
    ledger.apply_balance(balance(asset, statement, account))


def _spot_fill(
    ledger: Ledger, model: Model, asset: str, side: Side, qty: D, price: D, fee: D, fee_in: str
) -> None:
    signed = qty if side == "buy" else -qty
    fee_asset = {"quote": "USDT", "base": asset}.get(fee_in, fee_in)
    model.add(asset, signed)
    model.add("USDT", -signed * price)
    model.add(fee_asset, -fee)
    model.fees += fee * (price if fee_asset == asset else model.price(fee_asset))
    ledger.apply_fill(fill(f"{asset}/USDT", side, qty, price, fee, fee_asset))


def _perp_fill(
    ledger: Ledger, model: Model, asset: str, side: Side, qty: D, price: D, fee: D
) -> None:
    signed = qty if side == "buy" else -qty
    model.perp_qty[asset] += signed
    model.perp_flow[asset] -= signed * price
    model.add("USDT", -fee)
    model.fees += fee
    ledger.apply_fill(fill(f"{asset}/USDT:USDT", side, qty, price, fee, "USDT"))


def _funding(ledger: Ledger, model: Model, asset: str, rate: Decimal) -> None:
    amount = -model.perp_qty[asset] * model.marks[asset] * rate
    model.add("USDT", amount)
    model.funding += amount
    ledger.apply_funding(funding(f"{asset}/USDT:USDT", amount, rate=str(rate)))


@settings(max_examples=80, deadline=None)
@given(_ops)
def test_identity_and_nav_hold_exactly_after_every_event(ops: list[tuple[Any, ...]]) -> None:
    ledger, model = opened()
    assert ledger.nav0 == model.nav()
    for op in ops:
        apply(ledger, model, op)
        assert ledger.identity_residual() == 0, op
        assert ledger.nav() == model.nav(), op
        assert ledger.fees_paid == model.fees
        assert ledger.funding_pnl == model.funding
        assert ledger.transfers == model.transfers
        assert {a: p.qty for a, p in ledger.positions.items()} == {
            a: q for a, q in model.perp_qty.items() if a in ledger.positions
        }
        assert ledger.snapshot(1, "neutral").nav == model.nav()


_statement_op = st.tuples(
    st.just("statement"),
    st.sampled_from(WALLETS),
    st.integers(0, 10_000_000).map(lambda n: D(n) / 1000),
)
_position_op = st.tuples(
    st.just("position"),
    _asset,
    st.integers(-5_000, 5_000).map(lambda n: D(n) / 1000),
    _price,
    st.integers(0, 100_000).map(lambda n: D(n) / 100),
)
_reconcile_ops = st.lists(
    st.one_of(_statement_op, _position_op, _perp_fill_op, _spot_fill_op, _mark_op, _funding_op),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(_reconcile_ops)
def test_venue_statements_keep_the_identity(ops: list[tuple[Any, ...]]) -> None:
    """Venue statements of balances and positions, agreeing with the books or not, replace the
    ledger's own figures; what they change in NAV is a transfer, and nothing else is."""
    ledger, model = opened()
    for op in ops:
        nav, transfers = ledger.nav(), ledger.transfers
        if op[0] == "statement":
            (account, asset), qty = op[1], op[2]
            ledger.apply_balance(balance(asset, qty, account))
            assert ledger.nav() - nav == ledger.transfers - transfers
        elif op[0] == "position":
            _, asset, qty, entry, margin = op
            ledger.apply_position(position(f"{asset}/USDT:USDT", qty, entry, "0", margin))
            assert ledger.nav() - nav == ledger.transfers - transfers
        elif op[0] == "funding":
            amount = ledger.funding_due(op[1], op[2])
            ledger.apply_funding(funding(f"{op[1]}/USDT:USDT", amount, rate=str(op[2])))
            assert ledger.nav() - nav == amount
        else:
            apply(ledger, model, op)
            assert ledger.transfers == transfers
        assert ledger.identity_residual() == 0, op
