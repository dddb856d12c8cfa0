"""Where the files shipped inside the package are: bundled market data and example configurations.

They are package data (``ballast.data``, ``ballast.examples``), so ``ballast demo`` and the default
``[paper] data_dir`` work from any folder once Ballast is installed, in a checkout or not.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from ballast.engine.kernel.config import DEFAULT_DATA_DIR
from ballast.engine.kernel.errors import BallastError


def bundled_path(package: str, name: str) -> Path:
    """A file or folder shipped in ``package``: a real path, as in every unpacked install (the
    readers open CSV folders by path, which a zipped install could not give)."""
    resource = files(package).joinpath(name)
    if not isinstance(resource, Path):
        raise BallastError(f"{package}/{name} is not on the file system ({resource!r})")
    return resource


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
