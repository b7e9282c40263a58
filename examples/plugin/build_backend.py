"""A tiny PEP 517 build backend: a wheel of one module, with its entry points.

It reads ``[project]`` from pyproject.toml (name, version, description,
requires-python, dependencies, entry-points) and packs the module named after the
project (``deliberate-example`` -> ``deliberate_example.py``). setuptools would do the
same, but building a wheel with it needs setuptools 70.1 or the ``wheel`` package,
which an offline machine may not have; this needs only Python 3.11 (or tomli on 3.10).
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
import zipfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


def _project() -> dict:
    return tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))["project"]


def _names(project: dict) -> tuple[str, str, str]:
    """(distribution file name, version, module name)."""
    name = re.sub(r"[-_.]+", "_", project["name"]).lower()
    return name, project["version"], name


def _metadata(project: dict) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {project['version']}"]
    if "description" in project:
        lines.append(f"Summary: {project['description']}")
    if "requires-python" in project:
        lines.append(f"Requires-Python: {project['requires-python']}")
    lines += [f"Requires-Dist: {dependency}" for dependency in project.get("dependencies", [])]
    return "\n".join(lines) + "\n"


def _entry_points(project: dict) -> str:
    groups = project.get("entry-points", {})
    return "".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in entries.items()) + "\n"
        for group, entries in groups.items()
    )


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_wheel(wheel_directory: str, config_settings: dict | None = None, metadata_directory: str | None = None) -> str:
    project = _project()
    name, version, module = _names(project)
    info = f"{name}-{version}.dist-info"
    files = {
        f"{module}.py": Path(f"{module}.py").read_bytes(),
        f"{info}/METADATA": _metadata(project).encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: build_backend\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": _entry_points(project).encode(),
    }
    record = "".join(_record_line(path, data) + "\n" for path, data in files.items()) + f"{info}/RECORD,,\n"
    filename = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(Path(wheel_directory) / filename, "w", zipfile.ZIP_DEFLATED) as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
        wheel.writestr(f"{info}/RECORD", record)
    return filename


def build_sdist(sdist_directory: str, config_settings: dict | None = None) -> str:
    project = _project()
    name, version, module = _names(project)
    base = f"{name}-{version}"
    filename = f"{base}.tar.gz"
    with tarfile.open(Path(sdist_directory) / filename, "w:gz") as sdist:
        for path in ("pyproject.toml", "build_backend.py", f"{module}.py"):
            sdist.add(path, arcname=f"{base}/{path}")
        info = _metadata(project).encode()
        member = tarfile.TarInfo(f"{base}/PKG-INFO")
        member.size = len(info)
        sdist.addfile(member, io.BytesIO(info))
    return filename
