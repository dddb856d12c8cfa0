"""``ballast``: entry point, argument parsing and error → exit-code mapping.

A crash is reported without the secrets: an unexpected exception prints its traceback through
:func:`~ballast.engine.kernel.redaction.redact` (exit 1), and a fatal signal (SIGSEGV, SIGABRT,
SIGBUS, SIGILL, SIGFPE) prints the stacks of the threads (:mod:`faulthandler`: file names, lines
and function names, never values)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import io
import logging
import os
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ballast.engine import __version__
from ballast.engine.app.cli import (
    cmd_backtest,
    cmd_config,
    cmd_demo,
    cmd_journal,
    cmd_plan,
    cmd_replay,
    cmd_run,
    cmd_sweep,
    cmd_venue,
    exits,
)
from ballast.engine.app.event_loop import loop_factory
from ballast.engine.kernel.errors import BallastError, ConfigError, JournalError
from ballast.engine.kernel.redaction import RedactingFilter, redact

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int] | int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ballast",
        description="Keeps a crypto spot core plus a perpetual-futures overlay on its risk budget.",
        epilog="Exit codes: 0 ok, 1 runtime failure or replay divergence, 2 usage/config error.",
    )
    parser.add_argument("--version", action="version", version=f"ballast {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    cmd_run.add(sub)
    cmd_demo.add(sub)
    cmd_backtest.add(sub)
    cmd_sweep.add(sub)
    cmd_replay.add(sub)
    cmd_plan.add(sub)
    cmd_journal.add(sub)
    cmd_config.add(sub)
    cmd_venue.add(sub)
    return parser


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler])


def _run(func: Command, args: argparse.Namespace) -> int:
    result = func(args)
    if asyncio.iscoroutine(result):
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(result)
    assert isinstance(result, int)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    if not faulthandler.is_enabled():
        with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
            faulthandler.enable()  # a stderr without a file descriptor has no crash report
    try:
        return _run(args.func, args)
    except ConfigError as exc:
        print(f"ballast: config error: {redact(str(exc))}", file=sys.stderr)
        return exits.USAGE
    except JournalError as exc:
        print(f"ballast: journal error: {redact(str(exc))}", file=sys.stderr)
        return exits.FAILURE
    except BallastError as exc:
        print(f"ballast: {redact(str(exc))}", file=sys.stderr)
        return exits.FAILURE
    except KeyboardInterrupt:
        print("ballast: interrupted", file=sys.stderr)
        return exits.FAILURE
    except BrokenPipeError:
        return _stdout_closed()
    except Exception:
        crash = redact(traceback.format_exc())
        print(f"ballast: crashed (a bug, please report it):\n{crash}", file=sys.stderr, end="")
        return exits.FAILURE


def _stdout_closed() -> int:
    """The reader of stdout went away (``ballast journal export J | head -1``): stop quietly.
    stdout is pointed at /dev/null so that the interpreter's last flush of what is still
    buffered cannot fail again at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return exits.FAILURE


if __name__ == "__main__":
    sys.exit(main())
