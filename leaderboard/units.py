"""Per-query and per-item scores of a record, for the compare view's wins / ties / losses and scatter.

Each value is one unit's share of the record's main score, so that their mean is the score:

- **ranked lists** (a stored run and qrels): the metric per judged query, recomputed from the run with
  ranx's definitions (``ndcg`` with linear gains, ``map``, ``mrr``, ``recall``, ``precision``,
  ``hit_rate``, ``@k`` cut-offs and ``-lN`` relevance levels); a query the run misses scores 0. The mean
  must equal the record's score (within 1e-6), else the run (cut at its top 100) cannot reproduce the
  metric and no units are given.
- **classification**: each test item's fraction correct over the 10 experiments (mean = accuracy).
- **clustering**: the V-measure of each of the 10 k-means runs (mean = the V-measure).
- **pair classification**: the precision at each positive pair's rank, tied scores forming one threshold
  as in sklearn (mean = average precision).
- **STS**: each item's term of Spearman's rho written as the Pearson correlation of ranks,
  ``z(rank of pred) * z(rank of gold)`` with ranks averaged over ties and z-scores over the items (mean =
  rho exactly, ties included); ``cosine_pearson`` likewise without ranks.

Files are found beside the record (``<results>/<model>/<revision>/runs/<source>/<task>.<split>.*``, as
``harness/results.py`` writes them); nothing here imports ``harness`` or ``zoo``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leaderboard.data import RUNS_DIR, SCALE

__all__ = [
    "Units",
    "Paired",
    "NoUnits",
    "ITEM_UNITS",
    "unit_scores",
    "paired_units",
    "paired_scores",
    "unit_comparison",
]

_SCORE_TOLERANCE = 1e-6  # mean of the units vs the record's score
_TIE = 1e-12  # unit values closer than this are a tie
_MISMATCH = "the mean of the units differs from the record's score"


class NoUnits(Exception):
    """The stored files of a record give no per-query or per-item scores (the message says why)."""


@dataclass(frozen=True)
class Units:
    """Per-query or per-item values of a record's main score.

    Attributes:
        ids: one id per unit (query id, or item index as text).
        values: (n,) the values, higher is better.
        unit: what a unit is ("query", "item", "positive pair", "k-means run").
        mean_matches: whether the mean of ``values`` equals the record's score (within 1e-6).
        key: identifies the gold data, so only units of the same data are paired.
    """

    ids: tuple[str, ...]
    values: np.ndarray
    unit: str
    mean_matches: bool
    key: str


def _files(root: str | os.PathLike[str], rel: str, split: str) -> dict[str, Path]:
    """The run, qrels and items files of the record at ``rel``."""
    parts = Path(rel).parts  # <model>/<revision>/<task parts>.json
    stem = Path(parts[-1]).stem
    base = Path(root).joinpath(*parts[:2], RUNS_DIR, *parts[2:-1])
    return {
        "run": base / f"{stem}.{split}.trec.gz",
        "qrels": base / f"{stem}.{split}.qrels.gz",
        "items": base / f"{stem}.{split}.items.json.gz",
    }


def _gz_lines(path: Path, n_fields: int) -> list[list[str]]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            rows = [line.split() for line in f]
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise NoUnits(f"{path.name}: unreadable ({e})") from None
    rows = [r for r in rows if r]
    if any(len(r) != n_fields for r in rows):
        raise NoUnits(f"{path.name}: not a TREC file with {n_fields} fields per line")
    return rows


def _ndcg(top: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(top))
    ideal = sorted(relevant.values(), reverse=True)[: k or None]
    return dcg / (sum(r / math.log2(i + 2) for i, r in enumerate(ideal)) or 1.0)


def _ap(top: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    hits = np.array([d in relevant for d in top], dtype=np.float64)
    return float((np.cumsum(hits) / np.arange(1, len(hits) + 1) * hits).sum() / len(relevant))


def _rr(top: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    return next((1 / (i + 1) for i, d in enumerate(top) if d in relevant), 0.0)


def _hit(top: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    return float(any(d in relevant for d in top))


# ranx metric name -> one query's value from (its ranked docs cut at k, its relevant docs, k or 0 for no cut)
_RANKED: dict[str, Callable[[Sequence[str], Mapping[str, int], int], float]] = {
    "ndcg": _ndcg,
    "map": _ap,
    "mrr": _rr,
    "hit_rate": _hit,
    "recall": lambda top, rel, k: sum(d in rel for d in top) / len(rel),
    "precision": lambda top, rel, k: sum(d in rel for d in top) / (k or len(top) or 1),  # ranx: / k, even past the run
}
_RANKED_METRIC = re.compile(rf"^({'|'.join(_RANKED)})(?:@(\d+))?(?:-l(\d+))?$")


def _per_query(metric: str, ranked: Sequence[str], qrels: Mapping[str, int]) -> float:
    """One query's value of a ranx metric string (``ndcg@10``, ``map``, ``mrr@10-l2`` ...), as ranx computes it."""
    name, k, level = _RANKED_METRIC.match(metric).groups()  # type: ignore[union-attr]
    k, level = int(k or 0), int(level or 1)
    relevant = {d: r for d, r in qrels.items() if r >= level}
    if not relevant:
        return 0.0
    return _RANKED[name](ranked[: k or None], relevant, k)


def _ranked_units(files: Mapping[str, Path], metric: str) -> tuple[list[str], np.ndarray, str, str]:
    if not _RANKED_METRIC.match(metric):
        raise NoUnits(f"{metric} is not a ranking metric that can be recomputed per query")
    qrels: dict[str, dict[str, int]] = {}
    for qid, _, did, rel in _gz_lines(files["qrels"], 4):
        qrels.setdefault(qid, {})[did] = int(rel)
    run: dict[str, list[tuple[int, str]]] = {}
    for qid, _, did, rank, _, _ in _gz_lines(files["run"], 6):
        run.setdefault(qid, []).append((int(rank), did))
    ids = sorted(qrels)
    values = np.array([_per_query(metric, [d for _, d in sorted(run.get(q, []))], qrels[q]) for q in ids])
    key = hashlib.sha1(json.dumps(qrels, sort_keys=True).encode()).hexdigest()
    return ids, values, "query", key


def _zscores(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / (sd if sd > 0 else 1.0)


def _correlation_units(ranks: bool) -> Callable[[Mapping[str, Any]], tuple[np.ndarray, str, tuple]]:
    """Each item's term of the Pearson correlation of pred and gold (of their ranks, for Spearman's rho)."""

    def units(items: Mapping[str, Any]) -> tuple[np.ndarray, str, tuple]:
        pred, gold = np.asarray(items["pred"], np.float64), np.asarray(items["gold"], np.float64)
        if ranks:  # average ranks of ties, as scipy.stats.spearmanr
            pred, gold = pd.Series(pred).rank().to_numpy(), pd.Series(gold).rank().to_numpy()
        return _zscores(pred) * _zscores(gold), "item", tuple(items["gold"])

    return units


def _ap_units(items: Mapping[str, Any]) -> tuple[np.ndarray, str, tuple]:
    """Precision at each positive pair's rank; tied scores form one threshold (as sklearn's average precision)."""
    pred, gold = np.asarray(items["pred"], np.float64), np.asarray(items["gold"], np.float64)
    order = np.argsort(-pred, kind="stable")
    s, y = pred[order], gold[order]
    starts = np.r_[True, s[1:] != s[:-1]]
    group_end = np.r_[np.flatnonzero(starts)[1:], len(s)] - 1
    end = group_end[np.cumsum(starts) - 1]  # last position of each position's tie group
    precision = np.cumsum(y)[end] / (end + 1)
    positives = np.sort(order[y > 0])
    by_item = np.empty(len(pred))
    by_item[order] = precision
    return by_item[positives], "positive pair", tuple(gold)


def _mean_units(key: str, unit: str) -> Callable[[Mapping[str, Any]], tuple[np.ndarray, str, tuple]]:
    def units(items: Mapping[str, Any]) -> tuple[np.ndarray, str, tuple]:
        return np.asarray(items[key], np.float64), unit, ()

    return units


# task type -> main metric -> per-unit values from the stored items (see the module docstring)
ITEM_UNITS: dict[str, dict[str, Callable[[Mapping[str, Any]], tuple[np.ndarray, str, tuple]]]] = {
    "sts": {"cosine_spearman": _correlation_units(ranks=True), "cosine_pearson": _correlation_units(ranks=False)},
    "pair_classification": {"cosine_ap": _ap_units},
    "classification": {"accuracy": _mean_units("correct", "item")},
    "clustering": {"v_measure": _mean_units("v_measures", "k-means run")},
}


def unit_scores(root: str | os.PathLike[str], record: Mapping[str, Any]) -> Units:
    """Per-query or per-item values of a record's main score, from its stored run, qrels or items files.

    Args:
        root: the results folder.
        record: a row of ``Results.records`` (uses ``path, split, task_type, metric, score``).

    Returns:
        :class:`Units`.

    Raises:
        NoUnits: no such files, an unsupported task type or metric, or a run that does not reproduce
            the record's score (e.g. a cut-off run and a metric deeper than the cut).
    """
    files = _files(root, record["path"], record["split"])
    if files["run"].exists() and files["qrels"].exists():
        ids, values, unit, key = _ranked_units(files, record["metric"])
        exact = abs(float(values.mean()) - record["score"]) <= _SCORE_TOLERANCE if len(values) else False
        if not exact:
            raise NoUnits(
                f"the stored run does not reproduce the record's {record['metric']} "
                f"({values.mean() if len(values) else math.nan:.6f} vs {record['score']:.6f})"
            )
        return Units(tuple(ids), values, unit, True, key)
    if not files["items"].exists():
        raise NoUnits("no stored run or per-item predictions")
    fn = ITEM_UNITS.get(record["task_type"], {}).get(record["metric"])
    if fn is None:
        raise NoUnits(f"no per-item values of {record['metric']} for {record['task_type']} tasks")
    try:
        items = json.loads(gzip.decompress(files["items"].read_bytes()))
        values, unit, gold = fn(items)
    except (OSError, EOFError, ValueError, KeyError, TypeError) as e:
        raise NoUnits(f"{files['items'].name}: unreadable per-item predictions ({type(e).__name__}: {e})") from None
    exact = len(values) > 0 and abs(float(values.mean()) - record["score"]) <= _SCORE_TOLERANCE
    ids = tuple(str(i) for i in range(len(values)))
    return Units(ids, values, unit, exact, hashlib.sha1(repr((len(values), gold)).encode()).hexdigest())


@dataclass(frozen=True)
class Paired:
    """The units two records share.

    Attributes:
        frame: ``id, a, b``: each shared unit's value under record A and record B.
        unit: what a unit is.
        mean_matches: whether both records' unit means equal their scores.
    """

    frame: pd.DataFrame
    unit: str
    mean_matches: bool


def paired_units(a: Units, b: Units) -> Paired:
    """Pair two records' units by id.

    Raises:
        NoUnits: the records were scored on different gold data.
    """
    if a.key != b.key or a.unit != b.unit:
        raise NoUnits("the two records were scored on different gold data; their units do not pair")
    frame = pd.DataFrame({"id": a.ids, "a": a.values}).merge(pd.DataFrame({"id": b.ids, "b": b.values}), on="id")
    return Paired(frame, a.unit, a.mean_matches and b.mean_matches)


def paired_scores(
    root: str | os.PathLike[str], record_a: Mapping[str, Any], record_b: Mapping[str, Any], signature: str = ""
) -> Paired:
    """:func:`paired_units` of two records (rows of ``Results.records``) of one task.

    Args:
        root: the results folder.
        record_a: model A's record.
        record_b: model B's record.
        signature: of the results folder; unused here, it keys the cache of the caller.

    Raises:
        NoUnits: see :func:`unit_scores` and :func:`paired_units`.
    """
    del signature
    return paired_units(unit_scores(root, record_a), unit_scores(root, record_b))


def unit_comparison(
    root: str | os.PathLike[str], records: pd.DataFrame, a: str, b: str, signature: str = ""
) -> pd.DataFrame:
    """Per task both models have: wins, ties and losses over their paired queries / items.

    Args:
        root: the results folder.
        records: the selected records (one revision per model).
        a: model A.
        b: model B.
        signature: of the results folder; unused here, it keys the cache of the caller.

    Returns:
        Columns ``task_id, unit, n, a_better, ties, b_better, mean_a, mean_b`` (means x100) and ``note``
        (why a task has no units, or that their mean does not reproduce a record's score).
    """
    del signature
    out = []
    for task, g in records[records["model"].isin([a, b])].groupby("task_id", sort=True):
        if set(g["model"]) != {a, b}:
            continue
        ra, rb = (g[g["model"] == m].iloc[0].to_dict() for m in (a, b))
        row = dict(task_id=task, unit="", n=0, a_better=0, ties=0, b_better=0, mean_a=math.nan, mean_b=math.nan)
        try:
            paired = paired_scores(root, ra, rb)
        except NoUnits as e:
            out.append({**row, "note": str(e)})
            continue
        diff = paired.frame["b"].to_numpy() - paired.frame["a"].to_numpy()
        row.update(
            unit=paired.unit,
            n=len(diff),
            a_better=int((diff < -_TIE).sum()),
            ties=int((np.abs(diff) <= _TIE).sum()),
            b_better=int((diff > _TIE).sum()),
            mean_a=SCALE * float(paired.frame["a"].mean()),
            mean_b=SCALE * float(paired.frame["b"].mean()),
        )
        out.append({**row, "note": "" if paired.mean_matches else _MISMATCH})
    columns = "task_id unit n a_better ties b_better mean_a mean_b note".split()
    return pd.DataFrame(out, columns=columns)
