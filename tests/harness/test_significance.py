"""harness.significance: paired tests from stored results, checked against hand computations and ranx."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.metrics import evaluate_run
from harness.results import (
    TaskResult,
    items_path,
    load_results,
    qrels_path,
    read_qrels,
    read_run,
    run_path,
    write_qrels,
    write_run,
)
from harness.significance import ITEM_STATS, Report, compare, comparison_path, holm
from zoo.errors import ZooError

# Toy results folders ==============================================================================


def _save_record(root: Path, model: str, task: str, task_type: str, metric: str, value: float, n: int, **kw) -> None:
    TaskResult(
        model=model,
        revision=kw.get("revision", "r1"),
        task_id=task,
        task_type=task_type,
        main_score=metric,
        scores={"test": {metric: value, "main_score": value}},
        n_items={"test": n},
        data_checksum=kw.get("checksum", "sha256:toy"),
        code_revision="test",
        command="test",
        runtime={"total_s": 0.0},
        hardware={},
        date=kw.get("date", "2026-01-01T00:00:00+00:00"),
    ).save(root)


def _store_items(root: Path, model: str, task: str, task_type: str, metric: str, value: float, items: dict, **kw):
    n = len(next(iter(items.values())))
    _save_record(root, model, task, task_type, metric, value, n, **kw)
    path = items_path(root, model, kw.get("revision", "r1"), task, "test")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps(items).encode()))


def _store_sts(root: Path, model: str, task: str, pred: np.ndarray, gold: np.ndarray, **kw) -> None:
    from scipy.stats import spearmanr

    value = float(spearmanr(gold, pred).statistic)
    _store_items(
        root, model, task, "sts", "cosine_spearman", value, {"pred": pred.tolist(), "gold": gold.tolist()}, **kw
    )


def _store_ranked(root: Path, model: str, task: str, run: dict, qrels: dict, metric: str = "ndcg@10", **kw) -> None:
    revision = kw.get("revision", "r1")
    write_run(run_path(root, model, revision, task, "test"), run, tag=model)
    write_qrels(qrels_path(root, model, revision, task, "test"), qrels)
    value = evaluate_run(qrels, run, [metric])[metric]
    _save_record(root, model, task, "retrieval", metric, value, len(qrels), **kw)


def _toy_ranked(seed: int, n_queries: int = 200, shift: float = 0.0) -> tuple[dict, dict]:
    """Each query has one relevant doc among 20; ``shift`` > 0 moves it up for about that share of queries."""
    rng = np.random.default_rng(seed)
    qrels = {f"q{i}": {"d0": 1} for i in range(n_queries)}
    run = {}
    for i in range(n_queries):
        rank = int(rng.integers(0, 20))
        if rng.random() < shift:
            rank = max(0, rank - 5)
        docs = [f"d{j}" for j in range(1, 20)]
        docs.insert(rank, "d0")
        run[f"q{i}"] = {d: float(20 - r) for r, d in enumerate(docs)}
    return run, qrels


def _ranx_p(root: Path, models: list[str], task: str, stat_test: str, **kw) -> float:
    """``ranx.compare``'s p between the first two models, on runs read back from the stored files."""
    import ranx

    runs = []
    for m in models:
        run = read_run(run_path(root, m, kw.get(m, "r1"), task, "test"))
        # trec_eval's tie order (score, then doc id, both descending), as the harness scores runs
        runs.append(
            ranx.Run(
                {q: dict(sorted(d.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)) for q, d in run.items()},
                name=m,
            )
        )
    qrels = ranx.Qrels(read_qrels(qrels_path(root, models[0], kw.get(models[0], "r1"), task, "test")))
    rep = ranx.compare(
        qrels, runs, metrics=["ndcg@10"], stat_test=stat_test, max_p=0.05, n_permutations=10_000, make_comparable=True
    )
    return float(rep.comparisons[models[0], models[1]]["ndcg@10"]["p_value"])


# Statistics against hand computations =============================================================


def test_holm_matches_hand_computation() -> None:
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, max(0.06, 0.04*1)=0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]).tolist() == [1.0, 1.0]  # capped at 1, monotone
    assert holm([0.2]).tolist() == [0.2]


def test_weighted_statistics_equal_materialised_resamples() -> None:
    """Resampling by multiplicity weights gives what scipy/sklearn give on the resampled items (ties included)."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    n = 60
    pred = np.round(rng.normal(size=n), 1)  # rounded: many ties
    gold = np.round(rng.normal(size=n) + pred, 0)
    labels = (gold > 0).astype(int)
    idx = rng.integers(0, n, size=(5, n))
    w = np.stack([np.bincount(row, minlength=n) for row in idx]).astype(float)
    sts, pairs = {"pred": pred.tolist(), "gold": gold.tolist()}, {"pred": pred.tolist(), "gold": labels.tolist()}
    got_s = ITEM_STATS["sts"]["cosine_spearman"].fn(sts, w)
    got_p = ITEM_STATS["sts"]["cosine_pearson"].fn(sts, w)
    got_ap = ITEM_STATS["pair_classification"]["cosine_ap"].fn(pairs, w)
    for k, row in enumerate(idx):
        assert got_s[k] == pytest.approx(spearmanr(gold[row], pred[row]).statistic, abs=1e-12)
        assert got_p[k] == pytest.approx(pearsonr(gold[row], pred[row]).statistic, abs=1e-12)
        assert got_ap[k] == pytest.approx(average_precision_score(labels[row], pred[row]), abs=1e-12)


# Item tasks (paired bootstrap) ====================================================================


def test_bootstrap_ci_contains_true_delta(tmp_path: Path) -> None:
    """Paired classification items whose population difference is exactly 0.10."""
    rng = np.random.default_rng(1)
    u = rng.random(2000)
    a, b = (u < 0.6).astype(float), (u < 0.7).astype(float)  # B is right wherever A is, and on 10% more
    _store_items(tmp_path, "a", "local/clf", "classification", "accuracy", a.mean(), {"correct": a.tolist()})
    _store_items(tmp_path, "b", "local/clf", "classification", "accuracy", b.mean(), {"correct": b.tolist()})
    (row,) = compare(["a", "b"], ["local/clf"], results_dir=tmp_path).rows
    assert (row.test, row.n, row.metric) == ("bootstrap", 2000, "accuracy")
    assert row.delta == pytest.approx(b.mean() - a.mean(), abs=1e-12)
    assert row.ci_low < 0.10 < row.ci_high
    se = (b - a).std() / np.sqrt(len(a))  # the normal-approximation interval, by hand
    assert row.ci_low == pytest.approx(row.delta - 1.96 * se, abs=0.3 * se)
    assert row.ci_high == pytest.approx(row.delta + 1.96 * se, abs=0.3 * se)
    assert row.p_value < 0.01 and row.winner == "b" and row.significant


def test_sts_clear_difference_and_identical_systems(tmp_path: Path) -> None:
    from scipy.stats import spearmanr

    rng = np.random.default_rng(2)
    gold = rng.uniform(0, 5, 300)
    noisy, sharp = gold + rng.normal(0, 3, 300), gold + rng.normal(0, 0.3, 300)
    _store_sts(tmp_path, "noisy", "local/sts", noisy, gold)
    _store_sts(tmp_path, "sharp", "local/sts", sharp, gold)
    _store_sts(tmp_path, "twin", "local/sts", sharp, gold)
    report = compare(["noisy", "sharp", "twin"], ["local/sts"], results_dir=tmp_path, correction="none")
    rows = {(r.model_a, r.model_b): r for r in report.rows}
    clear = rows["noisy", "sharp"]
    assert clear.score_a == pytest.approx(spearmanr(gold, noisy).statistic, abs=1e-12)
    assert clear.p_value < 0.01 and clear.winner == "sharp" and clear.ci_low > 0
    same = rows["sharp", "twin"]
    assert (same.delta, same.ci_low, same.ci_high, same.p_value, same.winner) == (0.0, 0.0, 0.0, 1.0, "tie")
    assert "sharp − noisy" in report.to_table()  # three models: a pair column


def test_holm_across_tasks(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    gold = rng.uniform(0, 5, 200)
    for task, noise in [("local/t1", 1.7), ("local/t2", 1.85), ("local/t3", 2.1)]:
        _store_sts(tmp_path, "a", task, gold + rng.normal(0, 2.0, 200), gold)
        _store_sts(tmp_path, "b", task, gold + rng.normal(0, noise, 200), gold)
    rows = compare(["a", "b"], ["local/t1", "local/t2", "local/t3"], results_dir=tmp_path, n_resamples=2000).rows
    p = [r.p_value for r in rows]
    p1, p2, p3 = sorted(p)  # Holm by hand: 3*p1, max(3*p1, 2*p2), max(., p3), capped at 1
    expected = dict(
        zip([p1, p2, p3], [min(1, 3 * p1), min(1, max(3 * p1, 2 * p2)), min(1, max(3 * p1, 2 * p2, p3))], strict=True)
    )
    assert [r.p_adjusted for r in rows] == pytest.approx([expected[x] for x in p])
    assert len(set(p)) == 3
    assert all((r.winner == "b") == (r.p_adjusted <= 0.05) for r in rows)
    assert rows[0].p_value <= 0.05 < rows[0].p_adjusted and rows[0].winner == "tie"  # significant only before Holm


def test_clustering_pairs_the_ten_v_measures(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    base = rng.uniform(0.4, 0.5, 10)
    better = base + 0.03 + rng.normal(0, 0.005, 10)
    for name, v in [("a", base), ("b", better)]:
        _store_items(tmp_path, name, "local/clu", "clustering", "v_measure", v.mean(), {"v_measures": v.tolist()})
    report = compare(["a", "b"], ["local/clu"], results_dir=tmp_path)
    (row,) = report.rows
    assert row.n == 10 and row.delta == pytest.approx((better - base).mean())
    assert row.ci_low < row.delta < row.ci_high and row.winner == "b"
    assert "paired over only 10 k-means runs" in report.to_table()


# Ranked lists (ranx) ==============================================================================


def test_ranked_p_values_equal_ranx(tmp_path: Path) -> None:
    for name, (seed, shift) in {"a": (5, 0.0), "b": (5, 0.03), "c": (6, 0.0)}.items():
        _store_ranked(tmp_path, name, "local/ret", *_toy_ranked(seed, shift=shift))
    for stat_test in ["student", "tukey"]:
        report = compare(["a", "b", "c"], ["local/ret"], results_dir=tmp_path, stat_test=stat_test)
        row = next(r for r in report.rows if (r.model_a, r.model_b) == ("a", "b"))
        assert row.p_value == _ranx_p(tmp_path, ["a", "b", "c"], "local/ret", stat_test)
        assert row.test == stat_test and row.n == 200
    # fisher: ranx's version ignores its seed, so agreement is within Monte Carlo error; ours is reproducible
    fisher = [compare(["a", "b"], ["local/ret"], results_dir=tmp_path, stat_test="fisher").rows[0] for _ in range(2)]
    assert fisher[0].p_value == fisher[1].p_value
    assert 0.01 < fisher[0].p_value < 0.5
    assert fisher[0].p_value == pytest.approx(_ranx_p(tmp_path, ["a", "b"], "local/ret", "fisher"), abs=0.03)


def test_identical_runs_p_one(tmp_path: Path) -> None:
    run, qrels = _toy_ranked(7)
    _store_ranked(tmp_path, "a", "local/ret", run, qrels)
    _store_ranked(tmp_path, "b", "local/ret", run, qrels)
    for stat_test in ["student", "fisher", "tukey"]:
        (row,) = compare(["a", "b"], ["local/ret"], results_dir=tmp_path, stat_test=stat_test).rows
        assert (row.delta, row.p_value, row.p_adjusted, row.winner) == (0.0, 1.0, 1.0, "tie")


def test_metric_the_stored_run_cannot_reproduce(tmp_path: Path) -> None:
    run, qrels = _toy_ranked(8)
    for name in ["a", "b"]:
        _store_ranked(tmp_path, name, "local/ret", run, qrels, metric="ndcg@10")
    rows = compare(["a", "b"], ["local/ret"], results_dir=tmp_path, metric="mrr@10", save=False).rows
    assert rows[0].metric == "mrr@10"  # not in the record: computed from the run
    # the record says 0.5 for recall@5 but the run gives something else: refused
    rec = TaskResult.load(tmp_path / "a" / "r1" / "local" / "ret.json")
    rec.scores["test"]["recall@5"] = 0.5
    rec.save(tmp_path)
    with pytest.raises(ZooError, match=r"recall@5 recomputed from the stored run .* its record says 0.500000"):
        compare(["a", "b"], ["local/ret"], results_dir=tmp_path, metric="recall@5")
    with pytest.raises(ZooError, match=r"local/ret: ranx cannot compute 'cosine_spearman' on ranked lists"):
        compare(["a", "b"], ["local/ret"], results_dir=tmp_path, metric="cosine_spearman")
    run_path(tmp_path, "b", "r1", "local/ret", "test").unlink()
    with pytest.raises(ZooError, match=r"some model has no stored run and qrels for this retrieval task"):
        compare(["a", "b"], ["local/ret"], results_dir=tmp_path)


# Lookup, storage, errors ==========================================================================


def test_newest_revision_or_named_revision(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    gold = rng.uniform(0, 5, 100)
    good, bad = gold + rng.normal(0, 0.5, 100), gold + rng.normal(0, 5, 100)
    _store_sts(tmp_path, "m", "local/sts", bad, gold, revision="old", date="2026-01-01T00:00:00+00:00")
    _store_sts(tmp_path, "m", "local/sts", good, gold, revision="new", date="2026-02-01T00:00:00+00:00")
    _store_sts(tmp_path, "x", "local/sts", good, gold)
    newest = compare(["x", "m"], ["local/sts"], results_dir=tmp_path)
    assert newest.models[1].revision == "new" and newest.rows[0].delta == 0.0
    both = compare(["m@old", "m"], ["local/sts"], results_dir=tmp_path)
    assert both.labels == ("m@old", "m@new") and both.rows[0].winner == "m@new"
    with pytest.raises(ZooError, match=r"no results for model 'm' at revision 'mid' .*\(revisions: new, old\)"):
        compare(["m@mid", "x"], ["local/sts"], results_dir=tmp_path)


def test_report_is_stored_and_skipped_by_load_results(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    gold = rng.uniform(0, 5, 100)
    for name in ["a", "b"]:
        _store_sts(tmp_path, name, "local/sts", gold + rng.normal(0, 1, 100), gold)
    models, tasks = ["a", "b"], ["local/sts"]
    report = compare(models, tasks, results_dir=tmp_path)
    assert models == ["a", "b"] and tasks == ["local/sts"]  # inputs untouched
    path = comparison_path(tmp_path, report)
    assert path.parent.name == "_comparisons" and path.name == f"a+b__{report.key}.json"
    assert json.loads(path.read_text()) == json.loads(json.dumps(report.to_dict()))
    assert report.to_dict()["rows"][0]["model_b"] == "b" and isinstance(report, Report)
    records, warnings = load_results(tmp_path)
    assert sorted(r.model for r in records) == ["a", "b"] and warnings == []
    assert compare(models, tasks, results_dir=tmp_path, seed=1).key != report.key
    assert compare(models, tasks, results_dir=tmp_path).key == report.key
    latex = report.to_latex()
    assert "\\begin{tabular}" in latex and "cosine\\_spearman" in latex and "\\bottomrule" in latex


def test_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    gold = rng.uniform(0, 5, 50)
    _store_sts(tmp_path, "a", "local/sts", gold + rng.normal(0, 1, 50), gold)
    _store_sts(tmp_path, "b", "local/sts", gold + rng.normal(0, 1, 50), gold, checksum="sha256:other")
    _store_sts(tmp_path, "c", "local/sts", gold + rng.normal(0, 1, 50), gold)
    cases = [
        (["a", "nope"], ["local/sts"], {}, r"no results for model 'nope' in .*; models there: a, b, c"),
        (["a", "c"], ["local/stsx"], {}, r"model 'a' has no result for local/stsx .*did you mean local/sts\?"),
        (["a", "b"], ["local/sts"], {}, r"local/sts: the models were evaluated on different data"),
        (["a"], ["local/sts"], {}, r"at least two models, got 1"),
        (["a", "c"], ["local/sts"], {"stat_test": "wilcoxon"}, r"unknown stat test 'wilcoxon'; choose student, fisher"),
        (["a", "c"], ["local/sts"], {"alpha": 1.5}, r"alpha must be between 0 and 1"),
        (["a", "c"], ["local/sts"], {"metric": "cosine_ap"}, r"'cosine_ap' cannot be recomputed from stored sts"),
        (["a", "c"], ["local/sts"], {"metric": "bleu"}, r"unknown metric 'bleu'"),
    ]
    for models, tasks, kw, message in cases:
        with pytest.raises(ZooError, match=message):
            compare(models, tasks, results_dir=tmp_path, **kw)
    items_path(tmp_path, "c", "r1", "local/sts", "test").unlink()
    with pytest.raises(ZooError, match=r"sts.test.items.json.gz: per-item predictions missing"):
        compare(["a", "c"], ["local/sts"], results_dir=tmp_path)


def test_cli_compare(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run, qrels = _toy_ranked(12)
    _store_ranked(tmp_path, "base", "local/ret", run, qrels)
    _store_ranked(tmp_path, "better", "local/ret", *_toy_ranked(12, shift=0.5))
    out_json, out_tex = tmp_path / "cmp.json", tmp_path / "cmp.tex"
    args = ["compare", "base", "better", "--tasks", "local/ret", "--results", str(tmp_path)]
    assert main([*args, "--stat-test", "fisher", "--json", str(out_json), "--latex", str(out_tex)]) == 0
    out = capsys.readouterr().out
    assert "base" in out and "better" in out and "fisher" in out
    row = json.loads(out_json.read_text())["rows"][0]
    assert row["winner"] == "better" and row["test"] == "fisher" and f"{100 * row['delta']:+.2f}" in out
    assert "\\begin{tabular}" in out_tex.read_text()
    assert main(["compare", "base", "nope", "--tasks", "local/ret", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoobench: error: no results for model 'nope'") and err.count("\n") == 1
    assert main(["compare", "base", "better", "--tasks", "local/other", "--results", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


# Acceptance: real runs on the shared data =========================================================


@pytest.fixture(scope="module")
def scifact_results(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    import harness

    root = tmp_path_factory.mktemp("results")
    for name in ["test-random", "bm25"]:
        harness.evaluate(name, ["local/scifact"], results_dir=root, data_dir=shared_data, progress=False)
    return root


@pytest.mark.data
@pytest.mark.parametrize("stat_test", ["student", "fisher"])
def test_scifact_p_values_equal_ranx(scifact_results: Path, stat_test: str) -> None:
    report = compare(["test-random", "bm25"], ["local/scifact"], results_dir=scifact_results, stat_test=stat_test)
    (row,) = report.rows
    rev = {"test-random": report.models[0].revision, "bm25": report.models[1].revision}
    expected = _ranx_p(scifact_results, ["test-random", "bm25"], "local/scifact", stat_test, **rev)
    assert row.p_value == expected
    for model, score in [(report.models[0], row.score_a), (report.models[1], row.score_b)]:
        record = TaskResult.load(scifact_results / model.name / model.revision / "local" / "scifact.json")
        assert score == record.get_score()
    table = report.to_table()
    assert report._p(expected) in table and row.winner == "bm25" and row.delta > 0.5
    assert table.count("bm25") >= 2  # a score column and the winner
