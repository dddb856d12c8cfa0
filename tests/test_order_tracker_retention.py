"""An order tracker forgets the oldest finished orders beyond ``keep_finished`` (default
:data:`KEEP_FINISHED`), so the three trackers of a long-running engine stay bounded; live orders
are never forgotten, and the recently finished ones still refuse a second plan or send."""

from __future__ import annotations

import pytest

from ballast.engine.trading.order_tracker import KEEP_FINISHED, OrderTracker, client_order_id_for
from tests.test_order_tracker import decided, fill, order_intent, submit, vetoed


def test_a_tracker_keeps_live_orders_and_only_the_latest_finished_ones() -> None:
    book = OrderTracker(keep_finished=3)
    book.apply(decided(order_intent("live-0")))
    book.apply(submit("live-0"))  # sent, never answered: live for good
    for n in range(10):
        intent = f"d{n}-0"
        book.apply(decided(order_intent(intent)))
        if n % 2:
            book.apply(vetoed(intent))
        else:
            book.apply(submit(intent))
            book.apply(fill("1", "100", coid=client_order_id_for(intent), trade=f"t{n}"))

    assert len(book) == 1 + 3
    assert [o.intent_id for o in book.live()] == ["live-0"]
    assert {o.intent_id for o in book.orders() if not o.live} == {"d7-0", "d8-0", "d9-0"}
    assert book.for_intent("d0-0") is None
    assert book.get(client_order_id_for("d0-0")) is None  # its client order id forgotten too
    # the ones it remembers still refuse a second plan and a second send
    assert book.apply(decided(order_intent("d8-0")))[0].problem == "already planned"
    assert book.apply(submit("d8-0"))[0].problem == "already submitted"


def test_a_long_run_of_vetoed_intents_stays_bounded() -> None:
    book = OrderTracker()
    for n in range(KEEP_FINISHED + 500):
        book.apply(decided(order_intent(f"d{n}-0")))
        book.apply(vetoed(f"d{n}-0"))
    assert len(book) == KEEP_FINISHED
    assert book.for_intent(f"d{KEEP_FINISHED + 499}-0") is not None


def test_keep_finished_must_be_positive() -> None:
    with pytest.raises(ValueError, match="keep_finished"):
        OrderTracker(keep_finished=0)
