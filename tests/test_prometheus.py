"""The shipped monitoring files against a real Prometheus (Debian's package, installed by the
test set-up when missing: tests/support/prometheus.py; skipped only where that is impossible).

The engine under test is the real ``ballast run`` in paper mode on a copy of deploy/paper.toml
(session, trading pipeline, simulated venue, live clock), replaying the bundled Binance data at an
accelerated pace (one bar time every 0.05 s, data stale after 3 s, a 2 s rebalance cooldown and a
1 s check interval, the journal in tmp_path) and serving its metrics. Prometheus scrapes it every
second and evaluates the shipped alert rules (a copy whose ``for:`` durations are shortened to
1 s, nothing else changed). Then every PromQL expression of the Grafana dashboard and of the alert
rules is evaluated through the HTTP API (each must parse; each dashboard expression must return
data), the feed is stopped (SIGUSR1), and the stale-data alert must go pending or firing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ballast.engine.kernel.config import load_config
from tests.support.http_get import http_get
from tests.support.paper_config import DATA, paper_config
from tests.support.prometheus import (
    PrometheusServer,
    PrometheusTools,
    PrometheusUnavailable,
    ensure_prometheus,
    poll,
    stop_process,
)

# One pytest-xdist worker runs this module (--dist loadgroup): one Prometheus set-up.
pytestmark = pytest.mark.xdist_group("test_prometheus")
ROOT = Path(__file__).resolve().parents[1]
BALLAST = Path(sys.executable).parent / "ballast"
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "ballast.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_VARIABLES = {"$__rate_interval": "5s", "$__interval": "1s", "$__range": "1m"}
"""What Grafana substitutes before sending a query, for a 1 s scrape interval."""
STALE_ALERT = "BallastMarketDataStale"
REQUIRED_ALERTS = {
    "BallastKillSwitchEngaged",
    STALE_ALERT,
    "BallastLeverageAboveCap",
    "BallastLiquidationDistanceLow",
    "BallastDriftOutsideBand",
    "BallastJournalCommitSlow",
    "BallastHandlerErrors",
    "BallastEngineDown",
    "BallastVenueDown",
    "BallastVenueReconnecting",
    "BallastReconcileMismatch",
    "BallastJournalUnwritable",
}
UNCOUNTED: tuple[str, ...] = ()
"""Exported, but nothing increments them yet: an alert on one could never fire (the venue
reconnects are counted from the live venue's VenueConnectionChanged events since issue 11)."""


@pytest.fixture(scope="module")
def tools() -> PrometheusTools:
    try:
        return ensure_prometheus()
    except PrometheusUnavailable as exc:
        pytest.skip(f"no real Prometheus here, and it cannot be installed: {exc}")


# ----------------------------------------------------------------------------- the files


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries() -> dict[str, list[str]]:
    """Panel title -> its PromQL expressions, with Grafana's variables substituted."""
    out: dict[str, list[str]] = {}
    for panel in panels(dashboard()):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, f"{panel['title']}: unknown Grafana variable in {expr}"
            out.setdefault(panel["title"], []).append(expr)
    return out


def alert_names() -> list[str]:
    return re.findall(r"(?m)^\s*- alert:\s*(\S+)", ALERTS.read_text())


def test_dashboard_has_a_portfolio_row_and_a_health_row_on_the_provisioned_datasource() -> None:
    board = dashboard()
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == ["Portfolio", "Health"]
    uid = re.search(r"(?m)^\s*uid:\s*(\S+)", DATASOURCES.read_text())
    assert uid is not None
    for panel in panels(board):
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": uid[1]}, panel["title"]
            assert panel["targets"], panel["title"]
    titles = set(dashboard_queries())
    portfolio = {"NAV", "Weights vs targets and bands", "Leverage vs cap"}
    health = {"Market data age", "Event lag", "Journal commit latency", "Venue reconnects"}
    assert portfolio | health | {"Funding, fees and realised PnL", "Errors"} <= titles


def test_alert_rules_cover_every_condition_of_the_issue() -> None:
    names = alert_names()
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED_ALERTS


def test_no_alert_watches_a_counter_that_nothing_increments() -> None:
    expressions = re.findall(r"(?m)^\s*expr:\s*(.+)$", ALERTS.read_text())
    assert len(expressions) == len(alert_names())
    for metric in UNCOUNTED:
        assert not [e for e in expressions if metric in e], metric


def test_the_paper_config_binds_inside_the_container_and_journals_in_the_state_dir() -> None:
    config = load_config(DEPLOY / "paper.toml")
    assert config.metrics.address == "0.0.0.0:9464"
    assert config.journal.path.startswith("/var/lib/ballast/")
    assert "ReadWritePaths=/var/lib/ballast" in (DEPLOY / "ballast.service").read_text()


def test_promtool_and_amtool_accept_the_shipped_files(tools: PrometheusTools) -> None:
    checks = [
        [tools.promtool, "check", "config", str(DEPLOY / "prometheus.yml")],
        [tools.promtool, "check", "rules", str(ALERTS)],
        [tools.amtool, "check-config", str(DEPLOY / "alertmanager.yml")],
    ]
    for command in checks:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"


# ---------------------------------------------------------------------- the live engine


def shortened_rules(tmp_path: Path) -> Path:
    """The shipped rules with every ``for:`` set to 1s, so the test need not wait minutes."""
    text, count = re.subn(r"(?m)^(\s*)for:\s*\S+", r"\1for: 1s", ALERTS.read_text())
    assert count == len(alert_names())
    path = tmp_path / "alerts.yml"
    path.write_text(text)
    return path


def prometheus_config(tmp_path: Path, engine_port: int) -> Path:
    rules = shortened_rules(tmp_path)
    path = tmp_path / "prometheus.yml"
    path.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {rules}\n"
        "scrape_configs:\n  - job_name: ballast\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{engine_port}']\n"
    )
    return path


def engine_config(tmp_path: Path) -> Path:
    """deploy/paper.toml for a fast market: the journal in tmp_path, this checkout's data."""
    return paper_config(
        tmp_path / "paper.toml",
        {
            "journal": {"path": str(tmp_path / "journal.db")},
            "paper": {"data_dir": str(DATA)},
            "risk": {"stale_after_s": 3},
            "execution": {"cooldown_s": 2.0, "check_interval_s": 1.0},
        },
    )


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    with (tmp_path / "engine.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            str(BALLAST),
            "run",
            f"--config={engine_config(tmp_path)}",
            "--metrics-address=127.0.0.1:0",
            "--step-s=0.05",
            "--max-runtime-s=240",
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.startswith(b"listening "), (line, (tmp_path / "engine.log").read_text())
        yield proc, int(line.split(b":")[-1])
    finally:
        await stop_process(proc)


async def target_up(prom: PrometheusServer) -> bool | None:
    targets = (await prom.api("targets"))["activeTargets"]
    return any(t["health"] == "up" for t in targets) or None


async def empty_dashboard_queries(prom: PrometheusServer) -> list[str]:
    """Every dashboard expression is evaluated (a parse error raises); those with no data."""
    return [
        f"{title}: {expr}"
        for title, exprs in dashboard_queries().items()
        for expr in exprs
        if not await prom.query(expr)
    ]


async def every_dashboard_query_has_data(prom: PrometheusServer) -> None:
    missing: list[str] = []

    async def none_missing() -> bool | None:
        missing[:] = await empty_dashboard_queries(prom)
        return not missing or None

    try:
        await poll(none_missing, within_s=30, what="data for every dashboard query")
    except AssertionError:
        raise AssertionError("dashboard queries without data:\n" + "\n".join(missing)) from None


async def every_rule_query_evaluates(prom: PrometheusServer) -> None:
    groups = (await prom.api("rules"))["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert sorted(r["name"] for r in rules) == sorted(alert_names())
    for rule in rules:
        assert rule["health"] != "err", rule
        await prom.query(rule["query"])  # raises PromQLError if Prometheus refuses it


async def alert_state(prom: PrometheusServer, name: str) -> str | None:
    alerts = (await prom.api("alerts"))["alerts"]
    states = {a["state"] for a in alerts if a["labels"]["alertname"] == name}
    return "firing" if "firing" in states else "pending" if "pending" in states else None


async def test_dashboard_and_alert_expressions_run_in_a_real_prometheus(
    tools: PrometheusTools,
    engine: tuple[asyncio.subprocess.Process, int],
    tmp_path: Path,
) -> None:
    proc, port = engine
    async with PrometheusServer(tools, prometheus_config(tmp_path, port), tmp_path) as prom:
        await poll(lambda: target_up(prom), within_s=20, what="the engine scraped (target up)")
        await every_dashboard_query_has_data(prom)
        await every_rule_query_evaluates(prom)
        assert await alert_state(prom, "BallastEngineDown") is None
        assert await alert_state(prom, STALE_ALERT) is None
        assert (await http_get("127.0.0.1", port, "/readyz")).status == 200

        proc.send_signal(signal.SIGUSR1)  # stop the market data feed; the engine keeps serving
        state = await poll(
            lambda: alert_state(prom, STALE_ALERT), within_s=30, what=f"{STALE_ALERT} raised"
        )
        assert state in ("pending", "firing")
        readyz = await http_get("127.0.0.1", port, "/readyz")
        assert readyz.status == 503
        assert "data_stale:BTC/USDT" in readyz.json()["reasons"]
