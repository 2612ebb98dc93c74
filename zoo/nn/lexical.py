"""Term-weight vectors (``{term: weight}`` dicts of a ``SparseEncoder``): lexical match and hybrid fusion."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["lexical_scores", "hybrid_scores"]


def lexical_scores(queries: Sequence[Mapping[str, float]], docs: Sequence[Mapping[str, float]]) -> np.ndarray:
    """Sparse relevance: ``sum_t w_q(t) * w_d(t)`` over shared terms, ``(len(queries), len(docs))`` float32."""
    out = np.zeros((len(queries), len(docs)), dtype=np.float32)
    for i, q in enumerate(queries):
        for j, d in enumerate(docs):
            small, large = (q, d) if len(q) <= len(d) else (d, q)
            out[i, j] = sum(w * large[t] for t, w in small.items() if t in large)
    return out


def hybrid_scores(
    q_dense: np.ndarray,
    d_dense: np.ndarray,
    q_sparse: Sequence[Mapping[str, float]],
    d_sparse: Sequence[Mapping[str, float]],
    *,
    dense_weight: float = 1.0,
    sparse_weight: float = 0.1,
) -> np.ndarray:
    """Hybrid relevance ``dense_weight * cos + sparse_weight * lexical`` (defaults: mGTE's, its gte_embedding.py).

    ``q_dense`` ``(Q, D)`` and ``d_dense`` ``(N, D)`` are embeddings, ``q_sparse`` / ``d_sparse`` the ``Q`` / ``N``
    term-weight dicts of a ``SparseEncoder`` (e.g. mGTE's); returns ``(Q, N)`` float32 scores.

    Example:
        >>> enc = create_model("test-mgte")
        >>> (qd, qs), (dd, ds) = enc.encode_hybrid(["cat"], kind="query"), enc.encode_hybrid(["a cat", "a dog"])
        >>> hybrid_scores(qd, dd, qs, ds).shape
        (1, 2)
    """

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

    cos = unit(np.asarray(q_dense, dtype=np.float32)) @ unit(np.asarray(d_dense, dtype=np.float32)).T  # (Q, N)
    return (dense_weight * cos + sparse_weight * lexical_scores(q_sparse, d_sparse)).astype(np.float32)
