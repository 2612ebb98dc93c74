"""The task declaration, shared by the sources (which write them) and the task types (which run them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["TaskSpec"]


@dataclass(frozen=True)
class TaskSpec:
    """A task declaration.

    Attributes:
        id: ``<source>/<name>``, e.g. ``local/scifact``.
        type: a key of ``TASK_TYPES``.
        source: a key of ``harness.datasets.SOURCES`` (the module that lists, loads and checksums it).
        path: where the source finds the data (a folder for ``local``).
        splits: the evaluation splits.
        languages: ISO 639-1 codes (``en``, ``zh``) or ``multilingual``.
        main_score: the headline metric; ``None`` means the type's default.
        train_split: the split a classifier is trained on (classification only).
        description, license, revision, citation: provenance shown in listings and records.
        instruction: what an instruction-following encoder is told the task is (``zoo.protocols.INSTRUCTION``);
            empty: the task type's default.
        options: type-specific settings that change the numbers (recorded with every result).
    """

    id: str
    type: str
    source: str
    path: str
    splits: tuple[str, ...] = ("test",)
    languages: tuple[str, ...] = ("en",)
    main_score: str | None = None
    train_split: str | None = None
    description: str = ""
    license: str | None = None
    revision: str | None = None
    citation: str | None = None
    instruction: str = ""
    options: dict[str, Any] = field(default_factory=dict, hash=False)
