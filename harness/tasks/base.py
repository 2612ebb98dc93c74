"""Task declarations (``TaskSpec``) and the base class of the task types.

A task TYPE (retrieval, sts, ...) is a subclass of :class:`Task` that implements one hook,
``_evaluate_split``. A task is a ``TaskSpec`` row: which data, which type, which splits. The base
class owns what every type shares: the protocol check, the loop over splits, timing, ``main_score``
and the encoding loop (de-duplicated, length-sorted, with a progress bar).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from harness.cache import EmbeddingCache
from harness.spec import TaskSpec
from zoo.protocols import Encoder, Kind, SparseEncoder

__all__ = [
    "TaskSpec",
    "Task",
    "SplitOutput",
    "TaskOutput",
    "EvalContext",
    "task_type",
    "TASK_TYPES",
    "encode_texts",
    "encode_sparse_texts",
]


@dataclass
class SplitOutput:
    """What a type's hook returns for one split."""

    scores: dict[str, float]
    n_items: int
    run: dict[str, dict[str, float]] | None = None  # ranked lists, stored as a TREC run file
    qrels: dict[str, dict[str, int]] | None = None  # the judgements the run was scored against
    items: dict[str, list[Any]] | None = None  # per-item predictions / gold, stored beside the result


@dataclass
class TaskOutput:
    """Scores of every split (each with ``main_score``), plus runs, items and timings."""

    scores: dict[str, dict[str, float]]
    n_items: dict[str, int]
    runs: dict[str, dict[str, dict[str, float]]]
    qrels: dict[str, dict[str, dict[str, int]]]
    items: dict[str, dict[str, list[Any]]]
    timings: dict[str, float]


@dataclass
class EvalContext:
    """Settings and timers shared by one task evaluation."""

    task_id: str
    batch_size: int = 32
    progress: bool = True
    cache: EmbeddingCache | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def add_time(self, key: str, seconds: float) -> None:
        """Accumulate ``seconds`` under ``key``."""
        self.timings[key] = self.timings.get(key, 0.0) + seconds

    def count(self, key: str, n: int) -> None:
        """Accumulate a count (texts encoded, texts served from the cache) under ``key``."""
        self.timings[key] = self.timings.get(key, 0) + n


TASK_TYPES: dict[str, type[Task]] = {}
CACHE_FLUSH = 8192  # texts encoded between two appends to the embedding cache


def task_type(cls: type[Task]) -> type[Task]:
    """Class decorator: register a task type under ``cls.type`` (once)."""
    if cls.type in TASK_TYPES:
        raise ValueError(f"task type {cls.type!r} is registered twice")
    TASK_TYPES[cls.type] = cls
    return cls


def _model_name(model: Any) -> str:
    card = getattr(model, "card", None)
    return card.name if card is not None else type(model).__name__


class Task:
    """Base of the task types: ``evaluate`` loops over splits and calls ``_evaluate_split``.

    Subclasses set ``type``, ``main_score`` (the default headline metric), ``metrics`` (all the
    metrics ``_evaluate_split`` returns), ``requires`` (the
    protocols of which a model must implement at least one) and implement ``_evaluate_split``.
    """

    type: ClassVar[str]
    main_score: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]
    requires: ClassVar[tuple[type, ...]] = (Encoder,)

    def __init__(self, spec: TaskSpec, source: ModuleType) -> None:
        self.spec = spec
        self.source = source

    @property
    def main_metric(self) -> str:
        """The spec's main score, else the type's."""
        return self.spec.main_score or self.main_score

    def supports(self, model: Any) -> bool:
        """Whether ``model`` implements a protocol this type can use."""
        return any(isinstance(model, p) for p in self.requires)

    def load(self, split: str) -> Any:
        """The data of one split, as the source's loader returns it."""
        return self.source.load(self.spec, split)

    def checksum(self) -> str:
        """A checksum of the task's data, as its source computes it."""
        return self.source.checksum(self.spec)

    def evaluate(
        self, model: Any, *, batch_size: int = 32, progress: bool = True, cache: EmbeddingCache | None = None
    ) -> TaskOutput:
        """Evaluate ``model`` on every split of the task.

        Args:
            model: an object implementing one of ``self.requires``.
            batch_size: encoder batch size.
            progress: show progress bars.
            cache: the embedding cache of this model, if any.

        Returns:
            A :class:`TaskOutput`; each split's scores include ``main_score``.

        Raises:
            TypeError: if the model implements none of the protocols this type needs.
        """
        if not self.supports(model):
            need = " or ".join(p.__name__ for p in self.requires)
            raise TypeError(f"model {_model_name(model)} cannot run {self.type} task {self.spec.id}: needs {need}")
        ctx = EvalContext(self.spec.id, batch_size=batch_size, progress=progress, cache=cache)
        out = TaskOutput({}, {}, {}, {}, {}, ctx.timings)
        for split in self.spec.splits:
            t0 = time.perf_counter()
            data = self.load(split)
            ctx.add_time("load_s", time.perf_counter() - t0)
            t0 = time.perf_counter()
            res = self._evaluate_split(model, data, ctx)
            ctx.add_time("evaluate_s", time.perf_counter() - t0)
            if self.main_metric not in res.scores:
                raise KeyError(f"{self.spec.id}: main score {self.main_metric!r} not among {sorted(res.scores)}")
            out.scores[split] = {**res.scores, "main_score": res.scores[self.main_metric]}
            out.n_items[split] = res.n_items
            if res.run is not None:
                out.runs[split] = res.run
            if res.qrels is not None:
                out.qrels[split] = res.qrels
            if res.items is not None:
                out.items[split] = res.items
        return out

    def _evaluate_split(self, model: Any, data: Any, ctx: EvalContext) -> SplitOutput:
        raise NotImplementedError


def _blocks(
    unique: Sequence[str], rows: Iterable[int], desc: str, ctx: EvalContext
) -> Iterator[tuple[list[int], bool]]:
    """``rows`` of ``unique`` in blocks of ``max(16 * batch size, 512)`` texts, longest first, with a progress
    bar; yields ``(block, is_last)``. Length-sorted blocks give the encoder uniform batches."""
    from tqdm.auto import tqdm

    order = sorted(rows, key=lambda i: -len(unique[i]))
    block = max(ctx.batch_size * 16, 512)
    with tqdm(total=len(order), desc=desc, unit="text", disable=not ctx.progress, leave=False) as bar:
        for start in range(0, len(order), block):
            idx = order[start : start + block]
            yield idx, start + block >= len(order)
            bar.update(len(idx))


def encode_texts(model: Encoder, texts: Sequence[str], kind: Kind, ctx: EvalContext) -> np.ndarray:
    """Embed ``texts`` once each, from the cache where possible, longest first, with a progress bar.

    Texts the cache misses are encoded in length-sorted blocks (uniform batches) and appended to the
    cache every ``CACHE_FLUSH`` texts, so an interrupted run keeps what it encoded.

    Returns:
        ``(len(texts), dim)`` float32 rows in the order of ``texts``; rows are L2-normalised when the
        model's card declares cosine similarity.
    """
    t0 = time.perf_counter()
    unique = list(dict.fromkeys(texts))
    missing, emb = ctx.cache.get(unique, kind) if ctx.cache is not None else (list(range(len(unique))), None)
    ctx.count("texts_cached", len(unique) - len(missing))
    ctx.count("texts_encoded", len(missing))
    to_cache: list[tuple[list[int], np.ndarray]] = []
    for idx, last in _blocks(unique, missing, f"{ctx.task_id} {kind}", ctx):
        vectors = np.asarray(model.encode([unique[i] for i in idx], kind=kind, batch_size=ctx.batch_size))
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():  # a NaN row would outrank everything in top-k search: score it as a zero vector
            ctx.count("texts_nonfinite", int(bad.sum()))
            vectors = np.where(bad[:, None], 0.0, vectors).astype(np.float32)
        if emb is None:
            emb = np.zeros((len(unique), vectors.shape[1]), dtype=np.float32)
        emb[idx] = vectors
        to_cache.append((idx, vectors))
        if ctx.cache is not None and (last or sum(len(i) for i, _ in to_cache) >= CACHE_FLUSH):
            rows = [row for rows_, _ in to_cache for row in rows_]
            ctx.cache.put([unique[r] for r in rows], kind, np.concatenate([v for _, v in to_cache]))
            to_cache = []
    if emb is None:  # no texts at all
        emb = np.zeros((0, model.card.embed_dim or 0), dtype=np.float32)
    if getattr(model.card, "similarity", None) == "cosine":
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        emb /= np.where(norms == 0, 1, norms)
    position = {t: i for i, t in enumerate(unique)}
    ctx.add_time("encode_s", time.perf_counter() - t0)
    return emb[[position[t] for t in texts]]


def encode_sparse_texts(
    model: SparseEncoder, texts: Sequence[str], kind: Kind, ctx: EvalContext
) -> list[dict[str, float]]:
    """Weight the terms of ``texts`` (``model.encode_sparse``) once each, longest first, with a progress bar.

    The sparse counterpart of :func:`encode_texts`, without its disk cache: sparse weights are not cached
    yet, so every call encodes every (unique) text and counts it under ``texts_encoded``. Non-finite
    weights are dropped (a text that had any is counted under ``texts_nonfinite``).

    Returns:
        One ``{term: weight}`` dict per text, in the order of ``texts`` (repeated texts share one dict).
    """
    t0 = time.perf_counter()
    unique = list(dict.fromkeys(texts))
    ctx.count("texts_encoded", len(unique))
    weights: list[dict[str, float]] = [{} for _ in unique]
    for idx, _ in _blocks(unique, range(len(unique)), f"{ctx.task_id} {kind} (sparse)", ctx):
        out = model.encode_sparse([unique[i] for i in idx], kind=kind, batch_size=ctx.batch_size)
        for i, w in zip(idx, out, strict=True):
            weights[i] = {t: float(v) for t, v in w.items() if math.isfinite(v)}
            if len(weights[i]) < len(w):
                ctx.count("texts_nonfinite", 1)
    position = {t: i for i, t in enumerate(unique)}
    ctx.add_time("encode_s", time.perf_counter() - t0)
    return [weights[position[t]] for t in texts]
