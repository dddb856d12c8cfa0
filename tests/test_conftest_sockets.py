"""The suite's socket checks (``tests/conftest.py``): a socket left open fails the test that left
it (once garbage) or its module (while something still holds it), not some later test at the
garbage collector's convenience. Run on a module of leaky tests in a pytest of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ("pytester",)

ROOT = Path(__file__).resolve().parents[1]

LEAKY = """
import gc
import socket

KEPT = []


def test_a_socket_in_an_old_cycle() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    cycle = [sock]
    cycle.append(cycle)
    gc.collect()  # the cycle survives into the oldest generation: only a full collection frees it
    del sock, cycle


def test_after_it() -> None:
    pass


def test_a_listener_something_keeps() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    KEPT.append(sock)


def test_last_of_the_module() -> None:
    pass
"""

SETTINGS = """
[tool.pytest.ini_options]
filterwarnings = ["error"]
asyncio_default_fixture_loop_scope = "function"
"""


def test_a_socket_left_open_fails_the_test_or_the_module_that_left_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the conftest imports tests.support
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    pytester.makepyprojecttoml(SETTINGS)
    pytester.makepyfile(test_leaky=LEAKY)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_a_socket_in_an_old_cycle*",
            "*ERROR at teardown of test_last_of_the_module*",
            "*TCP sockets this module left open: ?'127.0.0.1:* -> listening'?",  # ?: [ and ]
        ],
        consecutive=False,
    )
