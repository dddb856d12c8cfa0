"""``ballast config check FILE`` and ``ballast config schema``."""

from __future__ import annotations

import argparse
import json

from ballast.engine.app.band_report import band_lines
from ballast.engine.app.cli import exits
from ballast.engine.app.config_check import load_checked_config
from ballast.engine.kernel.config import json_schema


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("config", help="check a configuration file or print its JSON Schema")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    check = actions.add_parser(
        "check", help="validate FILE (exit 2 naming the bad key); print every asset's band"
    )
    check.add_argument("file")
    check.set_defaults(func=check_cmd)
    schema = actions.add_parser("schema", help="print the JSON Schema of the config file")
    schema.set_defaults(func=schema_cmd)


def check_cmd(args: argparse.Namespace) -> int:
    config = load_checked_config(args.file)
    targets = ", ".join(f"{a} {w}" for a, w in config.targets.items()) or "none"
    print(
        f"{args.file}: ok (venue {config.venue.kind}, strategy {config.strategy.name}, "
        f"mode {config.execution.mode}, targets {targets})"
    )
    for line in band_lines(config):
        print(line)
    return exits.OK


def schema_cmd(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return exits.OK
