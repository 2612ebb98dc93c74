"""Metric names and their direction, and retrieval evaluation through ranx.

Metric strings use ranx syntax (``ndcg@10``, ``recall@100``, ``map``, ``mrr@10``); the other task
types name theirs plainly (``cosine_spearman``, ``accuracy``, ``v_measure``, ``cosine_ap``). Every
metric declares whether higher is better; :func:`evaluate_run` always returns ``dict[str, float]``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["HIGHER_IS_BETTER", "higher_is_better", "evaluate_run", "per_query", "to_ranx"]

HIGHER_IS_BETTER: dict[str, bool] = {
    # ranx retrieval metrics (the part before "@")
    "ndcg": True,
    "map": True,
    "mrr": True,
    "recall": True,
    "precision": True,
    "hit_rate": True,
    # sts
    "cosine_spearman": True,
    "cosine_pearson": True,
    # classification
    "accuracy": True,
    "f1": True,
    "f1_weighted": True,
    # clustering
    "v_measure": True,
    "v_measure_std": False,
    # pair classification
    "cosine_ap": True,
    "cosine_accuracy": True,
    "cosine_f1": True,
    # main scores of mteb tasks (harness/datasets/mteb.py): best over similarity functions, AMI, MIND
    "max_ap": True,
    "max_accuracy": True,
    "max_f1": True,
    "ami": True,
    "max_over_subqueries_map": True,
    # sequence labelling (harness/tasks/seqlabel.py; f1, precision, recall above): the Boundary Information Metric
    "bim": True,
}


def higher_is_better(metric: str) -> bool:
    """Direction of a metric string such as ``ndcg@10``.

    Raises:
        KeyError: for an undeclared metric.
    """
    return HIGHER_IS_BETTER[re.sub(r"-l\d+$", "", metric).split("@", 1)[0]]  # ranx: "map@1000-l2", "map-l2"


def _ranx():
    # ranx creates ~/.ir_datasets at import time; keep it inside the user's cache unless told otherwise.
    os.environ.setdefault(
        "IR_DATASETS_HOME", os.path.join(os.path.expanduser("~"), ".cache", "zoobench", "ir_datasets")
    )
    import ranx

    return ranx


def _trec_order(item: tuple[str, float]) -> tuple[float, _Desc]:
    return -item[1], _Desc(item[0])


def trec_sorted(docs: Mapping[str, float], depth: int | None = None) -> list[tuple[str, float]]:
    """``(doc_id, score)`` best first, ties by doc id descending (trec_eval's order), cut at ``depth``."""
    return sorted(docs.items(), key=_trec_order)[:depth]


def _trec_ranks(docs: Mapping[str, float]) -> dict[str, float]:
    ranked = trec_sorted(docs)
    return {d: float(len(ranked) - i) for i, (d, _) in enumerate(ranked)}


class _Desc(str):
    """A string that sorts in reverse order."""

    def __lt__(self, other: str) -> bool:
        return str.__gt__(self, other)


def _qrels_run(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]]):
    ranx = _ranx()
    # Queries the system returned nothing for still count (as zeros); ranx needs a non-empty dict.
    # ranx sorts a ranking with numba's np.argsort (quicksort: unstable past 16 items), so tied scores
    # would rank arbitrarily. The metrics depend only on the order: hand ranx distinct scores n, n-1, ...
    # in trec_eval's order (score, then doc id, both descending), so ties rank as trec_eval ranks them.
    run = {q: _trec_ranks(run.get(q) or {}) or {"\0none": -np.inf} for q in qrels}
    return ranx.Qrels({q: dict(d) for q, d in qrels.items()}), ranx.Run(run)


def to_ranx(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]], name: str | None = None):
    """ranx ``(Qrels, Run)`` built exactly as :func:`evaluate_run` builds them (trec_eval tie order), the run named."""
    q, r = _qrels_run(qrels, run)
    r.name = name  # a fresh object of ours; ranx.compare labels runs by name
    return q, r


def evaluate_run(
    qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]], metrics: Sequence[str]
) -> dict[str, float]:
    """Mean of each metric over the judged queries (ranx; a query missing from ``run`` scores 0).

    Args:
        qrels: ``{query_id: {doc_id: relevance}}``; relevance > 0 is relevant.
        run: ``{query_id: {doc_id: score}}``; queries not in ``qrels`` are ignored.
        metrics: ranx metric strings.

    Returns:
        ``{metric: value}`` for every requested metric, as floats.
    """
    ranx = _ranx()
    q, r = _qrels_run(qrels, run)
    out = ranx.evaluate(q, r, list(metrics), make_comparable=True)
    if len(metrics) == 1:  # ranx returns a bare float for one metric
        out = {metrics[0]: out}
    return {m: float(out[m]) for m in metrics}


def per_query(
    qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Mapping[str, float]], metric: str
) -> dict[str, float]:
    """``{query_id: value}`` of one metric for every judged query (for significance tests)."""
    ranx = _ranx()
    q, r = _qrels_run(qrels, run)
    values = ranx.evaluate(q, r, metric, return_mean=False, make_comparable=True)
    return {qid: float(v) for qid, v in zip(q.keys(), values, strict=True)}
