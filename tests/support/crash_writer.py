"""Crash-campaign writer: appends a deterministic event stream to a journal until it is killed.

Run as ``python -m tests.support.crash_writer PATH SEED [LIMIT]`` from the repository root.

The record stored at ``seq`` is always :func:`event_for(seed, seq) <event_for>`, whichever process
appended it, so a reader can check every surviving record against what was written, and a journal
can be reopened after a kill and continued (by this script or by the test itself).

Protocol on stdout, one flushed line each:

- ``ready <opened_at_seq>`` once the journal is open;
- ``durable <seq>`` after ``await journal.sync()`` returned: everything up to ``seq`` is on disk;
- ``done <last_seq>`` if ``LIMIT`` records were reached (the parent normally kills long before).

Market data (QuoteTick) is appended in bursts of random length that are group-committed (by the
background flusher, by ``batch_size``, or by an explicit ``commit()``); an order command
(SubmitOrder) or a fill (OrderFilled) is followed by ``sync()`` and a ``durable`` report, as the
engine does before handing an order to a venue or acknowledging a fill.
"""

from __future__ import annotations

import asyncio
import random
import sys
from decimal import Decimal
from typing import Final

from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.events import Message, OrderFilled, QuoteTick
from ballast.engine.kernel.journal import Journal

BASE_NS: Final = 1_700_000_000_000_000_000
SYMBOLS: Final = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BTC/USDT:USDT")
DEFAULT_LIMIT: Final = 2_000_000


def _price(rng: random.Random, base: int) -> Decimal:
    # Exact decimals with many digits: any bit flip or truncation shows up as a mismatch.
    return Decimal(base) + Decimal(rng.randrange(10**8)).scaleb(-8)


def event_for(seed: int, seq: int) -> Message:
    """The record the writer stores at ``seq`` of a journal written with ``seed``."""
    rng = random.Random(f"ballast-crash:{seed}:{seq}")
    ts_event = BASE_NS + seq * 1_000_000 + rng.randrange(1_000)
    ts_init = ts_event + rng.randrange(1, 50_000)
    symbol = rng.choice(SYMBOLS)
    roll = rng.random()
    if roll < 0.02:
        return SubmitOrder(
            ts_event,
            ts_init,
            intent_id=f"i-{seed}-{seq}",
            client_order_id=f"c-{seed}-{seq}",
            symbol=symbol,
            side=rng.choice(("buy", "sell")),
            order_type="limit",
            qty=_price(rng, 0),
            price=_price(rng, 30_000),
            reduce_only=rng.random() < 0.5,
            post_only=rng.random() < 0.5,
            time_in_force="GTC",
        )
    if roll < 0.04:
        return OrderFilled(
            ts_event,
            ts_init,
            client_order_id=f"c-{seed}-{seq}",
            venue_order_id=f"v-{rng.randrange(10**12)}",
            trade_id=f"t-{seq}",
            symbol=symbol,
            side=rng.choice(("buy", "sell")),
            qty=_price(rng, 0),
            price=_price(rng, 30_000),
            fee=Decimal(rng.randrange(10**6)).scaleb(-10),
            fee_asset="USDT",
            liquidity=rng.choice(("maker", "taker")),
        )
    bid = _price(rng, 2_000)
    return QuoteTick(
        ts_event,
        ts_init,
        symbol=symbol,
        bid=bid,
        ask=bid + Decimal(rng.randrange(1, 1_000)).scaleb(-2),
        bid_size=_price(rng, 1),
        ask_size=_price(rng, 1),
    )


def needs_sync(message: Message) -> bool:
    return isinstance(message, SubmitOrder | OrderFilled)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def run(path: str, seed: int, limit: int) -> None:
    # Odd seeds (every other file of the campaign) write their durable batches on the event
    # loop's thread ([journal] durable_write = "loop", a live run's default), even ones on
    # SQLite's thread: both must leave a gap-free durable prefix when killed. The journal's
    # checkpointer runs every 8 pages of WAL (not 1000), so kills land before, during and after
    # checkpoints and WAL restarts too.
    async with Journal(
        path,
        batch_size=64,
        flush_interval_s=0.002,
        high_water=512,
        durable_on_loop=seed % 2 == 1,
        checkpoint_pages=8,
    ) as journal:
        _say(f"ready {journal.opened_at_seq}")
        # The control flow (burst lengths, commit style) differs per reopen; the records do not.
        control = random.Random(f"ballast-crash-control:{seed}:{journal.opened_at_seq}")
        while journal.last_seq < limit:
            for _ in range(control.randint(1, 150)):
                message = event_for(seed, journal.last_seq + 1)
                seq = journal.append(message)
                if needs_sync(message):
                    durable = await journal.sync()
                    if durable < seq:
                        raise SystemExit(f"sync() returned {durable} < {seq}")
                    _say(f"durable {durable}")
            style = control.random()
            if style < 0.3:
                await journal.commit()
            elif style < 0.6:
                await journal.wait_writable()
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(0.0005)  # let the background flusher group-commit
        _say(f"done {journal.last_seq}")


def main(argv: list[str]) -> None:
    if len(argv) not in (2, 3):
        raise SystemExit("usage: python -m tests.support.crash_writer PATH SEED [LIMIT]")
    limit = int(argv[2]) if len(argv) == 3 else DEFAULT_LIMIT
    asyncio.run(run(argv[0], int(argv[1]), limit))


if __name__ == "__main__":
    main(sys.argv[1:])
