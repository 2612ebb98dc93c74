"""Task types and task lookup.

Importing this package registers the task types (one module each). ``get_task`` turns a task id
into a runnable :class:`~harness.tasks.base.Task`; ``list_tasks`` lists what a data dir holds.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from harness.datasets import SOURCES, local
from harness.tasks import classification, clustering, pair_classification, reranking, retrieval, sts  # noqa: F401
from harness.tasks.base import TASK_TYPES, Task, TaskSpec
from zoo.errors import ZooError

__all__ = ["get_task", "list_tasks", "TaskSpec", "Task", "TASK_TYPES"]


def _spec(task_id: str, folder: Path, info: dict) -> TaskSpec:
    return TaskSpec(
        id=task_id,
        type=info["type"],
        source="local",
        path=str(folder),
        splits=tuple(info["splits"]),
        languages=tuple(info["languages"]),
        main_score=info.get("main_score"),
        train_split=info.get("train_split"),
        description=info.get("description", ""),
        revision=info.get("revision"),
    )


def list_tasks(data_dir: str | os.PathLike[str] | None = None, *, supported_only: bool = False) -> list[TaskSpec]:
    """Every task the data dir holds (``local/<folder>``), sorted by id.

    Args:
        data_dir: see ``harness.datasets.local.resolve_data_dir``.
        supported_only: drop tasks whose type has no implementation yet.
    """
    specs = [
        _spec(tid, folder, info) for tid, (folder, info) in local.discover(local.resolve_data_dir(data_dir)).items()
    ]
    return [s for s in specs if s.type in TASK_TYPES or not supported_only]


def get_task(task_id: str, data_dir: str | os.PathLike[str] | None = None) -> Task:
    """A runnable task by id.

    Args:
        task_id: ``<source>/<name>``, e.g. ``local/scifact``.
        data_dir: where ``local/`` tasks live (see ``resolve_data_dir``).

    Returns:
        The task, its type chosen from ``TASK_TYPES``.

    Raises:
        ZooError: unknown source or name (with close matches), absent data (saying where it looked),
            a folder that is not a task, or a type not implemented yet.

    Example:
        >>> task = get_task("local/stsb")
        >>> task.spec.type, task.main_metric
        ('sts', 'cosine_spearman')
    """
    source, _, name = task_id.partition("/")
    if source not in SOURCES or not name:
        raise ZooError(f"unknown task {task_id!r}: ids look like <source>/<name> with source one of {sorted(SOURCES)}")
    root = local.resolve_data_dir(data_dir)
    folder = root / name
    if not folder.is_dir():
        names = [p.name for p in root.iterdir() if p.is_dir()]
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join('local/' + c for c in close)}?" if close else ""
        raise ZooError(f"unknown task {task_id!r}: no folder {name!r} in data dir {root}{hint}")
    info = local.detect(folder)
    if info is None:
        raise ZooError(f"task {task_id!r}: {folder} holds no evaluation split in a known format (training data?)")
    if info["type"] not in TASK_TYPES:
        raise ZooError(f"task {task_id!r}: task type {info['type']!r} is not supported yet")
    spec = _spec(task_id, folder, info)
    return TASK_TYPES[spec.type](spec, SOURCES[spec.source])
