"""The live path as a user runs it, for the end-to-end, kill, disconnect and stale tests.

Two real subprocesses on loopback:

- the exchange: ``ballast venue serve -c CONFIG --port 0 --step-s S [--state FILE]`` (the
  Binance-compatible loopback exchange, its market driver replaying the bundled data), started by
  :func:`exchange_serving`; :class:`Exchange` reads its ``GET /_loopback/state`` (parsed into an
  :class:`ExchangeState`) and drives its control routes (``drop``, ``market/pause``, ``resume``,
  ``step``);
- the engine: ``ballast run -c CONFIG`` with ``venue.kind = "binance"`` pointed at that exchange
  (``rest_url``/``ws_url``; the keys in the environment variables the config names), started by
  :func:`engine_running`.

And what the acceptance tests check, as functions over the engine's journal (:class:`JournalView`)
and the exchange's state: :func:`duplicate_orders`, :func:`lost_fills`, :func:`book_differences`.
Each returns a list of problems (empty: all good), so a test can both wait for a condition and
assert it with a readable message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ballast.engine.kernel.commands import SubmitOrder
from ballast.engine.kernel.events import (
    BalanceUpdated,
    Message,
    OrderFilled,
    PositionUpdated,
    ReconcileMismatch,
    SessionStarted,
    VenueConnectionChanged,
)
from ballast.engine.kernel.journal import JournalReader
from tests.support.http_get import HttpResponse, http_request
from tests.support.paper_config import DATA, Overrides, Value, paper_config

ROOT = Path(__file__).resolve().parents[2]
BALLAST = Path(sys.executable).parent / "ballast"
KEY_ENV = "BALLAST_CAMPAIGN_KEY"
SECRET_ENV = "BALLAST_CAMPAIGN_SECRET"
API_KEY = "campaign-loopback-key"
API_SECRET = "campaign-loopback-secret-0123456789"
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    KEY_ENV: API_KEY,
    SECRET_ENV: API_SECRET,
}
"""Both processes see the same key pair: the exchange accepts it, the engine signs with it."""

_ZERO = Decimal(0)
ENTRY_PRICE_TOLERANCE = Decimal("1e-12")
"""Entry prices are averages: the exchange's and the engine's may round the quotient at a
different digit (28 significant digits either way); quantities and balances are compared
exactly."""


# ------------------------------------------------------------------------------ configuration


def live_config(
    tmp_path: Path,
    *,
    name: str = "live.toml",
    rest_url: str | None = None,
    ws_url: str | None = None,
    sections: Overrides | None = None,
) -> Path:
    """deploy/paper.toml made a live config: ``venue.kind = "binance"`` at ``rest_url``/``ws_url``
    (the exchange's; None for the exchange's own config), keys in :data:`KEY_ENV`/
    :data:`SECRET_ENV`, the journal in tmp_path, this checkout's data, metrics off unless asked;
    ``sections`` override more ({section: {key: value}})."""
    venue: dict[str, Value] = {
        "kind": "binance",
        "api_key_env": KEY_ENV,
        "api_secret_env": SECRET_ENV,
    }
    if rest_url is not None:
        venue["rest_url"] = rest_url
    if ws_url is not None:
        venue["ws_url"] = ws_url
    overrides: dict[str, dict[str, Value]] = {
        "venue": venue,
        "journal": {"path": str(tmp_path / "journal.db")},
        "paper": {"data_dir": str(DATA)},
        "metrics": {"enabled": False},
    }
    for section, keys in (sections or {}).items():
        overrides.setdefault(section, {}).update(keys)
    merged: Overrides = overrides
    return paper_config(tmp_path / name, merged)


# ------------------------------------------------------------------------------ processes


@dataclass
class Process:
    """A running ``ballast`` subprocess: its stdout lines read so far and its stderr log."""

    proc: asyncio.subprocess.Process
    log: Path
    lines: list[str] = field(default_factory=list)

    async def line(self, prefix: str, *, within_s: float = 30) -> str:
        """The next stdout line starting with ``prefix`` (the lines before it are kept too)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + within_s
        while True:
            left = deadline - time.monotonic()
            try:
                raw = await asyncio.wait_for(self.proc.stdout.readline(), max(left, 0.01))
            except TimeoutError:
                raise AssertionError(
                    f"no line {prefix!r} within {within_s} s: {self.lines}\n{self.stderr()}"
                ) from None
            assert raw, f"stdout closed before {prefix!r}: {self.lines}\n{self.stderr()}"
            self.lines.append(raw.decode().rstrip("\n"))
            if self.lines[-1].startswith(prefix):
                return self.lines[-1]

    def stderr(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def stop(self, sig: signal.Signals = signal.SIGTERM, *, within_s: float = 20) -> int:
        """Send ``sig`` and wait for the exit; the rest of stdout is read into :attr:`lines`."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
        assert self.proc.stdout is not None
        rest = await asyncio.wait_for(self.proc.stdout.read(), within_s)
        self.lines.extend(rest.decode(errors="replace").splitlines())
        return await asyncio.wait_for(self.proc.wait(), within_s)

    def kill(self) -> None:
        """SIGKILL now (no wait)."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)


@contextlib.asynccontextmanager
async def spawn_process(
    args: Sequence[str],
    log: Path,
    cwd: Path,
    *,
    program: Sequence[str] = (str(BALLAST),),
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Process]:
    """``PROGRAM ARGS`` (``ENV`` unless ``env``), stdout piped, stderr to ``log``; killed on exit
    if still running."""
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            *program,
            *args,
            cwd=cwd,
            env=ENV if env is None else dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    running = Process(proc, log)
    try:
        yield running
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


@dataclass
class Exchange(Process):
    """A running ``ballast venue serve``."""

    rest_url: str = ""
    ws_url: str = ""

    @property
    def port(self) -> int:
        return int(self.rest_url.rsplit(":", 1)[1])

    async def request(
        self, method: str, path: str, *, expect: int = 200, **query: str
    ) -> HttpResponse:
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        response = await http_request("127.0.0.1", self.port, path, method=method)
        assert response.status == expect, f"{method} {path}: {response.status} {response.text}"
        return response

    async def state(self) -> ExchangeState:
        return ExchangeState.from_json((await self.request("GET", "/_loopback/state")).json())

    async def drop(self, which: str = "all") -> None:
        """Close the exchange's WebSockets abruptly (``all``, ``public`` or ``user``)."""
        await self.request("POST", "/_loopback/drop", which=which)

    async def pause(self) -> None:
        """Stop the market: no more quotes, marks or bars until :meth:`resume`."""
        await self.request("POST", "/_loopback/market/pause")

    async def resume(self) -> None:
        await self.request("POST", "/_loopback/market/resume")

    async def step(self) -> None:
        """Send the market's next data step now."""
        await self.request("POST", "/_loopback/market/step")

    async def market(self) -> dict[str, Any]:
        """``GET /_loopback/market``: data time, steps sent, paused, finished."""
        answer: dict[str, Any] = (await self.request("GET", "/_loopback/market")).json()
        return answer


@contextlib.asynccontextmanager
async def exchange_serving(
    tmp_path: Path,
    config_file: Path,
    *,
    step_s: float,
    state: Path | None = None,
    args: Sequence[str] = (),
    weight_limit: int | None = None,
) -> AsyncIterator[Exchange]:
    """``ballast venue serve`` on a free port of 127.0.0.1, up and listening; killed on exit if
    still running (stop it with :meth:`Process.stop` to check its exit). ``weight_limit``: the
    futures request weight allowed per minute (``venue serve --weight-limit``; spot 2.5 times
    that; default: Binance's 2400 and 6000)."""
    command = ["-c", str(config_file), "--port", "0", f"--step-s={step_s}"]
    if state is not None:
        command.append(f"--state={state}")
    if weight_limit is not None:
        command.append(f"--weight-limit={weight_limit}")
    program: tuple[str, ...] = (str(BALLAST), "venue", "serve")
    log = tmp_path / "exchange.log"
    async with spawn_process([*command, *args], log, tmp_path, program=program) as process:
        exchange = Exchange(process.proc, process.log)
        line = await exchange.line("listening ", within_s=60)
        assert exchange.lines == [line], exchange.lines  # the first line, as documented
        rest, ws = line.removeprefix("listening ").split()
        assert rest.startswith("http://127.0.0.1:"), line
        assert ws.startswith("ws://127.0.0.1:"), line
        exchange.rest_url, exchange.ws_url = rest, ws
        yield exchange


@dataclass
class Engine(Process):
    """A running ``ballast run``."""

    metrics_port: int = 0

    async def get(self, path: str) -> HttpResponse:
        assert self.metrics_port, "the engine serves no metrics (pass --metrics-address)"
        return await http_request("127.0.0.1", self.metrics_port, path)

    async def served(self) -> None:
        """Wait for ``listening 127.0.0.1:PORT`` (metrics on) and note the port."""
        line = await self.line("listening ", within_s=60)
        self.metrics_port = int(line.rpartition(":")[2])


@contextlib.asynccontextmanager
async def engine_running(
    tmp_path: Path, config_file: Path, *args: str, log: str = "engine.log"
) -> AsyncIterator[Engine]:
    """``ballast run -c CONFIG ARGS`` in tmp_path; killed on exit if still running."""
    async with spawn_process(
        ["run", "-c", str(config_file), *args], tmp_path / log, tmp_path
    ) as process:
        yield Engine(process.proc, process.log)


# ------------------------------------------------------------------------------ exchange state


@dataclass(frozen=True)
class ExchangeOrder:
    client_order_id: str
    order_id: str
    symbol: str
    status: str


@dataclass(frozen=True)
class ExchangeTrade:
    trade_id: str
    order_id: str
    client_order_id: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal


@dataclass(frozen=True)
class ExchangeState:
    """What ``GET /_loopback/state`` says: per-asset balances (free, locked), perp positions
    (qty, entry price; flat ones left out), every order received, every trade."""

    balances: dict[str, tuple[Decimal, Decimal]]
    positions: dict[str, tuple[Decimal, Decimal]]
    orders: list[ExchangeOrder]
    trades: list[ExchangeTrade]
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExchangeState:
        balances: dict[str, tuple[Decimal, Decimal]] = {}
        for asset, row in _rows(data.get("balances", {}), "asset"):
            free, locked = Decimal(str(row.get("free", 0))), Decimal(str(row.get("locked", 0)))
            if free or locked:
                balances[asset] = (free, locked)
        positions: dict[str, tuple[Decimal, Decimal]] = {}
        for symbol, row in _rows(data.get("positions", {}), "symbol"):
            qty = Decimal(str(_first(row, "qty", "positionAmt", "amount")))
            if qty:
                entry = Decimal(str(_first(row, "entry_price", "entryPrice", default="0")))
                positions[symbol] = (qty, entry)
        orders = [
            ExchangeOrder(
                client_order_id=str(_first(row, "clientOrderId", "client_order_id")),
                order_id=str(_first(row, "orderId", "order_id", "id", default="")),
                symbol=str(row.get("symbol", "")),
                status=str(row.get("status", "")),
            )
            for row in data.get("orders", [])
        ]
        trades = [
            ExchangeTrade(
                trade_id=str(_first(row, "id", "tradeId", "trade_id")),
                order_id=str(_first(row, "orderId", "order_id", default="")),
                client_order_id=str(_first(row, "clientOrderId", "client_order_id", default="")),
                symbol=str(row.get("symbol", "")),
                side=str(row.get("side", "")).lower(),
                qty=Decimal(str(_first(row, "qty", "amount", "quantity", default="0"))),
                price=Decimal(str(row.get("price", "0"))),
            )
            for row in data.get("trades", [])
        ]
        return cls(balances, positions, orders, trades, data)

    def open_orders(self) -> list[ExchangeOrder]:
        return [o for o in self.orders if o.status.upper() in ("NEW", "PARTIALLY_FILLED", "OPEN")]

    def ours(self, prefix: str = "bl-") -> list[ExchangeOrder]:
        return [o for o in self.orders if o.client_order_id.startswith(prefix)]


def _rows(value: Any, key: str) -> Iterable[tuple[str, dict[str, Any]]]:
    """(name, row) of a ``{name: row}`` mapping or a ``[{key: name, ...}]`` list."""
    if isinstance(value, dict):
        for name, row in value.items():
            yield str(name), row if isinstance(row, dict) else {"qty": row, "free": row}
    else:
        for row in value:
            yield str(row[key]), row


def _first(row: Mapping[str, Any], *names: str, default: Any = None) -> Any:
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    if default is None:
        raise KeyError(f"none of {names} in {sorted(row)}")
    return default


# ------------------------------------------------------------------------------ the journal


@dataclass(frozen=True)
class JournalView:
    """The engine's journal as the checks need it (read while the engine may still write)."""

    messages: list[Message]
    gap_free: bool
    integrity: str
    count: int

    def of(self, kind: type[Any]) -> list[Any]:
        return [m for m in self.messages if isinstance(m, kind)]

    @property
    def fills(self) -> list[OrderFilled]:
        return self.of(OrderFilled)

    @property
    def submits(self) -> list[SubmitOrder]:
        return self.of(SubmitOrder)

    @property
    def sessions(self) -> list[SessionStarted]:
        return self.of(SessionStarted)

    def last_session(self) -> list[Message]:
        """The messages from the last SessionStarted on."""
        starts = [i for i, m in enumerate(self.messages) if isinstance(m, SessionStarted)]
        return self.messages[starts[-1] :] if starts else []

    def caught_up(self) -> bool:
        """The last session's venue reported ``caught_up``."""
        return any(
            isinstance(m, VenueConnectionChanged) and m.state == "caught_up"
            for m in self.last_session()
        )

    def balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        """Per asset, (free, locked) summed over the accounts, each account's last statement
        (BalanceUpdated) counting; zero balances left out."""
        last: dict[tuple[str, str], BalanceUpdated] = {}
        for update in self.of(BalanceUpdated):
            last[(update.account, update.asset)] = update
        out: dict[str, tuple[Decimal, Decimal]] = {}
        for (_, asset), update in sorted(last.items()):
            free, locked = out.get(asset, (_ZERO, _ZERO))
            out[asset] = (free + update.free, locked + update.locked)
        return {a: v for a, v in out.items() if v[0] or v[1]}

    def positions(self) -> dict[str, tuple[Decimal, Decimal]]:
        """Per perp, (qty, entry price) of its last PositionUpdated; flat ones left out."""
        last: dict[str, PositionUpdated] = {}
        for update in self.of(PositionUpdated):
            last[update.symbol] = update
        return {s: (p.qty, p.entry_price) for s, p in sorted(last.items()) if p.qty}


async def read_journal(path: Path) -> JournalView:
    async with JournalReader(path) as reader:
        stats = await reader.stats()
        integrity = await reader.integrity_check()
        messages = await reader.messages()
    return JournalView(messages, stats.gap_free, integrity, stats.count)


def count_in(path: Path, kind: str, *, since_seq: int = 0) -> int:
    """How many ``kind`` records the journal holds after ``since_seq`` (plain sqlite, read-only:
    cheap enough to poll while the engine writes)."""
    if not path.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM events WHERE type = ? AND seq > ?", (kind, since_seq)
            ).fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0])


def last_seq(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(row[0])


# ------------------------------------------------------------------------------ the checks


def duplicate_orders(journal: JournalView, state: ExchangeState) -> list[str]:
    """No client order id twice at the exchange; every order of ours there is one the journal
    sent (a SubmitOrder made durable before the send); one client order id per intent."""
    problems: list[str] = []
    ours = state.ours()
    twice = [coid for coid, n in Counter(o.client_order_id for o in ours).items() if n > 1]
    if twice:
        problems.append(f"client order ids received twice by the exchange: {twice}")
    sent = {s.client_order_id: s.intent_id for s in journal.submits}
    unknown = sorted({o.client_order_id for o in ours} - set(sent))
    if unknown:
        problems.append(f"orders at the exchange the journal never sent: {unknown}")
    per_intent = Counter(s.intent_id for s in journal.submits)
    again = sorted(i for i, n in per_intent.items() if n > 1)
    if again:
        problems.append(f"intents sent as more than one SubmitOrder: {again}")
    coids_per_intent = Counter(sent[o.client_order_id] for o in ours if o.client_order_id in sent)
    doubled = sorted(i for i, n in coids_per_intent.items() if n > 1)
    if doubled:
        problems.append(f"intents with more than one order at the exchange: {doubled}")
    return problems


def repeated_fills(journal: JournalView) -> list[str]:
    """Trade ids the journal booked more than once."""
    counts = Counter(f.trade_id for f in journal.fills)
    return [f"trade {t} booked {n} times" for t, n in sorted(counts.items()) if n > 1]


def lost_fills(journal: JournalView, state: ExchangeState) -> list[str]:
    """Every trade of ours at the exchange is an OrderFilled in the journal (same trade id,
    order, quantity and price), exactly once; the journal has no fill the exchange lacks."""
    problems = repeated_fills(journal)
    ours = {o.order_id: o.client_order_id for o in state.ours()}
    booked = {f.trade_id: f for f in journal.fills}
    exchange_ids: set[str] = set()
    for trade in state.trades:
        coid = trade.client_order_id or ours.get(trade.order_id, "")
        if not coid.startswith("bl-"):
            continue
        exchange_ids.add(trade.trade_id)
        fill = booked.get(trade.trade_id)
        if fill is None:
            problems.append(f"trade {trade.trade_id} of {coid} not in the journal")
        elif (fill.client_order_id, fill.qty, fill.price) != (coid, trade.qty, trade.price):
            problems.append(
                f"trade {trade.trade_id}: exchange {coid} {trade.qty}@{trade.price}, journal "
                f"{fill.client_order_id} {fill.qty}@{fill.price}"
            )
    extra = sorted(set(booked) - exchange_ids)
    if extra:
        problems.append(f"fills in the journal the exchange never made: {extra}")
    return problems


def book_differences(journal: JournalView, state: ExchangeState) -> list[str]:
    """The engine's balances and positions (its journal's last statements) against the
    exchange's, exactly (Decimal equality)."""
    problems: list[str] = []
    mine, theirs = journal.balances(), state.balances
    for asset in sorted(set(mine) | set(theirs)):
        if mine.get(asset) != theirs.get(asset):
            problems.append(
                f"balance {asset}: engine {mine.get(asset)}, exchange {theirs.get(asset)}"
            )
    mine_p, theirs_p = journal.positions(), state.positions
    for symbol in sorted(set(mine_p) | set(theirs_p)):
        qty, entry = mine_p.get(symbol, (_ZERO, _ZERO))
        their_qty, their_entry = theirs_p.get(symbol, (_ZERO, _ZERO))
        if qty != their_qty:
            problems.append(f"position {symbol}: engine {qty}, exchange {their_qty}")
        elif abs(entry - their_entry) > abs(their_entry) * ENTRY_PRICE_TOLERANCE:
            problems.append(
                f"position {symbol} entry price: engine {entry}, exchange {their_entry}"
            )
    return problems


def mismatches(journal: JournalView) -> list[str]:
    return [
        f"ReconcileMismatch {m.subject}: journal {m.journal_value}, venue {m.venue_value}"
        for m in journal.of(ReconcileMismatch)
    ]


def orders_before_caught_up(journal: JournalView) -> list[str]:
    """Orders a session sent before its venue reported ``caught_up`` (a restarted engine that
    trades before it knows what happened while it was down decides on a stale book)."""
    problems: list[str] = []
    session, caught = 0, True
    for seq, message in enumerate(journal.messages, start=1):
        if isinstance(message, SessionStarted):
            session, caught = seq, False
        elif isinstance(message, VenueConnectionChanged) and message.state == "caught_up":
            caught = True
        elif isinstance(message, SubmitOrder) and not caught:
            problems.append(
                f"{message.client_order_id} sent at seq {seq} before the venue of the session "
                f"started at seq {session} caught up"
            )
    return problems


def journal_problems(journal: JournalView) -> list[str]:
    problems = []
    if not journal.gap_free:
        problems.append(f"journal has a seq gap ({journal.count} records)")
    if journal.integrity != "ok":
        problems.append(f"journal integrity: {journal.integrity}")
    return problems


async def caught_up(
    journal_path: Path, since_seq: int, engine: Engine, *, within_s: float = 60
) -> None:
    """Wait until the venue of the run that started after ``since_seq`` reports ``caught_up``
    (VenueConnectionChanged journaled after that seq); fail if the engine exits meanwhile."""
    deadline = time.monotonic() + within_s
    while True:
        assert engine.proc.returncode is None, f"engine exited: {engine.lines}\n{engine.stderr()}"
        if last_seq(journal_path) > since_seq:
            async with JournalReader(journal_path) as reader:
                changes = await reader.messages(
                    start_seq=since_seq + 1, types=["VenueConnectionChanged"]
                )
            if any(
                isinstance(c, VenueConnectionChanged) and c.state == "caught_up" for c in changes
            ):
                return
        assert time.monotonic() < deadline, f"no caught_up within {within_s} s: {engine.stderr()}"
        await asyncio.sleep(0.05)


async def until_settled(
    journal_path: Path,
    exchange: Exchange,
    check: Callable[[JournalView, ExchangeState], list[str]],
    *,
    within_s: float,
    what: str,
) -> tuple[JournalView, ExchangeState]:
    """Poll (exchange state, then journal) until ``check`` finds no problem; fail with the last
    problems after ``within_s``. The state is read first: what it lists has happened before the
    journal is read."""
    deadline = time.monotonic() + within_s
    while True:
        state = await exchange.state()
        journal = await read_journal(journal_path)
        problems = check(journal, state)
        if not problems:
            return journal, state
        if time.monotonic() > deadline:
            dump(journal_path.with_name("exchange-state.json"), state.raw)
            shown = "\n  ".join(problems[:30])
            raise AssertionError(f"{what}: not settled within {within_s} s:\n  {shown}")
        await asyncio.sleep(0.1)


async def until_state(
    exchange: Exchange, condition: Callable[[ExchangeState], bool], *, within_s: float, what: str
) -> ExchangeState:
    """Poll the exchange's state until ``condition`` holds."""
    deadline = time.monotonic() + within_s
    while True:
        state = await exchange.state()
        if condition(state):
            return state
        assert time.monotonic() < deadline, f"{what}: not within {within_s} s: {state.raw}"
        await asyncio.sleep(0.05)


def dump(path: Path, data: Any) -> None:
    """Write ``data`` as JSON beside the test's files (for a failing run's post-mortem)."""
    path.write_text(json.dumps(data, indent=1, default=str))
