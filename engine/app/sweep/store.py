"""The results of a sweep's tasks, one JSON file each under ``OUT/runs/``, written as each task
ends (atomically), so that an interrupted sweep keeps what it finished. A task's key is a hash
of everything its result depends on: the variant's whole config, its date range, the market data
(:func:`data_fingerprint`), the code (:func:`code_version`) and whether its journal is kept; a
re-run finds the results of the same key and runs only the others."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Final

import msgspec

from ballast.adapters.data.bundle import MarketSeries
from ballast.engine import __version__
from ballast.engine.app.sweep.task import Record

_PACKAGES: Final = ("engine", "adapters", "strategies")


def data_fingerprint(series: MarketSeries) -> str:
    """A hash of the market data: every series' symbol and bar interval and the bytes of the file
    it was loaded from."""
    digest = hashlib.sha256()
    for kind, group in (("spot", series.spot), ("perp", series.perp)):
        for klines in group:
            digest.update(f"{kind} {klines.symbol} {klines.interval_s}\n".encode())
            digest.update(Path(klines.source).read_bytes())
    for funding in series.funding:
        digest.update(f"funding {funding.symbol}\n".encode())
        digest.update(Path(funding.source).read_bytes())
    return digest.hexdigest()


def code_version() -> str:
    """The package version and a hash of every Python source of the engine, the adapters and
    the strategies: a changed line of code is a new version."""
    import ballast.adapters
    import ballast.engine
    import ballast.strategies

    digest = hashlib.sha256(__version__.encode())
    for package in (ballast.engine, ballast.adapters, ballast.strategies):
        root = Path(package.__file__ or "").parent
        for file in sorted(root.rglob("*.py")):
            digest.update(file.relative_to(root).as_posix().encode())
            digest.update(file.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:16]}"


def task_key(
    config_json: str,
    start_ns: int | None,
    end_ns: int | None,
    *,
    data: str,
    code: str,
    journal: bool,
) -> str:
    text = msgspec.json.encode([config_json, start_ns, end_ns, data, code, journal])
    return hashlib.sha256(text).hexdigest()[:32]


class ResultStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder / "runs"

    def get(self, key: str) -> Record | None:
        path = self.folder / f"{key}.json"
        try:
            return msgspec.json.decode(path.read_bytes(), type=Record)
        except FileNotFoundError:
            return None
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None  # a torn or foreign file: run the task again

    def put(self, record: Record) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{record.key}.json"
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_bytes(msgspec.json.encode(record))
        os.replace(temporary, path)
