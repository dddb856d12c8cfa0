"""The loopback exchange composed from a config (``loopback_exchange``) and ``ballast venue
serve``: the market driver's quotes, marks and funding reach a real ccxt.pro client through the
real loopback server; pause/resume/step over the control routes; a restart on ``--state`` goes on
after the last bar time sent. The subprocess tests run the installed ``ballast`` script."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.pro
import pytest

from ballast.adapters.loopback.driver import steps_of
from ballast.engine.app.cli.cmd_venue import key_pair
from ballast.engine.app.config_check import load_checked_config
from ballast.engine.app.venue_serve import LoopbackHandle, loopback_exchange, position_path
from ballast.engine.kernel.config import Config, parse_config
from ballast.engine.kernel.errors import ConfigError
from ballast.engine.kernel.events import Bar, MarketData, MarkPriceUpdated
from ballast.engine.kernel.timefmt import ns_to_iso, parse_time
from tests.support.cli import BALLAST, ENV
from tests.support.paper_config import DATA, paper_config
from tests.support.waiting import eventually

KEY = "venue-serve-test-key"
SECRET = "venue-serve-test-secret"
PERP, SPOT = "BTC/USDT:USDT", "BTC/USDT"
START, END = "2022-05-01T00:00", "2022-05-01T12:00"


def config_file(tmp_path: Path, **paper: str) -> Path:
    settings: dict[str, str] = {"data_dir": str(DATA), "start": START, "end": END, **paper}
    return paper_config(tmp_path / "paper.toml", {"paper": settings})


def config(tmp_path: Path) -> Config:
    return load_checked_config(config_file(tmp_path))


@asynccontextmanager
async def serving(
    cfg: Config, *, step_s: float = 3600, **options: Any
) -> AsyncIterator[tuple[LoopbackHandle, Any]]:
    """The exchange (driver not started unless ``autostart=True``) and a ccxt.pro client."""
    options.setdefault("autostart", False)
    async with loopback_exchange(
        cfg, step_s=step_s, api_key=KEY, api_secret=SECRET, **options
    ) as handle:
        client = ccxt.pro.binance(handle.ccxt_config())
        try:
            await client.load_markets()
            yield handle, client
        finally:
            await client.close()


def first_steps(handle: LoopbackHandle, n: int) -> list[list[MarketData]]:
    steps = steps_of(handle.bundle.events())
    return [events for _, (__, events) in zip(range(n), steps, strict=False)]


def bar(step: list[MarketData], symbol: str) -> Bar:
    [found] = [e for e in step if isinstance(e, Bar) and e.symbol == symbol]
    return found


async def control(handle_url: str, method: str, path: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, handle_url + path) as resp,
    ):
        assert resp.status == 200, await resp.text()
        data: dict[str, Any] = json.loads(await resp.text())
        return data


async def live_subscriptions(handle: LoopbackHandle, *names: str) -> None:
    await eventually(lambda: set(names) <= handle.server.subscriptions(), what=f"{names}")


# ------------------------------------------------------------------ in process


async def test_quotes_and_marks_reach_a_ccxt_client(tmp_path: Path) -> None:
    async with serving(config(tmp_path)) as (handle, client):
        perp = asyncio.create_task(client.watch_bids_asks([PERP]))
        spot = asyncio.create_task(client.watch_bids_asks([SPOT]))
        marks = asyncio.create_task(client.watch_mark_prices([PERP]))
        await live_subscriptions(handle, "btcusdt@bookticker", "btcusdt@markprice@1s")
        await eventually(lambda: handle.server.connections >= 3)
        assert await handle.driver.step()
        [step] = first_steps(handle, 1)
        perp_close, spot_close = bar(step, PERP).close, bar(step, SPOT).close
        book = (await asyncio.wait_for(perp, 5))[PERP]
        assert (book["bid"], book["ask"]) == (float(perp_close), float(perp_close + Decimal("0.1")))
        book = (await asyncio.wait_for(spot, 5))[SPOT]
        assert (book["bid"], book["ask"]) == (
            float(spot_close),
            float(spot_close + Decimal("0.01")),
        )
        [data_mark] = [e for e in step if isinstance(e, MarkPriceUpdated) and e.symbol == PERP]
        mark = (await asyncio.wait_for(marks, 5))[PERP]
        assert mark["markPrice"] == float(data_mark.mark)
        assert Decimal(mark["info"]["r"]) == data_mark.funding_rate
        # next funding is 8 data hours away: 8 steps (bars of an hour) of 3600 s in wall time;
        # T is mapped when the step is taken, E stamped when the message is sent (ms later on a
        # loaded machine: one run under load was 6 ms off)
        assert mark["info"]["T"] - mark["info"]["E"] == pytest.approx(8 * 3600 * 1000, abs=1000)
        rate = await client.fetch_funding_rate(PERP)
        assert rate["fundingRate"] == float(data_mark.funding_rate)


async def test_funding_settles_between_steps_over_the_user_streams(tmp_path: Path) -> None:
    async with serving(config(tmp_path)) as (handle, client):
        assert await handle.driver.step()  # 00:00: prices; its settlements are due before 01:00
        await client.create_order(PERP, "market", "buy", 0.01)
        await client.watch_positions([PERP])  # the REST snapshot
        positions = asyncio.create_task(client.watch_positions([PERP]))
        balance = asyncio.create_task(client.watch_balance())
        await live_subscriptions(handle, "user:futures", "user:spot")
        before = handle.core.exchange.balance("USDT")
        assert await handle.driver.step()
        [due] = [s for s in handle.bundle.settlements if s.symbol == PERP][:1]
        paid = handle.core.exchange.balance("USDT") - before
        assert paid != 0
        mark = handle.core.funding_rates[0].mark
        assert paid == -Decimal("0.01") * mark * due.rate
        funded = await asyncio.wait_for(positions, 5)
        assert funded[-1]["contracts"] == 0.01
        usdt = (await asyncio.wait_for(balance, 5))["USDT"]
        assert usdt["total"] == pytest.approx(float(before + paid))
        history = await client.fetch_funding_history(PERP)
        assert [h["amount"] for h in history] == [pytest.approx(float(paid))]


async def test_pause_stops_the_quotes_and_resume_restarts_them(tmp_path: Path) -> None:
    async with serving(config(tmp_path), step_s=0.05, autostart=True) as (handle, client):
        url = handle.rest_url
        await asyncio.wait_for(client.watch_bids_asks([PERP]), 5)  # quotes flow
        paused = await control(url, "POST", "/_loopback/market/pause")
        assert paused["paused"] is True
        last_quote = handle.core.quotes[PERP]
        # what was sent before the pause still reaches the client; then it goes quiet
        quotes = asyncio.create_task(client.watch_bids_asks([PERP]))
        for _ in range(50):
            done, _ = await asyncio.wait({quotes}, timeout=0.3)  # six steps' time
            if not done:
                break
            quotes = asyncio.create_task(client.watch_bids_asks([PERP]))
        assert not quotes.done(), "quotes kept coming while paused"
        assert handle.core.quotes[PERP] is last_quote
        state = await control(url, "GET", "/_loopback/market")
        assert state["steps"] == paused["steps"]
        assert state["paused"] is True
        resumed = await control(url, "POST", "/_loopback/market/resume")
        assert resumed["paused"] is False
        assert PERP in await asyncio.wait_for(quotes, 5)
        await eventually(lambda: handle.driver.steps > paused["steps"])


async def test_the_step_route_sends_exactly_one_step(tmp_path: Path) -> None:
    async with serving(config(tmp_path), autostart=True) as (handle, _):
        assert handle.driver.steps == 1  # the first step is sent before the handle is returned
        url = handle.rest_url
        answer = await control(url, "POST", "/_loopback/market/step")
        assert answer["sent"] is True
        assert answer["steps"] == 2
        state = await control(url, "GET", "/_loopback/market")
        assert state["steps"] == 2
        assert state["data_ts_ns"] == parse_time("2022-05-01T01:00")
        assert state["data_time"].startswith("2022-05-01T01:00")
        assert state["finished"] is False
        assert state["paused"] is False


async def test_a_restart_on_its_state_goes_on_after_the_last_step(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    state = tmp_path / "exchange.sqlite"
    async with serving(cfg, state_path=state) as (handle, client):
        for _ in range(3):
            assert await handle.driver.step()
        order = await client.create_order(PERP, "market", "buy", 0.01)
        assert handle.driver.data_ts_ns == parse_time("2022-05-01T02:00")
    assert position_path(state).exists()
    async with serving(cfg, state_path=state) as (handle, client):
        resumed = handle.driver.resumed_from
        assert resumed is not None
        assert (resumed.data_ts_ns, resumed.steps) == (parse_time("2022-05-01T02:00"), 3)
        [held] = [p for p in await client.fetch_positions([PERP]) if p["contracts"]]
        assert held["contracts"] == 0.01
        [trade] = await client.fetch_my_trades(PERP)
        assert trade["order"] == order["id"]
        assert await handle.driver.step()
        assert handle.driver.data_ts_ns == parse_time("2022-05-01T03:00")
        assert handle.driver.steps == 4


async def test_a_position_file_without_its_state_is_stale(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    state = tmp_path / "exchange.sqlite"
    async with serving(cfg, state_path=state) as (handle, _):
        assert await handle.driver.step()
    state.unlink()
    async with serving(cfg, state_path=state) as (handle, _):
        assert handle.driver.resumed_from is None
        assert await handle.driver.step()
        assert handle.driver.data_ts_ns == parse_time(START)


async def test_a_seeded_synthetic_market(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    closes = []
    for _ in range(2):
        async with serving(cfg, synthetic_seed=7) as (handle, client):
            assert await handle.driver.step()
            assert handle.driver.data_ts_ns is not None
            assert ns_to_iso(handle.driver.data_ts_ns).startswith("2022-05-01")
            quote = handle.core.quotes[PERP]
            closes.append((quote.bid, quote.ask))
            book = (await client.fetch_bids_asks([PERP]))[PERP]
            assert (book["bid"], book["ask"]) == (float(quote.bid), float(quote.ask))
    assert closes[0] == closes[1]


async def test_the_config_names_the_keys_it_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse_config('[strategy]\nname = "threshold"\n[venue]\napi_key_env = "LB_KEY"\n')
    monkeypatch.delenv("LB_KEY", raising=False)
    monkeypatch.delenv("BALLAST_API_SECRET", raising=False)
    key, secret, made_up = key_pair(cfg)
    assert made_up
    assert len(key) >= 16
    assert len(secret) >= 32
    monkeypatch.setenv("LB_KEY", "the-key")
    monkeypatch.setenv("BALLAST_API_SECRET", "the-secret")
    assert key_pair(cfg) == ("the-key", "the-secret", False)
    monkeypatch.delenv("BALLAST_API_SECRET")
    with pytest.raises(ConfigError, match="BALLAST_API_SECRET"):
        key_pair(cfg)


# ------------------------------------------------------------------ ballast venue serve


def client_config(rest: str, ws: str) -> dict[str, Any]:
    """The VENUE-NOTES block for a server known only by its URLs."""
    api: dict[str, Any] = {
        name: rest + path
        for name, path in {
            "public": "/api/v3",
            "private": "/api/v3",
            "v1": "/api/v1",
            "fapiPublic": "/fapi/v1",
            "fapiPrivate": "/fapi/v1",
            "fapiPublicV2": "/fapi/v2",
            "fapiPrivateV2": "/fapi/v2",
            "fapiPublicV3": "/fapi/v3",
            "fapiPrivateV3": "/fapi/v3",
        }.items()
    }
    api["ws"] = {
        "spot": ws + "/stream/ws",
        "margin": ws + "/stream/ws",
        "linear": ws + "/fws/ws",
        "ws-api": {"spot": ws + "/ws-api/v3", "linear": ws + "/ws-fapi/v1"},
    }
    return {
        "apiKey": KEY,
        "secret": SECRET,
        "enableRateLimit": False,
        "urls": {"api": api},
        "options": {
            "fetchMarkets": {"types": ["spot", "linear"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
        },
    }


class Served:
    """A ``ballast venue serve`` subprocess and what it printed."""

    def __init__(self, process: asyncio.subprocess.Process, rest: str, ws: str) -> None:
        self.process = process
        self.rest = rest
        self.ws = ws
        self.lines: list[str] = []

    async def read_lines(self, n: int) -> list[str]:
        assert self.process.stdout is not None
        for _ in range(n):
            line = await asyncio.wait_for(self.process.stdout.readline(), 30)
            self.lines.append(line.decode().rstrip("\n"))
        return self.lines

    async def stop(self) -> tuple[int, str, str]:
        """SIGTERM; (exit code, the rest of stdout, stderr)."""
        self.process.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(self.process.communicate(), 30)
        return self.process.returncode or 0, out.decode(), err.decode()


@asynccontextmanager
async def venue_serve(*args: str, cwd: Path, keys: bool = True) -> AsyncIterator[Served]:
    env = {**ENV, "BALLAST_API_KEY": KEY, "BALLAST_API_SECRET": SECRET}
    if not keys:
        env = {k: v for k, v in env.items() if k not in ("BALLAST_API_KEY", "BALLAST_API_SECRET")}
    process = await asyncio.create_subprocess_exec(
        str(BALLAST),
        "venue",
        "serve",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        if not first.startswith("listening "):
            _, err = await process.communicate()
            raise AssertionError(f"no listening line: {first!r}; stderr: {err.decode()}")
        _, rest, ws = first.split()
        yield Served(process, rest, ws)
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()


async def test_venue_serve_takes_orders_from_a_ccxt_client_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    cfg = config_file(tmp_path)
    async with venue_serve("-c", str(cfg), "--step-s", "0.2", cwd=tmp_path) as served:
        assert served.rest.startswith("http://127.0.0.1:")
        assert served.ws == served.rest.replace("http://", "ws://")
        lines = await served.read_lines(4)
        assert lines[0] == f"serving: {SPOT} ETH/USDT {PERP} ETH/USDT:USDT"
        assert lines[1].startswith(f"market: {DATA} 2022-05-01T00:00 → 2022-05-01T11:00")
        assert lines[3].startswith("state: none")
        client = ccxt.pro.binance(client_config(served.rest, served.ws))
        try:
            await client.load_markets()
            assert set(client.symbols) == {SPOT, "ETH/USDT", PERP, "ETH/USDT:USDT"}
            await asyncio.wait_for(client.watch_bids_asks([PERP]), 10)  # priced
            order = await client.create_order(PERP, "market", "buy", 0.01)
            assert order["status"] == "closed"
            assert order["filled"] == 0.01
        finally:
            await client.close()
        code, out, err = await served.stop()
    assert code == 0, err
    assert out.rstrip().endswith("stopped")


async def test_venue_serve_without_keys_makes_up_a_pair_and_prints_it(tmp_path: Path) -> None:
    cfg = config_file(tmp_path)
    async with venue_serve("-c", str(cfg), cwd=tmp_path, keys=False) as served:
        lines = await served.read_lines(2)
        assert lines[0].startswith("export BALLAST_API_KEY=")
        assert lines[1].startswith("export BALLAST_API_SECRET=")
        code, _, err = await served.stop()
    assert code == 0, err


async def test_venue_serve_restarted_on_its_state_goes_on(tmp_path: Path) -> None:
    cfg = config_file(tmp_path)
    state = tmp_path / "exchange.sqlite"
    args = ("-c", str(cfg), "--step-s", "3600", "--state", str(state))
    async with venue_serve(*args, cwd=tmp_path) as served:
        lines = await served.read_lines(4)
        assert lines[3].startswith(f"state: {state} (new)")
        await eventually(lambda: position_path(state).exists(), within_s=10)
        for _ in range(3):
            await control(served.rest, "POST", "/_loopback/market/step")
        before = await control(served.rest, "GET", "/_loopback/market")
        assert before["steps"] == 4
        code, _, err = await served.stop()
        assert code == 0, err
    async with venue_serve(*args, cwd=tmp_path) as served:
        lines = await served.read_lines(4)
        assert lines[3] == (
            f"state: {state}, market resumed after 2022-05-01T03:00 (4 bar times sent before)"
        )
        await eventually(lambda: json.loads(position_path(state).read_text())["steps"] == 5)
        after = await control(served.rest, "GET", "/_loopback/market")
        assert after["data_time"].startswith("2022-05-01T04:00")
        code, _, err = await served.stop()
        assert code == 0, err


async def test_venue_serve_exits_when_done(tmp_path: Path) -> None:
    cfg = config_file(tmp_path, start="2022-05-01T00:00", end="2022-05-01T03:00")
    async with venue_serve(
        "-c", str(cfg), "--step-s", "0", "--exit-when-done", "--synthetic", "3", cwd=tmp_path
    ) as served:
        out, err = await asyncio.wait_for(served.process.communicate(), 60)
        assert served.process.returncode == 0, err.decode()
        assert "market: synthetic seed 3" in out.decode()


def test_venue_serve_refuses_a_bad_config_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[strategy]\nname = "threshold"\n[venue]\nquote = "usdt"\n')
    done = subprocess.run(
        [str(BALLAST), "venue", "serve", "-c", str(bad)],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "venue.quote" in done.stderr
    assert "listening" not in done.stdout


def test_help_says_made_up_keys_are_for_loopback_only() -> None:
    done = subprocess.run(
        [str(BALLAST), "venue", "serve", "--help"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "makes up a pair" in " ".join(done.stdout.split())
