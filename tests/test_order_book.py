"""The order lifecycle state machine: legal moves, refused moves, fills, venue reports, ids."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.events import (
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderStatusReported,
    OrderSubmitted,
)
from ballast.engine.trading.order_book import (
    TERMINAL_STATES,
    OrderBook,
    client_order_id_for,
    is_valid_client_order_id,
)
from tests.conftest import START_NS

COID = "bl-d1-0"
SYMBOL = "BTC/USDT"


def submit(intent_id: str = "d1-0", qty: str = "1") -> SubmitOrder:
    return SubmitOrder(
        START_NS,
        START_NS,
        intent_id=intent_id,
        client_order_id=client_order_id_for(intent_id),
        symbol=SYMBOL,
        side="buy",
        order_type="limit",
        qty=Decimal(qty),
        price=Decimal(100),
        reduce_only=False,
        post_only=False,
        time_in_force="GTC",
    )


def submitted() -> OrderSubmitted:
    return OrderSubmitted(
        START_NS, START_NS, COID, "d1-0", SYMBOL, "buy", "limit", Decimal(1), Decimal(100)
    )


def accepted(coid: str = COID) -> OrderAccepted:
    return OrderAccepted(START_NS, START_NS, coid, "v1", SYMBOL)


def fill(qty: str, price: str, coid: str = COID, trade: str = "t1") -> OrderFilled:
    return OrderFilled(
        START_NS,
        START_NS,
        client_order_id=coid,
        venue_order_id="v1",
        trade_id=trade,
        symbol=SYMBOL,
        side="buy",
        qty=Decimal(qty),
        price=Decimal(price),
        fee=Decimal(0),
        fee_asset="USDT",
        liquidity="maker",
    )


def canceled(coid: str = COID) -> OrderCanceled:
    return OrderCanceled(START_NS, START_NS, coid, SYMBOL, "stale")


def rejected(coid: str = COID) -> OrderRejected:
    return OrderRejected(START_NS, START_NS, coid, SYMBOL, "lot size")


def report(state: str, filled: str = "0", coid: str = COID) -> OrderStatusReported:
    return OrderStatusReported(
        START_NS,
        START_NS,
        client_order_id=coid,
        venue_order_id="v1",
        symbol=SYMBOL,
        side="buy",
        qty=Decimal(1),
        filled_qty=Decimal(filled),
        avg_price=Decimal(100) if Decimal(filled) else None,
        state=state,
    )


def book_with(*messages: Message) -> OrderBook:
    book = OrderBook()
    for message in messages:
        book.apply(message)
    return book


def test_a_submitted_order_is_live_for_its_intent() -> None:
    book = book_with(submit())

    order = book.live_for_intent("d1-0")
    assert order is not None
    assert (order.client_order_id, order.state, order.qty) == (COID, "submitted", Decimal(1))
    assert book.live_for_intent("d2-0") is None


def test_happy_path_submitted_accepted_partially_filled_filled() -> None:
    book = book_with(submit(), submitted(), accepted())
    states = []
    for event in (fill("0.25", "100"), fill("0.25", "104"), fill("0.5", "101")):
        transition = book.apply(event)
        assert transition is not None
        assert transition.ok
        order = book.get(COID)
        assert order is not None
        states.append(order.state)

    assert states == ["partially_filled", "partially_filled", "filled"]
    order = book.get(COID)
    assert order is not None
    assert order.filled_qty == Decimal(1)
    assert order.avg_price == Decimal("101.5")  # (25 + 26 + 50.5) / 1
    assert order.venue_order_id == "v1"
    assert book.live_for_intent("d1-0") is None
    assert book.for_intent("d1-0") is order


def test_cancel_after_a_partial_fill_keeps_the_filled_quantity() -> None:
    book = book_with(submit(), accepted(), fill("0.4", "100"), canceled())

    order = book.get(COID)
    assert order is not None
    assert (order.state, order.filled_qty, order.reason) == ("canceled", Decimal("0.4"), "stale")


def test_illegal_transitions_are_reported_and_change_nothing() -> None:
    book = book_with(submit(), accepted(), fill("1", "100"))

    late_ack = book.apply(accepted())
    cancel_after_fill = book.apply(canceled())

    assert late_ack is not None
    assert late_ack.problem == "illegal transition filled -> accepted"
    assert cancel_after_fill is not None
    assert not cancel_after_fill.ok
    order = book.get(COID)
    assert order is not None
    assert order.state == "filled"
    assert list(book.problems) == [late_ack, cancel_after_fill]


def test_a_fill_after_a_cancel_counts_the_quantity_but_is_reported() -> None:
    book = book_with(submit(), accepted(), canceled())

    transition = book.apply(fill("0.1", "100"))

    assert transition is not None
    assert transition.problem == "illegal transition canceled -> partially_filled"
    order = book.get(COID)
    assert order is not None
    assert (order.state, order.filled_qty) == ("canceled", Decimal("0.1"))


def test_events_for_unknown_orders_are_reported_not_adopted() -> None:
    book = OrderBook()

    transition = book.apply(fill("1", "100", coid="someone-else"))

    assert transition is not None
    assert transition.problem == "unknown client order id"
    assert len(book) == 0


def test_rejection_is_terminal() -> None:
    book = book_with(submit(), submitted(), rejected())

    order = book.get(COID)
    assert order is not None
    assert order.state == "rejected"
    assert order.reason == "lot size"
    assert book.live_for_intent("d1-0") is None
    assert book.for_intent("d1-0") is order


def test_a_reported_open_order_unknown_to_the_book_is_adopted_under_its_intent() -> None:
    book = book_with(report("open"))

    order = book.live_for_intent("d1-0")
    assert order is not None
    assert (order.state, order.intent_id, order.venue_order_id) == ("accepted", "d1-0", "v1")


def test_a_report_moves_a_known_order_to_the_venues_state() -> None:
    book = book_with(submit(), report("partially_filled", filled="0.3"))

    order = book.get(COID)
    assert order is not None
    assert (order.state, order.filled_qty) == ("partially_filled", Decimal("0.3"))


def test_an_open_report_with_fills_means_partially_filled() -> None:
    book = book_with(submit(), report("open", filled="0.3"))

    order = book.get(COID)
    assert order is not None
    assert order.state == "partially_filled"


def test_unknown_report_leaves_a_submitted_order_submitted() -> None:
    book = book_with(submit())

    transition = book.apply(report("unknown"))

    assert transition is not None
    assert transition.ok
    order = book.get(COID)
    assert order is not None
    assert order.state == "submitted"
    assert book.apply(report("unknown", coid="bl-other")) is not None
    assert book.get("bl-other") is None


def test_a_stale_open_report_does_not_undo_a_partial_fill() -> None:
    book = book_with(submit(), accepted(), fill("0.5", "100"))

    transition = book.apply(report("open"))

    assert transition is not None
    assert transition.ok
    order = book.get(COID)
    assert order is not None
    assert order.state == "partially_filled"


def test_submitting_the_same_order_twice_is_reported() -> None:
    book = book_with(submit())

    transition = book.apply(submit())

    assert transition is not None
    assert transition.problem == "already submitted"
    assert len(book) == 1


def test_messages_the_book_does_not_track_are_ignored() -> None:
    assert OrderBook().apply(Message(START_NS, START_NS)) is None


def test_client_order_id_is_prefixed_intent_id_when_valid() -> None:
    assert client_order_id_for("d12-3") == "bl-d12-3"


def test_client_order_id_of_an_awkward_intent_is_sanitised_and_hashed() -> None:
    coid = client_order_id_for("decision #7 — rebalance BTC/USDT:USDT overlay short, leg 1")

    assert is_valid_client_order_id(coid)
    assert coid.startswith("bl-decision__7")
    assert len(coid) == 36


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.text(max_size=80))
def test_client_order_ids_are_valid_deterministic_and_distinct(a: str, b: str) -> None:
    assert is_valid_client_order_id(client_order_id_for(a))
    assert client_order_id_for(a) == client_order_id_for(a)
    if a != b:
        assert client_order_id_for(a) != client_order_id_for(b)


_EVENTS = st.sampled_from(
    [
        submitted(),
        accepted(),
        canceled(),
        rejected(),
        fill("0.25", "100"),
        fill("0.5", "99"),
        report("open"),
        report("partially_filled", filled="0.5"),
        report("filled", filled="1"),
        report("canceled"),
        report("unknown"),
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_EVENTS, max_size=12))
def test_any_event_sequence_keeps_the_machine_consistent(events: list[Message]) -> None:
    book = book_with(submit())
    terminal_at: str | None = None
    fills = Decimal(0)
    for event in events:
        book.apply(event)
        order = book.get(COID)
        assert order is not None
        if terminal_at is not None:
            assert order.state == terminal_at  # terminal states never change
        elif order.state in TERMINAL_STATES:
            terminal_at = order.state
        if isinstance(event, OrderFilled):
            fills += event.qty
        assert order.filled_qty >= fills  # reports may add to fills, never take away
    order = book.get(COID)
    assert order is not None
    assert order.live == (order.state not in TERMINAL_STATES)
