"""The leaderboard's data: read result records and stored comparisons, shape them into tables.

Pure functions over a results folder (``harness/results.py`` documents its layout and the record schema,
``harness/significance.py`` the comparison files). Nothing here calls Streamlit: ``app.py`` wraps the
loaders with ``st.cache_data`` where it calls them. Records are read as plain JSON, not through
``harness.results``, so the leaderboard never imports ``harness`` or ``zoo`` (and so never torch);
``tests/leaderboard`` checks that :data:`REQUIRED_KEYS` stays equal to ``TaskResult``'s fields.

How the numbers are made (the page says the same):

- **score**: a record's main score on its ``test`` split (else its first split), shown x100. Every main
  score of zoobench is higher-is-better. Each model shows its newest revision (by record date). A run with
  factory options (``--model-kwarg``: revision ``<card revision>+key-value``) is a model of its own, named
  ``<model>+key-value`` (e.g. ``test-mgte+mode-hybrid``).
- **mean**: over the shown tasks, only for a model that has all of them (MTEB's ``Mean(Task)``); the mean
  per task type likewise over that type's tasks.
- **Borda rank** (MTEB's ``Rank (Borda)``): each task is a voter giving a model ``N - rank`` points, where
  ``N`` is the number of shown models and ``rank`` the model's rank on the task (1 = best, ties
  averaged); a model without the task gets 0. Models are ranked by total points, ties sharing the best rank.
- **rank interval**: the 2.5th and 97.5th percentiles of a model's Borda rank over 1,000 bootstrap
  resamples of the shown tasks (tasks drawn with replacement, seed 0): how much the rank depends on
  which tasks happen to be in the benchmark. It says nothing about noise within a task.
- **throughput**: texts encoded per second of encoding (``runtime.texts_encoded / runtime.encode_s``,
  summed over the model's shown records); texts served from the embedding cache do not count.
- **significance per task**: the best model against each other model, read from stored comparisons
  whose models, revisions, split and metric match the records and whose scores equal them (else the
  comparison is stale and ignored); the verdict is the comparison's own (its adjusted p against its
  alpha). No comparison is computed here.
- **per-unit scores** (compare view): see ``leaderboard/units.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "SCHEMA_VERSION",
    "REQUIRED_KEYS",
    "Results",
    "Selection",
    "results_dir",
    "signature",
    "load_results",
    "filter_options",
    "select",
    "score_matrix",
    "type_matrix",
    "overview",
    "borda",
    "rank_intervals",
    "task_significance",
    "best_sets",
    "compare_models",
    "model_detail",
    "to_csv",
    "escape_markdown",
    "Claims",
    "load_claims",
]

SCHEMA_VERSION = 1  # of result records and of comparison files
COMPARISONS_DIR = "_comparisons"  # harness.results.COMPARISONS_DIR
CLAIMS_FILE = ("_claims", "claims.json")  # harness.claims.claims_path: the stored verdicts of `zoobench claims`
RUNS_DIR = "runs"  # beside the records of a revision: run, qrels and items files
# The keys of a record without a default (harness.results.TaskResult); a test keeps them in step.
REQUIRED_KEYS = frozenset(
    {
        "model",
        "revision",
        "task_id",
        "task_type",
        "main_score",
        "scores",
        "n_items",
        "data_checksum",
        "code_revision",
        "command",
        "runtime",
        "hardware",
        "date",
    }
)
_COMPARISON_ROW_KEYS = frozenset(
    {"task_id", "split", "metric", "model_a", "model_b", "score_a", "score_b", "delta", "p_value", "p_adjusted"}
)
_SCORE_TOLERANCE = 1e-6  # a stored comparison's score vs the record's (both recomputed from the same files)
NONE = "(none)"  # the filter value of a task without languages or a model without a family
SCALE = 100.0  # scores are shown x100
TYPE_PREFIX = "mean "  # overview columns of the mean per task type: "mean sts", "mean retrieval", ...


class _Skip(ValueError):
    """A file that is not a valid record or comparison; the message says why."""


# LOADING ==========================================================================================


@dataclass(frozen=True)
class Results:
    """Everything the leaderboard reads from a results folder.

    Attributes:
        root: the results folder.
        records: one row per record (every revision); ``current`` marks each model's newest revision.
        comparisons: one row per row of every stored comparison, models resolved to name and revision.
        warnings: one line per skipped file, naming it.
    """

    root: str
    records: pd.DataFrame
    comparisons: pd.DataFrame
    warnings: tuple[str, ...]


def results_dir(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """The results folder: ``--results DIR`` in ``argv``, else ``$ZOOBENCH_RESULTS``, else ``results``."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--results")
    known, _ = parser.parse_known_args(list(argv))
    return known.results or environ.get("ZOOBENCH_RESULTS") or "results"


def _scan(root: str) -> tuple[list[tuple[str, int, int]], list[tuple[str, int, int]]]:
    """(records, comparisons) under ``root`` as sorted ``(path relative to root, size, mtime_ns)``.

    Records are the ``*.json`` files outside ``<root>/_comparisons`` and the run folders
    (``<root>/<model>/<revision>/runs``); comparisons are ``<root>/_comparisons/*.json``. Hidden names are
    skipped. Plain strings and ``os.scandir``: this runs on every page view (60,000 files in about 0.4 s).
    """
    records, comparisons = [], []
    stack = [(root, "", 0)]
    while stack:
        folder, rel, depth = stack.pop()
        with os.scandir(folder) as entries:
            for e in entries:
                if e.name.startswith("."):
                    continue
                if e.is_dir(follow_symlinks=False):
                    skip = (depth == 2 and e.name == RUNS_DIR) or (depth == 0 and e.name == CLAIMS_FILE[0])
                    if not skip and rel != f"{COMPARISONS_DIR}/":
                        stack.append((e.path, f"{rel}{e.name}/", depth + 1))
                elif e.name.endswith(".json"):
                    st = e.stat()
                    into = comparisons if rel == f"{COMPARISONS_DIR}/" else records
                    into.append((f"{rel}{e.name}", st.st_size, st.st_mtime_ns))
    return sorted(records), sorted(comparisons)


def signature(root: str | os.PathLike[str]) -> str:
    """A hash of every record and comparison file's path, size and modification time.

    Passed to :func:`load_results` so that a cached load is reused until a file changes.
    """
    if not os.path.isdir(root):
        return "missing"
    h = hashlib.sha1()
    for group in _scan(os.fspath(root)):
        h.update(repr(group).encode())
    return h.hexdigest()


def _expect(ok: bool, why: str) -> None:
    if not ok:
        raise _Skip(why)


def _number(v: Any) -> float:
    """A float from a JSON number; NaN for null or anything else."""
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan


def _record_row(d: Any, rel: str) -> dict[str, Any]:
    _expect(isinstance(d, dict), "not a JSON object")
    version = d.get("schema_version")
    _expect(version == SCHEMA_VERSION, f"unknown result schema version {version!r}")
    missing = sorted(REQUIRED_KEYS - d.keys())
    _expect(not missing, f"lacks {', '.join(missing)}")
    for key in ("model", "revision", "task_id", "task_type", "main_score", "date"):
        _expect(isinstance(d[key], str) and d[key] != "", f"{key} is not a non-empty string")
    scores = d["scores"]
    _expect(isinstance(scores, dict) and bool(scores), "scores is not a non-empty object")
    split = "test" if "test" in scores else next(iter(scores))
    _expect(isinstance(scores[split], dict), f"scores of split {split!r} are not an object")
    score = _number(scores[split].get("main_score"))
    _expect(math.isfinite(score), f"split {split!r} has no numeric main_score")
    card = d.get("model_card") if isinstance(d.get("model_card"), dict) else {}
    runtime = d["runtime"] if isinstance(d["runtime"], dict) else {}
    n_items = d["n_items"] if isinstance(d["n_items"], dict) else {}
    languages = d.get("languages") if isinstance(d.get("languages"), list) else []
    family = card.get("family")
    card_revision = card.get("revision")
    options = ""  # "+key-value..." of a run with factory options, whose revision extends the card's
    if isinstance(card_revision, str) and d["revision"].startswith(card_revision + "+"):
        options = d["revision"][len(card_revision) :]
    return {
        "model": d["model"] + options,
        "revision": d["revision"],
        "task_id": d["task_id"],
        "task_type": d["task_type"],
        "metric": d["main_score"],
        "split": split,
        "score": score,
        "languages": ",".join(str(x) for x in languages),
        "n_items": _number(n_items.get(split)),
        "encode_s": _number(runtime.get("encode_s")),
        "texts_encoded": _number(runtime.get("texts_encoded")),
        "total_s": _number(runtime.get("total_s")),
        "date": d["date"],
        "family": family if isinstance(family, str) and family else NONE,
        "params": _number(card.get("params")),
        "embed_dim": _number(card.get("embed_dim")),
        "max_tokens": _number(card.get("max_tokens")),
        "path": rel,
    }


def _comparison_rows(d: Any, rel: str) -> list[dict[str, Any]]:
    _expect(isinstance(d, dict) and d.get("kind") == "zoobench.comparison", "not a zoobench comparison")
    version = d.get("schema_version")
    _expect(version == SCHEMA_VERSION, f"unknown comparison schema version {version!r}")
    models, rows = d.get("models"), d.get("rows")
    _expect(isinstance(models, list) and isinstance(rows, list), "models or rows is not a list")
    refs: dict[str, tuple[str, str]] = {}
    for m in models:
        ok = isinstance(m, dict) and all(isinstance(m.get(k), str) for k in ("label", "name", "revision"))
        _expect(ok, "a model lacks label, name or revision")
        refs[m["label"]] = (m["name"], m["revision"])
    settings = d.get("settings") if isinstance(d.get("settings"), dict) else {}
    out = []
    for r in rows:
        _expect(isinstance(r, dict) and _COMPARISON_ROW_KEYS <= r.keys(), "a row lacks keys")
        _expect(r["model_a"] in refs and r["model_b"] in refs, "a row names a model the file does not list")
        winner = r.get("winner")
        out.append(
            {
                "task_id": r["task_id"],
                "split": r["split"],
                "metric": r["metric"],
                "model_a": refs[r["model_a"]][0],
                "revision_a": refs[r["model_a"]][1],
                "model_b": refs[r["model_b"]][0],
                "revision_b": refs[r["model_b"]][1],
                "score_a": _number(r["score_a"]),
                "score_b": _number(r["score_b"]),
                "delta": _number(r["delta"]),
                "ci_low": _number(r.get("ci_low")),
                "ci_high": _number(r.get("ci_high")),
                "p_value": _number(r["p_value"]),
                "p_adjusted": _number(r["p_adjusted"]),
                "significant": bool(r.get("significant")),
                "winner": refs[winner][0] if winner in refs else "tie",
                "test": str(r.get("test", "")),
                "n": _number(r.get("n")),
                "alpha": _number(settings.get("alpha")),
                "correction": str(settings.get("correction", "")),
                "date": str(d.get("date", "")),
                "file": rel,
            }
        )
    return out


def _read_json(path: str) -> Any:
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _Skip(f"unreadable JSON ({e})") from None


def load_results(root: str | os.PathLike[str], signature: str = "") -> Results:
    """Read every record and comparison under ``root``; a bad file becomes a warning, never an error.

    Args:
        root: the results folder (a missing folder gives empty tables).
        signature: :func:`signature` of the folder; unused here, it keys the cache of the caller.

    Returns:
        :class:`Results`; each warning names the skipped file and the reason.

    Example:
        >>> res = load_results("results")
        >>> res.records[res.records.current][["model", "task_id", "score"]]
    """
    del signature
    record_files, comparison_files = _scan(os.fspath(root)) if os.path.isdir(root) else ([], [])
    rows, comparisons, warnings = [], [], []
    for rel, _, _ in record_files:
        try:
            rows.append(_record_row(_read_json(os.path.join(root, rel)), rel))
        except _Skip as e:
            warnings.append(f"{rel}: {e}; skipped")
    for rel, _, _ in comparison_files:
        try:
            comparisons.extend(_comparison_rows(_read_json(os.path.join(root, rel)), rel))
        except _Skip as e:
            warnings.append(f"{rel}: {e}; skipped")
    records = pd.DataFrame(rows, columns=_RECORD_COLUMNS)
    records = records.drop_duplicates(["model", "revision", "task_id"], keep="last").reset_index(drop=True)
    records["current"] = _newest_revision(records)
    comparisons_df = pd.DataFrame(comparisons, columns=_COMPARISON_COLUMNS)
    # Comparisons name models as the registry does; runs with factory options go by their leaderboard name.
    shown = {(m.split("+", 1)[0], r): m for m, r in zip(records["model"], records["revision"], strict=True)}
    for side in ("a", "b"):
        keys = zip(comparisons_df[f"model_{side}"], comparisons_df[f"revision_{side}"], strict=True)
        comparisons_df[f"model_{side}"] = [shown.get(k, k[0]) for k in keys]
    return Results(str(root), records, comparisons_df, tuple(warnings))


_RECORD_COLUMNS = (
    "model revision task_id task_type metric split score languages n_items encode_s texts_encoded total_s date "
    "family params embed_dim max_tokens path"
).split()
_COMPARISON_COLUMNS = (
    "task_id split metric model_a revision_a model_b revision_b score_a score_b delta ci_low ci_high p_value "
    "p_adjusted significant winner test n alpha correction date file"
).split()


def _newest_revision(records: pd.DataFrame) -> pd.Series:
    """True on the records of each model's newest revision (latest record date, then revision name)."""
    if records.empty:
        return pd.Series([], dtype=bool)
    newest = records.groupby(["model", "revision"], sort=False)["date"].max().reset_index()
    newest = newest.sort_values(["model", "date", "revision"]).drop_duplicates("model", keep="last")
    keep = set(zip(newest["model"], newest["revision"], strict=True))
    return pd.Series([k in keep for k in zip(records["model"], records["revision"], strict=True)], index=records.index)


# SELECTION ========================================================================================


@dataclass(frozen=True)
class Selection:
    """The sidebar's filters; ``None`` keeps everything.

    Attributes:
        task_types: keep tasks of these types.
        languages: keep tasks with at least one of these languages (:data:`NONE` = tasks without any).
        families: keep models of these families (:data:`NONE` = models whose card has none).
        params: keep models with ``low <= params <= high`` (in parameters).
        unknown_size: also keep models whose card gives no parameter count.
    """

    task_types: tuple[str, ...] | None = None
    languages: tuple[str, ...] | None = None
    families: tuple[str, ...] | None = None
    params: tuple[float, float] | None = None
    unknown_size: bool = True


def _languages(cell: str) -> list[str]:
    return cell.split(",") if cell else [NONE]


def filter_options(records: pd.DataFrame) -> dict[str, list[Any]]:
    """The values each filter can take among the current records: task types, languages, families, params."""
    cur = records[records["current"]]
    params = cur["params"].dropna()
    return {
        "task_types": sorted(cur["task_type"].unique()),
        "languages": sorted({lang for cell in cur["languages"].unique() for lang in _languages(cell)}),
        "families": sorted(cur["family"].unique()),
        "params": sorted(params.unique()),
    }


def select(records: pd.DataFrame, sel: Selection) -> pd.DataFrame:
    """The current records that pass the filters (a new frame; ``records`` is not changed)."""
    keep = records["current"].to_numpy().copy()
    if sel.task_types is not None:
        keep &= records["task_type"].isin(sel.task_types).to_numpy()
    if sel.languages is not None:
        wanted = set(sel.languages)
        by_cell = {cell: bool(wanted.intersection(_languages(cell))) for cell in records["languages"].unique()}
        keep &= records["languages"].map(by_cell).to_numpy(dtype=bool)
    if sel.families is not None:
        keep &= records["family"].isin(sel.families).to_numpy()
    params = records["params"]
    if sel.params is not None:
        known = params.between(sel.params[0], sel.params[1]).to_numpy()
        keep &= known | (params.isna().to_numpy() & sel.unknown_size)
    elif not sel.unknown_size:
        keep &= params.notna().to_numpy()
    return records[keep].reset_index(drop=True)


# TABLES ===========================================================================================


def score_matrix(records: pd.DataFrame) -> pd.DataFrame:
    """Models x tasks: each record's score x100 (NaN where a model lacks a task); columns sorted by task id."""
    m = records.pivot(index="model", columns="task_id", values="score") * SCALE
    m.columns.name, m.index.name = None, "model"
    return m.reindex(sorted(m.columns), axis=1)


def _task_types(records: pd.DataFrame) -> pd.Series:
    return records.drop_duplicates("task_id").set_index("task_id")["task_type"]


def _complete_mean(matrix: pd.DataFrame) -> pd.Series:
    """Row means over all columns, NaN for a row with a missing value (means over other tasks do not compare)."""
    return matrix.mean(axis=1).where(matrix.notna().all(axis=1))


def type_matrix(records: pd.DataFrame) -> pd.DataFrame:
    """Models x task types: the mean score x100 of each type's tasks, for models that have all of them."""
    matrix, types = score_matrix(records), _task_types(records)
    out = {t: _complete_mean(matrix[sorted(types.index[types == t])]) for t in sorted(types.unique())}
    return pd.DataFrame(out, index=matrix.index)


def borda(matrix: pd.DataFrame) -> pd.DataFrame:
    """MTEB's Borda count over a models x tasks score matrix (higher is better).

    Returns:
        ``points`` (a model gets ``N - rank`` per task, ranks averaged over ties, 0 without the task) and
        ``rank`` (by total points, ties sharing the best rank), indexed like ``matrix``.
    """
    points = (len(matrix) - matrix.rank(axis=0, method="average", ascending=False)).fillna(0.0).sum(axis=1)
    return pd.DataFrame({"points": points, "rank": points.rank(method="min", ascending=False).astype(int)})


def _min_ranks(totals: np.ndarray) -> np.ndarray:
    """(B, M) ranks of each row's values, highest first, ties sharing the best rank."""
    ranks = np.empty(totals.shape, dtype=np.int64)
    for i, row in enumerate(totals):
        ascending = np.sort(row)
        ranks[i] = 1 + len(row) - np.searchsorted(ascending, row, side="right")  # 1 + #strictly greater
    return ranks


def rank_intervals(matrix: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Percentile interval of each model's Borda rank when the tasks are resampled with replacement.

    Args:
        matrix: models x tasks scores (higher is better).
        n_boot: bootstrap resamples of the tasks.
        seed: seed of the resampling.
        level: coverage of the interval.

    Returns:
        ``rank_low`` and ``rank_high`` (integers), indexed like ``matrix``.
    """
    n_models, n_tasks = matrix.shape
    if n_tasks == 0:
        return pd.DataFrame({"rank_low": 1, "rank_high": n_models}, index=matrix.index)
    per_task = (n_models - matrix.rank(axis=0, method="average", ascending=False)).fillna(0.0).to_numpy()  # (M, T)
    counts = np.random.default_rng(seed).multinomial(n_tasks, np.full(n_tasks, 1 / n_tasks), size=n_boot)  # (B, T)
    ranks = _min_ranks(counts @ per_task.T)  # (B, M)
    tail = (1 - level) / 2
    low = np.quantile(ranks, tail, axis=0, method="lower")
    high = np.quantile(ranks, 1 - tail, axis=0, method="higher")
    return pd.DataFrame({"rank_low": low.astype(int), "rank_high": high.astype(int)}, index=matrix.index)


def _throughput(records: pd.DataFrame) -> pd.Series:
    """Texts encoded per second of encoding, per model (NaN without timed encoding)."""
    timed = records[(records["encode_s"] > 0) & (records["texts_encoded"] > 0)]
    sums = timed.groupby("model")[["texts_encoded", "encode_s"]].sum()
    return sums["texts_encoded"] / sums["encode_s"]


def overview(records: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The overview table, best first: Borda rank and its interval, means, card facts and throughput.

    Args:
        records: the selected records (:func:`select`): one revision per model.
        n_boot: bootstrap resamples of the tasks for the rank interval.
        seed: seed of the resampling.

    Returns:
        One row per model with the columns ``rank, rank_low, rank_high, model, tasks, mean, mean <each
        task type>, borda, params_m, embed_dim, max_tokens, texts_per_s, family`` (scores x100,
        ``params_m`` in millions), sorted by rank, then mean, then name.
    """
    matrix = score_matrix(records)
    b, ci = borda(matrix), rank_intervals(matrix, n_boot=n_boot, seed=seed)
    card = records.groupby("model")[["family", "params", "embed_dim", "max_tokens"]].first()
    table = pd.DataFrame(
        {
            "rank": b["rank"],
            "rank_low": ci["rank_low"],
            "rank_high": ci["rank_high"],
            "model": matrix.index,
            "tasks": matrix.notna().sum(axis=1).astype(int),
            "mean": _complete_mean(matrix),
        },
        index=matrix.index,
    )
    table.index.name = None
    table = table.join(type_matrix(records).add_prefix(TYPE_PREFIX))
    table["borda"] = b["points"]
    table["params_m"] = card["params"] / 1e6
    table["embed_dim"] = card["embed_dim"]
    table["max_tokens"] = card["max_tokens"]
    table["texts_per_s"] = _throughput(records)
    table["family"] = card["family"]
    table = table.sort_values(["rank", "mean", "model"], ascending=[True, False, True], na_position="last")
    return table.reset_index(drop=True)


# SIGNIFICANCE =====================================================================================


VERDICTS = {
    "best": "★ best",
    "tie": "≈ not significantly worse",
    "worse": "▼ significantly worse",
    "untested": "· no stored comparison",
}


SIGNIFICANCE_SETS = ("not significantly worse", "significantly worse")


def _comparison_index(comparisons: pd.DataFrame) -> dict[tuple, list[dict[str, Any]]]:
    index: dict[tuple, list[dict[str, Any]]] = {}
    for row in comparisons.to_dict("records"):
        key = (row["task_id"], row["split"], row["metric"])
        index.setdefault((*key, row["model_a"], row["revision_a"], row["model_b"], row["revision_b"]), []).append(row)
    return index


def _oriented(row: dict[str, Any], flip: bool) -> dict[str, Any]:
    """A comparison row as ``B - A`` for the requested order (``flip``: the stored row is ``A - B``)."""
    if not flip:
        return row
    return {
        **row,
        "model_a": row["model_b"],
        "revision_a": row["revision_b"],
        "model_b": row["model_a"],
        "revision_b": row["revision_a"],
        "score_a": row["score_b"],
        "score_b": row["score_a"],
        "delta": -row["delta"],
        "ci_low": -row["ci_high"],
        "ci_high": -row["ci_low"],
    }


def _find(index: Mapping[tuple, list[dict[str, Any]]], a: Mapping[str, Any], b: Mapping[str, Any]) -> dict | None:
    """The newest stored comparison of records ``a`` and ``b`` (same task, split, metric), oriented ``b - a``.

    A comparison whose scores differ from the records' is stale (the records were rerun) and ignored.
    """
    task = (a["task_id"], a["split"], a["metric"])
    found = []
    for flip, (x, y) in ((False, (a, b)), (True, (b, a))):
        for row in index.get((*task, x["model"], x["revision"], y["model"], y["revision"]), []):
            r = _oriented(row, flip)
            fresh = abs(r["score_a"] - a["score"]) <= _SCORE_TOLERANCE and abs(r["score_b"] - b["score"]) <= (
                _SCORE_TOLERANCE
            )
            if fresh:
                found.append(r)
    return max(found, key=lambda r: (r["date"], r["file"])) if found else None


def task_significance(records: pd.DataFrame, comparisons: pd.DataFrame) -> pd.DataFrame:
    """Per task and model: is the model significantly worse than the task's best model?

    Args:
        records: the selected records (one revision per model).
        comparisons: :attr:`Results.comparisons`.

    Returns:
        One row per record, sorted by task then score (best first), with ``task_id, task_type, model,
        score`` (x100), ``verdict`` (a key of :data:`VERDICTS`), and from the comparison with the best
        model: ``delta`` (this model - best, x100), ``ci_low``, ``ci_high`` (x100), ``p_value``,
        ``p_adjusted``, ``comparison`` (its file).
    """
    index = _comparison_index(comparisons)
    out = []
    for _, group in records.groupby("task_id", sort=True):
        rows = group.sort_values(["score", "model"], ascending=[False, True]).to_dict("records")
        top = rows[0]["score"]
        best = [r for r in rows if r["score"] == top]
        for r in rows:
            base = {k: r[k] for k in ("task_id", "task_type", "model")} | {"score": SCALE * r["score"]}
            stats = dict.fromkeys(("delta", "ci_low", "ci_high", "p_value", "p_adjusted"), math.nan)
            if r["score"] == top:
                out.append({**base, "verdict": "best", **stats, "comparison": ""})
                continue
            found = next((c for c in (_find(index, b, r) for b in best) if c is not None), None)
            if found is None:
                out.append({**base, "verdict": "untested", **stats, "comparison": ""})
                continue
            verdict = "worse" if found["significant"] and found["winner"] != r["model"] else "tie"
            stats = {k: found[k] for k in stats}
            stats.update({k: SCALE * stats[k] for k in ("delta", "ci_low", "ci_high")})
            out.append({**base, "verdict": verdict, **stats, "comparison": found["file"]})
    columns = "task_id task_type model score verdict delta ci_low ci_high p_value p_adjusted comparison".split()
    return pd.DataFrame(out, columns=columns)


def best_sets(significance: pd.DataFrame) -> pd.DataFrame:
    """Per task: the best model(s), the models not significantly worse, the worse ones and the untested."""
    rows = []
    for task, g in significance.groupby("task_id", sort=True):
        names = {v: ", ".join(g.loc[g["verdict"] == v, "model"]) for v in VERDICTS}
        rows.append(
            {
                "task_id": task,
                "task_type": g["task_type"].iloc[0],
                "best": names["best"],
                SIGNIFICANCE_SETS[0]: names["tie"],
                SIGNIFICANCE_SETS[1]: names["worse"],
                "untested": names["untested"],
            }
        )
    return pd.DataFrame(rows, columns=["task_id", "task_type", "best", *SIGNIFICANCE_SETS, "untested"])


def compare_models(records: pd.DataFrame, comparisons: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Per task both models have: their scores, ``B - A``, and the stored comparison's CI, p-values and winner.

    Returns:
        Columns ``task_id, task_type, metric, score_a, score_b, delta`` (x100), ``ci_low, ci_high`` (x100),
        ``p_value, p_adjusted, winner, test, n, comparison``; the comparison's columns are empty (NaN / "")
        where no stored comparison matches the records.
    """
    index = _comparison_index(comparisons)
    by_task = {m: records[records["model"] == m].set_index("task_id") for m in (a, b)}
    out = []
    for task in sorted(set(by_task[a].index) & set(by_task[b].index)):
        ra, rb = by_task[a].loc[task].to_dict(), by_task[b].loc[task].to_dict()
        ra["task_id"] = rb["task_id"] = task
        row = {
            "task_id": task,
            "task_type": ra["task_type"],
            "metric": ra["metric"],
            "score_a": SCALE * ra["score"],
            "score_b": SCALE * rb["score"],
            "delta": SCALE * (rb["score"] - ra["score"]),
            "ci_low": math.nan,
            "ci_high": math.nan,
            "p_value": math.nan,
            "p_adjusted": math.nan,
            "winner": "",
            "test": "",
            "n": math.nan,
            "comparison": "",
        }
        found = _find(index, ra, rb) if (ra["split"], ra["metric"]) == (rb["split"], rb["metric"]) else None
        if found is not None:
            row.update({k: found[k] for k in ("p_value", "p_adjusted", "winner", "test", "n")})
            row.update(ci_low=SCALE * found["ci_low"], ci_high=SCALE * found["ci_high"], comparison=found["file"])
        out.append(row)
    columns = "task_id task_type metric score_a score_b delta ci_low ci_high p_value p_adjusted winner test n".split()
    return pd.DataFrame(out, columns=[*columns, "comparison"])


# MODEL PAGE =======================================================================================

CARD_FIELDS = (
    "name family revision source upstream params embed_dim max_tokens languages license similarity pooling "
    "prompts training_data citation"
).split()


def _text(v: Any) -> str:
    if v is None or v == [] or v == {}:
        return ""
    if isinstance(v, dict):
        return "; ".join(f"{k}: {json.dumps(x, ensure_ascii=False)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(str(x) for x in v)
    return str(v)


def model_detail(
    root: str | os.PathLike[str], paths: Sequence[str], signature: str = ""
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A model's card and all its results, read from its record files.

    Args:
        root: the results folder.
        paths: the model's record files relative to ``root`` (``Results.records.path``), newest revision first.
        signature: of the results folder; unused here, it keys the cache of the caller.

    Returns:
        ``(card, results)``: the card of the first record as ``field, value`` text rows (prompts as
        ``kind: "prompt"``), and one row per record and split with ``revision, task_id, task_type,
        split, metric, score`` (x100), ``n_items, encode_s, texts_per_s, total_s, date, code_revision,
        cpu, metrics`` (every metric of the split, x100, as text).
    """
    del signature
    rows, card = [], {}
    for i, rel in enumerate(paths):
        d = json.loads((Path(root) / rel).read_bytes())
        if i == 0:
            card = d.get("model_card") if isinstance(d.get("model_card"), dict) else {}
        rt = d["runtime"] if isinstance(d["runtime"], dict) else {}
        encoded, encode_s = _number(rt.get("texts_encoded")), _number(rt.get("encode_s"))
        for split, scores in d["scores"].items():
            others = {k: v for k, v in scores.items() if k != "main_score"}
            rows.append(
                {
                    "revision": d["revision"],
                    "task_id": d["task_id"],
                    "task_type": d["task_type"],
                    "split": split,
                    "metric": d["main_score"],
                    "score": SCALE * _number(scores.get("main_score")),
                    "n_items": _number(d["n_items"].get(split)) if isinstance(d["n_items"], dict) else math.nan,
                    "encode_s": encode_s,
                    "texts_per_s": encoded / encode_s if encoded > 0 and encode_s > 0 else math.nan,
                    "total_s": _number(rt.get("total_s")),
                    "date": d["date"],
                    "code_revision": str(d["code_revision"]),
                    "cpu": str(d["hardware"].get("cpu", "")) if isinstance(d["hardware"], dict) else "",
                    "metrics": ", ".join(f"{k} {SCALE * _number(v):.2f}" for k, v in others.items()),
                }
            )
    card_rows = pd.DataFrame({"field": CARD_FIELDS, "value": [_text(card.get(f)) for f in CARD_FIELDS]})
    return card_rows, pd.DataFrame(rows)


# TEXT =============================================================================================

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$&])")


def to_csv(table: pd.DataFrame) -> bytes:
    """UTF-8 CSV of a table; a text cell that a spreadsheet would run as a formula gets a leading ``'``."""

    def defuse(v: Any) -> Any:
        return "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v

    safe = table.copy()
    for col in safe.select_dtypes(include=["object", "string"]).columns:
        safe[col] = safe[col].map(defuse)
    return safe.to_csv(index=False).encode("utf-8")


def escape_markdown(text: str) -> str:
    """``text`` shown literally by Markdown (Streamlit's too): punctuation backslash-escaped, lines joined."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


# CLAIMS ===========================================================================================

CLAIM_COLUMNS = (
    "claim verdict paper says a b expects task metric score_a score_b delta ci_low ci_high p_adjusted task_verdict "
    "note"
).split()
_CLAIM_VERDICTS = ("held", "not held", "inconclusive", "missing", "untestable")


@dataclass(frozen=True)
class Claims:
    """The stored verdicts of ``zoobench claims``: one row per claim and task split (scores x100), when they
    were checked, and why the file was skipped (``warning``)."""

    table: pd.DataFrame
    checked: str = ""
    warning: str = ""


def _claim_rows(doc: Any) -> list[dict[str, Any]]:
    _expect(isinstance(doc, dict) and doc.get("kind") == "zoobench.claims", "not a zoobench claims file")
    _expect(doc.get("schema_version") == SCHEMA_VERSION, f"unknown schema_version {doc.get('schema_version')!r}")
    _expect(isinstance(doc.get("claims"), list), "'claims' is not a list")
    rows = []
    for r in doc["claims"]:
        _expect(isinstance(r, dict) and isinstance(r.get("claim"), dict), "a claim is not an object")
        c = r["claim"]
        _expect(r.get("verdict") in _CLAIM_VERDICTS, f"unknown verdict {r.get('verdict')!r}")
        for key in ("id", "says", "a", "b", "expect"):
            _expect(isinstance(c.get(key), str), f"claim key {key!r} is not a string")
        margin = _number(c.get("margin", 0.0))
        head = {
            "claim": c["id"], "verdict": r["verdict"], "paper": _text(c.get("cite") or c.get("paper")),
            "says": c["says"], "a": c["a"], "b": c["b"],
            "expects": c["expect"] + (f" (margin {margin:g})" if margin else ""),
        }  # fmt: skip
        tasks = r.get("tasks") or []
        _expect(isinstance(tasks, list), "'tasks' is not a list")
        if not tasks:
            note = " ".join([_text(r.get("reason")), *(f"[{_text(cmd)}]" for cmd in r.get("commands") or [])])
            rows.append({**head, "task": ", ".join(map(_text, c.get("tasks") or [])), "note": note.strip()})
        for t in tasks:
            _expect(isinstance(t, dict), "a task row is not an object")
            values = {k: _number(t.get(k)) for k in ("score_a", "score_b", "delta", "ci_low", "ci_high")}
            rows.append(
                {
                    **head,
                    "task": _text(t.get("task")) + ("" if t.get("split") == "test" else f" [{_text(t.get('split'))}]"),
                    "metric": _text(t.get("metric")),
                    **{k: SCALE * v for k, v in values.items()},
                    "p_adjusted": _number(t.get("p_adjusted")),
                    "task_verdict": _text(t.get("verdict")),
                    "note": "",
                }
            )
    return rows


def load_claims(root: str | os.PathLike[str]) -> Claims:
    """The verdicts stored in ``<root>/_claims/claims.json`` (an empty table when there are none; a bad file gives
    an empty table and a warning naming it)."""
    path = os.path.join(root, *CLAIMS_FILE)
    empty = pd.DataFrame(columns=CLAIM_COLUMNS)
    if not os.path.isfile(path):
        return Claims(empty)
    rel = "/".join(CLAIMS_FILE)
    try:
        doc = _read_json(path)
        table = pd.DataFrame(_claim_rows(doc), columns=CLAIM_COLUMNS)
    except _Skip as e:
        return Claims(empty, warning=f"{rel}: {e}; skipped")
    return Claims(table, f"{_text(doc.get('date'))}, code {_text(doc.get('code_revision'))[:12]}")
