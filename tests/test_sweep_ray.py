"""``ballast sweep --ray`` on a real Ray cluster (issue 15): a one-machine cluster started by the
test on 127.0.0.1 (module scope: starting Ray takes seconds) runs the small grid and gives the
very results of the local run. Skipped only where Ray cannot be imported."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.sweep_case import results, sweep, write

ray = pytest.importorskip("ray", reason="Ray is not installed here: pip install 'ballast[ray]'")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(
        address="local",
        _node_ip_address="127.0.0.1",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
    )
    try:
        yield
    finally:
        ray.shutdown()


def test_the_small_grid_on_ray_gives_the_local_results(cluster: None, tmp_path: Path) -> None:
    config, grid = write(tmp_path)
    on_ray = sweep(config, grid, tmp_path / "ray", ray="local")
    local = sweep(config, grid, tmp_path / "local", workers=1)
    assert len(on_ray.records) == 4
    assert results(on_ray.records) == results(local.records)
    assert ray.is_initialized(), "the sweep used the test's cluster and left it running"
