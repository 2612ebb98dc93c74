"""Task declarations (``TaskSpec``) and the base class of the task types.

A task TYPE (retrieval, sts, ...) is a subclass of :class:`Task` that implements one hook,
``_evaluate_split``. A task is a ``TaskSpec`` row: which data, which type, which splits. The base
class owns what every type shares: the protocol check, the loop over splits, timing, ``main_score``
and the encoding loop (de-duplicated, length-sorted, with a progress bar).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from harness.spec import TaskSpec
from zoo.cache import EmbeddingCache
from zoo.protocols import Encoder, HybridEncoder, Kind, SparseEncoder, takes_instruction

__all__ = [
    "TaskSpec",
    "Task",
    "SplitOutput",
    "TaskOutput",
    "EvalContext",
    "ItemStat",
    "task_type",
    "TASK_TYPES",
    "encode_texts",
    "encode_sparse_texts",
    "encode_hybrid_texts",
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
    instruction: str = ""  # the task's, for a model whose card prompts take one (zoo.protocols.INSTRUCTION)
    timings: dict[str, float] = field(default_factory=dict)

    def add_time(self, key: str, seconds: float) -> None:
        """Accumulate ``seconds`` under ``key``."""
        self.timings[key] = self.timings.get(key, 0.0) + seconds

    def count(self, key: str, n: int) -> None:
        """Accumulate a count (texts encoded, texts served from the cache) under ``key``."""
        self.timings[key] = self.timings.get(key, 0) + n


@dataclass(frozen=True)
class ItemStat:
    """How the paired bootstrap (``harness.significance``) recomputes a metric from a split's stored items.

    ``fn(items, w)`` maps multiplicity weights ``w`` of shape ``(rows, n)`` -- how often each of the ``n`` units
    occurs in each resample -- to one value per row; ``w = ones((1, n))`` must give the recorded score.
    """

    fn: Callable[[Mapping[str, Any], np.ndarray], np.ndarray]
    length_key: str  # the items field with one entry per resampling unit
    shared_keys: tuple[str, ...] = ()  # fields that must be equal across models (the gold data)


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

    Subclasses set ``type``, ``main_score`` (the default headline metric), ``instruction`` (what an
    instruction-following encoder is told when the spec has none), ``metrics`` (all the
    metrics ``_evaluate_split`` returns), ``requires`` (the
    protocols of which a model must implement at least one) and implement ``_evaluate_split``. A type whose
    per-item statistics live with it (rather than in ``harness.significance.ITEM_STATS``) sets ``item_stats``:
    ``{metric: ItemStat}``.
    """

    type: ClassVar[str]
    main_score: ClassVar[str]
    instruction: ClassVar[str] = "Retrieve semantically similar text."
    metrics: ClassVar[tuple[str, ...]]
    requires: ClassVar[tuple[type, ...]] = (Encoder,)
    item_stats: ClassVar[Mapping[str, ItemStat]] = {}

    def __init__(self, spec: TaskSpec, source: ModuleType) -> None:
        self.spec = spec
        self.source = source

    @property
    def task_instruction(self) -> str:
        """The spec's instruction, else the type's (``zoo.protocols.INSTRUCTION``)."""
        return self.spec.instruction or self.instruction

    @property
    def main_metric(self) -> str:
        """The spec's main score, else the type's."""
        return self.spec.main_score or self.main_score

    def run_options(self, model: Any) -> dict[str, Any]:
        """The settings a record of ``model`` on this task carries (``task_options``): the spec's options."""
        return dict(self.spec.options)

    def option_sets(self) -> list[dict[str, Any]]:
        """Every ``run_options`` this task can give; a stored record with others is stale (the runner recomputes it)."""
        return [dict(self.spec.options)]

    def supports(self, model: Any) -> bool:
        """Whether ``model`` implements a protocol this type can use."""
        return any(isinstance(model, p) for p in self.requires)

    def requirement(self) -> str:
        """What a model must be to run this task, for messages: the protocol names of ``requires``."""
        return " or ".join(p.__name__ for p in self.requires)

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
            raise TypeError(
                f"model {_model_name(model)} cannot run {self.type} task {self.spec.id}: needs {self.requirement()}"
            )
        ctx = EvalContext(
            self.spec.id, batch_size=batch_size, progress=progress, cache=cache, instruction=self.task_instruction
        )
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


# The model method computing one output alone; a HybridEncoder computes both from one pass.
_METHODS = {"dense": "encode", "sparse": "encode_sparse"}


def _forward(
    model: Any, texts: list[str], kind: Kind, batch_size: int, outputs: tuple[str, ...], extra: dict[str, str]
) -> dict[str, Any]:
    """``{output: values}`` of ``texts``: one ``encode_hybrid`` call for both outputs when the model has it.
    ``extra``: ``{"instruction": ...}`` for a model whose card prompt takes one, else empty."""
    if len(outputs) > 1 and isinstance(model, HybridEncoder):
        dense, sparse = model.encode_hybrid(texts, kind=kind, batch_size=batch_size, **extra)
        return {"dense": dense, "sparse": sparse}
    return {o: getattr(model, _METHODS[o])(texts, kind=kind, batch_size=batch_size, **extra) for o in outputs}


def _finite_rows(vectors: Any, ctx: EvalContext) -> list[np.ndarray]:
    """float32 rows, a non-finite one as zeros: a NaN row would outrank everything in top-k search."""
    vectors = np.asarray(vectors, dtype=np.float32)
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        ctx.count("texts_nonfinite", int(bad.sum()))
        vectors = np.where(bad[:, None], 0.0, vectors).astype(np.float32)
    return list(vectors)


def _finite_terms(weights: Sequence[Mapping[str, float]], ctx: EvalContext) -> list[dict[str, float]]:
    """Each dict without its non-finite weights, the rest as float32 values (what the cache stores and the
    sparse scorer computes in, so a cached and a fresh run score alike)."""
    out = []
    for w in weights:
        values = np.asarray(list(w.values()), dtype=np.float32)
        finite = np.isfinite(values)
        if not finite.all():
            ctx.count("texts_nonfinite", 1)
        out.append({t: v for t, v, ok in zip(w, values.tolist(), finite.tolist(), strict=True) if ok})
    return out


_CLEAN = {"dense": _finite_rows, "sparse": _finite_terms}


def _encode(
    model: Any, texts: Sequence[str], kind: Kind, ctx: EvalContext, outputs: tuple[str, ...]
) -> dict[str, list]:
    """``{output: one value per text}`` (``"dense"`` rows, ``"sparse"`` dicts), in the order of ``texts``.

    Each unique text is looked up in the cache. What a text lacks is computed by one model call for all its
    missing outputs (:func:`_forward`), in length-sorted blocks (uniform batches), and appended to the cache
    every ``CACHE_FLUSH`` texts, so an interrupted run keeps what it encoded. ``texts_encoded`` counts the
    texts the model saw, ``texts_cached`` those it did not. A model whose card prompt for ``kind`` takes an
    instruction (``zoo.protocols.takes_instruction``) is given the task's, and the cache key holds it.
    """
    t0 = time.perf_counter()
    unique = list(dict.fromkeys(texts))
    caches = {} if ctx.cache is None else {"dense": ctx.cache, "sparse": ctx.cache.sparse}
    card = getattr(model, "card", None)
    extra = {"instruction": ctx.instruction} if card is not None and takes_instruction(card, kind) else {}
    key = f"{kind}\0{ctx.instruction}" if extra else kind  # the cache's kind: embeddings differ per instruction
    found: dict[str, list[Any]] = {}  # output -> value per unique text, None where it must be computed
    for o in outputs:
        missing, hits = caches[o].get(unique, key) if o in caches else (range(len(unique)), None)
        found[o] = [None] * len(unique) if hits is None else list(hits)
        for i in missing:
            found[o][i] = None
    groups: dict[tuple[str, ...], list[int]] = {}  # the outputs some texts lack -> those texts
    for i in range(len(unique)):
        lacking = tuple(o for o in outputs if found[o][i] is None)
        if lacking:
            groups.setdefault(lacking, []).append(i)
    n_encoded = sum(len(rows) for rows in groups.values())
    ctx.count("texts_cached", len(unique) - n_encoded)
    ctx.count("texts_encoded", n_encoded)
    for lacking, rows in groups.items():
        pending: list[int] = []  # rows computed but not yet in the cache
        for idx, last in _blocks(unique, rows, f"{ctx.task_id} {kind} {'+'.join(lacking)}", ctx):
            out = _forward(model, [unique[i] for i in idx], kind, ctx.batch_size, lacking, extra)
            for o in lacking:
                for i, value in zip(idx, _CLEAN[o](out[o], ctx), strict=True):
                    found[o][i] = value
            pending += idx
            if last or len(pending) >= CACHE_FLUSH:
                for o in lacking:
                    if o in caches:
                        caches[o].put([unique[i] for i in pending], key, [found[o][i] for i in pending])
                pending = []
    position = {t: i for i, t in enumerate(unique)}
    ctx.add_time("encode_s", time.perf_counter() - t0)
    return {o: [found[o][position[t]] for t in texts] for o in outputs}


def _stack(model: Encoder, rows: list[np.ndarray]) -> np.ndarray:
    """``(len(rows), dim)`` float32, L2-normalised rows when the model's card declares cosine similarity."""
    if not rows:
        return np.zeros((0, model.card.embed_dim or 0), dtype=np.float32)
    emb = np.stack(rows)  # a copy: cached rows are never changed
    if getattr(model.card, "similarity", None) == "cosine":
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        emb /= np.where(norms == 0, 1, norms)
    return emb


def encode_texts(model: Encoder, texts: Sequence[str], kind: Kind, ctx: EvalContext) -> np.ndarray:
    """Embed ``texts`` once each, from the cache where possible, longest first, with a progress bar.

    Returns:
        ``(len(texts), dim)`` float32 rows in the order of ``texts``; rows are L2-normalised when the
        model's card declares cosine similarity, and a non-finite row is zeros (``texts_nonfinite``).
    """
    return _stack(model, _encode(model, texts, kind, ctx, ("dense",))["dense"])


def encode_sparse_texts(
    model: SparseEncoder, texts: Sequence[str], kind: Kind, ctx: EvalContext
) -> list[dict[str, float]]:
    """Weight the terms of ``texts`` (``model.encode_sparse``) once each, from the cache where possible.

    Non-finite weights are dropped (a text that had any is counted under ``texts_nonfinite``).

    Returns:
        One ``{term: weight}`` dict per text (float32 values), in the order of ``texts`` (repeated texts share
        one dict).
    """
    return _encode(model, texts, kind, ctx, ("sparse",))["sparse"]


def encode_hybrid_texts(
    model: Any, texts: Sequence[str], kind: Kind, ctx: EvalContext
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """:func:`encode_texts` and :func:`encode_sparse_texts` at once: a text lacking both outputs in the cache
    goes through the model once (``encode_hybrid`` of a ``HybridEncoder``), one lacking one output only for it.

    Args:
        model: an ``Encoder`` and ``SparseEncoder``.
        texts: the texts.
        kind: ``"query"`` or ``"document"``.
        ctx: the evaluation context (batch size, cache, timers).
    """
    out = _encode(model, texts, kind, ctx, ("dense", "sparse"))
    return _stack(model, out["dense"]), out["sparse"]
