"""The trec task type, local TREC folders through ir_datasets, and the trec-dl source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import harness
from harness.cli import main
from harness.datasets import trec_dl
from harness.metrics import higher_is_better
from harness.tasks import get_task, list_tasks
from harness.tasks.trec import FirstStage, Trec
from tests.taskdata import TableEncoder, TableRanker, unit
from zoo.errors import ZooError
from zoo.registry import create_model

pytrec_eval = pytest.importorskip("pytrec_eval")


def trec_folder(
    folder: Path,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    docs: dict[str, str],
    run: dict[str, dict[str, float]] | None = None,
    *,
    options: str = "",
) -> Path:
    """Write queries.tsv, qrels.txt, docs.tsv, an optional bm25.run and a task.toml [options] table."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "queries.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in queries.items()), encoding="utf-8")
    lines = [f"{q} 0 {d} {r}\n" for q, rels in qrels.items() for d, r in rels.items()]
    (folder / "qrels.txt").write_text("".join(lines), encoding="utf-8")
    (folder / "docs.tsv").write_text("".join(f"{d}\t{t}\n" for d, t in docs.items()), encoding="utf-8")
    if run is not None:
        lines = [
            f"{q} Q0 {d} {rank} {s} bm25\n"
            for q, ranked in run.items()
            for rank, (d, s) in enumerate(sorted(ranked.items(), key=lambda kv: -kv[1]), 1)
        ]
        (folder / "bm25.run").write_text("".join(lines), encoding="utf-8")
    if options:
        (folder / "task.toml").write_text(f"[options]\n{options}\n", encoding="utf-8")
    return folder


def trec_order(docs: dict[str, float]) -> list[str]:
    """trec_eval's ranking: score descending, then doc id descending."""
    return [d for d, _ in sorted(docs.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]


def pytrec_official(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    """The four DL measures by pytrec_eval: graded nDCG@10; MAP, R@1000 and RR@10 at relevance >= 2."""
    graded = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10"}).evaluate(run)
    binary = pytrec_eval.RelevanceEvaluator(qrels, {"map_cut_1000", "recall_1000"}, relevance_level=2).evaluate(run)
    top10 = {q: {d: run[q][d] for d in trec_order(run[q])[:10]} for q in run}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=2).evaluate(top10)
    n = len(qrels)  # every judged query is in the run here
    return {
        "ndcg@10": sum(v["ndcg_cut_10"] for v in graded.values()) / n,
        "map@1000-l2": sum(v["map_cut_1000"] for v in binary.values()) / n,
        "recall@1000-l2": sum(v["recall_1000"] for v in binary.values()) / n,
        "mrr@10-l2": sum(v["recip_rank"] for v in rr.values()) / n,
    }


def _synthetic(seed: int = 3, n_queries: int = 12, n_docs: int = 400, per_query: int = 140):
    """Graded qrels (0-3) and a run with many tied scores, longer than ranx's stable-sort limit."""
    rng = np.random.default_rng(seed)
    docs = {f"d{i}": f"passage {i}" for i in range(n_docs)}
    queries = {f"q{i}": f"question {i}" for i in range(n_queries)}
    qrels, run = {}, {}
    for i, q in enumerate(queries):
        cand = rng.choice(n_docs, per_query, replace=False)
        run[q] = {f"d{j}": float(rng.integers(0, 25)) for j in cand}  # ~6 documents per score: ties everywhere
        judged = rng.choice(n_docs, 60, replace=False)
        top = 1 if i == 0 else 4  # q0 has no passage at relevance >= 2: its binary measures are 0
        qrels[q] = {f"d{j}": int(rng.integers(0, top)) for j in judged}
    return queries, qrels, docs, run


# Measures ========================================================================================


def test_official_measures_equal_pytrec_eval(tmp_path: Path) -> None:
    queries, qrels, docs, run = _synthetic()
    trec_folder(tmp_path / "dl", queries, qrels, docs, run)  # local default: re-rank the run's top 100
    task = get_task("local/dl", tmp_path)
    assert isinstance(task, Trec) and task.spec.options == {"mode": "rerank", "depth": 100, "run": "bm25.run"}
    out = task.evaluate(FirstStage(), progress=False)
    top100 = {q: {d: run[q][d] for d in trec_order(run[q])[:100]} for q in run}
    ref = pytrec_official(qrels, top100)
    got = out.scores["test"]
    assert set(got) == {*Trec.metrics, "main_score"} and got["main_score"] == got["ndcg@10"]
    for m, v in ref.items():
        assert got[m] == pytest.approx(v, abs=1e-6), m
    assert 0.05 < got["ndcg@10"] < 0.9 and got["map@1000-l2"] > 0  # not degenerate
    assert out.runs["test"] == top100  # exactly the top 100 in trec_eval's order (ties at the cut by doc id)
    assert out.n_items == {"test": 12}
    assert all(higher_is_better(m) for m in Trec.metrics)


def test_graded_and_binary_hand_values(tmp_path: Path) -> None:
    # One query; ranking a(rel 1), b(rel 3), c(rel 0), d(rel 2); e (rel 2) is judged but not retrieved.
    qrels = {"q": {"a": 1, "b": 3, "c": 0, "d": 2, "e": 2}}
    run = {"q": {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}}
    trec_folder(tmp_path / "t", {"q": "query"}, qrels, {k: k for k in "abcde"}, run)
    got = get_task("local/t", tmp_path).evaluate(FirstStage(), progress=False).scores["test"]
    dcg = 1 + 3 / np.log2(3) + 2 / np.log2(5)
    idcg = 3 + 2 / np.log2(3) + 2 / np.log2(4) + 1 / np.log2(5)
    assert got["ndcg@10"] == pytest.approx(dcg / idcg, abs=1e-12)
    assert got["mrr@10-l2"] == pytest.approx(1 / 2)  # a has relevance 1: not relevant at level 2
    assert got["map@1000-l2"] == pytest.approx((1 / 2 + 2 / 4) / 3)  # three passages at relevance >= 2
    assert got["recall@1000-l2"] == pytest.approx(2 / 3)


# Re-ranking and full ranking =====================================================================

QUERIES = {"q1": "cats", "q2": "stocks"}
QRELS = {"q1": {"c1": 3, "c2": 1, "x": 2}, "q2": {"s1": 2, "s2": 0}}
DOCS = {"c1": "c1 text", "c2": "c2 text", "c3": "c3 text", "s1": "s1 text", "s2": "s2 text", "x": "x text"}
RUN = {"q1": {"c3": 9.0, "c2": 8.0, "c1": 7.0, "x": 1.0}, "q2": {"s2": 5.0, "s1": 4.0}}


def test_rerank_with_a_ranker_and_an_encoder(tmp_path: Path) -> None:
    trec_folder(tmp_path / "t", QUERIES, QRELS, DOCS, RUN, options="depth = 3")
    task = get_task("local/t", tmp_path)
    ranker = TableRanker({"c1 text": 0.9, "c2 text": 0.5, "c3 text": 0.1, "s1 text": 0.7, "s2 text": 0.2})
    out = task.evaluate(ranker, progress=False)
    assert out.runs["test"] == {"q1": {"c1": 0.9, "c2": 0.5, "c3": 0.1}, "q2": {"s1": 0.7, "s2": 0.2}}  # x: rank 4
    s = out.scores["test"]
    ndcg_q1 = (3 + 1 / np.log2(3)) / (3 + 2 / np.log2(3) + 1 / np.log2(4))  # x (rel 2) is past the depth
    assert s["ndcg@10"] == pytest.approx((ndcg_q1 + 1.0) / 2)
    assert s["mrr@10-l2"] == 1.0 and s["recall@1000-l2"] == pytest.approx((1 / 2 + 1) / 2)

    cos = {"c1 text": 0.2, "c2 text": 0.6, "c3 text": 0.4, "s1 text": 0.9, "s2 text": 0.1}
    enc = TableEncoder({"cats": [1.0, 0.0], "stocks": [1.0, 0.0], **{t: unit(c) for t, c in cos.items()}})
    out = task.evaluate(enc, progress=False)
    run = out.runs["test"]
    assert list(run["q1"]) == ["c2", "c3", "c1"] and run["q1"]["c2"] == pytest.approx(0.6, abs=1e-6)
    assert {kind for kind, _ in enc.calls} == {"query", "document"}
    assert "x text" not in {t for _, texts in enc.calls for t in texts}  # only the candidates are encoded
    ndcg_q1 = (1 + 3 / np.log2(4)) / (3 + 2 / np.log2(3) + 1 / np.log2(4))
    assert out.scores["test"]["ndcg@10"] == pytest.approx((ndcg_q1 + 1.0) / 2, abs=1e-6)
    assert out.scores["test"]["mrr@10-l2"] == pytest.approx((1 / 3 + 1) / 2, abs=1e-6)


def test_full_mode_with_an_encoder_and_a_retriever(tmp_path: Path) -> None:
    queries = {"q1": "cats purr in the sun", "q2": "the stock market fell"}
    docs = {
        "c1": "cats purr in the sun",
        "c2": "dogs bark at night",
        "s1": "the stock market fell",
        "s2": "fresh tomato soup",
    }
    qrels = {"q1": {"c1": 2, "c2": 0}, "q2": {"s1": 3}}
    trec_folder(tmp_path / "t", queries, qrels, docs)  # no run file: full ranking
    task = get_task("local/t", tmp_path)
    assert task.spec.options == {"mode": "full"}
    assert FirstStage not in task.requires and not task.supports(FirstStage())
    for model in (create_model("test-random"), create_model("bm25")):
        out = task.evaluate(model, progress=False)
        assert out.scores["test"]["ndcg@10"] == pytest.approx(1.0), model.card.name
        assert out.scores["test"]["recall@1000-l2"] == 1.0
        assert [next(iter(out.runs["test"][q])) for q in ("q1", "q2")] == ["c1", "s1"]
    assert set(out.runs["test"]["q1"]) <= set(docs)


def test_local_folder_is_read_in_place(tmp_path: Path) -> None:
    folder = trec_folder(tmp_path / "t", QUERIES, QRELS, DOCS, RUN)
    before = sorted(p.name for p in folder.iterdir())
    records = harness.evaluate(FirstStage(), ["local/t"], results_dir=tmp_path / "res", data_dir=tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == before  # no docs.tsv.pklz4 index beside the data
    assert records[0].model == "first-stage" and records[0].task_options["run"] == "bm25.run"
    assert records[0].get_score() == pytest.approx(pytrec_official(QRELS, RUN)["ndcg@10"], abs=1e-9)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: (f / "qrels.txt").write_text("q1 0 c1\n"), r"qrels\.txt: record 1: malformed"),
        (lambda f: (f / "docs.tsv").write_text("c1\tone\nc2\n"), r"docs\.tsv: record 2: malformed"),
        (lambda f: (f / "queries.tsv").write_bytes(b"q1\tcats\nq2\t\xff\n"), r"queries\.tsv: not valid UTF-8"),
        (lambda f: (f / "queries.tsv").write_text("q1\tcats\nq2\t \n"), r"queries\.tsv: record 2: empty text"),
        (lambda f: (f / "queries.tsv").write_text("q1\tcats\n"), r"query 'q2' has judgements but no text"),
        (lambda f: (f / "other.run").write_text("q1 Q0 c1 1 1.0 x\n"), r"several run files \(bm25\.run, other\.run\)"),
        (lambda f: (f / "docs.tsv").write_text("c1\tone\n"), r"docs\.tsv: 5 passages of the first-stage run have no"),
        (lambda f: (f / "task.toml").write_text('[options]\nmode = "dense"\n'), r"unknown mode 'dense'"),
        (lambda f: (f / "task.toml").write_text("[options]\ndepth = 0\n"), r"depth must be a positive integer"),
        (lambda f: (f / "bm25.run").unlink(), None),  # then no run: full mode, fine
    ],
    ids=["qrels", "docs", "utf8", "empty", "noquery", "tworuns", "notext", "mode", "depth", "norun"],
)
def test_bad_folders_fail_with_one_line(tmp_path: Path, mutate, message: str | None) -> None:
    folder = trec_folder(tmp_path / "t", QUERIES, QRELS, DOCS, RUN)
    mutate(folder)
    if message is None:
        assert get_task("local/t", tmp_path).evaluate(create_model("test-random"), progress=False).n_items
        return
    with pytest.raises(ZooError, match=message) as err:
        get_task("local/t", tmp_path).evaluate(create_model("test-random"), progress=False)
    assert "\n" not in str(err.value)


def test_rerank_refuses_a_run_without_scores(tmp_path: Path) -> None:
    flat = {q: dict.fromkeys(docs, 0.0) for q, docs in RUN.items()}
    trec_folder(tmp_path / "t", QUERIES, QRELS, DOCS, flat)
    with pytest.raises(ZooError, match="no scores to rank by"):
        get_task("local/t", tmp_path).evaluate(FirstStage(), progress=False)
    (tmp_path / "t" / "task.toml").write_text("[options]\ndepth = 2\n")
    with pytest.raises(ZooError, match="top 2 of a run whose scores all tie"):
        get_task("local/t", tmp_path).evaluate(create_model("test-random"), progress=False)


# The shared DL19 folder ==========================================================================


@pytest.mark.data
def test_dl19_bm25_first_stage_matches_anserini(shared_data: Path, tmp_path: Path) -> None:
    # Anserini's BM25 (k1=0.9, b=0.4) on DL19 passage: nDCG@10 0.5058. The top 10 of the shipped
    # top-100 run are those of the top 1000; MAP and recall here are at depth 100 (of a top-100 run).
    (record,) = harness.evaluate(
        FirstStage(), ["local/trec-dl-2019-passage"], results_dir=tmp_path, data_dir=shared_data, progress=False
    )
    scores = record.scores["test"]
    assert scores["ndcg@10"] == pytest.approx(0.5058, abs=5e-5)
    assert record.n_items == {"test": 43}
    assert record.task_options == {"mode": "rerank", "depth": 100, "run": "bm25.top100.run"}
    data = get_task("local/trec-dl-2019-passage", shared_data).load("test")
    run, qrels = data.run(), data.qrels()
    assert sum(map(len, run.values())) == 4300 and sum(map(len, qrels.values())) == 9260
    for m, v in pytrec_official(qrels, run).items():
        assert scores[m] == pytest.approx(v, abs=1e-6), m


# The trec-dl source ==============================================================================


def test_trec_dl_declarations() -> None:
    ids = [s.id for s in list_tasks() if s.source == "trec-dl"]
    assert ids == [f"trec-dl/{y}" for y in ("2019", "2019-full", "2020", "2020-full", "2021", "2022")]
    dl19, full = get_task("trec-dl/2019"), get_task("trec-dl/2019-full")
    assert dl19.spec.path == full.spec.path == "msmarco-passage/trec-dl-2019/judged"
    assert (dl19.spec.options, full.spec.options) == ({"mode": "rerank", "depth": 1000}, {"mode": "full"})
    assert get_task("trec-dl/2022").spec.path == "msmarco-passage-v2/trec-dl-2022/judged"
    assert get_task("trec-dl/2021").spec.options["depth"] == 100
    assert all(t.main_metric == "ndcg@10" and t.spec.type == "trec" for t in (dl19, full))
    # checksums come from the md5s ir_datasets pins: known offline, equal for variants of one collection
    sums = {i: get_task(i).checksum() for i in ids}
    assert sums["trec-dl/2019"] == sums["trec-dl/2019-full"] != sums["trec-dl/2020"] != sums["trec-dl/2021"]
    assert all(s.startswith("sha256:") and len(s) == 71 for s in sums.values())
    with pytest.raises(ZooError, match=r"unknown task 'trec-dl/2018': one of trec-dl/2019, "):
        get_task("trec-dl/2018")


def test_trec_dl_offline_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # never reach the network, even if there is one
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    results = tmp_path / "results"
    code = main(["run", "-m", "test-random", "-t", "trec-dl/2019", "--results", str(results), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("zoobench: error: trec-dl/2019 (qrels of ir_datasets "), err
    assert "could not download https://trec.nist.gov/data/deep/2019qrels-pass.txt" in err
    assert not results.exists() or not any(p.is_file() for p in results.rglob("*"))


def test_local_options_defaults(tmp_path: Path) -> None:
    folder = trec_folder(tmp_path / "t", QUERIES, QRELS, DOCS, RUN)
    assert trec_dl.local_options(folder) == {"mode": "rerank", "depth": 100, "run": "bm25.run"}
    (folder / "task.toml").write_text('[options]\nmode = "full"\n')
    assert get_task("local/t", tmp_path).spec.options == {"mode": "full", "depth": 100, "run": "bm25.run"}
    (folder / "task.toml").write_text('[options]\nrun = "other.run"\n')
    with pytest.raises(ZooError, match="options name run 'other.run' but the data has 'bm25.run'"):
        get_task("local/t", tmp_path).evaluate(FirstStage(), progress=False)
