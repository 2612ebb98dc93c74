"""harness.search.dense_topk against a brute-force full score matrix."""

from __future__ import annotations

import numpy as np
import pytest

from harness.search import dense_topk


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
