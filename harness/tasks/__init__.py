"""Task types and task lookup.

Importing this package registers the task types (one module each). ``get_task`` turns a task id
into a runnable :class:`~harness.tasks.base.Task`; ``list_tasks`` lists what the sources hold.
"""

from __future__ import annotations

import os

from harness.datasets import SOURCES
from harness.spec import TaskSpec
from harness.tasks import (  # noqa: F401  (importing a type registers it)
    classification,
    clustering,
    pair_classification,
    reranking,
    retrieval,
    seqlabel,
    sts,
    trec,
)
from harness.tasks.base import TASK_TYPES, Task
from zoo.errors import ZooError

__all__ = ["get_task", "list_tasks", "supported", "TaskSpec", "Task", "TASK_TYPES"]


def list_tasks(
    data_dir: str | os.PathLike[str] | None = None, *, supported_only: bool = False, source: str | None = None
) -> list[TaskSpec]:
    """Every task the sources can list (the local data dir's folders), sorted by id.

    Args:
        data_dir: see ``harness.datasets.local.resolve_data_dir``.
        supported_only: drop tasks whose type has no implementation yet.
        source: only this source's tasks, with its whole registry when it has one (``catalog()``: mteb's
            1000+ tasks, listed only when asked for by name since importing mteb takes seconds).

    Raises:
        ZooError: an unknown source.
    """
    if source is not None and source not in SOURCES:
        raise ZooError(f"unknown task source {source!r}; sources: {', '.join(sorted(SOURCES))}")
    chosen = SOURCES.values() if source is None else [SOURCES[source]]
    specs = [s for m in chosen for s in (m.catalog() if source and hasattr(m, "catalog") else m.specs(data_dir))]
    return sorted((s for s in specs if supported(s) or not supported_only), key=lambda s: s.id)


def supported(spec: TaskSpec) -> bool:
    """Whether zoobench can run the task: its type is implemented, or its source's tool runs it (mteb)."""
    return spec.type in TASK_TYPES or hasattr(SOURCES.get(spec.source), "task_class")


def get_task(task_id: str, data_dir: str | os.PathLike[str] | None = None) -> Task:
    """A runnable task by id.

    Args:
        task_id: ``<source>/<name>``, e.g. ``local/scifact``.
        data_dir: where ``local/`` tasks live (see ``resolve_data_dir``).

    Returns:
        The task, its type chosen from ``TASK_TYPES``.

    Raises:
        ZooError: unknown source or name (with close matches), absent data (saying where it looked),
            a folder that is not a task, a type not implemented yet, or a main score the type lacks.

    Example:
        >>> task = get_task("local/stsb")
        >>> task.spec.type, task.main_metric
        ('sts', 'cosine_spearman')
    """
    source, _, name = task_id.partition("/")
    if source not in SOURCES or not name:
        raise ZooError(f"unknown task {task_id!r}: ids look like <source>/<name> with source one of {sorted(SOURCES)}")
    spec = SOURCES[source].spec(name, data_dir)
    task_class = getattr(SOURCES[source], "task_class", None)
    if task_class is not None:  # the source's tasks are run by another tool (mteb), which validates its specs
        return task_class(spec)(spec, SOURCES[source])
    cls = TASK_TYPES.get(spec.type)
    if cls is None:
        raise ZooError(f"task {task_id!r}: task type {spec.type!r} is not supported yet")
    if spec.main_score is not None and spec.main_score not in cls.metrics:
        raise ZooError(
            f"task {task_id!r} ({spec.path}): main_score {spec.main_score!r} is not a metric of {spec.type} tasks "
            f"(one of {', '.join(cls.metrics)})"
        )
    return cls(spec, SOURCES[source])
