"""An external strategy package, installed for real, is discovered through its entry points and run
behind the guard; the one that raises halts only itself.

The package (tests/support/plugin_pkg) is installed with pip into a temporary directory, and a
fresh interpreter with that directory on its path loads and runs the strategies, so this test
process's import and metadata caches stay untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "tests" / "support" / "plugin_pkg"


def install_plugin_package(tmp_path: Path) -> Path:
    source = tmp_path / "pkg"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path / "site"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += ["--no-deps", "--no-build-isolation", "--no-index", "--target", str(site)]
    subprocess.run([*command, str(source)], check=True, capture_output=True, timeout=120)
    return site


def run_driver(site: Path, *names: str) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO)]))
    done = subprocess.run(
        [sys.executable, str(PACKAGE / "drive.py"), *names],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=site,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def calls_of(result: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [call for call in result["calls"] if call["name"] == name]


def test_installed_plugin_is_discovered_and_a_raising_one_halts_only_itself(tmp_path: Path) -> None:
    site = install_plugin_package(tmp_path)

    result = run_driver(site, "demo_steady", "demo_exploding", "threshold")

    assert {"demo_steady", "demo_exploding", "threshold"} <= set(result["known"])
    assert [call["weights"] for call in calls_of(result, "demo_steady")] == [{"BTC": "0.5"}] * 3
    exploding = calls_of(result, "demo_exploding")
    assert [call["weights"] for call in exploding] == [None, None, None]
    assert exploding[0]["failure_event"][0] == "demo_exploding"
    assert "RuntimeError: demo plug-in blew up at 1" in exploding[0]["failure_event"][1]
    assert [call["failure_event"] for call in exploding[1:]] == [None, None]  # published once
    kind, message = result["errors"]["demo_exploding"]
    assert kind == "StrategyError"
    assert "'demo_exploding'" in message
    assert "at 2" not in message  # halted: never called again
    assert result["errors"]["demo_steady"] is None
    assert [call["weights"] for call in calls_of(result, "threshold")] == [{}] * 3
