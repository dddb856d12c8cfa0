"""The shipped paper config (deploy/paper.toml) rewritten for a test run of ``ballast run``.

``paper_config(path, {"risk": {"stale_after_s": 3}, ...})`` writes a copy with each given key's
line replaced, or added at the end of its section (a missing section is appended), and checks
that the result loads with those values. Everything else stays as shipped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from ballast.engine.kernel.config import load_config

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "deploy" / "paper.toml"
DATA = ROOT / "data" / "market"

Value = str | bool | int | float
Overrides = Mapping[str, Mapping[str, Value]]

_SECTION = re.compile(r"^\s*\[(?P<name>[\w.]+)\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*(?P<key>\w+)\s*=")


def toml_value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for paths and names
    return repr(value)


def rewrite(text: str, overrides: Overrides) -> str:
    """``text`` with ``overrides`` ({section: {key: value}}) applied line by line."""
    left = {section: dict(keys) for section, keys in overrides.items()}
    out: list[str] = []
    section = ""

    def close_section() -> None:
        end = len(out)
        while end > 0 and not out[end - 1].strip():
            end -= 1  # added keys go before the blank lines that end the section
        added = [f"{key} = {toml_value(value)}" for key, value in left.pop(section, {}).items()]
        out[end:end] = added

    for line in text.splitlines():
        header = _SECTION.match(line)
        if header is not None:
            close_section()
            section = header["name"]
        else:
            key = _KEY.match(line)
            if key is not None and key["key"] in left.get(section, {}):
                name = key["key"]
                line = f"{name} = {toml_value(left[section].pop(name))}"
        out.append(line)
    close_section()
    for name, keys in left.items():
        out.append(f"\n[{name}]")
        out.extend(f"{key} = {toml_value(value)}" for key, value in keys.items())
    return "\n".join(out) + "\n"


def paper_config(path: Path, overrides: Overrides, *, source: Path = PAPER) -> Path:
    """Write ``source`` with ``overrides`` to ``path``; return ``path``."""
    path.write_text(rewrite(source.read_text(), overrides))
    config = load_config(path)
    for section, keys in overrides.items():
        for key, value in keys.items():
            assert _same(getattr(getattr(config, section), key), value), (section, key)
    return path


def _same(loaded: object, value: Value) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(str(loaded)) == float(value)  # float, int or Decimal fields
    return loaded == value
