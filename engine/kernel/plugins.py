"""Loading user code named as ``module:Class`` or registered under an entry-point group."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from ballast.engine.kernel.errors import ConfigError


def load_object(spec: str, *, key: str) -> Any:
    """Import ``module:attr`` (attr may be dotted). ``key`` names the config key for errors."""
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise ConfigError(key, f"{spec!r} is not of the form 'module:Class'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(key, f"cannot import module {module_name!r}: {exc}") from None
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(key, f"module {module_name!r} has no {attr_path!r}") from None
    return obj


def entry_point_names(group: str) -> dict[str, str]:
    """Installed entry points of ``group``: name → 'module:attr'."""
    return {ep.name: ep.value for ep in entry_points(group=group)}


def load_entry_point(group: str, name: str, *, key: str) -> Any:
    for ep in entry_points(group=group, name=name):
        try:
            return ep.load()
        except Exception as exc:  # a broken plug-in package must not hide which one it is
            raise ConfigError(
                key, f"entry point {name!r} ({ep.value}) failed to load: {exc}"
            ) from None
    known = ", ".join(sorted(entry_point_names(group))) or "none installed"
    raise ConfigError(key, f"no {group} entry point named {name!r} (known: {known})")
