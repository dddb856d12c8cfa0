"""The installable package (issue 10): one import namespace ``ballast``, nothing else at the top of
site-packages, and a wheel that works outside the checkout.

The slow test builds a wheel of the checkout, installs it into a fresh venv with ``--no-deps`` and
makes the dependencies importable through a ``.pth`` line naming the dev venv's site-packages: a
plain path line, so the ``.pth`` files in that folder (the dev venv's editable ``ballast`` finder
among them) are not processed and the only ``ballast`` the new venv sees is the installed wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parents[1]
PYPROJECT: Final = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS: Final = PYPROJECT["tool"]["setuptools"]
DIST_INFO: Final = f"ballast-{PYPROJECT['project']['version']}.dist-info"
# The checkout minus what is not source (venvs, caches, build output, run output).
NOT_SOURCE: Final = shutil.ignore_patterns(
    ".git",
    ".venv",
    "var",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".typecheck",
)


def subpackages(package_dir: dict[str, str]) -> set[str]:
    """Every folder with an ``__init__.py`` under the mapped folders, by installed name."""
    found: set[str] = set()
    for package, folder in package_dir.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join([package, *parts]))
    return found


def test_pyproject_lists_every_package() -> None:
    """``[tool.setuptools] packages`` is explicit: a new subpackage must be added there or the
    wheel silently ships without it."""
    listed = set(SETUPTOOLS["packages"])
    assert len(listed) == len(SETUPTOOLS["packages"])  # no duplicates
    code = subpackages(SETUPTOOLS["package-dir"])
    # data-only folders (no Python) are listed too, with their files in package-data: a folder
    # shipped as package data of its parent makes setuptools warn that it is "absent from the
    # `packages` configuration"
    data_only = listed - code
    assert data_only <= set(SETUPTOOLS["package-data"]), data_only
    assert listed >= code
    assert {"ballast.engine.kernel", "ballast.adapters.sim"} <= listed  # not vacuous


def run(*args: str | Path, cwd: Path, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def build_wheel(tmp_path: Path) -> Path:
    """A wheel of a copy of the checkout (building in place would leave build/ and egg-info)."""
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    wheels = tmp_path / "wheels"
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check")
    built = run(
        *pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, source, cwd=tmp_path
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert "Warning" not in built.stdout + built.stderr, built.stdout + built.stderr
    (wheel,) = wheels.glob("ballast-*.whl")
    return wheel


def fresh_venv(tmp_path: Path, wheel: Path) -> Path:
    """A new venv with the wheel installed and the dev venv's dependencies on its path."""
    venv = tmp_path / "venv"
    made = run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", python)
    installed = run(*pip, "install", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    purelib = run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path
    )
    site = Path(purelib.stdout.strip())
    assert site.is_relative_to(venv)
    (site / "ballast_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


@pytest.mark.slow
def test_the_wheel_installs_one_namespace_that_works_outside_the_checkout(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        record = archive.read(f"{DIST_INFO}/RECORD").decode()
        top_level = (
            archive.read(f"{DIST_INFO}/top_level.txt").decode().split()
            if f"{DIST_INFO}/top_level.txt" in names
            else ["ballast"]
        )
    recorded = [line.split(",")[0] for line in record.splitlines() if line]
    assert {name.split("/")[0] for name in names} == {"ballast", DIST_INFO}
    assert {name.split("/")[0] for name in recorded} == {"ballast", DIST_INFO}
    assert top_level == ["ballast"]
    for shipped in (
        "ballast/engine/py.typed",
        "ballast/engine/app/cli/main.py",
        "ballast/examples/demo.toml",
        "ballast/data/market/PROVENANCE.md",
    ):
        assert shipped in names
    assert any(n.startswith("ballast/data/market/") and n.endswith(".csv") for n in names)
    assert not any("__pycache__" in n or n.startswith("ballast/tests") for n in names)

    venv = fresh_venv(tmp_path, wheel)
    python, ballast = venv / "bin" / "python", venv / "bin" / "ballast"
    empty = tmp_path / "empty"
    empty.mkdir()

    where = run(python, "-c", "import ballast.engine; print(ballast.engine.__file__)", cwd=empty)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv)  # the wheel, not the editable checkout
    old = run(python, "-c", "import engine", cwd=empty)
    assert old.returncode == 1
    assert "ModuleNotFoundError: No module named 'engine'" in old.stderr

    # the bundled slice at 5 ms per hour of data (tests/test_demo.py's pace), not the default
    # minute of wall time: what is checked here is that the wheel's demo runs and verifies
    demo = run(
        ballast, "demo", "--out", empty / "demo", "--step-s", "0.005", cwd=empty, timeout_s=300
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "(verify ok)" in demo.stdout
    assert (empty / "demo" / "report").is_dir()

    # [paper] data_dir = "data/market" (the default) is not a folder here: plan, backtest and run
    # read the bundled data instead.
    config = empty / "demo" / "config.toml"
    assert 'data_dir = "data/market"' in config.read_text()
    plan = run(ballast, "plan", "-c", config, "--at", "2024-01-01", cwd=empty)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert plan.stdout.startswith("Plan at 2024-01-01T00:00:00")
    backtest = run(
        ballast,
        "backtest",
        "-c",
        config,
        "--strategies=buy_and_hold",
        "--start=2024-01-01",
        "--end=2024-01-08",
        "--no-report",
        "--journal",
        empty / "week.db",
        cwd=empty,
    )
    assert backtest.returncode == 0, backtest.stdout + backtest.stderr
    assert "buy_and_hold" in backtest.stdout
    assert (empty / "week.db").is_file()
    paper = run(
        ballast,
        "run",
        "-c",
        config,
        "--journal",
        empty / "paper.db",
        "--step-s=0",
        "--max-runtime-s=2",
        "--metrics-address=127.0.0.1:0",
        cwd=empty,
    )
    assert paper.returncode == 0, paper.stdout + paper.stderr
    assert (empty / "paper.db").is_file()
    assert not (empty / "data").exists()  # read from the package, not looked for or made here
