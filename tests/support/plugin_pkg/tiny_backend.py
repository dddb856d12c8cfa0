"""A minimal in-tree PEP 517 build backend: builds this one-module package into a wheel.

It reads ``[project]`` (name, version, entry points) and ``[tool.tiny-backend] modules`` from
pyproject.toml and writes the wheel's files, its ``.dist-info`` (METADATA, WHEEL,
entry_points.txt) and RECORD. PEP 517 runs the hooks with the package directory as the cwd.
"""

from __future__ import annotations

import base64
import hashlib
import tomllib
import zipfile
from pathlib import Path
from typing import Any

_WHEEL = "Wheel-Version: 1.0\nGenerator: tiny_backend\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    return []


def build_wheel(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    pyproject = tomllib.loads(Path("pyproject.toml").read_text())
    project = pyproject["project"]
    dist = project["name"].replace("-", "_")
    info = f"{dist}-{project['version']}.dist-info"
    files = {name: Path(name).read_bytes() for name in pyproject["tool"]["tiny-backend"]["modules"]}
    files[f"{info}/METADATA"] = _metadata(project)
    files[f"{info}/WHEEL"] = _WHEEL.encode()
    files[f"{info}/entry_points.txt"] = _entry_points(project.get("entry-points", {}))
    files[f"{info}/RECORD"] = _record(files, f"{info}/RECORD")
    wheel_name = f"{dist}-{project['version']}-py3-none-any.whl"
    with zipfile.ZipFile(Path(wheel_directory) / wheel_name, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
    return wheel_name


def _metadata(project: dict[str, Any]) -> bytes:
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {project['version']}"]
    if "description" in project:
        lines.append(f"Summary: {project['description']}")
    return ("\n".join(lines) + "\n").encode()


def _entry_points(groups: dict[str, dict[str, str]]) -> bytes:
    text = ""
    for group, entries in groups.items():
        text += f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in entries.items())
    return text.encode()


def _record(files: dict[str, bytes], record_name: str) -> bytes:
    rows = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{name},sha256={digest},{len(data)}")
    rows.append(f"{record_name},,")
    return ("\n".join(rows) + "\n").encode()
