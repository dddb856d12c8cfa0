"""The architecture, checked on the source (issue 10): dependencies point inward.

Every module of the installed ``ballast`` namespace is parsed with :mod:`ast`; every import in it
(top-level, inside functions, under ``TYPE_CHECKING``; relative ones resolved) must go to its own
unit or to one the table below lets it import. The old top-level names (``import engine``) are
gone everywhere, and no actor module imports another actor module: actors talk through the bus.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------ the allowed direction

ENGINE: Final = "ballast.engine"  # the package root (engine/__init__.py): __version__ only
KERNEL: Final = "ballast.engine.kernel"
STRATEGY: Final = "ballast.engine.strategy"
TRADING: Final = "ballast.engine.trading"
OBSERVE: Final = "ballast.engine.observe"
APP: Final = "ballast.engine.app"
ADAPTERS: Final = "ballast.adapters"
STRATEGIES: Final = "ballast.strategies"
DATA: Final = "ballast.data"
EXAMPLES: Final = "ballast.examples"

# unit → the other units it may import (every unit may import itself and the package root ENGINE).
# A module belongs to the longest unit its dotted name starts with. Lower layers never import
# higher ones; only the composition root (app) imports concrete adapters and built-in strategies.
MAY_IMPORT: Final[Mapping[str, tuple[str, ...]]] = {
    ENGINE: (),
    KERNEL: (),
    STRATEGY: (KERNEL,),
    TRADING: (KERNEL, STRATEGY),
    OBSERVE: (KERNEL, STRATEGY, TRADING),
    APP: (KERNEL, STRATEGY, TRADING, OBSERVE, ADAPTERS, STRATEGIES, DATA, EXAMPLES),
    ADAPTERS: (KERNEL, STRATEGY, TRADING),
    STRATEGIES: (KERNEL, STRATEGY, TRADING),
    DATA: (),
    EXAMPLES: (),
}
NAMESPACE: Final = "ballast"
LAYERS: Final = (KERNEL, STRATEGY, TRADING, OBSERVE, APP)  # what engine/ is made of

# Folders whose imports must use the installed names, never the old top-level ones.
CHECKOUT_CODE: Final = ("engine", "adapters", "strategies", "data", "examples", "tests", "bench")


def package_dirs(root: Path) -> dict[str, str]:
    """Installed package → its folder, from pyproject's ``[tool.setuptools.package-dir]``."""
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    return dict(pyproject["tool"]["setuptools"]["package-dir"])


# ------------------------------------------------------------------ modules and their imports


@dataclass(frozen=True)
class Module:
    name: str
    """The installed dotted name (engine/kernel/bus.py → ballast.engine.kernel.bus)."""
    path: str
    """The file, relative to the checkout (for messages)."""
    is_package: bool
    tree: ast.Module


@dataclass(frozen=True)
class Import:
    names: tuple[str, ...]
    """The absolute dotted names one statement imports: ``import a.b`` → ``a.b``; ``from a import
    b, c`` → ``a``, ``a.b``, ``a.c`` (``b`` may be a submodule)."""
    line: int
    level: int
    """0 for an absolute import, else the number of leading dots."""


def modules(root: Path, dirs: Mapping[str, str]) -> Iterator[Module]:
    """Every module under the folders of ``dirs`` (installed name → folder under ``root``)."""
    for package, folder in sorted(dirs.items()):
        base = root / folder
        for file in sorted(base.rglob("*.py")):
            parts = file.relative_to(base).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            name = ".".join([package, *(parts[:-1] if is_package else parts)])
            path = str(file.relative_to(root))
            yield Module(name, path, is_package, ast.parse(file.read_text(), filename=path))


def imports(module: Module) -> Iterator[Import]:
    """Every import statement anywhere in ``module``, relative ones resolved."""
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import((alias.name,), node.lineno, 0)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = (base, *(f"{base}.{alias.name}" for alias in node.names))
            yield Import(names, node.lineno, node.level)


def unit_of(name: str, units: Mapping[str, object] = MAY_IMPORT) -> str | None:
    """The longest unit ``name`` is or lies inside, or None."""
    inside = [unit for unit in units if name == unit or name.startswith(f"{unit}.")]
    return max(inside, key=len, default=None)


# ------------------------------------------------------------------ the checks


def upward_imports(
    found: Iterator[Module] | list[Module],
    may_import: Mapping[str, tuple[str, ...]] = MAY_IMPORT,
    *,
    namespace: str = NAMESPACE,
    root_unit: str = ENGINE,
) -> list[str]:
    """One message per import statement that goes against ``may_import`` (naming the first name
    it imports that it may not)."""
    problems: set[str] = set()
    for module in found:
        unit = unit_of(module.name, may_import)
        if unit is None:
            problems.add(f"{module.path}: {module.name} belongs to no unit of the table")
            continue
        allowed = {unit, root_unit, *may_import[unit]}
        for imported in imports(module):
            for name in imported.names:
                if not name.startswith(f"{namespace}."):
                    continue  # the namespace itself, the standard library, third-party packages
                target = unit_of(name, may_import)
                if target in allowed:
                    continue
                problems.add(
                    f"{module.path}:{imported.line}: {module.name} imports {name} "
                    f"({target or 'no unit of the table'}), but {unit} may import only "
                    f"{', '.join(sorted(allowed))}"
                )
                break
    return sorted(problems)


def old_top_level_imports(root: Path, folders: tuple[str, ...], old: frozenset[str]) -> list[str]:
    """Absolute imports of an old top-level name (``import engine``) under ``folders``."""
    problems: list[str] = []
    for folder in folders:
        for module in modules(root, {folder: folder}):
            for imported in imports(module):
                name = imported.names[0]
                if imported.level == 0 and name.split(".")[0] in old:
                    problems.append(
                        f"{module.path}:{imported.line}: imports {name}; "
                        f"use the installed name ballast.{name}"
                    )
    return sorted(set(problems))


def _base_names(node: ast.ClassDef) -> set[str]:
    names: set[str] = set()
    for base in node.bases:
        if isinstance(base, ast.Name):
            names.add(base.id)
        elif isinstance(base, ast.Attribute):
            names.add(base.attr)
    return names


def actor_modules(found: list[Module]) -> dict[str, set[str]]:
    """Module name → the Actor subclasses it defines (directly or through another actor)."""
    actor_classes = {"Actor"}
    defined: dict[str, set[str]] = {}
    changed = True
    while changed:
        changed = False
        for module in found:
            for node in ast.walk(module.tree):
                if (
                    isinstance(node, ast.ClassDef)
                    and _base_names(node) & actor_classes
                    and node.name not in defined.setdefault(module.name, set())
                ):
                    defined[module.name].add(node.name)
                    actor_classes.add(node.name)
                    changed = True
    return {name: classes for name, classes in defined.items() if classes}


def actor_import_violations(found: list[Module]) -> list[str]:
    actors = actor_modules(found)
    problems: set[str] = set()
    for module in found:
        if module.name not in actors:
            continue
        for name in (name for imported in imports(module) for name in imported.names):
            for other in actors:
                if other != module.name and (name == other or name.startswith(f"{other}.")):
                    problems.add(f"{module.name} imports actor module {other}")
    return sorted(problems)


# ------------------------------------------------------------------ the checkout


def installed_modules() -> list[Module]:
    return list(modules(ROOT, package_dirs(ROOT)))


def test_the_table_names_every_installed_package() -> None:
    assert set(package_dirs(ROOT)) <= set(MAY_IMPORT)


def test_every_engine_module_sits_in_a_layer() -> None:
    loose = [m.path for m in installed_modules() if unit_of(m.name) == ENGINE and m.name != ENGINE]
    assert loose == [], f"put these in one of {', '.join(LAYERS)}"


def test_the_package_root_imports_nothing_of_ballast() -> None:
    (root,) = [m for m in installed_modules() if m.name == ENGINE]
    assert [i.names for i in imports(root) if i.names[0].startswith(NAMESPACE)] == []


def test_dependencies_point_inward() -> None:
    found = installed_modules()
    assert len(found) > 50  # the check is not vacuous: it saw the sources under installed names
    assert {unit_of(m.name) for m in found} >= {*LAYERS, ADAPTERS, STRATEGIES}
    assert upward_imports(found) == []


def test_no_code_imports_the_old_top_level_names() -> None:
    old = frozenset(package_dirs(ROOT).values())  # engine, adapters, strategies, data, examples
    assert {"engine", "adapters", "strategies"} <= old
    assert old_top_level_imports(ROOT, CHECKOUT_CODE, old) == []


def test_no_actor_imports_another() -> None:
    found = installed_modules()
    actors = actor_modules(found)
    assert "ballast.engine.trading.portfolio" in actors  # the check is not vacuous
    assert "ballast.engine.kernel.actor" not in actors  # the base class is not an actor
    assert actor_import_violations(found) == []


# ------------------------------------------------------------------ the checks catch violations


def write(root: Path, files: Mapping[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    """A planted tree shaped like the checkout: the kernel package importing the trading layer
    relatively, a kernel module importing it lazily, a trading module importing the app under
    TYPE_CHECKING through a relative import, an adapter importing a built-in strategy; and what is
    allowed beside them."""
    write(
        tmp_path,
        {
            "engine/__init__.py": '__version__ = "0"\n',
            "engine/kernel/__init__.py": "from .clock import time\nfrom ..trading import regime\n",
            "engine/kernel/clock.py": "import time\nfrom ballast.engine import __version__\n",
            "engine/kernel/config.py": (
                "def f() -> None:\n    from ballast.engine.trading.regime import parse\n"
            ),
            "engine/trading/__init__.py": "",
            "engine/trading/regime.py": "from ..kernel import clock\n",
            "engine/trading/rebalancer.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from ..app.session import Session\n"
            ),
            "engine/app/__init__.py": "from ballast.adapters import sim\n",
            "engine/app/session.py": "import ballast.strategies.threshold\n",
            "adapters/__init__.py": "",
            "adapters/sim.py": "from ballast.strategies import threshold\n",
            "strategies/__init__.py": "",
            "strategies/threshold.py": "from ballast.engine.trading import regime\n",
        },
    )
    dirs = {ENGINE: "engine", ADAPTERS: "adapters", STRATEGIES: "strategies"}
    assert upward_imports(modules(tmp_path, dirs)) == [
        "adapters/sim.py:1: ballast.adapters.sim imports ballast.strategies "
        "(ballast.strategies), but ballast.adapters may import only ballast.adapters, "
        "ballast.engine, ballast.engine.kernel, ballast.engine.strategy, ballast.engine.trading",
        "engine/kernel/__init__.py:2: ballast.engine.kernel imports ballast.engine.trading "
        "(ballast.engine.trading), but ballast.engine.kernel may import only ballast.engine, "
        "ballast.engine.kernel",
        "engine/kernel/config.py:2: ballast.engine.kernel.config imports "
        "ballast.engine.trading.regime (ballast.engine.trading), but ballast.engine.kernel may "
        "import only ballast.engine, ballast.engine.kernel",
        "engine/trading/rebalancer.py:3: ballast.engine.trading.rebalancer imports "
        "ballast.engine.app.session (ballast.engine.app), but ballast.engine.trading may import "
        "only ballast.engine, ballast.engine.kernel, ballast.engine.strategy, "
        "ballast.engine.trading",
    ]


def test_the_check_catches_a_module_outside_the_table_and_a_loose_engine_module(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        {
            "engine/__init__.py": "",
            "engine/drift.py": "from ballast.engine.kernel import clock\n",
            "engine/kernel/__init__.py": "",
            "engine/kernel/clock.py": "",
            "extra/__init__.py": "",
        },
    )
    dirs = {ENGINE: "engine", "ballast.extra": "extra"}
    assert upward_imports(modules(tmp_path, dirs)) == [
        "engine/drift.py:1: ballast.engine.drift imports ballast.engine.kernel "
        "(ballast.engine.kernel), but ballast.engine may import only ballast.engine",
        "extra/__init__.py: ballast.extra belongs to no unit of the table",
    ]


def test_the_old_name_check_catches_a_top_level_import(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "tests/__init__.py": "",
            "tests/test_x.py": (
                "import engine.kernel.bus\n"
                "from strategies import threshold\n"
                "from .support import cli\n"  # relative: tests.support, fine
                "from ballast.engine.kernel import bus\n"
                "import enginex\n"
            ),
        },
    )
    old = frozenset({"engine", "adapters", "strategies"})
    assert old_top_level_imports(tmp_path, ("tests",), old) == [
        "tests/test_x.py:1: imports engine.kernel.bus; use the installed name "
        "ballast.engine.kernel.bus",
        "tests/test_x.py:2: imports strategies; use the installed name ballast.strategies",
    ]


def test_the_actor_check_catches_a_violation(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "",
            "pkg/a.py": (
                "from ballast.engine.kernel.actor import Actor\nclass A(Actor):\n    pass\n"
            ),
            "pkg/sub/b.py": (
                "import ballast.engine.kernel.actor\nfrom .. import a\n"
                "class B(ballast.engine.kernel.actor.Actor):\n    pass\n"
            ),
            "pkg/c.py": "from ballast.pkg.a import A\nclass C(A):\n    pass\n",
            "pkg/d.py": "from ballast.pkg import a\n",  # not an actor: may import actors
        },
    )
    assert actor_import_violations(list(modules(tmp_path, {"ballast.pkg": "pkg"}))) == [
        "ballast.pkg.c imports actor module ballast.pkg.a",
        "ballast.pkg.sub.b imports actor module ballast.pkg.a",
    ]
