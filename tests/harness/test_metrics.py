"""harness.metrics: evaluate_run against pytrec_eval (trec_eval) and hand-computed values."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from harness.metrics import HIGHER_IS_BETTER, evaluate_run, higher_is_better, per_query

pytrec_eval = pytest.importorskip("pytrec_eval")

# ranx metric -> trec_eval measure (recip_rank has no cutoff: compared only where it equals mrr@10)
TREC = {
    "ndcg@10": "ndcg_cut_10",
    "ndcg@100": "ndcg_cut_100",
    "map@100": "map_cut_100",
    "recall@10": "recall_10",
    "recall@100": "recall_100",
    "recall@1000": "recall_1000",
    "precision@10": "P_10",
    "mrr@10": "recip_rank",
}


def _pytrec_means(qrels, run, measures, n_queries=None) -> dict[str, float]:
    per_q = pytrec_eval.RelevanceEvaluator(qrels, set(measures)).evaluate(run)
    n = n_queries or len(per_q)
    return {m: sum(v[m] for v in per_q.values()) / n for m in measures}


# A toy run with hand-computed values =============================================================

QRELS = {"q1": {"d1": 1, "d2": 0, "d3": 2}, "q2": {"d4": 1}, "q3": {"d6": 1, "d7": 1}}
RUN = {
    # q1 ranking: d2 (judged non-relevant), d5, d1 (rel 1), d3 (rel 2)
    "q1": {"d1": 0.5, "d2": 0.9, "d3": 0.1, "d5": 0.7},
    # q2: its one relevant document is not retrieved
    "q2": {"d5": 1.0, "d6": 0.2},
    # q3: d6 first, then 11 non-relevant, then d7 at rank 13
    "q3": {"d6": 2.0, **{f"x{i:02d}": 1.0 - i / 100 for i in range(11)}, "d7": 0.5},
    "q-unjudged": {"d1": 1.0},  # ignored
}


def _hand_values() -> dict[str, float]:
    log2 = math.log2
    q1 = {
        "ndcg@10": (1 / log2(4) + 2 / log2(5)) / (2 / log2(2) + 1 / log2(3)),
        "map@100": (1 / 3 + 2 / 4) / 2,
        "recall@100": 1.0,
        "recall@10": 1.0,
        "precision@10": 2 / 10,
        "mrr@10": 1 / 3,
    }
    q2 = dict.fromkeys(q1, 0.0)
    q3 = {
        "ndcg@10": 1 / (1 + 1 / log2(3)),
        "map@100": (1 / 1 + 2 / 13) / 2,
        "recall@100": 1.0,
        "recall@10": 0.5,
        "precision@10": 1 / 10,
        "mrr@10": 1.0,
    }
    return {m: (q1[m] + q2[m] + q3[m]) / 3 for m in q1}


def test_toy_run_matches_hand_computation() -> None:
    expected = _hand_values()
    got = evaluate_run(QRELS, RUN, list(expected))
    assert set(got) == set(expected)
    for m, v in expected.items():
        assert got[m] == pytest.approx(v, abs=1e-9), m
        assert type(got[m]) is float


def test_toy_run_matches_pytrec_eval() -> None:
    metrics = list(TREC)  # first relevant is in the top 10 or absent for every query: recip_rank == mrr@10
    got = evaluate_run(QRELS, RUN, metrics)
    ref = _pytrec_means(QRELS, RUN, [TREC[m] for m in metrics])
    for m in metrics:
        assert got[m] == pytest.approx(ref[TREC[m]], abs=1e-6), m


def test_single_metric_returns_a_dict() -> None:
    assert evaluate_run(QRELS, RUN, ["recall@100"]) == {"recall@100": pytest.approx(2 / 3)}


def test_queries_missing_from_run_count_as_zero() -> None:
    full = evaluate_run(QRELS, RUN, ["ndcg@10", "map@100", "recall@100"])
    only_q1 = {"q1": RUN["q1"], "q3": {}}  # q3 returned nothing, q2 is absent
    got = evaluate_run(QRELS, only_q1, ["ndcg@10", "map@100", "recall@100"])
    q1 = evaluate_run({"q1": QRELS["q1"]}, {"q1": RUN["q1"]}, ["ndcg@10", "map@100", "recall@100"])
    for m in got:
        assert got[m] == pytest.approx(q1[m] / 3, abs=1e-12)
        assert got[m] < full[m]
    assert evaluate_run(QRELS, {}, ["ndcg@10", "mrr@10"]) == {"ndcg@10": 0.0, "mrr@10": 0.0}
    pq = per_query(QRELS, only_q1, "recall@100")
    assert pq == {"q1": 1.0, "q2": 0.0, "q3": 0.0}


def test_per_query_matches_pytrec() -> None:
    pq = per_query(QRELS, RUN, "ndcg@10")
    ref = pytrec_eval.RelevanceEvaluator(QRELS, {"ndcg_cut_10"}).evaluate(RUN)
    assert set(pq) == set(QRELS)
    for q in QRELS:
        assert pq[q] == pytest.approx(ref[q]["ndcg_cut_10"], abs=1e-9)


def test_mrr_cutoff_at_10() -> None:
    qrels = {"q": {"rel": 1}}
    run = {"q": {**{f"n{i:02d}": 1.0 - i / 100 for i in range(10)}, "rel": 0.5}}  # relevant at rank 11
    got = evaluate_run(qrels, run, ["mrr@10", "mrr@100"])
    assert got == {"mrr@10": 0.0, "mrr@100": pytest.approx(1 / 11)}
    assert _pytrec_means(qrels, run, ["recip_rank"])["recip_rank"] == pytest.approx(1 / 11)


def test_run_dict_order_does_not_matter_without_ties() -> None:
    reordered = {q: dict(reversed(list(d.items()))) for q, d in reversed(list(RUN.items()))}
    assert evaluate_run(QRELS, reordered, list(TREC)) == evaluate_run(QRELS, RUN, list(TREC))


TIE_QRELS = {"q": {"a": 1}}
TIE_RUN_AB = {"q": {"a": 1.0, "b": 1.0, "c": 0.5}}
TIE_RUN_BA = {"q": {"b": 1.0, "a": 1.0, "c": 0.5}}


def test_ties_do_not_depend_on_dict_order() -> None:
    assert evaluate_run(TIE_QRELS, TIE_RUN_AB, ["mrr@10"]) == evaluate_run(TIE_QRELS, TIE_RUN_BA, ["mrr@10"])


def test_ties_broken_like_trec_eval() -> None:
    ref = _pytrec_means(TIE_QRELS, TIE_RUN_AB, ["recip_rank", "ndcg_cut_10"])
    assert ref["recip_rank"] == 0.5  # trec_eval ranks "b" before "a"
    got = evaluate_run(TIE_QRELS, TIE_RUN_AB, ["mrr@10", "ndcg@10"])
    assert got["mrr@10"] == pytest.approx(ref["recip_rank"]) and got["ndcg@10"] == pytest.approx(ref["ndcg_cut_10"])


# A real run: BM25 on SciFact =====================================================================


def _trec_order(docs: dict[str, float]) -> list[str]:
    """trec_eval's ranking: score descending, then doc id descending."""
    return [d for d, _ in sorted(docs.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]


@pytest.fixture(scope="module")
def scifact_bm25(shared_data: Path):
    import zoo
    from harness.tasks import get_task

    data = get_task("local/scifact", shared_data).load("test")
    run = zoo.create_model("bm25").retrieve(data.queries, data.corpus, top_k=1000)
    assert set(run) == set(data.qrels) and all(run.values())
    return data.qrels, run


REAL_METRICS = ["ndcg@10", "ndcg@100", "map@100", "recall@10", "recall@100", "recall@1000", "precision@10"]


@pytest.mark.data
def test_bm25_scifact_matches_pytrec_eval(scifact_bm25) -> None:
    qrels, run = scifact_bm25
    # Insert each ranking in trec_eval's order so that tied scores rank the same in both (see the xfails above).
    run = {q: {d: run[q][d] for d in _trec_order(run[q])} for q in run}
    got = evaluate_run(qrels, run, [*REAL_METRICS, "mrr@10"])
    ref = _pytrec_means(qrels, run, [TREC[m] for m in REAL_METRICS])
    for m in REAL_METRICS:
        assert got[m] == pytest.approx(ref[TREC[m]], abs=1e-6), m
    # mrr@10 by hand (pytrec's recip_rank has no cutoff)
    rr = []
    for q, rels in qrels.items():
        top = _trec_order(run[q])[:10]
        rr.append(next((1 / (i + 1) for i, d in enumerate(top) if rels.get(d, 0) > 0), 0.0))
    assert got["mrr@10"] == pytest.approx(float(np.mean(rr)), abs=1e-6)
    assert got["ndcg@10"] == pytest.approx(0.6804, abs=1e-3)  # BM25 (bm25s, Lucene) on this SciFact rebuild


@pytest.mark.data
def test_bm25_scifact_raw_run_matches_pytrec_eval(scifact_bm25) -> None:
    qrels, run = scifact_bm25
    got = evaluate_run(qrels, run, REAL_METRICS)
    ref = _pytrec_means(qrels, run, [TREC[m] for m in REAL_METRICS])
    assert all(got[m] == pytest.approx(ref[TREC[m]], abs=1e-6) for m in REAL_METRICS)
    assert per_query(qrels, run, "map@100")["1175"] == pytest.approx(1 / 93)


# Direction of every metric =======================================================================


def test_higher_is_better() -> None:
    assert higher_is_better("ndcg@10") is True
    assert higher_is_better("recall@1000") is True
    assert higher_is_better("map") is True
    assert higher_is_better("v_measure_std") is False
    with pytest.raises(KeyError):
        higher_is_better("no_such_metric")
    assert all(isinstance(v, bool) for v in HIGHER_IS_BETTER.values())


def test_every_declared_task_metric_has_a_direction() -> None:
    from harness.tasks import TASK_TYPES

    assert {"retrieval", "sts", "pair_classification", "classification", "clustering", "reranking"} <= set(TASK_TYPES)
    for name, cls in TASK_TYPES.items():
        for metric in (cls.main_score, *getattr(cls, "metrics", ())):
            assert isinstance(higher_is_better(metric), bool), (name, metric)
