"""model x tasks -> result records, resumable.

Each finished task is written at once (atomically), so an interrupted suite resumes where it
stopped; a rerun returns the stored records without loading the model or the data. A task runs holding
the lock of its record (``harness.results.FileLock``): a second process on the same model and task waits,
then takes the record (and the cached embeddings) the first wrote; the holder removes what a killed
writer of that record left.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import hashlib
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.results import (
    FileLock,
    TaskResult,
    atomic_write,
    items_path,
    qrels_path,
    result_path,
    run_path,
    temporaries,
    write_qrels,
    write_run,
)
from harness.tasks import Task, get_task
from zoo.cache import EmbeddingCache, default_cache_dir, fingerprint
from zoo.errors import ZooError
from zoo.provenance import code_revision, hardware
from zoo.registry import ModelCard, create_model, get_card

__all__ = ["evaluate", "result_revision", "code_revision", "hardware"]


_PLAIN = re.compile(r"[A-Za-z0-9._-]+")


def result_revision(revision: str, model_kwargs: Mapping[str, Any] | None = None) -> str:
    """The revision results are stored under: the card's, plus the factory options when there are any.

    ``dtype="bfloat16"`` gives ``<revision>+dtype-bfloat16``, so runs of one card with different
    options keep separate records, even those differing only in options the embedding cache ignores
    (a model's ``search_options``, e.g. ``mode=hybrid``). The mapping is one-to-one: options that would not
    read back unambiguously (a key outside ``[A-Za-z0-9_]``, a string with other characters or one that reads as
    a number or bool, a list, ...) give ``<revision>+options=<hash of their canonical JSON>`` instead; the record
    keeps them whole (``model_kwargs``).
    """
    options = dict(model_kwargs or {})
    if all(_plain_option(k, v) for k, v in options.items()):
        return "+".join([revision, *(f"{k}-{v}" for k, v in sorted(options.items()))])
    canonical = json.dumps(options, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)
    return f"{revision}+options={hashlib.sha256(canonical.encode()).hexdigest()[:12]}"


def _plain_option(key: str, value: Any) -> bool:
    """Whether ``key-value`` names the option alone: a plain key, and a finite number, a bool, or a plain string
    that does not read as one of those (``"1"``, ``"True"``)."""
    if not (isinstance(key, str) and _PLAIN.fullmatch(key) and "-" not in key):
        return False
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value not in ("True", "False") and bool(_PLAIN.fullmatch(value))
        return False
    return isinstance(value, bool | int | float) and math.isfinite(value) and bool(_PLAIN.fullmatch(str(value)))


def _default_command(card: ModelCard, task_ids: Sequence[str], model_kwargs: Mapping[str, Any] | None) -> str:
    extra = f", model_kwargs={dict(model_kwargs)!r}" if model_kwargs else ""
    return f"harness.evaluate({card.name!r}, {list(task_ids)!r}{extra})"


def _with_options(task: Task, options: Mapping[str, Any]) -> Task:
    """The same task with ``options`` over its spec's options (a new task: the caller's is unchanged)."""
    return type(task)(dataclasses.replace(task.spec, options={**task.spec.options, **options}), task.source)


def evaluate(
    model: str | Any,
    tasks: Sequence[str | Task],
    *,
    results_dir: str | os.PathLike[str] = "results",
    data_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    batch_size: int = 32,
    progress: bool = True,
    command: str | None = None,
    cache: bool | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    device: str | None = None,
    task_options: Mapping[str, Any] | None = None,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> list[TaskResult]:
    """Evaluate a model on tasks, writing one result record per task.

    Args:
        model: a registry name (loaded only if some task still has to run) or a model object with
            a ``card``.
        tasks: task ids (``local/scifact``) or Task objects.
        results_dir: where records and run files go.
        data_dir: where local tasks live (see ``resolve_data_dir``).
        overwrite: recompute tasks that already have a record.
        batch_size: encoder batch size.
        progress: show progress bars.
        command: recorded in every record (the CLI passes its command line).
        cache: use the embedding cache; ``None`` means yes for a registry name, no for a model
            object (whose weights may change under the same card, e.g. during training).
        cache_dir: the cache root (default ``$ZOOBENCH_CACHE`` or ``~/.cache/zoobench/embeddings``).
        model_kwargs: passed to the model's factory; part of the stored revision (:func:`result_revision`)
            and, except the model's ``search_options`` (``zoo.protocols``), of the cache fingerprint.
        device: where a torch model runs (``auto``, ``cpu``, ``cuda``, ``cuda:1``), given to the factory; not part of
            the revision or the cache fingerprint (the same weights give the same numbers up to float rounding),
            recorded in the records' ``hardware``. Default: the factory's (``auto`` for the zoo's torch families).
        task_options: over every task's spec options (a task.toml ``[options]`` table), e.g. ``{"rerank_depth": 20}``
            for a ``Ranker`` re-ranking BM25's top 20; recorded in the records' ``task_options``.
        log: receives one line per skipped or finished task.

    Returns:
        The records of the tasks that the model could run, in task order (stored ones included).

    Raises:
        ZooError: unknown model or task, bad data, a model that can run none of the tasks, a batch size below 1,
            or a results or cache folder that is a file.

    Example:
        >>> records = evaluate("test-random", ["local/stsb"], results_dir="/tmp/results")
        >>> records[0].main_score, round(records[0].get_score(), 3)
        ('cosine_spearman', 0.461)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ZooError(f"batch size must be at least 1, got {batch_size!r} (--batch-size)")
    for folder, flag in ((results_dir, "--results"), (cache_dir, "--cache-dir")):
        if folder is not None and os.path.exists(folder) and not os.path.isdir(folder):
            raise ZooError(f"{folder} is not a folder ({flag}): name a folder, or one to be created")
    card = get_card(model) if isinstance(model, str) else model.card
    revision = result_revision(card.revision, model_kwargs)
    task_objs = [get_task(t, data_dir) if isinstance(t, str) else t for t in tasks]  # fail early on bad ids
    if task_options:
        task_objs = [_with_options(t, task_options) for t in task_objs]
    command = command or _default_command(card, [t.spec.id for t in task_objs], model_kwargs)
    done: dict[str, TaskResult] = {}
    pending = []
    for task in task_objs:
        stored = _stored(results_dir, card.name, revision, task, overwrite, log)
        if stored is None:
            pending.append(task)
        else:
            done[task.spec.id] = stored
    if not pending:
        return [done[t.spec.id] for t in task_objs]
    # A lazy stand-in: the weights load only if some text misses the cache.
    placed = {"device": device} if device is not None else {}
    instance = create_model(model, lazy=True, **(model_kwargs or {}), **placed) if isinstance(model, str) else model
    emb_cache = None
    if cache if cache is not None else isinstance(model, str):
        # Options that only change how retrieval searches (the model's search_options) share embeddings.
        search_only = set(getattr(instance, "search_options", ()))
        encoder_kwargs = {k: v for k, v in (model_kwargs or {}).items() if k not in search_only}
        emb_cache = EmbeddingCache(cache_dir or default_cache_dir(), fingerprint(card, encoder_kwargs))
    run = _TaskRun(instance, card, revision, dict(model_kwargs or {}), results_dir, batch_size, progress, command, log)
    skipped = []
    try:
        for task in pending:
            if not task.supports(instance):
                skipped.append(task.spec.id)
                log(f"skip {task.spec.id}: {card.name} cannot run {task.spec.type} tasks (needs {task.requirement()})")
                continue
            path = result_path(results_dir, card.name, revision, task.spec.id)
            lock = FileLock(path.with_name(f".{path.name}.lock"))
            if not lock.acquire(wait=False):
                log(f"{task.spec.id}: another process is writing {path}; waiting for it")
                lock.acquire()
            try:  # another process may have written the record (and cached embeddings) since the check above
                if emb_cache is not None:
                    emb_cache.refresh()
                stored = _stored(results_dir, card.name, revision, task, overwrite, log=lambda m: None)
                done[task.spec.id] = stored or run(task, emb_cache)
            finally:
                lock.release()
    finally:
        if emb_cache is not None:
            emb_cache.close()
    if task_objs and not done:
        raise ZooError(f"model {card.name} can run none of the tasks ({', '.join(skipped)})")
    return [done[t.spec.id] for t in task_objs if t.spec.id in done]


def _stored(
    results_dir: str | os.PathLike[str],
    model: str,
    revision: str,
    task: Task,
    overwrite: bool,
    log: Callable[[str], None],
) -> TaskResult | None:
    """The task's stored record, unless ``overwrite`` or it is stale (other data or task options)."""
    path = result_path(results_dir, model, revision, task.spec.id)
    if overwrite or not path.exists():
        return None
    stored = TaskResult.load(path)
    if stored.data_checksum != task.checksum():
        log(f"{task.spec.id}: data changed since {path} was written; recomputing")
        return None
    if _jsonable(stored.task_options) not in map(_jsonable, task.option_sets()):
        log(f"{task.spec.id}: {path} was run with other task options ({stored.task_options}); recomputing")
        return None
    return stored


def _placement(model: Any) -> dict[str, str]:
    """``{"device": "cuda:0"}`` where the model's torch weights are (a lazy stand-in's loaded model), else nothing."""
    inner = getattr(getattr(model, "_model", None) or model, "model", None)
    parameters = getattr(inner, "parameters", None)
    first = next(iter(parameters()), None) if callable(parameters) else None
    return {"device": str(first.device)} if first is not None else {}


def _jsonable(value: Any) -> Any:
    """``value`` as a stored record reads it back (tuples become lists)."""
    return json.loads(json.dumps(value))


@dataclass
class _TaskRun:
    """Runs one task and writes its files and record (the caller holds the record's lock)."""

    model: Any
    card: ModelCard
    revision: str
    model_kwargs: dict[str, Any]
    results_dir: str | os.PathLike[str]
    batch_size: int
    progress: bool
    command: str
    log: Callable[[str], None]

    def __call__(self, task: Task, cache: EmbeddingCache | None) -> TaskResult:
        spec, name, revision, root = task.spec, self.card.name, self.revision, self.results_dir
        outputs = [result_path(root, name, revision, spec.id)]
        for split in spec.splits:
            outputs += [f(root, name, revision, spec.id, split) for f in (run_path, qrels_path, items_path)]
        for leftover in (tmp for out in outputs for tmp in temporaries(out)):
            leftover.unlink(missing_ok=True)  # a killed writer's: the lock is ours
        t0 = time.perf_counter()
        checksum = task.checksum()
        out = task.evaluate(self.model, batch_size=self.batch_size, progress=self.progress, cache=cache)
        total = time.perf_counter() - t0
        for split, run in out.runs.items():
            write_run(run_path(root, name, revision, spec.id, split), run, tag=name)
        for split, qrels in out.qrels.items():
            write_qrels(qrels_path(root, name, revision, spec.id, split), qrels)
        for split, items in out.items.items():
            atomic_write(
                items_path(root, name, revision, spec.id, split), gzip.compress(json.dumps(items).encode(), mtime=0)
            )
        record = TaskResult(
            model=name,
            revision=revision,
            task_id=spec.id,
            task_type=spec.type,
            main_score=task.main_metric,
            scores=out.scores,
            n_items=out.n_items,
            data_checksum=checksum,
            code_revision=code_revision(),
            command=self.command,
            runtime={**{k: round(v, 3) for k, v in out.timings.items()}, "total_s": round(total, 3)},
            hardware={**hardware(), **_placement(self.model)},
            date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            languages=list(spec.languages),
            dataset_revision=spec.revision,
            task_options=task.run_options(self.model),
            model_card=self.card.to_dict(),
            model_kwargs=json.loads(json.dumps(self.model_kwargs, default=repr)),
        )
        record.save(root)
        self.log(f"{name} {spec.id}: {record.main_score} = {record.get_score():.4f} ({total:.1f}s)")
        return record
