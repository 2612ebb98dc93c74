"""The result record: one versioned JSON file per model x task, written atomically.

Layout (the path encodes everything that changes the number)::

    <results>/<model>/<revision>/<source>/<task>.json                 the TaskResult
    <results>/<model>/<revision>/runs/<source>/<task>.<split>.trec.gz  ranked lists (retrieval, reranking)
    <results>/<model>/<revision>/runs/<source>/<task>.<split>.qrels.gz  the judgements they were scored on
    <results>/<model>/<revision>/runs/<source>/<task>.<split>.items.json.gz  per-item predictions
    <results>/_comparisons/<model>+<model>__<hash>.json                 significance reports (harness.significance),
                                                                        never read as records by load_results
    <results>/_claims/claims.json                                       the verdicts of `zoobench claims`

Keys of a record (schema_version 1):

- ``schema_version``: int, bumped on any incompatible change; readers skip unknown versions.
- ``model``, ``revision``: the registry name and the weights' revision (from the model card).
- ``model_card``: the card as a dict (family, params, embed_dim, max_tokens, prompts, pooling, ...).
- ``task_id``, ``task_type``, ``languages``, ``main_score`` (the metric name).
- ``task_options``: the task's settings that change numbers (e.g. ``ignore_identical_ids``).
- ``scores``: ``{split: {metric: value, "main_score": value}}``, metrics in ranx syntax, 0..1 scale.
- ``n_items``: ``{split: number of queries / pairs / texts evaluated}``.
- ``data_checksum``: sha256 of the task's data files; ``dataset_revision``: the source's revision.
- ``code_revision``: git commit of zoobench (``+dirty`` if the tree had changes), else its version.
- ``command``: the command line that produced the record.
- ``runtime``: seconds: ``load_s``, ``encode_s``, ``evaluate_s``, ``total_s``.
- ``hardware``: cpu, cores, platform, python, torch version (when imported).
- ``date``: ISO-8601 UTC time the record was written.
- ``model_kwargs``: the factory options of the run (the revision names them, or only their hash).

Writers take a lock per record (:class:`FileLock` on ``.<task>.json.lock`` beside it), so identical concurrent
runs compute a record once; each file is written atomically (:func:`atomic_write`), and the lock holder removes
the temporaries a killed writer left (:func:`temporaries`).
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections.abc import Iterator
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.metrics import trec_sorted
from zoo.errors import ZooError
from zoo.files import FileLock, atomic_write, temporaries  # noqa: F401  (re-exported: the harness writes through these)

__all__ = [
    "SCHEMA_VERSION",
    "TaskResult",
    "result_path",
    "run_path",
    "qrels_path",
    "items_path",
    "atomic_write",
    "temporaries",
    "FileLock",
    "write_run",
    "read_run",
    "write_qrels",
    "read_qrels",
    "load_results",
    "COMPARISONS_DIR",
    "CLAIMS_DIR",
]

SCHEMA_VERSION = 1
COMPARISONS_DIR = "_comparisons"  # top-level folder of a results dir holding significance reports, not records
CLAIMS_DIR = "_claims"  # top-level folder holding the verdicts of `zoobench claims` (harness.claims), not records


@dataclass
class TaskResult:
    """One model's scores on one task (see the module docstring for every key)."""

    model: str
    revision: str
    task_id: str
    task_type: str
    main_score: str
    scores: dict[str, dict[str, float]]
    n_items: dict[str, int]
    data_checksum: str
    code_revision: str
    command: str
    runtime: dict[str, float]
    hardware: dict[str, Any]
    date: str
    languages: list[str] = field(default_factory=list)
    dataset_revision: str | None = None
    task_options: dict[str, Any] = field(default_factory=dict)
    model_card: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def get_score(self, split: str | None = None, metric: str = "main_score") -> float:
        """A score of one split (default ``test`` if evaluated, else the first); ``main_score`` by default."""
        return self.scores[split or ("test" if "test" in self.scores else next(iter(self.scores)))][metric]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "<dict>") -> TaskResult:
        """Validate and build a record; ``source`` names the file in errors.

        Raises:
            ZooError: unknown schema version or missing keys.
        """
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ZooError(f"{source}: unknown result schema version {d.get('schema_version')!r}")
        fields = cls.__dataclass_fields__
        names = set(fields)
        required = {n for n, f in fields.items() if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - set(d))
        if missing:
            raise ZooError(f"{source}: result record lacks {', '.join(missing)}")
        _check_scores(d["scores"], f"{source}: scores")
        return cls(**{k: v for k, v in d.items() if k in names})

    def save(self, results_dir: str | os.PathLike[str]) -> Path:
        """Write atomically to :func:`result_path`; returns the path.

        Raises:
            ZooError: a score that is not a finite number (naming the task and the metric).
        """
        path = result_path(results_dir, self.model, self.revision, self.task_id)
        _check_scores(self.scores, f"{self.task_id}: scores")
        atomic_write(path, json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False).encode() + b"\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TaskResult:
        """Read one record.

        Raises:
            ZooError: unreadable JSON or an invalid record (the message names the file).
        """
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ZooError(f"{path}: unreadable result record ({e})") from None
        if not isinstance(d, dict):
            raise ZooError(f"{path}: result record is not a JSON object")
        return cls.from_dict(d, source=str(path))


def _check_scores(scores: Any, where: str) -> None:
    """``{split: {metric: finite number, "main_score": ...}}`` with at least one split, else a ZooError."""
    if not isinstance(scores, dict):
        raise ZooError(f"{where} must be a table of splits, got {scores!r}")
    if not scores:
        raise ZooError(f"{where} is empty: no split was evaluated")
    for split, metrics in scores.items():
        if not isinstance(metrics, dict) or "main_score" not in metrics:
            raise ZooError(f"{where}.{split} has no main_score")
        for metric, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ZooError(f"{where}.{split}.{metric} must be a finite number, got {value!r}")


def _safe(part: str) -> str:
    if not part or part in (".", "..") or "\\" in part or "\0" in part:
        raise ZooError(f"invalid name for a results path: {part!r}")
    return part


def _model_dir(results_dir: str | os.PathLike[str], model: str, revision: str) -> Path:
    return Path(results_dir) / _safe(model.replace("/", "__")) / _safe(revision.replace("/", "__"))


def result_path(results_dir: str | os.PathLike[str], model: str, revision: str, task_id: str) -> Path:
    """``<results>/<model>/<revision>/<task_id>.json``."""
    parts = [_safe(p) for p in task_id.split("/")]
    return _model_dir(results_dir, model, revision).joinpath(*parts[:-1], f"{parts[-1]}.json")


def run_path(results_dir: str | os.PathLike[str], model: str, revision: str, task_id: str, split: str) -> Path:
    """``<results>/<model>/<revision>/runs/<task_id>.<split>.trec.gz``."""
    base = _model_dir(results_dir, model, revision) / "runs"
    return base.joinpath(*map(_safe, task_id.split("/"))).with_name(f"{task_id.split('/')[-1]}.{_safe(split)}.trec.gz")


def items_path(results_dir: str | os.PathLike[str], model: str, revision: str, task_id: str, split: str) -> Path:
    """``<results>/<model>/<revision>/runs/<task_id>.<split>.items.json.gz``."""
    return run_path(results_dir, model, revision, task_id, split).with_name(
        f"{task_id.split('/')[-1]}.{_safe(split)}.items.json.gz"
    )


def qrels_path(results_dir: str | os.PathLike[str], model: str, revision: str, task_id: str, split: str) -> Path:
    """``<results>/<model>/<revision>/runs/<task_id>.<split>.qrels.gz``."""
    return run_path(results_dir, model, revision, task_id, split).with_name(
        f"{task_id.split('/')[-1]}.{_safe(split)}.qrels.gz"
    )


def write_qrels(path: Path, qrels: dict[str, dict[str, int]]) -> None:
    """Write TREC qrels (``qid 0 docid rel``), gzip-compressed, atomically."""
    lines = [f"{qid} 0 {did} {rel}" for qid, docs in qrels.items() for did, rel in docs.items()]
    atomic_write(path, gzip.compress("".join(line + "\n" for line in lines).encode(), mtime=0))


def _gz_fields(path: str | os.PathLike[str], names: str) -> Iterator[list[str]]:
    """The whitespace-separated fields of each non-blank line of a gzipped TREC file."""
    n = len(names.split())
    lineno = 0
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                parts = line.split()
                if parts and len(parts) != n:
                    raise ZooError(f"{path}:{lineno}: expected {n} fields ({names}), got {len(parts)}")
                if parts:
                    yield parts
    except (OSError, EOFError, UnicodeDecodeError) as e:  # gzip.BadGzipFile is an OSError
        raise ZooError(
            f"{path}: unreadable after line {lineno} ({type(e).__name__}: {e}); "
            "rerun the model on the task with --overwrite"
        ) from None


def read_qrels(path: str | os.PathLike[str]) -> dict[str, dict[str, int]]:
    """Read (gzipped) TREC qrels back into ``{qid: {docid: relevance}}``."""
    qrels: dict[str, dict[str, int]] = {}
    for qid, _, did, rel in _gz_fields(path, "qid 0 docid rel"):
        qrels.setdefault(qid, {})[did] = int(rel)
    return qrels


def write_run(path: Path, run: dict[str, dict[str, float]], tag: str) -> None:
    """Write a TREC run file (``qid Q0 docid rank score tag``), gzip-compressed, atomically."""
    lines = []
    for qid, docs in run.items():
        ranked = trec_sorted(docs)
        # repr: the shortest text that reads back as the same float, so no two scores tie after a round trip
        # (6 decimals made near-equal scores equal, and the metric recomputed from the file differ from the record's)
        lines.extend(f"{qid} Q0 {did} {rank} {float(score)!r} {tag}" for rank, (did, score) in enumerate(ranked, 1))
    atomic_write(path, gzip.compress("".join(line + "\n" for line in lines).encode(), mtime=0))


def read_run(path: str | os.PathLike[str]) -> dict[str, dict[str, float]]:
    """Read a (gzipped) TREC run file back into ``{qid: {docid: score}}``."""
    run: dict[str, dict[str, float]] = {}
    for qid, _, did, _, score, _ in _gz_fields(path, "qid Q0 docid rank score tag"):
        run.setdefault(qid, {})[did] = float(score)
    return run


def load_results(results_dir: str | os.PathLike[str]) -> tuple[list[TaskResult], list[str]]:
    """Every record under ``results_dir``, and a warning for each file that could not be read."""
    records, warnings = [], []
    root = Path(results_dir)
    for path in sorted(root.rglob("*.json")) if root.is_dir() else []:
        if path.relative_to(root).parts[0] in (COMPARISONS_DIR, CLAIMS_DIR):
            continue
        try:
            records.append(TaskResult.load(path))
        except ZooError as e:
            warnings.append(str(e))
    return records, warnings
