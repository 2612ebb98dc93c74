"""leaderboard.units: per-query values equal ranx's, per-item values average to sklearn's / scipy's scores."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import average_precision_score

from harness.metrics import evaluate_run, per_query
from harness.results import TaskResult, items_path, qrels_path, read_run, run_path, write_qrels, write_run
from leaderboard import data, units

METRICS = [
    "ndcg@10",
    "ndcg@3",
    "ndcg@100",
    "map",
    "map@5",
    "mrr@10",
    "recall@5",
    "recall@100",
    "precision@5",
    "precision@50",
    "hit_rate@3",
    "ndcg@10-l2",
    "map-l2",
    "mrr@10-l2",
    "recall@20-l2",
]


def _toy(seed: int = 0) -> tuple[dict, dict]:
    """Graded qrels (up to 14 relevant docs a query, some judged 0), runs of 25 distinct scores; edge queries."""
    rng = np.random.default_rng(seed)
    qrels, run = {}, {}
    for i in range(60):
        q = f"q{i}"
        qrels[q] = {
            f"d{j}": int(rng.integers(0, 4)) for j in rng.choice(40, size=int(rng.integers(1, 15)), replace=False)
        }
        docs = rng.choice(40, size=25, replace=False)
        scores = rng.permutation(25) + rng.uniform(0, 0.5, 25)
        run[q] = {f"d{d}": round(float(s), 6) for d, s in zip(docs, scores, strict=True)}
    qrels["q0"] = {"d1": 0}  # judged, nothing relevant
    run.pop("q1")  # nothing returned
    run["q2"] = dict(list(run["q2"].items())[:3])  # shorter than every cut-off
    return qrels, run


@pytest.fixture(scope="module")
def ranked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """A results folder with one stored toy run and its qrels; (root, qrels, run as read back)."""
    root = tmp_path_factory.mktemp("units")
    qrels, run = _toy()
    write_run(run_path(root, "m", "r", "local/toy", "test"), run, tag="m")
    write_qrels(qrels_path(root, "m", "r", "local/toy", "test"), qrels)
    return root, qrels, read_run(run_path(root, "m", "r", "local/toy", "test"))


def _record(root: Path, metric: str, score: float) -> dict:
    """A row of the records table for the stored toy run, as the leaderboard loads it."""
    TaskResult(
        model="m",
        revision="r",
        task_id="local/toy",
        task_type="retrieval",
        main_score=metric,
        scores={"test": {metric: score, "main_score": score}},
        n_items={"test": 60},
        data_checksum="x",
        code_revision="x",
        command="x",
        runtime={},
        hardware={},
        date="2025-01-01T00:00:00+00:00",
    ).save(root)
    return data.load_results(root).records.iloc[0].to_dict()


def test_per_query_values_equal_ranx(ranked: tuple[Path, dict, dict]) -> None:
    root, qrels, run = ranked
    scores = evaluate_run(qrels, run, METRICS)
    for metric in METRICS:
        got = units.unit_scores(root, _record(root, metric, scores[metric]))
        expected = per_query(qrels, run, metric)
        assert got.ids == tuple(sorted(qrels)) and got.unit == "query" and got.mean_matches, metric
        assert got.values == pytest.approx([expected[q] for q in got.ids], abs=1e-12), metric


def test_a_run_that_cannot_reproduce_the_score_gives_no_units(ranked: tuple[Path, dict, dict], tmp_path: Path) -> None:
    _, qrels, run = ranked
    cut = {q: dict(sorted(d.items(), key=lambda x: -x[1])[:5]) for q, d in run.items()}  # e.g. a top-5 run file
    write_run(run_path(tmp_path, "m", "r", "local/toy", "test"), cut, tag="m")
    write_qrels(qrels_path(tmp_path, "m", "r", "local/toy", "test"), qrels)
    record = _record(tmp_path, "ndcg@10", evaluate_run(qrels, run, ["ndcg@10"])["ndcg@10"])
    with pytest.raises(units.NoUnits, match="does not reproduce the record's ndcg@10"):
        units.unit_scores(tmp_path, record)
    with pytest.raises(units.NoUnits, match="not a ranking metric"):
        units.unit_scores(tmp_path, record | {"metric": "cosine_spearman"})


def _items_record(root: Path, task_type: str, metric: str, score: float, items: dict, model: str = "m") -> dict:
    path = items_path(root, model, "r", "local/items", "test")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps(items).encode()))
    return {
        "path": f"{model}/r/local/items.json",
        "split": "test",
        "task_type": task_type,
        "metric": metric,
        "score": score,
    }


def test_item_values_average_to_the_scores(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    gold = np.round(rng.uniform(0, 5, 500), 0)  # heavily tied gold scores
    pred = np.round(gold + rng.normal(0, 2, 500), 1)  # tied predictions too
    items = {"pred": pred.tolist(), "gold": gold.tolist()}
    for metric, fn in (("cosine_spearman", spearmanr), ("cosine_pearson", pearsonr)):
        score = float(fn(gold, pred).statistic)
        got = units.unit_scores(tmp_path, _items_record(tmp_path, "sts", metric, score, items))
        assert got.mean_matches and got.values.mean() == pytest.approx(score, abs=1e-12) and len(got.values) == 500

    labels = (rng.random(500) < 0.3).astype(int)
    cos = np.round(labels * 0.3 + rng.normal(0, 0.3, 500), 1)  # many tied scores across the classes
    ap = float(average_precision_score(labels, cos))
    got = units.unit_scores(
        tmp_path,
        _items_record(
            tmp_path, "pair_classification", "cosine_ap", ap, {"pred": cos.tolist(), "gold": labels.tolist()}
        ),
    )
    assert got.unit == "positive pair" and len(got.values) == labels.sum()
    assert got.values.mean() == pytest.approx(ap, abs=1e-12) and got.mean_matches

    correct = rng.binomial(10, 0.6, 300) / 10
    rec = _items_record(tmp_path, "classification", "accuracy", float(correct.mean()), {"correct": correct.tolist()})
    assert units.unit_scores(tmp_path, rec).values == pytest.approx(correct)
    rec = _items_record(tmp_path, "classification", "f1", 0.5, {"correct": correct.tolist()})
    with pytest.raises(units.NoUnits, match="no per-item values of f1"):
        units.unit_scores(tmp_path, rec)
    with pytest.raises(units.NoUnits, match="no stored run or per-item predictions"):
        units.unit_scores(tmp_path, rec | {"path": "other/r/local/items.json"})


def test_units_pair_only_on_the_same_gold_data(tmp_path: Path) -> None:
    gold = [1.0, 2.0, 3.0, 4.0]
    a = units.unit_scores(
        tmp_path, _items_record(tmp_path, "sts", "cosine_spearman", 0.8, {"pred": [1, 2, 4, 3], "gold": gold}, "a")
    )
    b = units.unit_scores(
        tmp_path, _items_record(tmp_path, "sts", "cosine_spearman", 1.0, {"pred": [1, 2, 3, 4], "gold": gold}, "b")
    )
    paired = units.paired_units(a, b)
    assert list(paired.frame.columns) == ["id", "a", "b"] and len(paired.frame) == 4 and paired.mean_matches
    other = units.unit_scores(
        tmp_path,
        _items_record(
            tmp_path, "sts", "cosine_spearman", 0.8, {"pred": [1, 2, 4, 3], "gold": [4.0, 3.0, 2.0, 1.0]}, "c"
        ),
    )
    with pytest.raises(units.NoUnits, match="different gold data"):
        units.paired_units(a, other)
