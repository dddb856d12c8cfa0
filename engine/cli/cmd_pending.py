"""Subcommands whose engine parts are still being built. They say so and exit 1."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TypeAlias

from engine.cli import exits
from engine.config import load_config

if TYPE_CHECKING:
    _Sub: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def _pending(what: str, needs: str) -> int:
    print(f"ballast {what}: not available yet: it needs {needs}.", file=sys.stderr)
    return exits.FAILURE


def _config_then_pending(what: str, needs: str) -> object:
    def run(args: argparse.Namespace) -> int:
        load_config(args.config)  # a bad config is still reported as such (exit 2)
        return _pending(what, needs)

    return run


def add_run(sub: _Sub) -> None:
    parser = sub.add_parser("run", help="run the engine live or on paper (long-lived service)")
    parser.add_argument("-c", "--config", required=True)
    parser.set_defaults(
        func=_config_then_pending("run", "a venue adapter (simulated venue and ccxt.pro venue)")
    )
