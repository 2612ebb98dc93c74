"""zoo.search: dense and sparse top-k against brute-force full score matrices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.search import (
    SparseScorer,
    SparseStreamingTopK,
    StreamingTopK,
    TopKMerger,
    dense_topk,
    sparse_topk,
)


def _brute(q: np.ndarray, d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    full = q.astype(np.float64) @ d.astype(np.float64).T
    idx = np.argsort(-full, axis=1, kind="stable")[:, : min(k, len(d))]
    return np.take_along_axis(full, idx, axis=1), idx


@pytest.mark.parametrize(
    ("n_q", "n_d", "k", "query_chunk", "doc_chunk"),
    [
        (7, 50, 5, 1024, 16384),  # one block
        (7, 50, 5, 3, 8),  # many query and doc blocks
        (10, 64, 20, 4, 7),  # k larger than a doc chunk
        (5, 30, 30, 2, 4),  # k == n_docs
        (5, 12, 100, 2, 5),  # k > n_docs: capped
        (1, 1, 3, 1, 1),
        (33, 257, 17, 8, 16),
    ],
)
def test_dense_topk_equals_brute_force(n_q: int, n_d: int, k: int, query_chunk: int, doc_chunk: int) -> None:
    rng = np.random.default_rng(n_q * 1000 + n_d + k)
    q = rng.standard_normal((n_q, 16)).astype(np.float32)
    d = rng.standard_normal((n_d, 16)).astype(np.float32)
    scores, idx = dense_topk(q, d, k, query_chunk=query_chunk, doc_chunk=doc_chunk)
    ref_s, ref_i = _brute(q, d, k)
    assert idx.shape == scores.shape == (n_q, min(k, n_d))
    assert idx.dtype == np.int64 and scores.dtype == np.float32
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(scores, ref_s, rtol=1e-5, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first


def test_dense_topk_chunking_does_not_change_the_result() -> None:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((40, 8)).astype(np.float32)
    d = rng.standard_normal((300, 8)).astype(np.float32)
    ref = dense_topk(q, d, 25)
    for qc, dc in [(1, 1), (7, 13), (40, 300), (64, 1000)]:
        s, i = dense_topk(q, d, 25, query_chunk=qc, doc_chunk=dc)
        np.testing.assert_array_equal(i, ref[1])
        np.testing.assert_allclose(s, ref[0], rtol=1e-6)


def test_dense_topk_accepts_float64_and_non_contiguous_input() -> None:
    rng = np.random.default_rng(1)
    q = rng.standard_normal((6, 10))  # float64
    d = np.asfortranarray(rng.standard_normal((20, 10)))
    s, i = dense_topk(q, d, 4, doc_chunk=3)
    ref_s, ref_i = _brute(q, d, 4)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_allclose(s, ref_s, rtol=1e-5)


def test_dense_topk_finds_the_identical_vector() -> None:
    rng = np.random.default_rng(2)
    d = rng.standard_normal((100, 32)).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    picks = [3, 97, 50, 0]
    s, i = dense_topk(d[picks], d, 1, doc_chunk=10)
    assert i[:, 0].tolist() == picks
    np.testing.assert_allclose(s[:, 0], 1.0, rtol=1e-6)


# Merging precomputed score blocks ================================================================


@pytest.mark.parametrize(("query_chunk", "doc_chunk"), [(1024, 16384), (3, 5), (1, 1)])
def test_add_scores_in_blocks_equals_a_one_shot_top_k(query_chunk: int, doc_chunk: int) -> None:
    rng = np.random.default_rng(3)
    full = rng.standard_normal((9, 70)).astype(np.float32)  # (nq, nd)
    acc = TopKMerger(9, 12, query_chunk=query_chunk, doc_chunk=doc_chunk)
    for start, stop in [(0, 10), (10, 11), (11, 50), (50, 70)]:  # shards of uneven sizes, one a tensor
        block = full[:, start:stop]
        acc.add_scores(torch.from_numpy(block) if start == 10 else block)
    s, i = acc.result()
    ref_i = np.argsort(-full, axis=1, kind="stable")[:, :12]
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_array_equal(s, np.take_along_axis(full, ref_i, axis=1))
    assert acc.n_docs == 70
    with pytest.raises(ValueError, match=r"must be \(9, n_docs\)"):
        acc.add_scores(full[:3])


def test_add_scores_ranks_like_add() -> None:
    """The dense path is add_blocks over q . d: feeding the same scores precomputed changes nothing."""
    rng = np.random.default_rng(4)
    q = rng.integers(-2, 3, (6, 4)).astype(np.float32)  # small integers: exact scores, many ties
    d = rng.integers(-2, 3, (40, 4)).astype(np.float32)
    dense = StreamingTopK(q, 10, query_chunk=4, doc_chunk=7)
    merged = TopKMerger(6, 10, query_chunk=4, doc_chunk=7)
    for shard in (slice(0, 13), slice(13, 40)):
        dense.add(d[shard])
        merged.add_scores(q @ d[shard].T)
    for a, b in zip(dense.result(), merged.result(), strict=True):
        np.testing.assert_array_equal(a, b)


# Sparse search ===================================================================================


def _random_sparse(rng: np.random.Generator, n: int, vocab: int, *, integer: bool = False) -> list[dict[str, float]]:
    """``n`` random ``{term: weight}`` dicts over terms ``t0 .. t<vocab-1>``, 0 to 5 terms each."""
    out = []
    for _ in range(n):
        terms = rng.choice(vocab, int(rng.integers(0, 6)), replace=False)
        weights = rng.integers(1, 4, len(terms)) if integer else rng.random(len(terms)) + 0.01
        out.append({f"t{t}": float(w) for t, w in zip(terms, weights, strict=True)})
    return out


def _brute_sparse(queries: list[dict[str, float]], docs: list[dict[str, float]]) -> np.ndarray:
    """``(nq, nd)`` float64 dict dot products."""
    return np.array([[sum(w * d.get(t, 0.0) for t, w in q.items()) for d in docs] for q in queries])


@pytest.mark.parametrize(
    ("n_q", "n_d", "k", "query_chunk", "doc_chunk", "shard"),
    [
        (7, 50, 5, 1024, 16384, 50),  # one shard, one block
        (7, 50, 5, 3, 8, 20),  # several shards of several blocks
        (10, 64, 20, 4, 7, 9),  # k larger than a doc chunk
        (5, 30, 100, 2, 4, 11),  # k > n_docs: capped
        (33, 257, 17, 8, 16, 100),
    ],
)
def test_sparse_search_equals_brute_force(
    n_q: int, n_d: int, k: int, query_chunk: int, doc_chunk: int, shard: int
) -> None:
    rng = np.random.default_rng(n_q * 1000 + n_d + k)
    queries, docs = _random_sparse(rng, n_q, 30), _random_sparse(rng, n_d, 60)  # docs use terms no query has
    acc = SparseStreamingTopK(queries, k, query_chunk=query_chunk, doc_chunk=doc_chunk)
    for start in range(0, n_d, shard):
        acc.add(docs[start : start + shard])
    scores, idx = acc.result()
    full = _brute_sparse(queries, docs)
    assert idx.shape == scores.shape == (n_q, min(k, n_d))
    assert idx.dtype == np.int64 and scores.dtype == np.float32
    np.testing.assert_allclose(scores, -np.sort(-full, axis=1)[:, : min(k, n_d)], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.take_along_axis(full, idx, axis=1), scores, rtol=1e-6, atol=1e-6)
    assert all(len(set(row)) == len(row) for row in idx.tolist())  # each document once
    positive = full > 0
    for row in range(n_q):  # the documents that score are all found (ties only among the zeros)
        want = set(np.flatnonzero(positive[row]).tolist())
        if len(want) <= idx.shape[1]:
            assert want <= set(idx[row].tolist())
        else:
            assert set(idx[row].tolist()) <= want


def test_sparse_search_breaks_ties_as_the_dense_path() -> None:
    """Integer weights give exact scores and many ties: sparse search ranks exactly as dense search of the
    same vectors written densely (same chunks, same shards)."""
    rng = np.random.default_rng(7)
    queries, docs = _random_sparse(rng, 12, 8, integer=True), _random_sparse(rng, 90, 8, integer=True)
    dense_q = np.array([[q.get(f"t{t}", 0.0) for t in range(8)] for q in queries], dtype=np.float32)  # (nq, V)
    dense_d = np.array([[d.get(f"t{t}", 0.0) for t in range(8)] for d in docs], dtype=np.float32)  # (nd, V)
    sparse, dense = (
        cls(x, 15, query_chunk=5, doc_chunk=8) for cls, x in [(SparseStreamingTopK, queries), (StreamingTopK, dense_q)]
    )
    for start in range(0, 90, 25):
        sparse.add(docs[start : start + 25])
        dense.add(dense_d[start : start + 25])
    (s1, i1), (s2, i2) = sparse.result(), dense.result()
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(s1, np.take_along_axis(_brute_sparse(queries, docs), i1, axis=1))
    one_shot = sparse_topk(queries, docs, 15, query_chunk=5, doc_chunk=8)
    np.testing.assert_array_equal(one_shot[0], s1)


def test_sparse_vocabulary_is_the_queries_terms() -> None:
    scorer = SparseScorer([{"cat": 2.0, "mat": 1.0}, {"dog": 0.5}])
    assert scorer.vocabulary == {"cat": 0, "mat": 1, "dog": 2}
    docs = scorer.matrix([{"cat": 1.0, "zebra": 9.0}, {}, {"dog": 4.0, "mat": 3.0}])
    assert docs.shape == (3, 3) and docs.nnz == 3  # "zebra" cannot score: dropped
    block = scorer.bind([{"cat": 1.0, "zebra": 9.0}, {}, {"dog": 4.0, "mat": 3.0}])(slice(0, 2), slice(0, 3))
    np.testing.assert_array_equal(block.numpy(), [[2.0, 0.0, 3.0], [0.0, 0.0, 2.0]])


def test_sparse_search_edge_cases() -> None:
    s, i = sparse_topk([{"a": 1.0}, {}], [{"b": 1.0}, {"a": 0.5}], 5)  # an empty query scores 0 everywhere
    np.testing.assert_array_equal(s, [[0.5, 0.0], [0.0, 0.0]])
    assert i[0].tolist() == [1, 0] and sorted(i[1].tolist()) == [0, 1]
    s, i = sparse_topk([{}], [{"a": 1.0}], 3)  # no query term at all: an empty vocabulary
    assert s.tolist() == [[0.0]] and i.tolist() == [[0]]
    s, i = sparse_topk([{"a": 1.0}], [], 3)
    assert s.shape == i.shape == (1, 0)
