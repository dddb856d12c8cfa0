"""``make bench`` prints each figure beside the previous release's (issue 13): the release is the
newest ``v*`` tag before HEAD, its code runs the same benchmark in the same run (from a
``git archive`` of the tag, first on ``PYTHONPATH``), and where there is no git or no tag the
figures recorded for the release (``python -m bench --record``) stand beside today's instead.

The repositories are real ones in tmp_path (git is on every machine that runs the tests); the
benchmark is the real ``bus`` one, made quick with ``BALLAST_BENCH_BUS_EVENTS``. No timing is
asserted, only that the figures are measured on the right code and printed side by side.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import ballast.engine
from bench.__main__ import BENCHMARKS, Places, main
from bench.previous import PreviousError, load_record, previous_release, version_key

CHECKOUT = Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.org"]
NUMBER = r"[\d,.]+"


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run([*GIT, "-C", str(repo), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _commit(repo: Path, message: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def _release_repo(repo: Path, version: str, *, without: str | None = None) -> str:
    """A repository whose tag ``v<version>`` holds this checkout's engine, adapters and
    strategies with ``__version__ = version`` (``without``: a file left out), one commit on top;
    returns the tag's commit."""
    repo.mkdir()
    _git(repo, "init", "-q")
    for name in ("engine", "adapters", "strategies"):
        shutil.copytree(CHECKOUT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    init = repo / "engine" / "__init__.py"
    init.write_text(re.sub(r'__version__ = ".*"', f'__version__ = "{version}"', init.read_text()))
    if without is not None:
        (repo / without).unlink()
    tagged = _commit(repo, f"release {version}")
    _git(repo, "tag", f"v{version}")
    (repo / "NEWS").write_text("after the release\n")
    _commit(repo, "after the release")
    return tagged


@pytest.fixture
def quick_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BALLAST_BENCH_BUS_EVENTS", "2000")
    monkeypatch.delenv("BENCH_PREVIOUS", raising=False)
    monkeypatch.delenv("BENCH_ROUNDS", raising=False)


def test_the_previous_release_is_the_newest_version_tag_before_head(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    first = _commit(repo, "one")
    _git(repo, "tag", "v0.9.0")
    second = _commit(repo, "two")
    _git(repo, "tag", "v0.10.0")  # newer than v0.9.0 although it sorts before it as text
    _git(repo, "tag", "latest")  # not a version tag
    _git(repo, "checkout", "-q", "-b", "side")
    _commit(repo, "side")
    _git(repo, "tag", "v0.11.0")  # not an ancestor of main's HEAD
    _git(repo, "checkout", "-q", "main")
    _commit(repo, "three")
    _git(repo, "tag", "v1.0.0")  # on HEAD itself: today's code, not the previous release

    found = previous_release(repo, None)
    assert found is not None
    assert (found.name, found.rev, found.commit) == ("0.10.0", "v0.10.0", second)
    named = previous_release(repo, "v0.9.0")
    assert named is not None
    assert (named.name, named.commit) == ("0.9.0", first)
    assert previous_release(repo, "off") is None
    with pytest.raises(PreviousError, match="BENCH_PREVIOUS=v7: git knows no such revision"):
        previous_release(repo, "v7")
    no_git = tmp_path / "sdist"
    no_git.mkdir()
    assert previous_release(no_git, None) is None
    assert version_key("0.1.0") < version_key("0.2.0.dev0") < version_key("0.2.0")


def test_a_clone_without_tags_measures_the_newest_recorded_release_git_has(
    tmp_path: Path,
) -> None:
    """A clone that did not fetch the tags (CI's, a new machine's) still runs the previous
    release's code: the newest release recorded in bench/releases/ whose commit is an ancestor
    of HEAD (not HEAD itself, not one git does not know, not one off HEAD's history)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    first = _commit(repo, "one")
    second = _commit(repo, "two")
    _git(repo, "checkout", "-q", "-b", "side")
    side = _commit(repo, "side")
    _git(repo, "checkout", "-q", "main")
    head = _commit(repo, "three")
    releases = repo / "bench" / "releases"
    releases.mkdir(parents=True)
    for version, commit in (
        ("0.9.0", first),
        ("0.10.0", second),
        ("0.11.0", side),  # not an ancestor of HEAD
        ("0.12.0", "0" * 40),  # a commit this clone does not have
        ("1.0.0", head),  # HEAD itself: today's code
    ):
        record = {"version": version, "date": "2026-12-01T00:00Z", "commit": commit}
        (releases / f"{version}.json").write_text(json.dumps({**record, "figures": []}))
    assert _git(repo, "tag") == ""

    found = previous_release(repo, None)
    assert found is not None
    assert (found.name, found.rev, found.commit) == ("0.10.0", "v0.10.0", second)
    (releases / "0.10.0.json").unlink()
    (releases / "0.9.0.json").unlink()
    assert previous_release(repo, None) is None


def test_bench_measures_the_previous_release_beside_today_in_the_same_run(
    tmp_path: Path, quick_bus: None, capfd: pytest.CaptureFixture[str]
) -> None:
    tagged = _release_repo(tmp_path / "repo", "0.0.1")
    places = Places(tmp_path / "repo", tmp_path / "cache", tmp_path / "releases")

    assert main(["bus"], places) == 0

    out = capfd.readouterr().out
    tree = tmp_path / "cache" / "v0.0.1"
    assert (tree / "COMMIT").read_text().strip() == tagged
    assert "beside the previous release 0.0.1 (v0.0.1, " in out
    assert f"beside 0.0.1 (ballast 0.0.1 from {tree / 'ballast' / 'engine'}), measured" in out
    line = (
        rf"bus\+journal, 4 subscribers: {NUMBER} events/s \(target >= 150,000 (OK|MISSED)\) "
        rf"\| 0\.0\.1: {NUMBER} events/s, today/0\.0\.1 \d+\.\d\d \(higher is better\)"
    )
    assert re.search(line, out), out
    assert re.search(rf"\| bus\.rate: .* \| {NUMBER} \| \d+\.\d\d \(higher", out), out
    assert "2,000 QuoteTick" in (tree / "bus.log").read_text()  # the release's own run


def test_without_git_the_figures_recorded_for_the_release_stand_beside(
    tmp_path: Path, quick_bus: None, capfd: pytest.CaptureFixture[str]
) -> None:
    tagged = _release_repo(tmp_path / "repo", "0.0.1")
    releases = tmp_path / "releases"
    recording = Places(tmp_path / "repo", tmp_path / "cache", releases)
    assert main(["bus", "--record", "v0.0.1"], recording) == 0
    record = json.loads((releases / "0.0.1.json").read_text())
    assert (record["version"], record["commit"]) == ("0.0.1", tagged)
    assert record["machine"].startswith("machine: ")
    assert record["command"] == "python -m bench --record v0.0.1 bus"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\dZ", record["date"])
    assert {f["key"] for f in record["figures"]} == {"bus.rate", "bus.peak_rss"}
    capfd.readouterr()

    sdist = tmp_path / "sdist"  # no git repository: an unpacked source archive
    sdist.mkdir()
    assert main(["bus"], Places(sdist, tmp_path / "cache", releases)) == 0

    out = capfd.readouterr().out
    date = record["date"]
    assert f"beside release 0.0.1's figures recorded {date}" in out
    assert re.search(
        rf"bus\+journal, 4 subscribers: {NUMBER} events/s .* \| 0\.0\.1 recorded {date[:10]}: "
        rf"{NUMBER} events/s, today/0\.0\.1 \d+\.\d\d",
        out,
    ), out


def test_a_benchmark_the_previous_code_cannot_run_falls_back_to_its_record(
    tmp_path: Path, quick_bus: None, capfd: pytest.CaptureFixture[str]
) -> None:
    _release_repo(tmp_path / "repo", "0.0.1", without="engine/kernel/bus.py")
    releases = tmp_path / "releases"
    releases.mkdir()
    figure = {"key": "bus.rate", "label": "bus", "value": 1234.0, "unit": "events/s"}
    record = {"version": "0.0.1", "date": "2026-01-02T03:04Z", "commit": "abc1234"}
    figures = [{**figure, "better": "higher", "target": None, "floor": None}]
    (releases / "0.0.1.json").write_text(json.dumps({**record, "figures": figures}))

    assert main(["bus"], Places(tmp_path / "repo", tmp_path / "cache", releases)) == 0

    out = capfd.readouterr().out
    assert "(0.0.1 failed on bus: see " in out
    assert "ModuleNotFoundError" in (tmp_path / "cache" / "v0.0.1" / "bus.log").read_text()
    assert "beside 0.0.1's figures recorded 2026-01-02T03:04Z:" in out
    assert re.search(r"\| 0\.0\.1 recorded 2026-01-02: 1,234 events/s, today/0\.0\.1", out), out


def test_json_writes_the_figures_of_this_process_and_off_measures_today_only(
    tmp_path: Path,
    quick_bus: None,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "figures.json"
    assert main(["bus", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["version"] == ballast.engine.__version__
    assert data["code"] == ballast.engine.__file__
    assert [f["key"] for f in data["figures"]] == ["bus.rate", "bus.peak_rss"]
    rate = data["figures"][0]
    assert (rate["unit"], rate["better"], rate["target"]) == ("events/s", "higher", 150_000)
    assert rate["value"] > 0
    capfd.readouterr()

    monkeypatch.setenv("BENCH_PREVIOUS", "off")
    repo = tmp_path / "repo"
    _release_repo(repo, "0.0.1")
    assert main(["bus"], Places(repo, tmp_path / "cache", tmp_path / "releases")) == 0
    printed = capfd.readouterr().out
    assert "bus+journal, 4 subscribers: " in printed
    assert "0.0.1" not in printed
    assert not (tmp_path / "cache").exists()


def test_the_recorded_figures_of_0_1_0_cover_every_benchmark() -> None:
    record = load_record(CHECKOUT / "bench" / "releases" / "0.1.0.json")
    assert record.version == "0.1.0"
    assert record.commit.startswith("615f9f5")
    for name in BENCHMARKS:
        if name == "checkpoint":  # new since 0.1.0; its sqlite-auto mode is 0.1.0's way
            continue
        assert any(key.startswith(f"{name}.") for key in record.figures), name
