"""The beir source: where its folders come from, ignore_identical_ids, and agreement with BEIR itself."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

import harness
from harness.cli import main
from harness.datasets import beir
from harness.tasks import get_task, list_tasks
from tests import taskdata
from tests.taskdata import TableEncoder, unit
from zoo.errors import ZooError
from zoo.registry import create_model


@pytest.fixture(autouse=True)
def _download_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty download dir, and a BEIR server that cannot resolve (RFC 2606): tests never download."""
    monkeypatch.setenv("ZOOBENCH_BEIR_DIR", str(tmp_path / "beir-downloads"))
    monkeypatch.setattr(beir, "URL", "https://beir.zoobench.invalid/{name}.zip")
    return tmp_path / "beir-downloads"


# An ArguAna-like folder: query q1 is also document q1 (same text), so it is its own best hit.
CORPUS = {"q1": "the claim", "d1": "a rebuttal", "d2": "an aside", "d3": "unrelated"}
QUERIES = {"q1": "the claim", "q2": "a question"}
QRELS = {"q1": {"d1": 1}, "q2": {"d3": 1}}
COSINES = {"the claim": 1.0, "a rebuttal": 0.8, "an aside": 0.9, "unrelated": 0.1}


def _toy(data: Path) -> TableEncoder:
    taskdata.beir(data / "toy", CORPUS, QUERIES, QRELS)
    # cosines with the query "the claim" as given; "a question" has cosine 1 with d3 ("unrelated") only
    table = {t: unit(c) for t, c in COSINES.items()} | {"a question": unit(0.1)}
    return TableEncoder(table)


def test_ignore_identical_ids_hand_computed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    enc = _toy(data)
    beir_task, local_task = get_task("beir/toy", data), get_task("local/toy", data)
    assert beir_task.spec.options == {"ignore_identical_ids": True}
    assert local_task.spec.options == {"ignore_identical_ids": False}
    with_id = beir_task.evaluate(enc, progress=False)
    kept = local_task.evaluate(enc, progress=False)
    # q1 -> BEIR: d2, d1, d3 (q1 dropped): d1 at rank 2; MTEB: q1, d2, d1, d3: d1 at rank 3. q2 -> d3 first.
    assert list(with_id.runs["test"]["q1"]) == ["d2", "d1", "d3"]
    assert list(kept.runs["test"]["q1"]) == ["q1", "d2", "d1", "d3"]
    assert with_id.scores["test"]["ndcg@10"] == pytest.approx((1 / np.log2(3) + 1) / 2)
    assert kept.scores["test"]["ndcg@10"] == pytest.approx((1 / np.log2(4) + 1) / 2)
    assert with_id.scores["test"]["mrr@10"] == pytest.approx((1 / 2 + 1) / 2)
    assert kept.scores["test"]["mrr@10"] == pytest.approx((1 / 3 + 1) / 2)


def test_ignore_identical_ids_is_recorded(tmp_path: Path) -> None:
    data = tmp_path / "data"
    enc = _toy(data)
    records = harness.evaluate(enc, ["beir/toy", "local/toy"], results_dir=tmp_path / "res", data_dir=data)
    assert [r.task_options for r in records] == [{"ignore_identical_ids": True}, {"ignore_identical_ids": False}]
    assert records[0].get_score() > records[1].get_score()


def test_identical_ids_with_a_retriever(tmp_path: Path) -> None:
    # BM25 through the retrieval type: the query's own document is dropped, the others keep their scores.
    data = tmp_path / "data"
    corpus = {"q1": "claim about cats", "d1": "claim cats rebuttal", "d2": "cats purr", "d3": "soup"}
    taskdata.beir(data / "toy", corpus, {"q1": "claim about cats"}, {"q1": {"d1": 1}})
    bm25 = create_model("bm25")
    with_id = get_task("beir/toy", data).evaluate(bm25, progress=False)
    kept = get_task("local/toy", data).evaluate(bm25, progress=False)
    assert list(kept.runs["test"]["q1"]) == ["q1", "d1", "d2"]
    assert with_id.runs["test"]["q1"] == {d: s for d, s in kept.runs["test"]["q1"].items() if d != "q1"}
    assert (with_id.scores["test"]["ndcg@10"], kept.scores["test"]["ndcg@10"]) == (1.0, pytest.approx(1 / np.log2(3)))


# Where the data comes from =======================================================================


def test_spec_resolution(tmp_path: Path, _download_dir: Path) -> None:
    data = tmp_path / "data"
    taskdata.beir(data / "nfcorpus", {"d": "doc"}, {"q": "query"}, {"q": {"d": 1}})
    assert get_task("beir/nfcorpus", data).spec.path == str(data / "nfcorpus")  # the data dir's folder first
    arguana = get_task("beir/arguana", data).spec
    assert arguana.path == str(_download_dir / "arguana") and arguana.splits == ("test",)
    assert get_task("beir/msmarco", data).spec.splits == ("dev",)
    listed = [s.id for s in list_tasks(data) if s.source == "beir"]
    assert "beir/scifact" in listed and "beir/nfcorpus" in listed and len(listed) == len(beir.DATASETS)
    with pytest.raises(ZooError, match=r"unknown task 'beir/scifct': not a BEIR dataset .*did you mean beir/scifact"):
        get_task("beir/scifct", data)


def test_offline_download_is_one_line_exit_2(
    tmp_path: Path, _download_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "data").mkdir()
    results = tmp_path / "results"
    args = ["run", "-m", "test-random", "-t", "beir/nfcorpus", "--data-dir", str(tmp_path / "data")]
    code = main([*args, "--results", str(results), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(
        "zoobench: error: beir/nfcorpus: could not download https://beir.zoobench.invalid/nfcorpus.zip"
    )
    assert not results.exists() or not any(p.is_file() for p in results.rglob("*"))
    assert not _download_dir.exists() or not any(_download_dir.iterdir())  # no half-downloaded leftovers


# Agreement with local/ and with BEIR =============================================================


@pytest.fixture(scope="module")
def scifact_runs(shared_data: Path):
    model = create_model("test-random")
    return (
        get_task("beir/scifact", shared_data).evaluate(model, progress=False),
        get_task("local/scifact", shared_data).evaluate(model, progress=False),
        get_task("local/scifact", shared_data).load("test").qrels,
    )


@pytest.mark.data
def test_beir_scifact_equals_local_scifact(shared_data: Path, scifact_runs) -> None:
    from_beir, from_local, _ = scifact_runs
    assert get_task("beir/scifact", shared_data).checksum() == get_task("local/scifact", shared_data).checksum()
    assert from_beir.scores["test"]["ndcg@10"] == from_local.scores["test"]["ndcg@10"]
    assert 0.05 < from_beir.scores["test"]["ndcg@10"] < 0.5  # the hashing encoder finds something
    assert from_beir.n_items == {"test": 300}


@pytest.mark.data
def test_metrics_equal_beir_evaluate(scifact_runs) -> None:
    from beir.retrieval.evaluation import EvaluateRetrieval

    from_beir, _, qrels = scifact_runs
    run = from_beir.runs["test"]  # the top 100 kept beside the result: enough for every @k <= 100
    ndcg, _map, recall, precision = EvaluateRetrieval.evaluate(qrels, copy.deepcopy(run), [10, 100])
    mrr = EvaluateRetrieval.evaluate_custom(qrels, copy.deepcopy(run), [10], metric="mrr")
    ours = from_beir.scores["test"]
    pairs = {
        "ndcg@10": ndcg["NDCG@10"],
        "ndcg@100": ndcg["NDCG@100"],
        "map@100": _map["MAP@100"],
        "recall@10": recall["Recall@10"],
        "recall@100": recall["Recall@100"],
        "precision@10": precision["P@10"],
        "mrr@10": mrr["MRR@10"],
    }
    for metric, theirs in pairs.items():
        assert ours[metric] == pytest.approx(theirs, abs=5e-6), metric  # BEIR rounds to 5 decimals
