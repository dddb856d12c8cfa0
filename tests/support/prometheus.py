"""A real Prometheus for integration tests: find or install it, run it, query its HTTP API.

:func:`ensure_prometheus` finds ``prometheus``, ``promtool`` and ``amtool`` on PATH, or installs
Debian's packages when running as root::

    apt-get install -y --no-install-recommends prometheus prometheus-alertmanager

(running ``apt-get update`` first when the package lists do not know them). Where installing is
impossible (not root, no apt-get, no network) it raises :class:`PrometheusUnavailable` with the
reason; the tests turn that into a skip. ``make prometheus`` runs the same installation
(``python -m tests.support.prometheus``).

The Debian packages ship a systemd unit; in a container without systemd nothing is started. The
tests never use it: they start their own server on a free loopback port with a temporary config
and storage, and stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from tests.support.http_get import http_get

PACKAGES = ("prometheus", "prometheus-alertmanager")
INSTALL_TIMEOUT_S = 600
T = TypeVar("T")


class PrometheusUnavailable(Exception):
    """Prometheus is not installed and cannot be installed here (the message says why)."""


@dataclass(frozen=True)
class PrometheusTools:
    prometheus: str
    promtool: str
    amtool: str

    def version(self) -> str:
        out = subprocess.run(
            [self.prometheus, "--version"], capture_output=True, text=True, check=True
        )
        return (out.stdout or out.stderr).splitlines()[0]


def _found() -> PrometheusTools | None:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    amtool = shutil.which("amtool")
    if prometheus is None or promtool is None or amtool is None:
        return None
    return PrometheusTools(prometheus, promtool, amtool)


def ensure_prometheus() -> PrometheusTools:
    """The installed tools, installing Debian's packages first if needed and possible."""
    tools = _found()
    if tools is not None:
        return tools
    _install()
    tools = _found()
    if tools is None:
        raise PrometheusUnavailable(
            "apt-get finished but prometheus, promtool or amtool is not on PATH"
        )
    return tools


def _install() -> None:
    if shutil.which("apt-get") is None:
        raise PrometheusUnavailable(
            "prometheus is not installed and there is no apt-get to install Debian's package"
        )
    if os.geteuid() != 0:
        raise PrometheusUnavailable(
            "prometheus is not installed and installing Debian's package needs root: "
            "run `sudo make prometheus` (or apt-get install prometheus) once"
        )
    failure = _apt("install", "-y", "--no-install-recommends", *PACKAGES)
    if failure is not None:  # unknown package: the lists may be missing or old
        _apt("update")
        failure = _apt("install", "-y", "--no-install-recommends", *PACKAGES)
    if failure is not None:
        raise PrometheusUnavailable(f"apt-get could not install {' '.join(PACKAGES)}: {failure}")


def _apt(*args: str) -> str | None:
    """Run apt-get; None on success, else the end of its output."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            ["apt-get", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    return (done.stderr or done.stdout).strip()[-500:]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def poll(
    check: Callable[[], Awaitable[T | None]], *, within_s: float, what: str, every_s: float = 0.25
) -> T:
    """Call ``check`` until it returns something other than None; fail after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        result = await check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s}s: {what}")
        await asyncio.sleep(every_s)


class PrometheusServer:
    """``async with PrometheusServer(tools, config, workdir) as prom:`` runs Prometheus on a free
    127.0.0.1 port with storage in ``workdir``, waits until it is ready, and stops it."""

    def __init__(self, tools: PrometheusTools, config: Path, workdir: Path) -> None:
        self.tools = tools
        self.config = config
        self.workdir = workdir
        self.port = free_port()
        self.log = workdir / "prometheus.log"
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Self:
        with self.log.open("wb") as log:
            self._proc = await asyncio.create_subprocess_exec(
                self.tools.prometheus,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                stdout=log,
                stderr=log,
            )
        await poll(self._ready, within_s=30, what=f"prometheus ready (log: {self.log})")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await stop_process(self._proc)

    async def _ready(self) -> bool | None:
        if self._proc is not None and self._proc.returncode is not None:
            raise AssertionError(f"prometheus exited: {self.log.read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            return (await http_get("127.0.0.1", self.port, "/-/ready")).status == 200 or None
        return None

    async def api(self, path: str, **query: str) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``; fails on an API error."""
        response = await http_get("127.0.0.1", self.port, f"/api/v1/{path}", **query)
        body = json.loads(response.body)
        if body.get("status") != "success":
            raise PromQLError(f"{path} {query}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    async def query(self, expr: str) -> list[Any]:
        """The instant vector (or scalar, as a one-element list) of ``expr``."""
        data = await self.api("query", query=expr)
        result = data["result"]
        return result if data["resultType"] in ("vector", "matrix") else [result]


class PromQLError(Exception):
    """Prometheus refused a query (parse or evaluation error)."""


async def stop_process(proc: asyncio.subprocess.Process | None, *, grace_s: float = 10) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; always reaps the process."""
    if proc is None or proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


def main() -> int:
    """``make prometheus``: install (if needed) and report the tools."""
    try:
        tools = ensure_prometheus()
    except PrometheusUnavailable as exc:
        print(f"prometheus: {exc}", file=sys.stderr)
        return 1
    print(f"{tools.version()}\n  prometheus: {tools.prometheus}\n  promtool:   {tools.promtool}")
    print(f"  amtool:     {tools.amtool}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
