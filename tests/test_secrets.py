"""No API key or secret in anything a run leaves behind, error paths included.

One live session as a user runs it (``ballast venue serve`` + ``ballast run -v``, debug logging
on), with a distinctive random key pair in the environment variables the config names, driven
through the paths where a secret could slip out:

- the exchange says the key can withdraw: the start-up warning;
- ``[security] refuse_withdrawal_keys``: the refusal (exit 1);
- a wrong secret: the exchange refuses the signature (-1022), the engine cannot connect;
- a bad config (an unknown venue kind): exit 2 naming the key;
- trading, then the key's trade permission revoked under the running engine: orders rejected;
- the exchange's WebSockets dropped: a venue error, a reconnect and a REST catch-up;
- ``/metrics``, ``/healthz``, ``/readyz`` read;
- SIGABRT: the crash report (the stacks of the threads);
- ``ballast journal export`` of the journal.

And a key pasted in the config where the name of its variable belongs is refused (exit 2) without
being echoed.

Then every file the run left (logs, the journal's raw bytes with its ``-wal``/``-shm``, the
export), every answer read, and every output (stdout, stderr) is scanned for the key, the secret
and the wrong secret, as text and in their obvious encodings (``tests/support/secrets_scan.py``).
Nothing is found; ``record("secrets", secrets_found=n)``. Each path is checked to have happened,
so the scan cannot pass on a run that never reached it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import pytest

from ballast.engine.kernel.config import looks_like_a_credential
from ballast.engine.kernel.events import OrderRejected, VenueConnectionChanged
from tests.support.live_exchange import (
    BALLAST,
    ROOT,
    Engine,
    Exchange,
    count_in,
    live_config,
    read_journal,
)
from tests.support.paper_config import Overrides
from tests.support.reliability import record
from tests.support.secrets_scan import distinctive_pair, files_under, forms, scan, spawn
from tests.support.waiting import eventually

pytestmark = pytest.mark.reliability

KEY_VAR = "BALLAST_SCAN_API_KEY"
SECRET_VAR = "BALLAST_SCAN_API_SECRET"
TRADING: Overrides = {
    "venue": {"api_key_env": KEY_VAR, "api_secret_env": SECRET_VAR},
    "paper": {"start": "2022-06-01", "end": "2022-08-01"},  # BTC falls from 31k to 19k
    "bands": {"abs_pp": 0.5},
    "execution": {"cooldown_s": 0.5, "check_interval_s": 0.5},
    "risk": {"stale_after_s": 2},
    "metrics": {"enabled": True},
}
# test_read_only binds the default metrics port 9464: every run here takes a free one
FREE_PORT = ("--metrics-address=127.0.0.1:0",)


def test_the_scan_finds_each_form_of_a_secret() -> None:
    key, secret = distinctive_pair()
    assert key != secret
    assert len(key) == 64
    for form, needle in forms(secret).items():
        blob = b"some log line " + needle + b" more"
        assert scan({"log": blob}, {"secret": secret, "key": key}), form
    assert scan({"log": b"nothing here"}, {"secret": secret}) == []


async def test_no_key_or_secret_in_logs_journal_metrics_or_errors(tmp_path: Path) -> None:
    key, secret = distinctive_pair()
    _, wrong_secret = distinctive_pair()
    env = {**os.environ, "PYTHONPATH": str(ROOT), KEY_VAR: key, SECRET_VAR: secret}
    outputs: dict[str, bytes] = {}
    served = live_config(tmp_path, name="exchange.toml", sections=TRADING)
    exchange_args = ["venue", "serve", "-c", str(served), "--port=0", "--step-s=0.05"]
    exchange_args += ["--key-restriction=withdraw"]
    async with spawn(exchange_args, tmp_path / "exchange.log", tmp_path, env) as process:
        exchange = Exchange(process.proc, process.log)
        line = await exchange.line("listening ", within_s=60)
        exchange.rest_url, exchange.ws_url = line.removeprefix("listening ").split()
        urls = {"rest_url": exchange.rest_url, "ws_url": exchange.ws_url}

        # a key that can withdraw, refused by config
        refusing = live_config(
            tmp_path,
            name="refusing.toml",
            **urls,
            sections={
                **TRADING,
                "security": {"refuse_withdrawal_keys": True},
                "journal": {"path": str(tmp_path / "refused.db")},
            },
        )
        run = ["-v", "run", "-c", str(refusing), *FREE_PORT]
        async with spawn(run, tmp_path / "refused.log", tmp_path, env) as refused:
            assert await refused.stop(signal.SIGCONT, within_s=60) == 1
        assert "refusing to start" in refused.stderr()
        assert (await exchange.state()).orders == []
        outputs["refused stdout"] = "\n".join(refused.lines).encode()

        # a wrong secret: the exchange refuses the signature
        wrong = live_config(
            tmp_path,
            name="wrong.toml",
            **urls,
            sections={**TRADING, "journal": {"path": str(tmp_path / "wrong.db")}},
        )
        wrong_env = {**env, SECRET_VAR: wrong_secret}
        run = ["-v", "run", "-c", str(wrong), *FREE_PORT]
        async with spawn(run, tmp_path / "wrong.log", tmp_path, wrong_env) as unsigned:
            assert await unsigned.stop(signal.SIGCONT, within_s=60) != 0
        assert "-1022" in unsigned.stderr(), unsigned.stderr()
        outputs["wrong secret stdout"] = "\n".join(unsigned.lines).encode()

        # a bad config
        bad = tmp_path / "bad.toml"
        bad.write_text(wrong.read_text().replace('kind = "binance"', 'kind = "binanse"'))
        run = ["-v", "run", "-c", str(bad), *FREE_PORT]
        async with spawn(run, tmp_path / "bad.log", tmp_path, env) as misconfigured:
            assert await misconfigured.stop(signal.SIGCONT, within_s=60) == 2
        assert "venue.kind" in misconfigured.stderr(), misconfigured.stderr()
        outputs["bad config stdout"] = "\n".join(misconfigured.lines).encode()

        # the session: trades, loses its trade permission, loses its streams, crashes
        config = live_config(tmp_path, **urls, sections=TRADING)
        journal_path = tmp_path / "journal.db"
        run = ["-v", "run", "-c", str(config), *FREE_PORT]
        async with spawn(run, tmp_path / "engine.log", tmp_path, env) as process:
            engine = Engine(process.proc, process.log)
            await engine.served()
            await eventually(
                lambda: count_in(journal_path, "OrderFilled") >= 4,
                within_s=60,
                what="some fills",
            )
            await exchange.request("POST", "/_loopback/keys", restriction="read")
            await eventually(
                lambda: count_in(journal_path, "OrderRejected") >= 1,
                within_s=60,
                what="an order rejected",
            )
            await exchange.drop()
            await eventually(
                lambda: count_in(journal_path, "VenueConnectionChanged") >= 4,
                within_s=30,
                what="the streams dropped and back",
            )
            await asyncio.sleep(0.5)
            for path in ("/metrics", "/healthz", "/readyz"):
                outputs[f"GET {path}"] = (await engine.get(path)).body
            await engine.stop(signal.SIGABRT, within_s=30)
        assert "Fatal Python error" in engine.stderr(), engine.stderr()[-2000:]
        outputs["engine stdout"] = "\n".join(engine.lines).encode()
        outputs["exchange stdout"] = "\n".join(exchange.lines).encode()
        assert any("can WITHDRAW" in line for line in engine.lines), engine.lines
        assert "WARNING ballast.engine.app.key_permissions" in engine.stderr()
        assert b"ballast_api_key_withdrawals_enabled 1.0" in outputs["GET /metrics"]

    journal = await read_journal(journal_path)
    assert journal.of(OrderRejected), "no order was rejected"
    assert "disconnected" in {c.state for c in journal.of(VenueConnectionChanged)}
    run = ["journal", "export", str(journal_path), "-o", str(tmp_path / "export.jsonl")]
    async with spawn(run, tmp_path / "export.log", tmp_path, env) as export:
        assert await export.stop(signal.SIGCONT, within_s=60) == 0, export.stderr()
    assert (tmp_path / "export.jsonl").stat().st_size > 0

    blobs = {**outputs, **files_under(tmp_path)}
    hits = scan(blobs, {"key": key, "secret": secret, "wrong secret": wrong_secret})
    record("secrets", secrets_found=len(hits))
    assert hits == [], hits


@pytest.mark.parametrize("where", ["api_key_env", "api_secret_env"])
def test_a_key_pasted_where_its_variable_name_belongs_is_refused_without_echoing_it(
    tmp_path: Path, where: str
) -> None:
    key, _ = distinctive_pair()
    config = tmp_path / "pasted.toml"
    config.write_text(f'[venue]\nkind = "binance"\n{where} = "{key}"\n')
    done = subprocess.run(
        [str(BALLAST), "config", "check", str(config)],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert done.returncode == 2
    assert f"venue.{where}" in done.stderr.decode()
    assert scan({"stdout": done.stdout, "stderr": done.stderr}, {"key": key}) == []
    assert not looks_like_a_credential("BALLAST_API_SECRET")
    assert not looks_like_a_credential("binanceapikeyforthemainaccount")
