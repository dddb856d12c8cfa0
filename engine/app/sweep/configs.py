"""A variant's config: the base config file's document with the variant's keys set, written back
as TOML and validated by the one path every command takes
(:func:`~ballast.engine.kernel.config.parse_config`, then
:func:`~ballast.engine.app.config_check.check_startable`). Every variant is checked before
anything runs; the first bad one is a :class:`ConfigError` naming the key and the variant."""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from ballast.engine.app.backtest import assets_of
from ballast.engine.app.config_check import check_startable
from ballast.engine.app.sweep.toml_text import toml_text
from ballast.engine.app.sweep.variants import Variant
from ballast.engine.kernel.config import Config, parse_config
from ballast.engine.kernel.errors import ConfigError


def base_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The config file as a TOML document, numbers exact (the file itself is checked first by
    :func:`~ballast.engine.app.config_check.load_checked_config`)."""
    return tomllib.loads(Path(path).read_text(encoding="utf-8"), parse_float=Decimal)


def with_params(document: dict[str, Any], variant: Variant, *, source: str) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    for key, value in variant.params:
        node = changed
        parts = key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(parts[: depth + 1])
                raise _error(key, f"{where} is not a table", variant, source)
            node = child
        node[parts[-1]] = copy.deepcopy(value)
    return changed


def variant_configs(
    document: dict[str, Any], base: Config, variants: Sequence[Variant], *, source: str
) -> dict[str, Config]:
    """Every variant's config, validated; the first bad one raises."""
    configs: dict[str, Config] = {}
    for variant in variants:
        text = toml_text(with_params(document, variant, source=source))
        try:
            config = parse_config(text, source=source)
            check_startable(config, source=source)
        except ConfigError as exc:
            raise _error(exc.key, exc.problem, variant, source) from None
        _same_market(base, config, variant, source)
        configs[variant.id] = config
    return configs


def _same_market(base: Config, config: Config, variant: Variant, source: str) -> None:
    """Every variant runs on the market data loaded once for the base config."""
    checks = (
        ("instruments", assets_of(base) == assets_of(config)),
        ("instruments.perp", base.instruments.perp == config.instruments.perp),
        ("venue.quote", base.venue.quote == config.venue.quote),
        ("paper.data_dir", base.paper.data_dir == config.paper.data_dir),
        ("paper.bar_interval", base.paper.bar_interval_s == config.paper.bar_interval_s),
        ("paper.start", base.paper.start == config.paper.start),
        ("paper.end", base.paper.end == config.paper.end),
    )
    for key, same in checks:
        if not same:
            raise _error(
                key,
                "a sweep runs every variant on the market data of the base config: this key "
                "cannot vary (run one sweep per data set)",
                variant,
                source,
            )


def _error(key: str, problem: str, variant: Variant, source: str) -> ConfigError:
    return ConfigError(
        key, f"{problem} (variant {variant.id}: {variant.describe()})", source=source
    )
