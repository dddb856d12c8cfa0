"""The previous release beside today's figures: which release, its code, its recorded figures.

``make bench`` measures each benchmark twice in the same run, on today's code and on the previous
release's, one after the other (which one goes first alternates from benchmark to benchmark), each
in a fresh ``python -m bench NAME --json FILE`` process. The benchmark code is today's in both
(``bench/`` of this checkout: the same measurement); only the ``ballast`` package differs: the
previous release's is ``git archive``'d once into ``.bench-previous/<tag>/ballast/`` and comes
first on that process's ``PYTHONPATH``.

The previous release is the newest ``v*`` tag that is an ancestor of HEAD and not on HEAD itself
(in a clone without tags: the newest release recorded in ``bench/releases/`` whose commit is);
``BENCH_PREVIOUS=<rev>`` names another revision, ``BENCH_PREVIOUS=off`` measures today's code
only. Without git or without the tag (an sdist, a shallow clone), or when a benchmark fails on the
previous code (an API it lacks), the figures recorded for that release in ``bench/releases/``
(``python -m bench --record``) stand beside today's, marked "recorded <date>".
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import Figure, number, read_figures

ROOT = Path(__file__).resolve().parents[1]
RELEASES = ROOT / "bench" / "releases"
CACHE = ROOT / ".bench-previous"
PACKAGES = ("engine", "adapters", "strategies", "data", "examples")
"""The top-level folders that install as ``ballast.<name>`` (pyproject.toml's package-dir)."""
SETTING = "BENCH_PREVIOUS"


class PreviousError(Exception):
    """``BENCH_PREVIOUS`` names a revision git cannot find (the message says which)."""


@dataclass(frozen=True)
class Release:
    """The code measured beside today's: ``name`` as printed (``0.1.0``), the revision as given
    (``v0.1.0``), and its commit."""

    name: str
    rev: str
    commit: str


@dataclass(frozen=True)
class Record:
    """Figures recorded for a release by ``python -m bench --record`` (bench/releases/*.json)."""

    version: str
    date: str
    commit: str
    figures: dict[str, Figure]
    path: Path
    conditions: str
    """The load average around the recording and its note, as printed beside its figures."""


def git(root: Path, *args: str) -> str | None:
    """``git -C root ARGS``'s output, or None where git is missing or the command fails."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def version_key(version: str) -> tuple[tuple[int, ...], int]:
    """Orders ``0.1.0`` < ``0.2.0.dev0`` < ``0.2.0`` (a suffix comes before its release)."""
    match = re.match(r"v?(\d+(?:\.\d+)*)(.*)", version)
    if match is None:
        return (), 0
    numbers = tuple(int(part) for part in match.group(1).split("."))
    return numbers, 0 if match.group(2) else 1


def previous_release(root: Path = ROOT, setting: str | None = None) -> Release | None:
    """The release to measure beside today's code, or None (``off``, no git, no tag).

    ``setting`` is ``BENCH_PREVIOUS``'s value: empty for the newest ``v*`` tag merged into HEAD
    but not on HEAD, ``off`` for none, else any revision git knows (PreviousError if it does not).
    """
    setting = (setting or "").strip()
    if setting == "off":
        return None
    if setting:
        commit = git(root, "rev-parse", "--verify", "--quiet", f"{setting}^{{commit}}")
        if not commit:
            raise PreviousError(f"{SETTING}={setting}: git knows no such revision in {root}")
        name = setting[1:] if re.fullmatch(r"v\d.*", setting) else setting
        return Release(name, setting, commit)
    merged = git(root, "tag", "--merged", "HEAD", "--list", "v[0-9]*")
    if not merged:
        return recorded_release(root, root / "bench" / "releases")
    on_head = set((git(root, "tag", "--points-at", "HEAD") or "").split())
    tags = [tag for tag in merged.split() if tag not in on_head]
    if not tags:
        return None
    tag = max(tags, key=version_key)
    commit = git(root, "rev-parse", "--verify", "--quiet", f"{tag}^{{commit}}")
    return Release(tag[1:], tag, commit) if commit else None


def recorded_release(root: Path = ROOT, releases: Path = RELEASES) -> Release | None:
    """Without ``v*`` tags (a clone that did not fetch them): the newest release recorded in
    ``releases`` whose commit git has, as an ancestor of HEAD other than HEAD itself, so a fresh
    clone still measures the previous release in the same run rather than showing its recorded
    figures. None when git has none of them."""
    head = git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if head is None:
        return None
    for record in sorted(
        (load_record(path) for path in releases.glob("*.json")),
        key=lambda r: version_key(r.version),
        reverse=True,
    ):
        commit = git(root, "rev-parse", "--verify", "--quiet", f"{record.commit}^{{commit}}")
        if not commit or commit == head:
            continue
        if git(root, "merge-base", "--is-ancestor", commit, "HEAD") is not None:
            return Release(record.version, f"v{record.version}", commit)
    return None


def checkout(release: Release, root: Path = ROOT, cache: Path = CACHE) -> Path:
    """The previous release's ``ballast`` package under ``cache/<rev>/ballast`` (extracted once
    per commit with ``git archive``); returns the folder to put first on ``PYTHONPATH``."""
    folder = cache / re.sub(r"[^A-Za-z0-9._-]", "_", release.rev)
    stamp = folder / "COMMIT"
    if stamp.is_file() and stamp.read_text().strip() == release.commit:
        return folder
    if folder.exists():
        shutil.rmtree(folder)
    listed = git(root, "ls-tree", "--name-only", release.commit) or ""
    present = [name for name in PACKAGES if name in listed.split()]
    command = ["git", "-C", str(root), "archive", "--format=tar", "--prefix=ballast/"]
    archive = subprocess.run(
        [*command, release.commit, *present],
        capture_output=True,
        check=True,
    )
    folder.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    stamp.write_text(release.commit + "\n")
    return folder


def child(
    names: list[str], out: Path, *, pythonpath: Path | None, log: Path | None
) -> subprocess.CompletedProcess[bytes]:
    """``python -m bench NAMES --json out`` in a fresh process: on the ``ballast`` package under
    ``pythonpath`` when given (today's otherwise); its output to ``log``, or to this terminal."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(pythonpath), env.get("PYTHONPATH", "")) if p
        )
    command = [sys.executable, "-m", "bench", *names, "--json", str(out), "--no-header"]
    if log is None:
        return subprocess.run(command, cwd=ROOT, env=env, check=False)
    with log.open("wb") as sink:
        return subprocess.run(
            command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, check=False
        )


def code_version(pythonpath: Path | None) -> str:
    """``ballast.engine.__version__`` of the code on ``pythonpath`` (today's when None)."""
    if pythonpath is None:
        from ballast.engine import __version__

        return __version__
    env = dict(os.environ)
    env["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run(
        [sys.executable, "-c", "import ballast.engine as e; print(e.__version__)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def load_record(path: Path) -> Record:
    data: dict[str, Any] = json.loads(path.read_text())
    figures = {f.key: f for f in read_figures(data)}
    load = data.get("load_average", {})
    conditions = ""
    if load:
        before, after = load["before"][0], load["after"][0]
        conditions = f"load average {before:.1f} before, {after:.1f} after"
    if data.get("note"):
        conditions = "; ".join(c for c in (conditions, str(data["note"])) if c)
    return Record(
        str(data["version"]), str(data["date"]), str(data["commit"]), figures, path, conditions
    )


def recorded(
    releases: Path, version: str | None = None, *, below: str | None = None
) -> Record | None:
    """The record of release ``version`` in ``releases``, or the newest one before ``below``."""
    records = [load_record(path) for path in sorted(releases.glob("*.json"))]
    if version is not None:
        return next((r for r in records if r.version == version), None)
    if below is not None:
        records = [r for r in records if version_key(r.version) < version_key(below)]
    return max(records, key=lambda r: version_key(r.version), default=None)


def beside(today: Figure, before: Figure | None, name: str, recorded_on: str | None = None) -> str:
    """One figure line: today's, its target and floor, and the previous release's with the ratio
    today / previous (so above 1 is better where higher is better, and worse where lower is);
    ``recorded_on``: the date of the record the previous figure comes from."""
    text = f"{today.label}: {number(today.value)} {today.unit}"
    goal = today.goal_text()
    if goal:
        text += f" ({goal})"
    if before is None or before.unit != today.unit:
        return f"{text} | {name}: not measured"
    ratio = f"{today.value / before.value:.2f}" if before.value else "n/a"
    source = f"{name} recorded {recorded_on}" if recorded_on else name
    return (
        f"{text} | {source}: {number(before.value)} {before.unit}, today/{name} {ratio} "
        f"({today.better} is better)"
    )
