"""Where a number comes from: the code's revision and the machine, recorded with results and trained models.

Below both ``harness`` (result records) and ``zoo.train`` (training records).
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["code_revision", "git_revision", "hardware", "package_revision", "require_package"]


_NOT_CODE = (":(top,exclude)results", ":(top,exclude)docs", ":(top,exclude,glob)**/*.md")


@functools.cache
def code_revision() -> str:
    """The git commit of this checkout (``+dirty`` when its code has changes), else the package version.

    Changes to result records, docs and Markdown files do not make a tree dirty: ``zoobench run --overwrite``
    rewrites tracked records before it writes the new ones, and neither changes a number.
    """
    revision = git_revision(Path(__file__).resolve().parent.parent)
    if revision is not None:
        return revision
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"zoobench-{version('zoobench')}"
    except PackageNotFoundError:
        return "unknown"


def git_revision(root: Path) -> str | None:
    """HEAD of the git checkout at ``root`` plus ``+dirty`` when tracked code differs from it; None outside git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        rev = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", *_NOT_CODE)
    except (OSError, subprocess.SubprocessError):
        return None
    return rev + ("+dirty" if dirty else "")


@functools.cache
def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    """Where the numbers were measured."""
    info: dict[str, Any] = {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info.update(torch=torch.__version__, threads=torch.get_num_threads())
    return info


def package_revision(package: str) -> str:
    """``pypi-<package>-<version>`` of an installed distribution (a card's revision), ``-missing`` when absent."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"pypi-{package}-{version(package)}"
    except PackageNotFoundError:
        return f"pypi-{package}-missing"


def require_package(module: str, package: str) -> Any:
    """Import ``module``, or a one-line ZooError naming the PyPI ``package`` that provides it."""
    from zoo.errors import ZooError

    try:
        return __import__(module)
    except ImportError as e:
        raise ZooError(f"this model needs the PyPI package {package!r}: pip install {package}") from e
