"""The mteb bridge: native metrics agree with mteb's evaluators, the mteb source, suites, export.

mteb's built-in datasets live on the Hugging Face hub, which tests never reach (HF_HUB_OFFLINE=1).
The mteb source is exercised end to end with mteb's own offline mock tasks standing in for the hub
tasks (``_mteb_task`` patched); the agreement test runs mteb's evaluators on zoobench's local data.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mteb")

import mteb  # noqa: E402
from mteb.mocks.mock_tasks.classification import MockClassificationTask  # noqa: E402
from mteb.mocks.mock_tasks.reranking import MockMultilingualRerankingTask  # noqa: E402
from mteb.mocks.mock_tasks.sts import MockMultilingualSTSTask  # noqa: E402
from mteb.models.model_meta import ScoringFunction  # noqa: E402

import harness  # noqa: E402
from harness.cli import main  # noqa: E402
from harness.datasets import mteb as source  # noqa: E402
from harness.export import export_mteb  # noqa: E402
from harness.results import items_path, read_run, run_path  # noqa: E402
from harness.suites import get_suite  # noqa: E402
from harness.tasks import get_task  # noqa: E402
from tests import taskdata  # noqa: E402
from zoo.errors import ZooError  # noqa: E402
from zoo.registry import create_model  # noqa: E402

TOL = 1e-4
# local task -> type; one of each type mteb has
AGREEMENT = {
    "stsb": "sts",
    "mrpc": "pair_classification",
    "trec-qc": "classification",
    "agnews-clustering": "clustering",
    "wikiqa-reranking": "reranking",
    "cranfield": "retrieval",
}
SAME_METRIC = {"map": "map@1000"}  # native reranking MAP is over all candidates (< 1000 of them)
MOCKS = {
    cls.metadata.name: cls for cls in (MockMultilingualSTSTask, MockMultilingualRerankingTask, MockClassificationTask)
}


@pytest.fixture(scope="module")
def hashing():
    return create_model("test-random")


@pytest.fixture
def mock_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """``mteb/Mock*`` ids resolve to mteb's offline mock tasks instead of hub datasets."""
    real = source._mteb_task
    monkeypatch.setattr(source, "_mteb_task", lambda name: MOCKS[name]() if name in MOCKS else real(name))


def _mteb_scores(model, task) -> dict[str, dict[str, float]]:
    res = mteb.evaluate(
        source.MtebEncoder(model), [source.to_mteb_task(task)], cache=None, show_progress_bar=False, co2_tracker=False
    )
    (result,) = res.task_results
    return {split: {source.from_mteb_metric(k): v for k, v in s[0].items()} for split, s in result.scores.items()}


# Agreement: zoobench's native metric == mteb's evaluator, same model, same data ==================


@pytest.mark.data
@pytest.mark.parametrize("name", list(AGREEMENT))
def test_native_and_mteb_agree(name: str, shared_data: Path, hashing, single_thread) -> None:
    task = get_task(f"local/{name}", shared_data)
    assert task.spec.type == AGREEMENT[name]
    native = task.evaluate(hashing, progress=False).scores
    upstream = _mteb_scores(hashing, task)
    assert set(native) == set(upstream) == set(task.spec.splits)
    for split, scores in native.items():
        assert 0.0 < scores["main_score"] < 1.0  # a real, non-degenerate number
        for metric, value in scores.items():
            other = upstream[split][SAME_METRIC.get(metric, metric)]
            assert abs(value - other) <= TOL, (name, split, metric, value, other)
        assert abs(scores["main_score"] - upstream[split]["main_score"]) <= TOL


# MtebEncoder =====================================================================================


class _Recording:
    """Delegates to an encoder and records the kind of each call."""

    def __init__(self, model) -> None:
        self.model, self.card, self.kinds = model, model.card, []

    def encode(self, texts, *, kind="document", batch_size=32):
        self.kinds.append(kind)
        return self.model.encode(texts, kind=kind, batch_size=batch_size)


def test_encoder_meta_and_prompt_kinds(tiny_data: Path, hashing) -> None:
    enc = source.MtebEncoder(hashing)
    meta = enc.mteb_model_meta
    assert (meta.name, meta.revision, meta.embed_dim) == ("zoobench/test-random", "seed-0", 64)
    assert meta.similarity_fn_name is ScoringFunction.COSINE
    card_meta = source.model_meta(create_model("test-random").card.to_dict() | {"languages": ["en", "zh"]})
    assert card_meta.languages == ["eng-Latn", "cmn-Hans"] and card_meta.model_name_as_path() == "zoobench__test-random"

    rec = _Recording(hashing)
    retrieval = _mteb_scores(rec, get_task("local/retrieval", tiny_data))
    assert sorted(set(rec.kinds)) == ["document", "query"]  # queries as queries, the corpus as documents
    assert retrieval["test"]["ndcg@10"] == pytest.approx(1.0)  # each query is its relevant document's text
    rec.kinds.clear()
    _mteb_scores(rec, get_task("local/sts", tiny_data))
    assert rec.kinds and set(rec.kinds) == {"query"}  # symmetric task: no prompt type -> "query"
    with pytest.raises(TypeError, match="wraps a zoo Encoder"):
        source.MtebEncoder(create_model("bm25"))


def test_any_encoder_runs_inside_mteb_evaluate(tmp_path: Path, results_dir: Path) -> None:
    """A zoo Encoder with hand-set vectors, through MtebEncoder in mteb.evaluate on an in-memory mteb retrieval
    task: mteb's nDCG@10 is the hand-computed one and harness.evaluate's."""
    from mteb.abstasks import AbsTaskRetrieval

    corpus = {"d1": "apples", "d2": "pears", "d3": "plums"}
    queries = {"q1": "which fruit is green", "q2": "which fruit is purple"}
    taskdata.beir(tmp_path / "data" / "fruit", corpus, queries, {"q1": {"d2": 1}, "q2": {"d3": 1}})
    model = taskdata.TableEncoder(
        {  # q1 ranks d1 (0.9) above its relevant d2 (0.5); q2 ranks its relevant d3 first
            "which fruit is green": taskdata.unit(1.0),
            "which fruit is purple": [0.0, 1.0],
            "apples": taskdata.unit(0.9),
            "pears": taskdata.unit(0.5),
            "plums": taskdata.unit(0.1),
        }
    )
    task = get_task("local/fruit", tmp_path / "data")
    mteb_task = source.to_mteb_task(task)
    assert isinstance(mteb_task, AbsTaskRetrieval) and mteb_task.metadata.name == "local__fruit"
    by_mteb = _mteb_scores(model, task)["test"]["ndcg@10"]
    by_hand = (1 / np.log2(3) + 1.0) / 2  # q1: the relevant document at rank 2; q2: at rank 1
    (record,) = harness.evaluate(model, [task], results_dir=results_dir, progress=False)
    assert record.get_score() == pytest.approx(by_hand, abs=1e-9)
    assert by_mteb == pytest.approx(by_hand, abs=5e-6)  # mteb rounds retrieval scores to 5 decimals
    assert source.MtebEncoder(model).similarity(np.eye(2), np.eye(2)).tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_metric_names() -> None:
    for mteb_key, ours in [("ndcg_at_10", "ndcg@10"), ("map_at_1000", "map@1000"), ("recall_at_100", "recall@100")]:
        assert source.from_mteb_metric(mteb_key) == ours and source.to_mteb_metric(ours) == mteb_key
    assert source.from_mteb_metric("mrr_at_10") == "mrr@10"
    assert source.from_mteb_metric("max_over_subqueries_map_at_1000") == "max_over_subqueries_map@1000"
    for same in ["cosine_spearman", "accuracy", "v_measure", "cosine_ap", "max_ap", "nauc_ndcg_at_10_max"]:
        assert source.from_mteb_metric(same) == same == source.to_mteb_metric(same)
    assert source.mteb_task_name("mteb/STS17[test:en-en]") == "STS17"
    assert source.mteb_task_name("local/stsb") == "local__stsb"


# The mteb source ==================================================================================


def test_specs_from_mteb_metadata() -> None:
    sts12 = get_task("mteb/STS12").spec
    assert (sts12.source, sts12.type, sts12.main_score, sts12.path) == (
        "mteb",
        "sts",
        "cosine_spearman",
        "mteb/sts12-sts",
    )
    assert sts12.splits == ("test",) and sts12.languages == ("en",) and sts12.options["hf_subsets"] == ["default"]
    assert sts12.revision and source.checksum(sts12) == f"mteb:mteb/sts12-sts@{sts12.revision}"
    expected = {
        "SciFact": ("retrieval", "ndcg@10"),
        "AskUbuntuDupQuestions": ("reranking", "map@1000"),
        "SprintDuplicateQuestions": ("pair_classification", "max_ap"),
        "Banking77Classification": ("classification", "accuracy"),
        "SummEvalSummarization.v2": ("summarization", "cosine_spearman"),
    }
    for name, (type_, main_score) in expected.items():
        spec = get_task(f"mteb/{name}").spec
        assert (spec.type, spec.main_score) == (type_, main_score), name
    assert source.specs() == []


def test_selected_splits_and_subsets() -> None:
    spec = get_task("mteb/MassiveIntentClassification[test:en]").spec
    assert spec.splits == ("test",) and spec.options["hf_subsets"] == ["en"] and spec.languages == ("en",)
    assert get_task("mteb/MassiveIntentClassification").spec.splits == ("validation", "test")
    assert get_task("mteb/STS17[:en-en+ko-ko]").spec.options["hf_subsets"] == ["ko-ko", "en-en"]
    with pytest.raises(ZooError, match=r"STS17 has no evaluation split 'dev' \(test\)"):
        get_task("mteb/STS17[dev:]")
    with pytest.raises(ZooError, match=r"STS17 has no subset 'xx-xx'"):
        get_task("mteb/STS17[test:xx-xx]")
    with pytest.raises(ZooError, match=r"invalid task id 'mteb/STS17\[test\]'"):
        get_task("mteb/STS17[test]")


def test_unknown_task_suggests() -> None:
    with pytest.raises(ZooError, match=r"unknown task 'mteb/STS1': .*Did you mean: 'STS1\d'"):
        get_task("mteb/STS1")


def test_offline_download_is_one_line_exit_2(capsys: pytest.CaptureFixture, results_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rc = main(["run", "-m", "test-random", "-t", "mteb/STS12", "--results", str(results_dir), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.splitlines() == [
        "zoobench: error: mteb/STS12: cannot download mteb/sts12-sts from the Hugging Face hub "
        "(offline: HF_HUB_OFFLINE is set)"
    ]
    assert not results_dir.exists() or not list(results_dir.rglob("*.json"))


def test_long_context_tasks_by_name(capsys: pytest.CaptureFixture, results_dir: Path, monkeypatch) -> None:
    """LongEmbed's synthetic tasks and MLDR (also by its paper's name) come from mteb's metadata; offline,
    running one stops with the one-line download error."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name, path in [
        ("LEMBNeedleRetrieval", "dwzhu/LongEmbed"),
        ("LEMBPasskeyRetrieval", "mteb/LEMBPasskeyRetrieval"),
    ]:
        spec = get_task(f"mteb/{name}").spec
        assert (spec.type, spec.main_score, spec.path) == ("retrieval", "ndcg@1", path)
        assert spec.splits == tuple(f"test_{256 * 2**i}" for i in range(8))  # 256 .. 32768 tokens
    mldr = get_task("mteb/MLDR[test:en]").spec
    assert (mldr.id, mldr.main_score, mldr.options["hf_subsets"]) == (
        "mteb/MultiLongDocRetrieval[test:en]",
        "ndcg@10",
        ["en"],
    )
    assert get_task("mteb/MLDR").spec.id == "mteb/MultiLongDocRetrieval"
    for task_id, shown, path in [
        ("mteb/LEMBNeedleRetrieval", "mteb/LEMBNeedleRetrieval", "dwzhu/LongEmbed"),
        ("mteb/LEMBPasskeyRetrieval", "mteb/LEMBPasskeyRetrieval", "mteb/LEMBPasskeyRetrieval"),
        ("mteb/MLDR[test:en]", "mteb/MultiLongDocRetrieval[test:en]", "mteb/MultiLongDocRetrieval"),
    ]:
        rc = main(["run", "-m", "test-random", "-t", task_id, "--results", str(results_dir), "--no-progress"])
        err = capsys.readouterr().err
        assert rc == 2, err
        hub = f"cannot download {path} from the Hugging Face hub (offline: HF_HUB_OFFLINE is set)"
        assert err.splitlines() == [f"zoobench: error: {shown}: {hub}"]
    assert not results_dir.exists() or not list(results_dir.rglob("*.json"))


def test_mteb_tasks_run_through_the_runner(mock_hub, results_dir: Path, hashing) -> None:
    ids = ["mteb/MockMultilingualSTSTask", "mteb/MockMultilingualRerankingTask", "mteb/MockClassificationTask"]
    sts, rerank, clf = harness.evaluate(hashing, ids, results_dir=results_dir, progress=False)
    assert (sts.main_score, rerank.main_score, clf.main_score) == ("cosine_spearman", "map@10", "accuracy")
    assert sts.task_options["hf_subsets"] == ["eng", "fra"] and sts.languages == ["en", "fr"]
    for record in (sts, rerank, clf):
        with gzip.open(items_path(results_dir, "test-random", "seed-0", record.task_id, "test"), "rt") as f:
            subsets = json.load(f)["mteb_scores"]
        # the record's scores are means over mteb's per-subset scores, under zoobench's names
        assert record.get_score() == pytest.approx(np.mean([s["main_score"] for s in subsets]))
        metric = record.main_score.replace("@", "_at_")
        assert record.get_score(metric=record.main_score) == pytest.approx(np.mean([s[metric] for s in subsets]))
    assert {s for s in rerank.scores["test"] if "@" in s} >= {"ndcg@10", "map@1000", "recall@100", "mrr@10"}
    assert not any(k.startswith("nauc") for k in rerank.scores["test"])  # no declared direction: not kept
    assert rerank.n_items == {"test": 4} and sts.n_items == {"test": 4}
    run = read_run(run_path(results_dir, "test-random", "seed-0", rerank.task_id, "test"))
    assert set(run) == {"eng/q1", "eng/q2", "fra/q1", "fra/q2"}  # one ranked list per query and subset


def test_mteb_result_cache_is_never_used(tiny_data: Path, monkeypatch: pytest.MonkeyPatch, hashing) -> None:
    # Two models under one card: mteb's result cache (keyed by model name + revision) would hand the
    # second the first one's score. "mteb/TinySTS" stands for a hub task, over the tiny STS folder.
    monkeypatch.setattr(source, "_mteb_task", lambda name: source.to_mteb_task(get_task("local/sts", tiny_data)))
    other = type(hashing)(hashing.card, seed=1)
    task = get_task("mteb/TinySTS")
    first, second, again = (task.evaluate(m, progress=False).scores["test"] for m in (hashing, other, hashing))
    assert first == again and first["cosine_pearson"] != second["cosine_pearson"]


# Suites ==========================================================================================


def test_mteb_benchmark_suite(capsys: pytest.CaptureFixture) -> None:
    eng = get_suite("mteb:MTEB(eng, v2)")
    assert len(eng) == 41 and "mteb/STS12" in eng and "mteb/ArguAna" in eng
    assert "mteb/STS17[test:en-en]" in eng and "mteb/MassiveIntentClassification[test:en]" in eng
    assert get_task("mteb/STS22.v2[test:en]").spec.options["hf_subsets"] == ["en"]
    with pytest.raises(ZooError, match=r"unknown MTEB benchmark 'MTEB\(eng, v9\)'.*MTEB\(eng, v2\)"):
        get_suite("mteb:MTEB(eng, v9)")
    assert main(["ls", "suites"]) == 0
    out = capsys.readouterr().out
    assert "local-quick" in out and "mteb:MTEB(eng, v2)" in out and "41 tasks: mteb/" in out
    assert main(["ls", "suites", "mteb:*"]) == 0
    listed = capsys.readouterr().out
    assert "local-quick" not in listed and "mteb:BEIR " in listed and "mteb:LongEmbed" in listed
    assert len(source.benchmarks()) == len(mteb.get_benchmarks()) > 50  # every benchmark of mteb's registry


def test_ls_tasks_lists_mteb_registry(capsys: pytest.CaptureFixture) -> None:
    listed = source.catalog()
    assert len(listed) > 1000 and all(s.source == "mteb" and s.id.startswith("mteb/") for s in listed)
    by_id = {s.id: s for s in listed}
    assert by_id["mteb/STS12"] == get_task("mteb/STS12").spec  # the same spec as a lookup by name
    assert by_id["mteb/SciFact"].type == "retrieval" and "mteb/Banking77Classification.v2" in by_id
    assert "mteb/Banking77Classification" not in by_id  # superseded (by .v2): left out, as mteb.get_tasks() does
    assert harness.list_tasks(source="mteb") == listed and not any(s.source == "mteb" for s in harness.list_tasks())
    assert main(["ls", "tasks", "mteb/SciFact*"]) == 0
    out = capsys.readouterr().out
    assert "mteb/SciFact " in out and "mteb/SciFact-NL" in out and "not yet supported" not in out
    assert "mteb/STS12" not in out


# Export ==========================================================================================


def test_export_loads_in_mteb(
    mock_hub, tiny_data: Path, results_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ids = ["local/sts", "local/retrieval", "local/pairs", "mteb/MockMultilingualSTSTask"]
    records = harness.evaluate("test-random", ids, results_dir=results_dir, data_dir=tiny_data, progress=False)
    harness.evaluate("bm25", ["local/retrieval"], results_dir=results_dir, data_dir=tiny_data, progress=False)
    cache = tmp_path / "mteb-cache"
    args = ["export", "--format", "mteb", "--results", str(results_dir), "--out", str(cache / "results")]
    assert main([*args, "--model", "test-*"]) == 0
    assert capsys.readouterr().out == f"wrote 4 mteb results of 1 model(s) to {cache / 'results'}\n"
    folder = cache / "results" / "zoobench__test-random" / "seed-0"
    assert sorted(p.name for p in folder.iterdir()) == [
        "MockMultilingualSTSTask.json",
        "local__pairs.json",
        "local__retrieval.json",
        "local__sts.json",
        "model_meta.json",
    ]

    loaded = mteb.ResultCache(cache).load_results()
    (model,) = loaded.model_results
    assert (model.model_name, model.model_revision) == ("zoobench/test-random", "seed-0")
    got = {r.task_name: r for r in model.task_results}
    for record in records:
        back = got[source.mteb_task_name(record.task_id)]
        assert back.get_score() == pytest.approx(record.get_score(), abs=1e-6)
        assert back.dataset_revision == (record.dataset_revision or record.data_checksum)
        if record.task_id.startswith("local/"):  # every score, under mteb's name, read back by mteb's loader
            for split, scores in record.scores.items():
                (subset,) = back.scores[split]
                read_back = {k: subset[source.to_mteb_metric(k)] for k in scores}
                assert read_back == pytest.approx(scores, abs=5e-7)  # mteb's files keep 6 decimals
    assert got["local__retrieval"].scores["test"][0]["ndcg_at_10"] == pytest.approx(1.0)
    assert {s["hf_subset"] for s in got["MockMultilingualSTSTask"].scores["test"]} == {"eng", "fra"}
    assert got["local__sts"].scores["test"][0]["languages"] == ["eng-Latn"]
    meta = json.loads((folder / "model_meta.json").read_text(encoding="utf-8"))
    assert (meta["name"], meta["embed_dim"], meta["similarity_fn_name"]) == ("zoobench/test-random", 64, "cosine")

    with pytest.raises(ZooError, match=r"no results in .* for models matching 'nomodel'"):
        export_mteb(results_dir, tmp_path / "x", model="nomodel")
    assert main([*args, "--model", "nomodel"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
