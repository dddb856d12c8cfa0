"""``ballast venue serve --weight-limit N``: the loopback exchange advertises the request weight it
enforces (``exchangeInfo.rateLimits``, spot and USD-M), and the ccxt venue budgets by what it
advertises (a kill campaign's exchange with ten times Binance's limit does not throttle
restarts)."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp

from ballast.adapters.ccxt import BINANCE, CcxtVenue
from ballast.engine.kernel.clock import LiveClock
from tests.support.cli import BALLAST, ENV
from tests.support.paper_config import DATA, paper_config

KEY = "weight-limit-test-key"
SECRET = "weight-limit-test-secret"


async def _get(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return json.loads(await resp.text())


def _weight(info: Any) -> int:
    rows = [r for r in info["rateLimits"] if r["rateLimitType"] == "REQUEST_WEIGHT"]
    assert [(r["interval"], r["intervalNum"]) for r in rows] == [("MINUTE", 1)]
    return int(rows[0]["limit"])


async def test_venue_serve_advertises_and_the_venue_budgets_its_weight_limit(
    tmp_path: Path,
) -> None:
    settings = {"data_dir": str(DATA), "start": "2022-05-01T00:00", "end": "2022-05-01T12:00"}
    cfg = paper_config(tmp_path / "paper.toml", {"paper": settings})
    env = {**ENV, "BALLAST_API_KEY": KEY, "BALLAST_API_SECRET": SECRET}
    process = await asyncio.create_subprocess_exec(
        str(BALLAST),
        *("venue", "serve", "-c", str(cfg), "--step-s", "3600", "--weight-limit", "24000"),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert first.startswith("listening "), first
        _, rest, ws = first.split()
        lines = [(await process.stdout.readline()).decode().rstrip() for _ in range(5)]
        assert "request weight per minute: futures 24000, spot 60000" in lines
        assert _weight(await _get(rest + "/fapi/v1/exchangeInfo")) == 24_000
        assert _weight(await _get(rest + "/api/v3/exchangeInfo")) == 60_000

        venue = CcxtVenue(
            BINANCE,
            spot=["BTC/USDT"],
            perp=["BTC/USDT:USDT"],
            api_key=KEY,
            api_secret=SECRET,
            clock=LiveClock(),
            rest_url=rest,
            ws_url=ws,
        )
        async with venue:
            await venue.connect()
            assert venue.budgets["futures"].limit == 24_000
            assert venue.budgets["spot"].limit == 60_000
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, err.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()
