"""Where the files shipped inside the package are: bundled market data and example configurations.

They are package data (``ballast.data``, ``ballast.examples``), so ``ballast demo`` and the default
``[paper] data_dir`` work from any folder once Ballast is installed, in a checkout or not.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

from ballast.engine.kernel.config import DEFAULT_DATA_DIR


def bundled_path(package: str, name: str) -> Path:
    """A file or folder shipped in ``package`` (an installed wheel unpacks to real files)."""
    with as_file(files(package).joinpath(name)) as path:  # a real path for an unpacked package
        return Path(path)


def market_data() -> Path:
    """The bundled market data folder (two years of Binance BTC/ETH spot and perp bars)."""
    return bundled_path("ballast.data", "market")


def example_config(name: str) -> Path:
    """An example configuration shipped with Ballast, e.g. ``demo.toml``."""
    return bundled_path("ballast.examples", name)


def data_dir(configured: str) -> Path:
    """The market data folder for ``[paper] data_dir``: the configured folder, except that the
    default ``data/market`` falls back to the bundled data when the working folder has none."""
    path = Path(configured)
    if configured == DEFAULT_DATA_DIR and not path.is_dir():
        return market_data()
    return path
