"""``ballast demo``: the main job on the embedded default, with no keys and no network.

Until the simulated venue lands, the demo runs the journal → replay round trip over the bundled
real data: two years of hourly BTC and ETH bars drive a DriftWatch actor on a simulated clock;
every bar, timer and decision is journaled to ``var/demo/journal.db``; the journal is then
replayed through fresh actors and verified decision by decision.
"""

from __future__ import annotations

import argparse
import heapq
import time
from decimal import Decimal
from pathlib import Path

from adapters.data.klines import load_klines
from engine.cli import exits
from engine.clock import SimulatedClock
from engine.config import BandsConfig, Config, EngineConfig, JournalConfig
from engine.events import Bar
from engine.journal import Journal, JournalReader
from engine.replay import replay
from engine.session import Session

DATA = Path(__file__).resolve().parents[2] / "data" / "market"


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("demo", help="run the bundled demo (no keys, no network)")
    parser.add_argument("--out", default="var/demo", help="folder for journal (default var/demo)")
    parser.add_argument("--data", default=str(DATA), help="folder with the bundled market data")
    parser.set_defaults(func=demo_cmd)


def demo_config(journal: Path) -> Config:
    return Config(
        engine=EngineConfig(actors=["engine.drift_watch:DriftWatch"]),
        journal=JournalConfig(path=str(journal)),
        targets={"BTC": Decimal("0.40"), "ETH": Decimal("0.20")},
        bands=BandsConfig(abs_pp=Decimal(5)),
    )


def merged_bars(data: Path) -> list[Bar]:
    series = [
        load_klines(data / "btcusdt_spot_1h.csv", "BTC/USDT"),
        load_klines(data / "ethusdt_spot_1h.csv", "ETH/USDT"),
    ]
    for s in series:
        if s.gaps:
            print(f"  data: {s.symbol}: {len(s.gaps)} gap(s), {s.missing} missing bar(s) (kept)")
    return list(heapq.merge(*(s.bars for s in series), key=lambda b: (b.ts_event, b.symbol)))


async def demo_cmd(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "journal.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    bars = merged_bars(Path(args.data))
    print(f"Ballast demo: {len(bars)} hourly BTC/ETH bars (2022-04-18 .. 2024-04-17, Binance)")
    config = demo_config(path)
    clock = SimulatedClock(bars[0].ts_event - 3_600_000_000_000)
    started = time.perf_counter()
    async with Journal(path) as journal, Session(config, clock, journal=journal) as session:
        for bar in bars:
            clock.advance_to(bar.ts_event)
            await session.bus.send(bar)
    run_s = time.perf_counter() - started
    async with JournalReader(path) as reader:
        st = await reader.stats()
    print(f"  run:    {st.count} records journaled in {run_s:.2f} s -> {path}")
    for name in ("RebalanceDecided", "PortfolioSnapshot", "TimerFired"):
        print(f"          {name:<18} {st.by_type.get(name, 0)}")
    result = await replay(path, verify=True)
    if result.divergence is not None:
        print(result.divergence.describe())
        return exits.FAILURE
    print(
        f"  replay: {result.records} records in {result.seconds:.2f} s, "
        f"{result.outputs_compared} decisions reproduced identically (verify ok)"
    )
    print(f"  next:   ballast journal tail {path} --type RebalanceDecided -n 5")
    return exits.OK
