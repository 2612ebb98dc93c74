"""Dataset sources: one module per source, each a loader plus its task declarations.

``SOURCES`` maps a ``TaskSpec.source`` to the function that loads one split of such a task.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.datasets import local

if TYPE_CHECKING:
    from harness.tasks.base import TaskSpec

__all__ = ["SOURCES"]


def _load_local(spec: TaskSpec, split: str) -> Any:
    return local.load_split(Path(spec.path), spec.type, split)


SOURCES = {"local": _load_local}
