"""The perp cost basis (ballast.engine.trading.position): properties over random fill sequences,
and the ledger and the simulated exchange booking the same fills to the same digits.

Quantities and prices are drawn with varied exponents (``0.1`` and ``0.100``, ``50000`` and
``50000.0``): Decimal keeps them, so "the same result" here means the same string.
"""

from __future__ import annotations

from decimal import Context, Decimal, localcontext
from fractions import Fraction

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ballast.adapters.sim.config import SimConfig
from ballast.adapters.sim.exchange import SimExchange
from ballast.adapters.sim.slippage import SlippageConfig
from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.events import Bar, OrderFilled, PositionUpdated, Side
from ballast.engine.kernel.instruments import binance_defaults
from ballast.engine.trading.ledger import Ledger
from ballast.engine.trading.position import COST_QUANTUM, Position

D = Decimal
ZERO = Decimal(0)
HALF_QUANTUM = Fraction(COST_QUANTUM) / 2


def _decimal(units: int, places: int) -> Decimal:
    """``units`` × 10^-``places``, with a few trailing zeros sometimes (same value, other
    exponent)."""
    return D(units).scaleb(-places)


def _padded(value: Decimal, zeros: int) -> Decimal:
    return value.quantize(D(1).scaleb(value.as_tuple().exponent - zeros))  # type: ignore[operator]


QTYS = st.builds(
    _padded,
    st.builds(_decimal, st.integers(1, 5_000), st.integers(0, 3)),
    st.integers(0, 2),
)
SIGNED = st.tuples(QTYS, st.booleans()).map(lambda t: t[0] if t[1] else -t[0])
PRICES = st.builds(
    _padded,
    st.builds(_decimal, st.integers(1_000, 9_000_000), st.integers(0, 2)),
    st.integers(0, 2),
)
FILLS = st.lists(st.tuples(SIGNED, PRICES), max_size=12)


def _book(fills: list[tuple[Decimal, Decimal]]) -> tuple[Position, Decimal]:
    position, realized = Position(), ZERO
    for signed, price in fills:
        realized += position.trade(signed, price)
    return position, realized


@given(fills=FILLS, mark=PRICES)
def test_realised_plus_unrealised_is_the_mark_to_market_of_the_fills(
    fills: list[tuple[Decimal, Decimal]], mark: Decimal
) -> None:
    position, realized = _book(fills)

    assert position.qty == sum((s for s, _ in fills), ZERO)
    assert realized + position.unrealized(mark) == sum((s * (mark - p) for s, p in fills), ZERO)


@given(fills=FILLS, mark=PRICES)
def test_flat_means_no_cost_no_entry_and_no_unrealised(
    fills: list[tuple[Decimal, Decimal]], mark: Decimal
) -> None:
    position, _ = _book(fills)
    if position.qty:
        position.trade(-position.qty, mark)

    assert (position.qty, position.cost, position.entry_price) == (ZERO, ZERO, ZERO)
    assert position.unrealized(mark) == 0


@given(qtys=st.lists(QTYS, min_size=1, max_size=8), prices=st.lists(PRICES, min_size=8))
def test_fills_in_one_direction_average_the_entry_and_realise_nothing(
    qtys: list[Decimal], prices: list[Decimal]
) -> None:
    for sign in (1, -1):
        position = Position()
        for qty, price in zip(qtys, prices, strict=False):
            assert position.trade(sign * qty, price) == 0
        pairs = list(zip(qtys, prices, strict=False))
        assert position.cost == sign * sum((q * p for q, p in pairs), ZERO)
        total = sum((Fraction(q) for q, _ in pairs), Fraction(0))
        exact = sum((Fraction(q) * Fraction(p) for q, p in pairs), Fraction(0)) / total
        assert abs(Fraction(position.entry_price) - exact) <= exact * Fraction(1, 10**27)


@given(fills=FILLS, share=st.integers(1, 99), price=PRICES)
def test_a_reduce_keeps_the_entry_and_realises_the_closed_part_at_the_fill_price(
    fills: list[tuple[Decimal, Decimal]], share: int, price: Decimal
) -> None:
    position, _ = _book(fills)
    reduce = -(position.qty * share / 100).quantize(D("0.00001"))
    if reduce == 0 or abs(reduce) >= abs(position.qty):
        return
    qty, cost = Fraction(position.qty), Fraction(position.cost)

    realized = position.trade(reduce, price)

    kept = cost * Fraction(position.qty) / qty  # the cost basis before its rounding to 1e-12
    assert abs(Fraction(position.cost) - kept) <= HALF_QUANTUM
    closed_pnl = -Fraction(reduce) * (Fraction(price) - cost / qty)
    assert abs(Fraction(realized) - closed_pnl) <= HALF_QUANTUM
    assert position.cost == position.cost.quantize(COST_QUANTUM)


@given(fills=FILLS, extra=QTYS, price=PRICES)
def test_a_flip_realises_the_old_position_and_opens_the_rest_at_the_fill_price(
    fills: list[tuple[Decimal, Decimal]], extra: Decimal, price: Decimal
) -> None:
    position, _ = _book(fills)
    old = Position(position.qty, position.cost)
    signed = -position.qty - (extra if position.qty >= 0 else -extra)

    realized = position.trade(signed, price)

    assert realized == old.unrealized(price)
    assert position.qty == old.qty + signed
    assert (position.cost, position.entry_price) == (position.qty * price, price)


@given(fills=FILLS, mark=PRICES)
def test_mirrored_fills_mirror_the_position_and_its_pnl(
    fills: list[tuple[Decimal, Decimal]], mark: Decimal
) -> None:
    position, realized = _book(fills)
    mirror, mirrored = _book([(-s, p) for s, p in fills])

    assert (mirror.qty, mirror.cost, mirrored) == (-position.qty, -position.cost, -realized)
    assert mirror.unrealized(mark) == -position.unrealized(mark)


@given(fills=FILLS, mark=PRICES)
def test_results_do_not_depend_on_the_callers_decimal_context(
    fills: list[tuple[Decimal, Decimal]], mark: Decimal
) -> None:
    def run() -> list[str]:
        position = Position()
        realized = [position.trade(signed, price) for signed, price in fills]
        seen = [position.cost, position.entry_price, position.unrealized(mark), *realized]
        return [str(value) for value in seen]

    with localcontext(Context(prec=6)):
        coarse = run()

    assert coarse == run()


# ------------------------------------------------------------- the ledger and the exchange agree

PERP = "BTC/USDT:USDT"
T0 = 1_700_000_000 * 10**9
LOTS = st.builds(_padded, st.builds(_decimal, st.integers(4, 300), st.just(3)), st.integers(0, 2))
TICKS = st.builds(
    _padded, st.builds(_decimal, st.integers(300_000, 700_000), st.just(1)), st.integers(0, 1)
)


SIDES: tuple[Side, ...] = ("buy", "sell")
CLOSE_AND_REOPEN: list[tuple[Side, Decimal, Decimal]] = [
    ("buy", D("0.100"), D("50000.0")),
    ("sell", D("0.10000"), D("50000.0")),  # flat: a cost basis of 0.0000000
    ("buy", D("0.1"), D("50000.0")),
]


@settings(max_examples=60, deadline=None)
@example(orders=CLOSE_AND_REOPEN)
@given(orders=st.lists(st.tuples(st.sampled_from(SIDES), LOTS, TICKS), max_size=10))
def test_the_ledger_books_the_exchanges_fills_to_the_same_digits(
    orders: list[tuple[Side, Decimal, Decimal]],
) -> None:
    """Every fill of the simulated exchange, booked by the ledger: the same entry price and
    unrealised PnL as the exchange's PositionUpdated, and the same realised PnL as reached the
    exchange's wallet, as strings."""
    exchange = SimExchange(
        binance_defaults(["BTC"]),
        SimConfig(balances={"USDT": D(10**9)}, slippage=SlippageConfig(model="fixed", bps=ZERO)),
    )
    ledger = Ledger()
    wallet_realized = ZERO
    for n, (side, qty, price) in enumerate(orders):
        now = T0 + n * 3_600 * 10**9
        exchange.on_bar(Bar(now, now, PERP, 3600, price, price, price, price, D(1)))
        before = exchange.balance("USDT")
        cmd = SubmitOrder(now, now, f"i{n}", f"c{n}", PERP, side, "market", qty, None, False, False,
                          "IOC")  # fmt: skip
        events = exchange.submit(cmd, now)
        fills = [e for e in events if isinstance(e, OrderFilled)]
        for fill in fills:
            ledger.mark_perp("BTC", price)
            ledger.apply_fill(fill)
            wallet_realized += exchange.balance("USDT") - before + fill.fee
        for update in (e for e in events if isinstance(e, PositionUpdated)):
            booked = ledger.positions["BTC"]
            assert str(booked.entry_price) == str(update.entry_price)
            if update.qty:
                assert str(booked.unrealized(update.mark_price)) == str(update.unrealized_pnl)
    assert ledger.realized_pnl == wallet_realized
    if "BTC" in ledger.positions:
        assert str(ledger.positions["BTC"].entry_price) == str(exchange.entry_price(PERP))
