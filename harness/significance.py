"""Significance tests between models, computed from their stored results (a model is never run).

``compare(["bm25", "minilm-l6.st"], ["local/scifact", "local/stsb"])`` finds each model's records in
the results folder (``name``: the newest revision that has every task, preferring runs without factory
options; ``name@revision``; or ``name+options``: the runs made with those options, e.g.
``mgte-tiny.mlm+mode-sparse``), reads the run / qrels / items files beside them and tests every pair of
models on every task:

- **Ranked lists** (retrieval, reranking: any record with a stored run and qrels). Per-query values
  of the metric come from ranx over the stored run, built as :func:`harness.metrics.evaluate_run`
  builds it (trec_eval tie order), so their mean equals the record's score (checked; a metric the
  stored top-100 run cannot reproduce, such as ``recall@1000``, is refused). ``student`` (paired
  t-test) and ``tukey`` (HSD over all compared models) are ``ranx.compare``'s own p-values; note
  that ranx's Tukey HSD (``scipy.stats.tukey_hsd``) treats the per-query scores as independent
  groups, not pairs, so it is far more conservative than the paired tests.
  ``fisher`` is ranx's randomization test (each query's two scores swapped with probability 1/2;
  p = share of ``n_resamples`` permutations whose |mean difference| >= the observed one), computed
  here with a seeded generator: ranx's numba version ignores its seed under parallel execution and
  returns a different p on every call. A p of 0 means below ``1 / n_resamples``.
- **Items** (sts, pair_classification, classification, clustering: per-item predictions). A paired
  bootstrap: every resample draws the same item indices for all models, and the statistic is
  recomputed on it: Spearman (or Pearson) of pred vs gold for sts; average precision (ties as
  sklearn) for pair classification; the mean of each test item's fraction correct over the 10
  experiments (= accuracy) for classification; the mean of the 10 bootstrap V-measures for
  clustering. Clustering is weak evidence: its "items" are only 10 paired k-means runs (on the same
  bootstrap samples of texts), so the interval is coarse and says nothing about other text samples. A task type
  may own its statistics (``Task.item_stats``, see :func:`item_stats`): seqlabel resamples sentences and
  recomputes F1 / precision / recall from their summed span counts.
  Two-sided p from the bootstrap distribution of the difference shifted to zero:
  ``p = (1 + #{|d* - d| >= |d|}) / (n_resamples + 1)``.

The confidence interval of the difference ``B - A`` (A listed before B) is always the percentile
interval of a seeded paired bootstrap (over queries for ranked lists), at level ``1 - alpha``.
Identical systems get p = 1 (ranx's t-test gives NaN when every difference is zero). Per pair of
models, the p-values of all (task, split) rows are adjusted across tasks with Holm (default),
Bonferroni or none; a row's winner is the better model (by the metric's direction) when the adjusted
p <= alpha, else ``"tie"``.

Each comparison is stored as ``<results>/_comparisons/<label>+<label>__<key>.json`` where ``key`` is a
hash of the models with their revisions, the tasks and the settings (see :func:`comparison_path`);
``harness.results.load_results`` skips that folder. The file holds :meth:`Report.to_dict`::

    {
      "schema_version": 1, "kind": "zoobench.comparison", "key": "3fa2c1d09b7e",
      "models": [{"label": "bm25", "name": "bm25", "revision": "lucene-k1-0.9-b-0.4"}, ...],
      "tasks": ["local/scifact", ...],
      "settings": {"metric": null, "stat_test": "student", "alpha": 0.05, "confidence": 0.95,
                   "correction": "holm", "n_resamples": 10000, "seed": 42},
      "code_revision": "<git commit>", "date": "<ISO-8601 UTC>",
      "rows": [{"task_id": "local/scifact", "split": "test", "task_type": "retrieval",
                "metric": "ndcg@10", "higher_is_better": true, "test": "student", "n": 300,
                "model_a": "bm25", "model_b": "minilm-l6.st", "score_a": 0.68, "score_b": 0.64,
                "delta": -0.04, "ci_low": -0.07, "ci_high": -0.01, "p_value": 0.01,
                "p_adjusted": 0.01, "significant": true, "winner": "bm25"}, ...]
    }

Scores are on the 0..1 scale, ``delta = score_b - score_a``, ``test`` is the stat test for ranked
lists or ``"bootstrap"``, ``n`` the number of paired queries / items, ``winner`` a model label or
``"tie"``. A label is the model name, or ``name@revision`` when one name appears twice.
"""

from __future__ import annotations

import datetime as dt
import difflib
import gzip
import hashlib
import io
import json
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.results import (
    CLAIMS_DIR,
    COMPARISONS_DIR,
    TaskResult,
    atomic_write,
    items_path,
    qrels_path,
    read_qrels,
    read_run,
    result_path,
    run_path,
)
from harness.tasks.base import TASK_TYPES, ItemStat
from zoo.errors import ZooError

__all__ = [
    "compare",
    "find_records",
    "Report",
    "Comparison",
    "ModelRef",
    "Settings",
    "comparison_path",
    "holm",
    "item_stats",
    "STAT_TESTS",
    "CORRECTIONS",
]

SCHEMA_VERSION = 1
_MAX_CELLS = 4_000_000  # resample rows x items per chunk: bounds memory (~32 MB per float64 matrix)
_RECORD_TOLERANCE = 1e-6  # recomputed vs recorded score


# RECORDS ==========================================================================================


@dataclass(frozen=True)
class ModelRef:
    """A compared model: its label in tables and rows, registry name and weights revision."""

    label: str
    name: str
    revision: str


@dataclass(frozen=True)
class _Model:
    ref: ModelRef
    records: Mapping[str, TaskResult]  # task_id -> record


def _model_dir(root: Path, name: str) -> Path:
    return root / name.replace("/", "__")


def _stored_models(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in (COMPARISONS_DIR, CLAIMS_DIR))


def _stored_tasks(rev_dir: Path) -> list[str]:
    return sorted(
        p.relative_to(rev_dir).with_suffix("").as_posix()
        for p in rev_dir.rglob("*.json")
        if p.relative_to(rev_dir).parts[0] != "runs"
    )


def _hint(word: str, choices: Sequence[str], what: str) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3)
    if close:
        return f"; did you mean {', '.join(close)}?"
    return f"; {what}: {', '.join(choices)}" if 0 < len(choices) <= 10 else ""


def find_records(spec: str, tasks: Sequence[str], root: Path) -> tuple[str, str, dict[str, TaskResult]]:
    """(name, revision, {task: record}) of ``name``, ``name@revision`` or ``name+options`` (the runs made with
    those factory options, e.g. ``mgte-tiny.mlm+mode-sparse``, as ``zoobench results`` lists them)."""
    name, revision, options = spec, "", ""
    if not _model_dir(root, spec).is_dir() and "@" in spec:
        name, _, revision = spec.rpartition("@")
    elif not _model_dir(root, spec).is_dir() and "+" in spec:
        name, _, options = spec.partition("+")
    mdir = _model_dir(root, name)
    if name in ("", ".", "..", COMPARISONS_DIR, CLAIMS_DIR) or "\0" in name or not mdir.is_dir():
        raise ZooError(f"no results for model {name!r} in {root}{_hint(name, _stored_models(root), 'models there')}")
    rev_dirs = sorted(p for p in mdir.iterdir() if p.is_dir())
    if options:
        rev_dirs = [p for p in rev_dirs if p.name.partition("+")[2] == options]
        if not rev_dirs:
            raise ZooError(f"model {name!r} has no runs with options {options!r} in {root} (see zoobench results)")
    if revision:
        wanted = revision.replace("/", "__")
        if not any(p.name == wanted for p in rev_dirs):
            revs = ", ".join(p.name for p in rev_dirs)
            raise ZooError(f"no results for model {name!r} at revision {revision!r} in {root} (revisions: {revs})")
        rev_dirs = [p for p in rev_dirs if p.name == wanted]
    found: dict[str, dict[str, TaskResult]] = {}
    for rdir in rev_dirs:
        paths = {t: result_path(root, name, rdir.name, t) for t in tasks}
        found[rdir.name] = {t: TaskResult.load(p) for t, p in paths.items() if p.exists()}
    complete = {r: recs for r, recs in found.items() if len(recs) == len(tasks)}
    if not complete:
        best = max(found, key=lambda r: len(found[r]), default=None)
        missing = [t for t in tasks if t not in found.get(best, {})]
        stored = _stored_tasks(mdir / best) if best else []
        raise ZooError(
            f"model {name!r} has no result for {', '.join(missing)} in {root}"
            f"{_hint(missing[0], stored, 'its tasks') if len(missing) == 1 else ''}"
            f" (zoobench run --model {name} --tasks {','.join(missing)})"
        )
    plain = {r: recs for r, recs in complete.items() if "+" not in r}
    if not (options or revision) and plain:  # a bare name means the runs without factory options, where any exist
        complete = plain
    newest = max(complete, key=lambda r: (max(rec.date for rec in complete[r].values()), r))
    records = complete[newest]
    return name, next(iter(records.values())).revision, records


def _resolve_all(models: Sequence[str], tasks: Sequence[str], root: Path) -> list[_Model]:
    resolved = [find_records(m, tasks, root) for m in models]
    pairs = [(n, r) for n, r, _ in resolved]
    dup = next((p for i, p in enumerate(pairs) if p in pairs[:i]), None)
    if dup:
        raise ZooError(f"model {dup[0]}@{dup[1]} is listed twice; compare different models or revisions")
    names = [n for n, _ in pairs]
    return [
        _Model(ModelRef(n if names.count(n) == 1 else f"{n}@{r}", n, r), recs)
        for (n, r), (_, _, recs) in zip(pairs, resolved, strict=True)
    ]


# STATISTICS =======================================================================================
# A statistic maps multiplicity weights w (rows, n) -- how often each item occurs in each resample --
# to one value per row; the full sample is w = ones. Weighting avoids materialising the resamples.


def _weighted_mean(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (w @ x) / w.sum(axis=1)


def _weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    n = w.sum(axis=1, keepdims=True)
    dx = x - (w * x).sum(axis=1, keepdims=True) / n
    dy = y - (w * y).sum(axis=1, keepdims=True) / n
    cov, vx, vy = (w * dx * dy).sum(axis=1), (w * dx * dx).sum(axis=1), (w * dy * dy).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.sqrt(vx * vy)  # NaN for a constant resample: dropped by the bootstrap


def _weighted_ranks(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(rows, n) average rank (1-based, ties averaged) each item would get in each weighted resample."""
    order = np.argsort(values, kind="stable")
    v = values[order]
    starts = np.r_[True, v[1:] != v[:-1]]
    group = np.cumsum(starts) - 1  # tie group of each sorted position
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], len(v)]  # one past each group's end
    cum = np.concatenate([np.zeros((w.shape[0], 1)), np.cumsum(w[:, order], axis=1)], axis=1)
    below, size = cum[:, first], cum[:, last] - cum[:, first]  # (rows, groups)
    ranks = np.empty_like(w, dtype=np.float64)
    ranks[:, order] = (below + (size + 1) / 2)[:, group]
    return ranks


def _spearman(items: Mapping[str, Any], w: np.ndarray) -> np.ndarray:
    pred, gold = np.asarray(items["pred"], np.float64), np.asarray(items["gold"], np.float64)
    return _weighted_pearson(_weighted_ranks(pred, w), _weighted_ranks(gold, w), w)


def _pearson(items: Mapping[str, Any], w: np.ndarray) -> np.ndarray:
    return _weighted_pearson(np.asarray(items["pred"], np.float64), np.asarray(items["gold"], np.float64), w)


def _average_precision(items: Mapping[str, Any], w: np.ndarray) -> np.ndarray:
    """sklearn's average_precision_score of each weighted resample (tied scores form one threshold)."""
    pred, gold = np.asarray(items["pred"], np.float64), np.asarray(items["gold"], np.float64)
    order = np.argsort(-pred, kind="stable")
    s, y = pred[order], gold[order]
    starts = np.r_[True, s[1:] != s[:-1]]
    group_end = np.r_[np.flatnonzero(starts)[1:], len(s)] - 1
    end_of = group_end[np.cumsum(starts) - 1]  # last position of each position's tie group
    ws = w[:, order]
    tp, seen = np.cumsum(ws * y, axis=1)[:, end_of], np.cumsum(ws, axis=1)[:, end_of]
    precision = np.divide(tp, seen, out=np.zeros_like(tp), where=seen > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ws * y * precision).sum(axis=1) / (ws * y).sum(axis=1)  # NaN without positives


def _mean_of(key: str) -> Callable[[Mapping[str, Any], np.ndarray], np.ndarray]:
    def stat(items: Mapping[str, Any], w: np.ndarray) -> np.ndarray:
        return _weighted_mean(np.asarray(items[key], np.float64), w)

    return stat


# task type -> metric -> how to recompute it from the stored items
ITEM_STATS: dict[str, dict[str, ItemStat]] = {
    "sts": {
        "cosine_spearman": ItemStat(_spearman, "pred", ("gold",)),
        "cosine_pearson": ItemStat(_pearson, "pred", ("gold",)),
    },
    "pair_classification": {"cosine_ap": ItemStat(_average_precision, "pred", ("gold",))},
    "classification": {"accuracy": ItemStat(_mean_of("correct"), "correct")},
    "clustering": {"v_measure": ItemStat(_mean_of("v_measures"), "v_measures")},
}


def item_stats(task_type: str) -> Mapping[str, ItemStat]:
    """``{metric: ItemStat}`` of a task type: the table above, else the type's own (``Task.item_stats``)."""
    if task_type in ITEM_STATS:
        return ITEM_STATS[task_type]
    cls = TASK_TYPES.get(task_type)
    return cls.item_stats if cls is not None else {}


def _bootstrap(
    stats: Mapping[str, Callable[[np.ndarray], np.ndarray]], n: int, n_resamples: int, seed: int
) -> dict[str, np.ndarray]:
    """``{label: (n_resamples,) statistic}`` over paired resamples: the same draws for every label."""
    rng = np.random.default_rng(seed)
    rows = max(1, _MAX_CELLS // max(n, 1))
    out: dict[str, list[np.ndarray]] = {k: [] for k in stats}
    for start in range(0, n_resamples, rows):
        k = min(rows, n_resamples - start)
        idx = rng.integers(0, n, size=(k, n))
        w = np.bincount((idx + (np.arange(k) * n)[:, None]).ravel(), minlength=k * n).reshape(k, n).astype(np.float64)
        for label, fn in stats.items():
            out[label].append(fn(w))
    return {k: np.concatenate(v) for k, v in out.items()}


def _interval(boot_delta: np.ndarray, delta: float, alpha: float) -> tuple[float, float, float]:
    """(ci_low, ci_high, two-sided p of the zero-shifted bootstrap) from bootstrap differences."""
    d = boot_delta[np.isfinite(boot_delta)]  # resamples where the statistic is undefined drop out
    if d.size == 0:
        return float("nan"), float("nan"), 1.0
    lo, hi = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    extreme = np.abs(d - delta) >= abs(delta) - 1e-12 * max(1.0, abs(delta))
    return float(lo), float(hi), float((1 + extreme.sum()) / (d.size + 1))


# TESTS FOR RANKED LISTS ===========================================================================


@dataclass(frozen=True)
class Settings:
    """The settings of a comparison (see :func:`compare`)."""

    metric: str | None
    stat_test: str
    alpha: float
    correction: str
    n_resamples: int
    seed: int


@dataclass(frozen=True)
class _Ranked:
    qrels: Any  # ranx.Qrels
    runs: tuple[Any, ...]  # ranx.Run per model, named by label
    per_query: Mapping[str, np.ndarray]  # label -> (n_queries,)


def _ranx_compare(r: _Ranked, metric: str, pairs: Sequence[tuple[str, str]], s: Settings) -> list[float]:
    from harness.metrics import _ranx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # ttest_rel on all-zero differences
        warnings.filterwarnings("ignore", message=".*unsafe cast.*")  # ranx ndcg under numba
        rep = _ranx().compare(
            r.qrels, list(r.runs), metrics=[metric], stat_test=s.stat_test, max_p=s.alpha, make_comparable=True
        )
    return [float(rep.comparisons[a, b][metric]["p_value"]) for a, b in pairs]


def _randomization(r: _Ranked, metric: str, pairs: Sequence[tuple[str, str]], s: Settings) -> list[float]:
    """ranx's Fisher randomization test (same statistic and estimator), with a generator that honours the seed."""
    out = []
    for a, b in pairs:
        d = r.per_query[b] - r.per_query[a]
        observed = abs(d.mean())
        rng = np.random.default_rng(s.seed)
        rows = max(1, _MAX_CELLS // max(d.size, 1))
        hits = 0
        for start in range(0, s.n_resamples, rows):
            signs = rng.integers(0, 2, size=(min(rows, s.n_resamples - start), d.size)) * 2.0 - 1.0
            hits += int((np.abs(signs @ d) / d.size >= observed - 1e-12).sum())
        out.append(hits / s.n_resamples)
    return out


STAT_TESTS: dict[str, Callable[[_Ranked, str, Sequence[tuple[str, str]], Settings], list[float]]] = {
    "student": _ranx_compare,
    "fisher": _randomization,
    "tukey": _ranx_compare,
}


# MULTIPLE COMPARISONS =============================================================================


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values, in the input order.

    Example:
        >>> holm([0.01, 0.04, 0.03, 0.005]).tolist()
        [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]))
    out = np.empty_like(p)
    out[order] = adjusted
    return out


def _bonferroni(p_values: Sequence[float]) -> np.ndarray:
    p = np.asarray(p_values, dtype=np.float64)
    return np.minimum(1.0, p * len(p))


def _no_correction(p_values: Sequence[float]) -> np.ndarray:
    return np.asarray(p_values, dtype=np.float64)


CORRECTIONS: dict[str, Callable[[Sequence[float]], np.ndarray]] = {
    "holm": holm,
    "bonferroni": _bonferroni,
    "none": _no_correction,
}


# REPORT ===========================================================================================


@dataclass(frozen=True)
class Comparison:
    """One model pair on one task split (keys as in the module docstring's ``rows``)."""

    task_id: str
    split: str
    task_type: str
    metric: str
    higher_is_better: bool
    test: str
    n: int
    model_a: str
    model_b: str
    score_a: float
    score_b: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    significant: bool
    winner: str


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}"}
_TEX.update({"~": r"\textasciitilde{}", "^": r"\^{}", "<": "$<$", "−": "$-$"})


def _tex(text: str) -> str:
    return re.sub("|".join(map(re.escape, _TEX)), lambda m: _TEX[m.group()], text)


@dataclass(frozen=True)
class Report:
    """The result of :func:`compare`: one :class:`Comparison` per task split and model pair.

    Render it with :meth:`to_table` (text), :meth:`to_latex` or :meth:`to_dict` (JSON-ready; the
    schema is in the module docstring).
    """

    models: tuple[ModelRef, ...]
    tasks: tuple[str, ...]
    rows: tuple[Comparison, ...]
    settings: Settings
    code_revision: str
    date: str

    @property
    def labels(self) -> tuple[str, ...]:
        """The models' labels, in the order given."""
        return tuple(m.label for m in self.models)

    @property
    def key(self) -> str:
        """12 hex digits identifying the models (with revisions), tasks and settings."""
        ident = {
            "models": [[m.name, m.revision] for m in self.models],
            "tasks": list(self.tasks),
            "settings": self._settings_dict(),
        }
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]

    def _settings_dict(self) -> dict[str, Any]:
        s = self.settings
        return {
            "metric": s.metric,
            "stat_test": s.stat_test,
            "alpha": s.alpha,
            "confidence": round(1 - s.alpha, 10),
            "correction": s.correction,
            "n_resamples": s.n_resamples,
            "seed": s.seed,
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (schema in the module docstring); NaN bounds become ``null``."""

        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not np.isfinite(v) else v

        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "zoobench.comparison",
            "key": self.key,
            "models": [{"label": m.label, "name": m.name, "revision": m.revision} for m in self.models],
            "tasks": list(self.tasks),
            "settings": self._settings_dict(),
            "code_revision": self.code_revision,
            "date": self.date,
            "rows": [{k: clean(v) for k, v in vars(r).items()} for r in self.rows],
        }

    def _cells(self) -> tuple[list[str], list[list[str]], list[str]]:
        many = len(self.models) > 2
        conf = f"{100 * (1 - self.settings.alpha):g}%"
        head = ["task", "metric", "test", "n", *self.labels, *(["pair"] if many else []), "Δ (B−A)", f"{conf} CI", "p"]
        head += [f"p {self.settings.correction}", "winner"]
        rows, previous = [], None
        for r in self.rows:
            first = (r.task_id, r.split) != previous
            previous = (r.task_id, r.split)
            scores = {r.model_a: r.score_a, r.model_b: r.score_b}
            cells = [r.task_id if r.split == "test" else f"{r.task_id} ({r.split})", r.metric, r.test, str(r.n)]
            cells += [f"{100 * scores[m]:.2f}" if first and m in scores else "" for m in self.labels]
            cells += [f"{r.model_b} − {r.model_a}"] if many else []
            cells += [f"{100 * r.delta:+.2f}", f"[{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}]"]
            cells += [self._p(r.p_value), self._p(r.p_adjusted), r.winner]
            rows.append(cells)
        s = self.settings
        notes = [
            f"scores x100; Δ = B − A (A listed first); CI: paired bootstrap, {s.n_resamples} resamples",
            f"p: {s.stat_test} for ranked lists, paired bootstrap for items; p {s.correction}: across tasks per pair",
            f"winner: the better model when the adjusted p ≤ {s.alpha:g}, else tie",
        ]
        if any(r.task_type == "clustering" for r in self.rows):
            notes.append("clustering: paired over only 10 k-means runs on the same samples (weak evidence)")
        return head, rows, notes

    def _p(self, p: float) -> str:
        if p == 0:
            return f"<{1 / self.settings.n_resamples:.0e}"
        return f"{p:.3f}" if p >= 1e-3 else f"{p:.1e}"

    def to_table(self, width: int = 160) -> str:
        """The comparison as a rich table rendered to plain text."""
        from rich.console import Console
        from rich.table import Table

        head, rows, notes = self._cells()
        table = Table(title=" vs ".join(self.labels))
        for i, col in enumerate(head):
            table.add_column(col, justify="left" if i < 3 or col in ("pair", "winner") else "right")
        for cells in rows:
            table.add_row(*cells)
        buf = io.StringIO()
        Console(file=buf, width=width, color_system=None, force_terminal=False).print(table)
        return buf.getvalue() + "".join(f"  {note}\n" for note in notes)

    def to_latex(self) -> str:
        """The comparison as a booktabs ``tabular`` (needs ``\\usepackage{booktabs}``)."""
        head, rows, notes = self._cells()
        head = [_tex(h).replace("Δ", "$\\Delta$") for h in head]
        lines = [
            *(f"% {note}" for note in notes),
            "\\begin{tabular}{lll" + "r" * (len(head) - 4) + "l}",
            "\\toprule",
            " & ".join(head) + " \\\\",
            "\\midrule",
            *(" & ".join(map(_tex, cells)) + " \\\\" for cells in rows),
            "\\bottomrule",
            "\\end{tabular}",
        ]
        return "\n".join(lines) + "\n"


def comparison_path(results_dir: str | os.PathLike[str], report: Report) -> Path:
    """``<results>/_comparisons/<label>+<label>__<key>.json``, where the report is stored."""
    stem = "+".join(m.label.replace("/", "__") for m in report.models)
    return Path(results_dir) / COMPARISONS_DIR / f"{stem}__{report.key}.json"


# COMPARE ==========================================================================================


def _read_items(path: Path) -> dict[str, Any]:
    try:
        return json.loads(gzip.decompress(path.read_bytes()))
    except FileNotFoundError:
        raise ZooError(f"{path}: per-item predictions missing; rerun the task with --overwrite") from None
    except (OSError, EOFError, ValueError) as e:
        raise ZooError(f"{path}: unreadable per-item predictions ({e})") from None


def _check_record(task: str, split: str, metric: str, m: _Model, value: float, what: str, note: str = "") -> None:
    recorded = m.records[task].scores[split].get(metric)
    if recorded is not None and abs(recorded - value) > _RECORD_TOLERANCE:
        raise ZooError(
            f"{task} ({split}): {metric} recomputed from the stored {what} of {m.ref.label} is {value:.6f}, "
            f"but its record says {recorded:.6f}; the stored {what} cannot reproduce this metric{note}"
        )


def _ranked_rows(
    task: str, split: str, metric: str, models: Sequence[_Model], root: Path, s: Settings
) -> tuple[dict[str, float], int, dict[tuple[str, str], tuple[float, np.ndarray]]]:
    from harness.metrics import _ranx, to_ranx

    qrels = None
    runs = []
    per_query: dict[str, np.ndarray] = {}
    for m in models:
        q = read_qrels(qrels_path(root, m.ref.name, m.ref.revision, task, split))
        if qrels is not None and q != qrels:
            raise ZooError(f"{task} ({split}): {m.ref.label} was judged on different qrels; rerun with --overwrite")
        qrels = q
        ranx_q, run = to_ranx(q, read_run(run_path(root, m.ref.name, m.ref.revision, task, split)), m.ref.label)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*unsafe cast.*")
            try:
                values = np.asarray(_ranx().evaluate(ranx_q, run, metric, return_mean=False, make_comparable=True))
            except ValueError as e:  # ranx: an unsupported metric name
                raise ZooError(f"{task}: ranx cannot compute {metric!r} on ranked lists ({e})") from None
        _check_record(task, split, metric, m, float(values.mean()), "run", " (run files keep each query's top 100)")
        runs.append(run)
        per_query[m.ref.label] = values.astype(np.float64)
    ranked = _Ranked(ranx_q, tuple(runs), per_query)
    pairs = _pairs(models)
    p_values = STAT_TESTS[s.stat_test](ranked, metric, pairs, s)
    p_values = [1.0 if np.isnan(p) else p for p in p_values]  # NaN: every per-query difference is zero
    n = len(next(iter(per_query.values())))
    boot = _bootstrap(
        {k: (lambda w, v=v: _weighted_mean(v, w)) for k, v in per_query.items()}, n, s.n_resamples, s.seed
    )
    points = {k: float(v.mean()) for k, v in per_query.items()}
    return points, n, {(a, b): (p, boot[b] - boot[a]) for (a, b), p in zip(pairs, p_values, strict=True)}


def _item_rows(
    task: str, split: str, metric: str, models: Sequence[_Model], root: Path, s: Settings
) -> tuple[dict[str, float], int, dict[tuple[str, str], tuple[float, np.ndarray]]]:
    task_type = models[0].records[task].task_type
    stats = item_stats(task_type)
    if not stats:
        covered = [t for t in sorted({*ITEM_STATS, *TASK_TYPES}) if item_stats(t)]
        raise ZooError(
            f"{task} ({split}): some model has no stored run and qrels for this {task_type} task "
            "(and per-item tests cover only " + ", ".join(covered) + "); rerun it with --overwrite"
        )
    stat = stats.get(metric)
    if stat is None:
        raise ZooError(
            f"{task}: {metric!r} cannot be recomputed from stored {task_type} items; available: {', '.join(stats)}"
        )
    items = {m.ref.label: _read_items(items_path(root, m.ref.name, m.ref.revision, task, split)) for m in models}
    first = items[models[0].ref.label]
    n = len(first[stat.length_key])
    for label, it in items.items():
        if len(it[stat.length_key]) != n or any(it[k] != first[k] for k in stat.shared_keys):
            raise ZooError(f"{task} ({split}): {label}'s stored items are not paired with {models[0].ref.label}'s")
    points = {k: float(stat.fn(it, np.ones((1, n)))[0]) for k, it in items.items()}
    for m in models:
        _check_record(task, split, metric, m, points[m.ref.label], "items")
    boot = _bootstrap({k: (lambda w, it=it: stat.fn(it, w)) for k, it in items.items()}, n, s.n_resamples, s.seed)
    return points, n, {(a, b): (float("nan"), boot[b] - boot[a]) for a, b in _pairs(models)}


def _pairs(models: Sequence[_Model]) -> list[tuple[str, str]]:
    labels = [m.ref.label for m in models]
    return [(a, b) for i, a in enumerate(labels) for b in labels[i + 1 :]]


def _validate(models: Sequence[str], tasks: Sequence[str], s: Settings) -> None:
    checks = [
        (len(models) >= 2, f"compare needs at least two models, got {len(models)}"),
        (len(set(models)) == len(models), "a model is listed twice"),
        (len(tasks) > 0, "compare needs at least one task"),
        (len(set(tasks)) == len(tasks), "a task is listed twice"),
        (s.stat_test in STAT_TESTS, f"unknown stat test {s.stat_test!r}; choose {', '.join(STAT_TESTS)}"),
        (s.correction in CORRECTIONS, f"unknown correction {s.correction!r}; choose {', '.join(CORRECTIONS)}"),
        (0 < s.alpha < 1, f"alpha must be between 0 and 1, got {s.alpha}"),
        (s.n_resamples >= 1, f"n_resamples must be at least 1, got {s.n_resamples}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ZooError(message)


def compare(
    models: Sequence[str],
    tasks: Sequence[str],
    *,
    results_dir: str | os.PathLike[str] = "results",
    metric: str | None = None,
    stat_test: str = "student",
    alpha: float = 0.05,
    correction: str = "holm",
    n_resamples: int = 10_000,
    seed: int = 42,
    save: bool = True,
) -> Report:
    """Test every pair of models on every task, from their stored results.

    Args:
        models: two or more model names (``name`` = newest revision with all the tasks, or
            ``name@revision``), all with results in ``results_dir``.
        tasks: task ids, e.g. ``["local/scifact", "local/stsb"]``.
        results_dir: the results folder.
        metric: the metric to test; None = each task's main score.
        stat_test: for ranked lists: ``student`` (paired t), ``fisher`` (randomization) or ``tukey`` (HSD).
        alpha: significance level; the confidence intervals are at ``1 - alpha``.
        correction: across tasks, per model pair: ``holm``, ``bonferroni`` or ``none``.
        n_resamples: bootstrap resamples and randomization permutations.
        seed: seeds every resampling (the same draws for every model).
        save: store the report as JSON at :func:`comparison_path` (atomically).

    Returns:
        A :class:`Report` (rows in task order, then pair order).

    Raises:
        ZooError: unknown model or task in the results folder, missing run/items files, records of
            different data, a metric the stored files cannot reproduce, or a bad setting.

    Example:
        >>> report = compare(["bm25", "minilm-l6.st"], ["local/scifact"], results_dir="results")
        >>> print(report.to_table())
    """
    from harness.metrics import higher_is_better
    from zoo.provenance import code_revision

    models, tasks = tuple(models), tuple(tasks)
    s = Settings(metric, stat_test, float(alpha), correction, int(n_resamples), int(seed))
    _validate(models, tasks, s)
    root = Path(results_dir)
    resolved = _resolve_all(models, tasks, root)
    raw: list[dict[str, Any]] = []
    for task in tasks:
        recs = [m.records[task] for m in resolved]
        if len({r.data_checksum for r in recs}) > 1:
            raise ZooError(f"{task}: the models were evaluated on different data (checksums differ); rerun one")
        name = metric or recs[0].main_score
        try:
            better_high = higher_is_better(name)
        except KeyError:
            raise ZooError(f"unknown metric {name!r}") from None
        splits = [sp for sp in recs[0].scores if all(sp in r.scores for r in recs)]
        for split in splits:
            ranked = all(
                run_path(root, m.ref.name, m.ref.revision, task, split).exists()
                and qrels_path(root, m.ref.name, m.ref.revision, task, split).exists()
                for m in resolved
            )
            points, n, by_pair = (_ranked_rows if ranked else _item_rows)(task, split, name, resolved, root, s)
            for (a, b), (p, boot_delta) in by_pair.items():
                delta = points[b] - points[a]
                lo, hi, p_boot = _interval(boot_delta, delta, s.alpha)
                raw.append(
                    dict(
                        task_id=task,
                        split=split,
                        task_type=recs[0].task_type,
                        metric=name,
                        higher_is_better=better_high,
                        test=stat_test if ranked else "bootstrap",
                        n=n,
                        model_a=a,
                        model_b=b,
                        score_a=points[a],
                        score_b=points[b],
                        delta=delta,
                        ci_low=lo,
                        ci_high=hi,
                        p_value=p_boot if np.isnan(p) else p,
                    )
                )
    for a, b in _pairs(resolved):
        idx = [i for i, r in enumerate(raw) if (r["model_a"], r["model_b"]) == (a, b)]
        for i, q in zip(idx, CORRECTIONS[correction]([raw[i]["p_value"] for i in idx]), strict=True):
            r = raw[i]
            significant = bool(q <= s.alpha) and r["delta"] != 0
            b_better = (r["delta"] > 0) == r["higher_is_better"]
            r.update(
                p_adjusted=float(q), significant=significant, winner=(b if b_better else a) if significant else "tie"
            )
    report = Report(
        models=tuple(m.ref for m in resolved),
        tasks=tasks,
        rows=tuple(Comparison(**r) for r in raw),
        settings=s,
        code_revision=code_revision(),
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    if save:
        data = json.dumps(report.to_dict(), indent=2, ensure_ascii=False).encode() + b"\n"
        atomic_write(comparison_path(results_dir, report), data)
    return report
