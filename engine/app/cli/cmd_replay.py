"""``ballast replay JOURNAL [--verify] [-c CONFIG]``.

Each session replays with the configuration it recorded (the effective one, after what the
command derived from its file). ``-c CONFIG`` names, one line per key, where CONFIG differs from
what each session was given, and replays with CONFIG's values for those keys; a key the command
derived (a backtest's ``risk.stale_after_s``) keeps its recorded value when CONFIG has the value it
was derived from, and is named too."""

from __future__ import annotations

import argparse

from ballast.engine.app.cli import exits
from ballast.engine.app.replay import replay
from ballast.engine.kernel.config import load_config


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "replay", help="re-feed a journal's inputs through fresh actors (--verify compares output)"
    )
    parser.add_argument("journal")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="compare every decision/command with the recorded one; exit 1 at the first difference",
    )
    parser.add_argument(
        "-c",
        "--config",
        help="compare with the config each session recorded, name every key that differs (one "
        "line each) and replay with this one's values for them (default: the recorded config)",
    )
    parser.set_defaults(func=replay_cmd)


def _say(line: str) -> None:
    print(line, flush=True)


async def replay_cmd(args: argparse.Namespace) -> int:
    config = load_config(args.config) if args.config else None
    result = await replay(args.journal, verify=args.verify, config=config, notes=_say)
    rate = result.records / result.seconds if result.seconds > 0 else 0.0
    print(
        f"replayed {result.records} records ({result.inputs} inputs, {result.sessions} session(s)) "
        f"in {result.seconds:.2f} s ({rate:,.0f} records/s)"
    )
    if not args.verify:
        return exits.OK
    if result.divergence is not None:
        print(result.divergence.describe())
        return exits.FAILURE
    print(f"verify: ok, {result.outputs_compared} recorded outputs reproduced identically")
    return exits.OK
