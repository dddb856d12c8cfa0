"""Read-only mode (``[security] read_only = true``): the engine connects, tracks, plans and
journals, and never sends an order.

As a user runs it: ``ballast run`` on a live venue (``ballast venue serve``, a key that may
trade) with prices moving through tight bands: the strategy decides rebalances, each would-be
order is journaled as an ``OrderVetoed`` with reason ``read_only`` naming the order, the journal
holds no ``SubmitOrder`` and the exchange received no order at all. Its config leaves
``[metrics] address`` out: the engine listens on 127.0.0.1:9464, and on nothing else. In
process: a key without trade permission (the loopback exchange refuses its orders, -2015, as
Binance does) is enough for everything a read-only engine does at the venue (connect, streams,
catch-up, account).
"""

from __future__ import annotations

import signal
from decimal import Decimal
from pathlib import Path

import pytest
from ccxt.base.errors import AuthenticationError

from ballast.engine.kernel.config import Config, load_config
from ballast.engine.kernel.events import (
    Message,
    OrderIntent,
    OrderVetoed,
    RebalanceDecided,
    VenueConnectionChanged,
)
from ballast.engine.trading.pretrade import Approved, read_only_veto
from tests.support.listening import listening
from tests.support.live_exchange import (
    count_in,
    engine_running,
    exchange_serving,
    live_config,
    read_journal,
)
from tests.support.loopback import loopback_exchange
from tests.support.paper_config import Overrides
from tests.support.waiting import eventually

pytestmark = pytest.mark.reliability

TRADING: Overrides = {
    "paper": {"start": "2022-06-01", "end": "2022-08-01"},  # BTC falls from 31k to 19k
    "bands": {"abs_pp": 0.5},
    "execution": {"cooldown_s": 0.5, "check_interval_s": 0.5},
    "risk": {"stale_after_s": 2},
    "security": {"read_only": True},
}


async def test_a_read_only_engine_plans_and_journals_but_the_exchange_gets_no_order(
    tmp_path: Path,
) -> None:
    journal_path = tmp_path / "journal.db"
    served = live_config(tmp_path, name="exchange.toml", sections=TRADING)
    async with exchange_serving(tmp_path, served, step_s=0.05) as exchange:
        config = live_config(
            tmp_path,
            rest_url=exchange.rest_url,
            ws_url=exchange.ws_url,
            sections={**TRADING, "metrics": {"enabled": True}},
        )
        # [metrics] address left out: the default, which must be loopback only
        lines = config.read_text().splitlines()
        config.write_text("\n".join(x for x in lines if not x.startswith("address =")) + "\n")
        assert load_config(config).metrics.address == Config().metrics.address
        async with engine_running(tmp_path, config) as engine:
            await engine.served()
            sockets = listening(engine.proc.pid)
            await eventually(
                lambda: count_in(journal_path, "OrderVetoed") >= 6,
                within_s=60,
                what="would-be orders journaled",
            )
            assert await engine.stop(signal.SIGTERM) == 0, engine.stderr()
        state = await exchange.state()
    assert sockets == [("127.0.0.1", 9464)], sockets  # metrics and health, loopback only
    journal = await read_journal(journal_path)
    assert state.orders == [], state.orders
    assert state.trades == []
    assert journal.submits == []
    assert journal.fills == []
    # it connected and tracked the account
    states = {c.state for c in journal.of(VenueConnectionChanged)}
    assert {"connected", "caught_up"} <= states, states
    assert journal.balances(), "no balance tracked"
    # it planned: every intent of a decision is vetoed read_only, naming the order
    decided = [d for d in journal.of(RebalanceDecided) if d.intents]
    assert len(decided) >= 2
    vetoes = {v.intent_id: v for v in journal.of(OrderVetoed) if v.reason == "read_only"}
    planned = [i for d in decided for i in d.intents]
    others = [v for v in journal.of(OrderVetoed) if v.reason != "read_only"]
    assert {i.intent_id for i in planned} - set(vetoes) <= {v.intent_id for v in others}
    for intent in planned:
        veto = vetoes.get(intent.intent_id)
        if veto is not None:
            assert veto.detail.startswith("read-only mode ([security] read_only = true): would ")
            assert f" {intent.side} " in veto.detail
            assert intent.symbol in veto.detail
    assert "Traceback" not in engine.stderr(), engine.stderr()


def test_the_veto_names_the_order_after_the_checks_cuts() -> None:
    intent = OrderIntent(
        "i-1", "BTC/USDT:USDT", "sell", Decimal("0.250"), "limit", Decimal("30000.0"), True, "band"
    )
    veto = read_only_veto(Approved(intent, "max_order_notional: 0.5 → 0.25"))
    assert veto.reason == "read_only"
    assert veto.detail == (
        "read-only mode ([security] read_only = true): would sell 0.250 BTC/USDT:USDT limit at "
        "30000.0 reduce-only (cut: max_order_notional: 0.5 → 0.25); not sent"
    )


async def test_a_key_without_trade_permission_is_enough_for_what_a_read_only_engine_does() -> None:
    async with loopback_exchange() as lb:
        lb.server.permissions.default = "read"
        venue = lb.venue()
        seen: list[Message] = []

        async def sink(event: Message) -> int:
            seen.append(event)
            return len(seen)

        venue.attach(sink)
        async with venue:
            await venue.start()
            await eventually(
                lambda: any(
                    isinstance(m, VenueConnectionChanged) and m.state == "caught_up" for m in seen
                ),
                within_s=10,
                what="caught up with a read-only key",
            )
            account = await venue.account()
            assert account
            assert await venue.open_orders() == []
            # the restriction is real: the exchange refuses this key's orders
            client = lb.new_client()
            await client.load_markets()
            with pytest.raises(AuthenticationError, match="-2015"):
                await client.create_order("BTC/USDT", "market", "buy", 0.001)
