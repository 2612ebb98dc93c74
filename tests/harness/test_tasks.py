"""The task types on tiny synthetic data, with hand-checkable values."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from harness.metrics import evaluate_run, higher_is_better
from harness.tasks import TASK_TYPES, get_task
from harness.tasks.base import EvalContext, encode_sparse_texts, encode_texts
from harness.tasks.classification import undersample
from harness.tasks.pair_classification import best_threshold_scores
from tests import taskdata
from tests.taskdata import TableEncoder, TableRanker, unit
from zoo.errors import ZooError
from zoo.registry import ModelCard, create_model

pytrec_eval = pytest.importorskip("pytrec_eval")


@pytest.fixture(scope="module")
def hashing():
    return create_model("test-random")


def _evaluate(data_dir: Path, name: str, model):
    return get_task(f"local/{name}", data_dir).evaluate(model, progress=False)


def _cos(model, a: list[str], b: list[str]) -> np.ndarray:
    x, y = model.encode(a).astype(np.float64), model.encode(b).astype(np.float64)
    return (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))


# STS =============================================================================================


def test_sts_hand_values(tmp_path: Path) -> None:
    cos = {"s1": 0.5, "s2": 0.7, "s3": 0.6, "s4": 0.8}
    enc = TableEncoder({"anchor": [1.0, 0.0], **{k: unit(v) for k, v in cos.items()}})
    taskdata.sts(tmp_path / "s", [("anchor", k, g) for k, g in zip(cos, [1, 2, 3, 4], strict=True)])
    out = _evaluate(tmp_path, "s", enc)
    # ranks of the cosines: 1, 3, 2, 4 -> spearman 1 - 6 * 2 / (4 * 15) = 0.8; pearson 0.4 / sqrt(5 * 0.05) = 0.8
    assert out.scores["test"]["cosine_spearman"] == pytest.approx(0.8, abs=1e-9)
    assert out.scores["test"]["cosine_pearson"] == pytest.approx(0.8, abs=1e-6)
    assert out.scores["test"]["main_score"] == out.scores["test"]["cosine_spearman"]
    assert out.n_items == {"test": 4}
    np.testing.assert_allclose(out.items["test"]["pred"], [0.5, 0.7, 0.6, 0.8], atol=1e-6)
    assert out.items["test"]["gold"] == [1.0, 2.0, 3.0, 4.0]
    assert {kind for kind, _ in enc.calls} == {"query"}  # symmetric task: both sides encoded as queries
    assert set(out.timings) >= {"load_s", "encode_s", "evaluate_s"}


def test_sts_gold_equal_to_cosine_gives_one(tmp_path: Path, hashing) -> None:
    a = [s1 for s1, _, _ in taskdata.STS_ROWS]
    b = [s2 for _, s2, _ in taskdata.STS_ROWS]
    cos = _cos(hashing, a, b)
    taskdata.sts(tmp_path / "pos", [(x, y, float(c)) for x, y, c in zip(a, b, cos, strict=True)])
    taskdata.sts(tmp_path / "neg", [(x, y, -float(c)) for x, y, c in zip(a, b, cos, strict=True)])
    pos = _evaluate(tmp_path, "pos", hashing).scores["test"]
    neg = _evaluate(tmp_path, "neg", hashing).scores["test"]
    assert pos["cosine_spearman"] == pytest.approx(1.0, abs=1e-9)
    assert pos["cosine_pearson"] == pytest.approx(1.0, abs=1e-6)
    assert neg["cosine_spearman"] == pytest.approx(-1.0, abs=1e-9)


def test_sts_identical_vs_unrelated(tmp_path: Path, hashing) -> None:
    same = ["the cat sat on the mat", "a man plays the guitar", "rain falls in spring"]
    other = [
        ("stocks fell sharply", "my dog likes walks"),
        ("quantum physics lecture", "fresh tomato soup"),
        ("blue whales sing", "trains leave at noon"),
    ]
    rows = [(s, s, 5.0) for s in same] + [(x, y, 0.0) for x, y in other]
    taskdata.sts(tmp_path / "s", rows)
    out = _evaluate(tmp_path, "s", hashing)
    pred = out.items["test"]["pred"]
    np.testing.assert_allclose(pred[:3], 1.0, atol=1e-6)
    assert max(abs(p) for p in pred[3:]) < 0.7
    # two tied gold groups, perfectly separated predictions: spearman = sqrt(13.5 / 17.5) unless a group's
    # predictions tie; either way well above 0.85
    assert 0.85 < out.scores["test"]["cosine_spearman"] <= 1.0
    assert out.scores["test"]["cosine_pearson"] > 0.9


# Retrieval =======================================================================================


def test_retrieval_query_equal_to_its_document(tmp_path: Path, hashing) -> None:
    taskdata.retrieval_folder(tmp_path / "r")
    out = _evaluate(tmp_path, "r", hashing)
    s = out.scores["test"]
    assert s["ndcg@10"] == pytest.approx(1.0) and s["main_score"] == s["ndcg@10"]
    assert s["mrr@10"] == pytest.approx(1.0) and s["map@100"] == pytest.approx(1.0)
    assert s["recall@10"] == 1.0 and s["precision@10"] == pytest.approx((1 + 1 + 1) / 30)
    assert set(s) == {*TASK_TYPES["retrieval"].metrics, "main_score"}
    assert out.n_items == {"test": 3}  # the unjudged query is not evaluated
    run = out.runs["test"]
    assert set(run) == {"q1", "q2", "q3"}
    assert all(len(docs) == 6 for docs in run.values())  # the whole (tiny) corpus, best first
    assert [next(iter(run[q])) for q in ("q1", "q2", "q3")] == ["d1", "d3", "d6"]
    assert run["q1"]["d1"] == pytest.approx(1.0, abs=1e-5)


def test_dense_retrieval_matches_brute_force_and_pytrec(tmp_path: Path, hashing) -> None:
    rng = np.random.default_rng(5)
    vocab = [f"w{i}" for i in range(40)]
    corpus = {f"d{i}": " ".join(rng.choice(vocab, 6)) for i in range(60)}
    queries = {f"q{i}": " ".join(rng.choice(vocab, 3)) for i in range(12)}
    qrels = {q: {f"d{j}": int(rng.integers(0, 3)) for j in rng.choice(60, 4, replace=False)} for q in queries}
    taskdata.beir(tmp_path / "r", corpus, queries, qrels)
    out = _evaluate(tmp_path, "r", hashing)
    ids = list(corpus)
    full = _cos(hashing, *zip(*[(queries[q], corpus[d]) for q in queries for d in ids], strict=True)).reshape(12, 60)
    brute = {q: {ids[j]: float(full[i, j]) for j in range(60)} for i, q in enumerate(queries)}
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "recall_10", "P_10"}).evaluate(brute)
    for metric, measure in [("ndcg@10", "ndcg_cut_10"), ("recall@10", "recall_10"), ("precision@10", "P_10")]:
        expected = float(np.mean([v[measure] for v in ref.values()]))
        assert out.scores["test"][metric] == pytest.approx(expected, abs=1e-6), metric
    for i, q in enumerate(queries):  # the stored run is the brute-force top of each query
        assert list(out.runs["test"][q])[:5] == [ids[j] for j in np.argsort(-full[i], kind="stable")[:5]]


class _FixedRetriever:
    card = ModelCard(name="fixed", family="tests", revision="r", source="tests", similarity=None)

    def __init__(self) -> None:
        self.top_k = None

    def retrieve(self, queries, corpus, *, top_k=1000):  # noqa: ANN001
        self.top_k = top_k
        assert set(queries) == {"q1", "q2", "q3"} and len(corpus) == 6
        return {"q1": {"d2": 2.0, "d1": 1.0}, "q2": {"d3": 5.0, "d5": 4.0}, "q3": {}}


def test_retrieval_with_a_retriever(tmp_path: Path) -> None:
    taskdata.retrieval_folder(tmp_path / "r")
    model = _FixedRetriever()
    out = _evaluate(tmp_path, "r", model)
    assert model.top_k == 1000
    # q1: relevant d1 at rank 2 -> 1/log2(3); q2: d3 at rank 1 -> 1; q3: nothing retrieved -> 0
    assert out.scores["test"]["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 + 0) / 3)
    assert out.scores["test"]["mrr@10"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert out.runs["test"] == {"q1": {"d2": 2.0, "d1": 1.0}, "q2": {"d3": 5.0, "d5": 4.0}, "q3": {}}


def test_bm25_cannot_run_sts_but_can_run_retrieval(tmp_path: Path) -> None:
    taskdata.sts_folder(tmp_path / "s")
    taskdata.retrieval_folder(tmp_path / "r")
    bm25 = create_model("bm25")
    sts_task = get_task("local/s", tmp_path)
    assert not sts_task.supports(bm25)
    with pytest.raises(TypeError, match="model bm25 cannot run sts task local/s: needs Encoder"):
        sts_task.evaluate(bm25, progress=False)
    assert get_task("local/r", tmp_path).evaluate(bm25, progress=False).scores["test"]["ndcg@10"] == pytest.approx(1.0)


def test_a_ranker_reranks_the_first_stages_top_k(tmp_path: Path) -> None:
    # BM25 ranks "apple" docs of equal length by term count: q1 (a document with the query's id) > d1 > d2 > d3.
    corpus = {"q1": "apple apple apple apple", "d1": "apple apple pie", "d2": "apple banana pie", "d3": "apple x y"}
    folder = taskdata.beir(tmp_path / "r", corpus, {"q1": "apple"}, {"q1": {"d2": 1, "d3": 1}})
    (folder / "task.toml").write_text("[options]\nignore_identical_ids = true\nrerank_depth = 2\n")
    task = get_task("local/r", tmp_path)
    ranker = TableRanker({"apple apple pie": 0.1, "apple banana pie": 0.9, "apple x y": 5.0})
    assert task.supports(ranker)
    out = task.evaluate(ranker, progress=False)
    # q1 is dropped (its own id), d1 and d2 are the top 2 and swap; d3 (which the ranker prefers) is past the depth
    assert out.runs["test"] == {"q1": {"d2": 0.9, "d1": 0.1}}
    assert out.scores["test"]["ndcg@10"] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert out.scores["test"]["recall@1000"] == 0.5 and out.timings["pairs_scored"] == 2
    assert task.run_options(ranker) == {"ignore_identical_ids": True, "rerank_depth": 2, "first_stage": "bm25"}
    assert task.run_options(create_model("bm25")) == task.spec.options  # a searching model adds nothing
    (folder / "task.toml").write_text("[options]\nrerank_depth = 0\n")
    with pytest.raises(ZooError, match="rerank_depth a positive integer"):
        get_task("local/r", tmp_path).evaluate(ranker, progress=False)


# Sparse and hybrid retrieval =====================================================================

BOW_CARD = ModelCard(name="bow", family="tests", revision="r0", source="tests", similarity=None)


class BagOfWords:
    """A ``SparseEncoder`` only: the weight of a word is its count in the text x a fixed idf (1.0 if unlisted)."""

    def __init__(self, idf: dict[str, float] | None = None, card: ModelCard = BOW_CARD) -> None:
        self.card, self.idf = card, dict(idf or {})
        self.calls: list[tuple[str, list[str]]] = []

    def encode_sparse(self, texts, *, kind="document", batch_size=32):  # noqa: ANN001, ANN201
        self.calls.append((kind, list(texts)))
        return [{w: c * self.idf.get(w, 1.0) for w, c in Counter(t.lower().split()).items()} for t in texts]


class HybridBag(BagOfWords):
    """``Encoder`` (test-random's hashing vectors) and ``SparseEncoder`` (bag of words), in a given mode."""

    def __init__(self, dense, idf: dict[str, float], mode: str | None, weights=None) -> None:  # noqa: ANN001
        super().__init__(idf, card=dense.card)
        self.dense, self.retrieval_mode = dense, mode
        if weights is not None:
            self.hybrid_weights = weights

    def encode(self, texts, *, kind="document", batch_size=32):  # noqa: ANN001, ANN201
        return self.dense.encode(texts, kind=kind, batch_size=batch_size)


def _lexical(q: dict[str, float], d: dict[str, float]) -> float:
    return sum(w * d.get(t, 0.0) for t, w in q.items())


def test_sparse_retrieval_hand_values(tmp_path: Path) -> None:
    corpus = {"d1": "cat mat", "d2": "cat", "d3": "dog", "d4": "bird"}
    queries = {"q1": "cat mat", "q2": "dog dog", "q3": "fish"}
    taskdata.beir(tmp_path / "r", corpus, queries, {"q1": {"d2": 1}, "q2": {"d3": 1}, "q3": {"d4": 1}})
    taskdata.sts_folder(tmp_path / "s")
    model = BagOfWords({"mat": 2.0, "dog": 1.5})
    task = get_task("local/r", tmp_path)
    assert task.supports(model) and not get_task("local/s", tmp_path).supports(model)  # sparse only: no STS
    out = task.evaluate(model, progress=False)
    # q1 {cat: 1, mat: 2}: d1 1 + 4 = 5, d2 1; q2 {dog: 3}: d3 4.5; q3: no shared term, nothing retrieved
    assert out.runs["test"] == {"q1": {"d1": 5.0, "d2": 1.0}, "q2": {"d3": 4.5}, "q3": {}}
    assert out.scores["test"]["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 + 0) / 3)
    assert out.scores["test"]["mrr@10"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert out.timings["texts_encoded"] == 3 + 4 and out.timings["texts_cached"] == 0
    assert {kind for kind, _ in model.calls} == {"query", "document"}
    assert model.calls[0] == ("query", ["cat mat", "dog dog", "fish"])  # unique texts, longest first


def _random_retrieval(folder: Path, seed: int = 5) -> tuple[dict[str, str], dict[str, str], dict]:
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(40)]
    corpus = {f"d{i}": " ".join(rng.choice(vocab, 6)) for i in range(60)}
    queries = {f"q{i}": " ".join(rng.choice(vocab, 3)) for i in range(12)}
    qrels = {q: {f"d{j}": int(rng.integers(0, 3)) for j in rng.choice(60, 4, replace=False)} for q in queries}
    taskdata.beir(folder, corpus, queries, qrels)
    return corpus, queries, qrels


IDF = {f"w{i}": 1.0 + i / 10 for i in range(40)}


@pytest.fixture
def small_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retrieval encodes and searches the corpus 17 documents at a time."""
    from harness.tasks import retrieval

    monkeypatch.setattr(retrieval, "SHARD_SIZE", 17)


@pytest.mark.usefixtures("small_shards")
def test_sparse_retrieval_matches_brute_force_and_pytrec(tmp_path: Path) -> None:
    corpus, queries, qrels = _random_retrieval(tmp_path / "r")
    model = BagOfWords(IDF)
    out = _evaluate(tmp_path, "r", model)
    q_w, d_w = model.encode_sparse(list(queries.values())), model.encode_sparse(list(corpus.values()))
    brute = {
        q: {d: s for d, dw in zip(corpus, d_w, strict=True) if (s := _lexical(qw, dw)) != 0}
        for q, qw in zip(queries, q_w, strict=True)
    }
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "recall_100"}).evaluate(brute)
    for metric, measure in [("ndcg@10", "ndcg_cut_10"), ("recall@100", "recall_100")]:
        expected = float(np.mean([v[measure] for v in ref.values()]))
        assert out.scores["test"][metric] == pytest.approx(expected, abs=1e-6), metric
    for q in queries:
        assert set(out.runs["test"][q]) == set(brute[q])
        assert out.runs["test"][q] == pytest.approx(brute[q], rel=1e-6)


@pytest.mark.usefixtures("small_shards")
def test_hybrid_retrieval_limits_and_brute_force(tmp_path: Path, hashing) -> None:
    corpus, queries, _ = _random_retrieval(tmp_path / "r", seed=6)

    def run(mode: str | None, weights=None) -> tuple[dict, dict]:  # noqa: ANN001
        out = _evaluate(tmp_path, "r", HybridBag(hashing, IDF, mode, weights))
        return out.runs["test"], out.scores["test"]

    dense, sparse = run(None), run("sparse")  # no retrieval_mode: an Encoder is searched dense
    assert dense == run("dense")
    only_dense, only_sparse = run("hybrid", (1.0, 0.0)), run("hybrid", (0.0, 1.0))
    for q in queries:  # the same ranking and the same scores (to the bit)
        assert list(only_dense[0][q].items()) == list(dense[0][q].items())
        assert [(d, s) for d, s in only_sparse[0][q].items() if s != 0] == list(sparse[0][q].items())
    assert only_dense[1] == dense[1]
    assert run("hybrid") == run("hybrid", (1.0, 0.1))  # default weights: mGTE's

    mixed, _ = run("hybrid", (0.7, 0.3))
    ids = list(corpus)
    cos = _cos(hashing, *zip(*[(queries[q], corpus[d]) for q in queries for d in ids], strict=True)).reshape(12, 60)
    model = BagOfWords(IDF)
    q_w, d_w = model.encode_sparse(list(queries.values())), model.encode_sparse(list(corpus.values()))
    lex = np.array([[_lexical(qw, dw) for dw in d_w] for qw in q_w])  # (12, 60)
    full = 0.7 * cos + 0.3 * lex
    for i, q in enumerate(queries):
        order = np.argsort(-full[i], kind="stable")
        assert list(mixed[q]) == [ids[j] for j in order]
        np.testing.assert_allclose([mixed[q][ids[j]] for j in order], full[i, order], rtol=1e-5, atol=1e-5)


def test_retrieval_mode_errors(tmp_path: Path, hashing) -> None:
    taskdata.retrieval_folder(tmp_path / "r")
    with pytest.raises(ZooError, match="^model test-random: unknown retrieval mode 'bm25' \\(one of dense, sparse"):
        _evaluate(tmp_path, "r", HybridBag(hashing, {}, "bm25"))
    encoder = TableEncoder({})
    encoder.retrieval_mode = "hybrid"
    with pytest.raises(ZooError, match="^model table: hybrid retrieval needs SparseEncoder$"):
        _evaluate(tmp_path, "r", encoder)
    bag = BagOfWords()
    bag.retrieval_mode = "dense"
    with pytest.raises(ZooError, match="^model bow: dense retrieval needs Encoder$"):
        _evaluate(tmp_path, "r", bag)


def test_encode_sparse_texts_dedups_sorts_restores_order_and_drops_non_finite() -> None:
    class Weights(BagOfWords):
        def encode_sparse(self, texts, *, kind="document", batch_size=32):  # noqa: ANN001, ANN201
            out = super().encode_sparse(texts, kind=kind, batch_size=batch_size)
            return [{**w, "nan": float("nan")} if "bad" in t else w for t, w in zip(texts, out, strict=True)]

    model = Weights({"a": 2.0})
    ctx = EvalContext("t", progress=False)
    out = encode_sparse_texts(model, ["a b", "bad a", "a b", "c"], "query", ctx)
    assert model.calls == [("query", ["bad a", "a b", "c"])]
    assert out == [{"a": 2.0, "b": 1.0}, {"bad": 1.0, "a": 2.0}, {"a": 2.0, "b": 1.0}, {"c": 1.0}]
    assert ctx.timings["texts_encoded"] == 3 and ctx.timings["texts_nonfinite"] == 1 and ctx.timings["encode_s"] >= 0
    assert encode_sparse_texts(model, [], "document", ctx) == []


# Reranking =======================================================================================

RERANK_ROWS = [("query one", ["p1"], ["n1", "n2"]), ("query two", ["p2a", "p2b"], ["n3"])]


def test_reranking_with_a_ranker_hand_values(tmp_path: Path) -> None:
    taskdata.reranking(tmp_path / "rr", RERANK_ROWS)
    ranker = TableRanker({"n1": 3, "p1": 2, "n2": 1, "p2a": 3, "n3": 2, "p2b": 1})
    out = _evaluate(tmp_path, "rr", ranker)
    s = out.scores["test"]
    # query 1: ranking n1 p1 n2 -> AP 1/2, RR 1/2, nDCG 1/log2(3)
    # query 2: ranking p2a n3 p2b -> AP (1 + 2/3) / 2, RR 1, nDCG (1 + 1/2) / (1 + 1/log2(3))
    assert s["map"] == pytest.approx((0.5 + 5 / 6) / 2)
    assert s["mrr@10"] == pytest.approx(0.75)
    assert s["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1.5 / (1 + 1 / math.log2(3))) / 2)
    assert s["main_score"] == s["map"]
    assert out.runs["test"] == {"0": {"c0": 2.0, "c1": 3.0, "c2": 1.0}, "1": {"c0": 3.0, "c1": 1.0, "c2": 2.0}}


def _average_precision(scores: np.ndarray, n_pos: int) -> float:
    order = np.argsort(-scores, kind="stable")
    hits, total = 0, 0.0
    for rank, j in enumerate(order, 1):
        if j < n_pos:
            hits += 1
            total += hits / rank
    return total / n_pos


def test_reranking_with_an_encoder(tmp_path: Path, hashing) -> None:
    rows = [
        ("cats purr softly", ["cats purr softly"], ["dogs bark", "cars honk loudly"]),  # the positive is the query
        ("red apple pie", ["apple pie recipe", "red fruit"], ["blue car", "pie chart red", "green tea"]),
        ("fast trains", ["trains are fast", "high speed rail"], ["slow boats", "fast food"]),
    ]
    taskdata.reranking(tmp_path / "rr", rows)
    out = _evaluate(tmp_path, "rr", hashing)
    aps = []
    for q, pos, neg in rows:
        aps.append(_average_precision(_cos(hashing, [q] * len(pos + neg), pos + neg), len(pos)))
    assert aps[0] == 1.0
    assert out.scores["test"]["map"] == pytest.approx(float(np.mean(aps)), abs=1e-6)
    assert out.runs["test"]["0"]["c0"] == pytest.approx(1.0, abs=1e-5)


# Pair classification =============================================================================


def test_pair_classification_hand_values(tmp_path: Path) -> None:
    cos = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    labels = [1, 1, 0, 1, 0, 0]
    enc = TableEncoder({"anchor": [1.0, 0.0], **{f"s{i}": unit(c) for i, c in enumerate(cos)}})
    taskdata.pairs(tmp_path / "p", [("anchor", f"s{i}", y) for i, y in enumerate(labels)])
    s = _evaluate(tmp_path, "p", enc).scores["test"]
    assert s["cosine_ap"] == pytest.approx((1 + 1 + 3 / 4) / 3)  # positives at ranks 1, 2, 4
    assert s["cosine_accuracy"] == pytest.approx(5 / 6)  # top 2 (or top 4) predicted positive
    assert s["cosine_f1"] == pytest.approx(6 / 7)  # top 4: tp 3, fp 1, fn 0
    assert s["main_score"] == s["cosine_ap"]


def _brute_best(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    best_acc, best_f1 = 0.0, 0.0
    for t in [np.inf, *np.unique(scores)]:
        pred = scores >= t
        tp = int(np.sum(pred & (labels == 1)))
        fp = int(np.sum(pred & (labels == 0)))
        fn = int(np.sum(~pred & (labels == 1)))
        best_acc = max(best_acc, float(np.mean(pred == (labels == 1))))
        best_f1 = max(best_f1, 2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return best_acc, best_f1


@pytest.mark.parametrize("seed", range(12))
def test_best_threshold_scores_equal_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    scores = np.round(rng.uniform(-1, 1, n), 1)  # many ties
    labels = rng.integers(0, 2, n).astype(np.int64)
    acc, f1 = best_threshold_scores(scores, labels)
    ref_acc, ref_f1 = _brute_best(scores, labels)
    assert acc == pytest.approx(ref_acc) and f1 == pytest.approx(ref_f1)


def test_best_threshold_scores_edge_cases() -> None:
    assert best_threshold_scores(np.array([0.5, 0.5, 0.5]), np.array([1, 0, 1])) == pytest.approx((2 / 3, 0.8))
    assert best_threshold_scores(np.array([0.1, 0.9]), np.array([0, 0])) == (1.0, 0.0)
    assert best_threshold_scores(np.array([0.1, 0.9]), np.array([0, 1])) == (1.0, 1.0)
    assert best_threshold_scores(np.array([0.9, 0.1]), np.array([0, 1])) == pytest.approx((0.5, 2 / 3))


# Classification ==================================================================================

SPORT = ["football", "goal", "referee", "striker", "league", "stadium", "match", "coach"]
FOOD = ["recipe", "oven", "flour", "garlic", "simmer", "butter", "pasta", "spice"]


def _texts(words: list[str], n: int, offset: int) -> list[str]:
    combos = list(itertools.combinations(words, 3))
    return [" ".join(combos[(offset + 7 * i) % len(combos)]) for i in range(n)]


def test_classification_separable(tmp_path: Path, hashing) -> None:
    train = [(t, "sport") for t in _texts(SPORT, 12, 0)] + [(t, "food") for t in _texts(FOOD, 12, 0)]
    test = [(t, "sport") for t in _texts(SPORT, 5, 3)] + [(t, "food") for t in _texts(FOOD, 5, 3)]
    taskdata.labelled(tmp_path / "c", {"train": train, "test": test})
    out = _evaluate(tmp_path, "c", hashing)
    s = out.scores["test"]
    assert s == {"accuracy": 1.0, "f1": 1.0, "f1_weighted": 1.0, "main_score": 1.0}
    assert out.items["test"]["correct"] == [1.0] * 10
    assert out.n_items == {"test": 10}


def test_classification_chance_level_with_shuffled_labels(tmp_path: Path, hashing) -> None:
    # every test text is its own label's exact opposite of the training data: accuracy 0
    train = [(t, "sport") for t in _texts(SPORT, 10, 0)] + [(t, "food") for t in _texts(FOOD, 10, 0)]
    test = [(t, "food") for t in _texts(SPORT, 4, 1)] + [(t, "sport") for t in _texts(FOOD, 4, 1)]
    taskdata.labelled(tmp_path / "c", {"train": train, "test": test})
    s = _evaluate(tmp_path, "c", hashing).scores["test"]
    assert s["accuracy"] == 0.0 and s["f1"] == 0.0


class _FakeDataset:
    """Just what mteb's _undersample_data touches of a datasets.Dataset."""

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, column: str) -> list[str]:
        assert column == "label"
        return self.labels

    def select(self, idxs: list[int]) -> list[str]:
        return [self.labels[i] for i in idxs]


@pytest.mark.parametrize(("n", "n_labels", "per_label"), [(200, 7, 8), (50, 3, 8), (30, 10, 2), (5, 2, 8)])
def test_undersample_matches_mteb(n: int, n_labels: int, per_label: int) -> None:
    classification = pytest.importorskip("mteb.abstasks.classification")
    rng = np.random.default_rng(n)
    labels = [f"L{int(x)}" for x in rng.integers(0, n_labels, n)]
    fake_task = SimpleNamespace(seed=42, samples_per_label=per_label, label_column_name="label")
    ds, idxs, expected = _FakeDataset(labels), None, []
    for i in range(10):
        _, idxs, selected = classification.AbsTaskClassification._undersample_data(fake_task, ds, i, idxs)
        expected.append(selected)
    got = undersample(labels, 10, per_label)
    assert got == expected
    assert got[0] != got[1] or n <= per_label  # each experiment reshuffles the previous order
    for chosen in got:
        counts = {lab: sum(labels[i] == lab for i in chosen) for lab in set(labels)}
        assert all(c == min(per_label, labels.count(lab)) for lab, c in counts.items())


# Clustering ======================================================================================


def _cluster_rows() -> list[tuple[str, str]]:
    # each cluster shares three words; the fourth word is unique to the text
    return [(f"football goal referee {w}", "sport") for w in SPORT[:6]] + [
        (f"recipe oven flour {w}", "food") for w in FOOD[:6]
    ]


@pytest.mark.usefixtures("single_thread")
def test_clustering_separable(tmp_path: Path, hashing) -> None:
    rows = _cluster_rows()
    taskdata.labelled(tmp_path / "k", {"test": rows})
    out = _evaluate(tmp_path, "k", hashing)
    s = out.scores["test"]
    assert s["v_measure"] == pytest.approx(1.0) and s["v_measure_std"] == pytest.approx(0.0, abs=1e-12)
    assert s["main_score"] == s["v_measure"]
    assert len(out.items["test"]["v_measures"]) == 10
    assert out.n_items == {"test": 12}


def _small_bootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.tasks import clustering

    monkeypatch.setattr(clustering, "N_BOOTSTRAP", 3)
    monkeypatch.setattr(clustering, "BOOTSTRAP_SIZE", 200)


@pytest.mark.usefixtures("single_thread")
def test_clustering_uninformative_embeddings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # every text has the same embedding: all land in one cluster -> homogeneity 0 -> V-measure 0
    _small_bootstrap(monkeypatch)
    rows = [(f"t{i}", "ab"[i % 2]) for i in range(10)]
    enc = TableEncoder({f"t{i}": [1.0, 0.0] for i in range(10)})
    taskdata.labelled(tmp_path / "k", {"test": rows})
    out = _evaluate(tmp_path, "k", enc)
    assert out.scores["test"]["v_measure"] == pytest.approx(0.0, abs=1e-12)
    assert out.items["test"]["v_measures"] == [pytest.approx(0.0, abs=1e-12)] * 3


# The shared encoding loop ========================================================================


def test_encode_texts_dedups_sorts_and_restores_order() -> None:
    enc = TableEncoder({"a": [3.0, 4.0], "bbb": [0.0, 2.0], "cc": [1.0, 0.0]})
    ctx = EvalContext("t", progress=False)
    out = encode_texts(enc, ["a", "cc", "a", "bbb", "cc"], "document", ctx)
    assert enc.calls == [("document", ["bbb", "cc", "a"])]  # unique texts, longest first
    np.testing.assert_allclose(out, [[0.6, 0.8], [1, 0], [0.6, 0.8], [0, 1], [1, 0]], rtol=1e-6)  # cosine: unit rows
    assert ctx.timings["encode_s"] >= 0


def test_encode_texts_keeps_norms_without_cosine() -> None:
    card = ModelCard(name="dot", family="tests", revision="r", source="tests", similarity="dot")
    enc = TableEncoder({"a": [3.0, 4.0]}, card=card)
    out = encode_texts(enc, ["a"], "query", EvalContext("t", progress=False))
    np.testing.assert_array_equal(out, [[3.0, 4.0]])


def test_encode_texts_blocks(hashing) -> None:
    texts = [f"text number {i}" for i in range(1100)]
    ctx = EvalContext("t", batch_size=2, progress=False)  # blocks of max(2 * 16, 512) = 512 texts
    out = encode_texts(hashing, texts, "query", ctx)
    np.testing.assert_allclose(out, hashing.encode(texts), rtol=1e-5, atol=1e-6)


# Every metric the task types produce has a direction ============================================


@pytest.mark.usefixtures("single_thread")
def test_every_produced_metric_has_a_direction(tmp_path: Path, hashing, monkeypatch: pytest.MonkeyPatch) -> None:
    _small_bootstrap(monkeypatch)
    taskdata.sts_folder(tmp_path / "sts")
    taskdata.retrieval_folder(tmp_path / "retrieval")
    taskdata.pairs_folder(tmp_path / "pairs")
    taskdata.reranking(tmp_path / "reranking", RERANK_ROWS)
    rows = [(t, "sport") for t in _texts(SPORT, 9, 0)] + [(t, "food") for t in _texts(FOOD, 9, 0)]
    taskdata.labelled(tmp_path / "classification", {"train": rows, "test": rows[:4] + rows[-4:]})
    taskdata.labelled(tmp_path / "clustering", {"test": _cluster_rows()})
    seen = set()
    for name in ["sts", "retrieval", "pairs", "reranking", "classification", "clustering"]:
        task = get_task(f"local/{name}", tmp_path)
        seen.add(task.spec.type)
        for metric in task.evaluate(hashing, progress=False).scores["test"]:
            if metric != "main_score":
                assert isinstance(higher_is_better(metric), bool), metric
    assert seen == {"sts", "retrieval", "pair_classification", "reranking", "classification", "clustering"}
    assert higher_is_better("v_measure_std") is False


def test_metrics_helper_consistency() -> None:
    # evaluate_run is what retrieval and reranking use; a perfect run scores 1 on every metric but precision
    qrels = {"q": {"a": 1}}
    s = evaluate_run(qrels, {"q": {"a": 1.0, "b": 0.5}}, TASK_TYPES["retrieval"].metrics)
    assert {k: v for k, v in s.items() if not k.startswith("precision")} == dict.fromkeys(
        [m for m in TASK_TYPES["retrieval"].metrics if not m.startswith("precision")], 1.0
    )
    assert s["precision@10"] == pytest.approx(0.1)


def test_non_finite_embeddings_become_zero_vectors(tiny_data, results_dir) -> None:
    """A model that returns NaN for some text must not push that document to the top of every ranking."""
    import numpy as np

    from harness.runner import evaluate
    from zoo.families.baselines import HashingEncoder
    from zoo.registry import get_card

    class NaNForDocs(HashingEncoder):
        def encode(self, texts, *, kind="document", batch_size=32):
            out = super().encode(texts, kind=kind, batch_size=batch_size)
            if kind == "document":
                out[0] = np.nan
            return out

    model = NaNForDocs(get_card("test-random"))
    (nan_record,) = evaluate(model, ["local/retrieval"], results_dir=results_dir, data_dir=tiny_data, progress=False)
    assert nan_record.runtime["texts_nonfinite"] == 1
    assert 0.0 <= nan_record.get_score() <= 1.0
