"""Exact dense search: chunked matmul with a streaming top-k.

The full query x corpus score matrix is never materialised: queries are taken ``query_chunk`` at a
time, documents ``doc_chunk`` at a time, and each block's top-k is merged into the running top-k. The
corpus itself can arrive in shards (:class:`StreamingTopK`), so it never has to be in memory whole.
Peak extra memory is about ``query_chunk * (doc_chunk + 2k)`` floats plus the running top-k.
"""

from __future__ import annotations

import numpy as np

__all__ = ["dense_topk", "StreamingTopK"]


class StreamingTopK:
    """The running top-k documents of every query, fed one corpus shard at a time.

    Example:
        >>> acc = StreamingTopK(queries, k=100)
        >>> for shard in shards:
        ...     acc.add(shard)
        >>> scores, indices = acc.result()
    """

    def __init__(self, queries: np.ndarray, k: int, *, query_chunk: int = 1024, doc_chunk: int = 16384) -> None:
        import torch

        self._torch = torch
        self.k, self.query_chunk, self.doc_chunk = k, query_chunk, doc_chunk
        self._q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))  # (nq, dim)
        self._best_s = torch.full((len(queries), k), -torch.inf)  # (nq, k)
        self._best_i = torch.full((len(queries), k), -1, dtype=torch.int64)  # (nq, k)
        self.n_docs = 0

    def add(self, docs: np.ndarray) -> None:
        """Merge a shard of documents (rows numbered after all earlier shards) into the top-k."""
        torch = self._torch
        d_all = torch.from_numpy(np.ascontiguousarray(docs, dtype=np.float32))  # (nd, dim)
        with torch.inference_mode():
            for qs in range(0, len(self._q), self.query_chunk):
                q = self._q[qs : qs + self.query_chunk]  # (nq', dim)
                best_s, best_i = self._best_s[qs : qs + len(q)], self._best_i[qs : qs + len(q)]
                for ds in range(0, len(d_all), self.doc_chunk):
                    block = q @ d_all[ds : ds + self.doc_chunk].T  # (nq', chunk)
                    s, i = torch.topk(block, min(self.k, block.shape[1]), dim=1)  # (nq', k')
                    cand_s = torch.cat([best_s, s], dim=1)  # (nq', k + k')
                    cand_i = torch.cat([best_i, i + self.n_docs + ds], dim=1)
                    best_s, pos = torch.topk(cand_s, self.k, dim=1)  # (nq', k)
                    best_i = torch.gather(cand_i, 1, pos)
                self._best_s[qs : qs + len(q)], self._best_i[qs : qs + len(q)] = best_s, best_i
        self.n_docs += len(docs)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, indices)``, both ``(n_queries, min(k, n_docs))``, best first."""
        k = min(self.k, self.n_docs)
        return self._best_s[:, :k].numpy().copy(), self._best_i[:, :k].numpy().copy()


def dense_topk(
    queries: np.ndarray,
    docs: np.ndarray,
    k: int,
    *,
    query_chunk: int = 1024,
    doc_chunk: int = 16384,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k documents by dot product for every query.

    Args:
        queries: ``(n_queries, dim)`` float32 (normalise both sides first for cosine).
        docs: ``(n_docs, dim)`` float32.
        k: results per query (capped at ``n_docs``).
        query_chunk: queries per block.
        doc_chunk: documents per block.

    Returns:
        ``(scores, indices)``, both ``(n_queries, k)``, best first; indices index ``docs``.
    """
    acc = StreamingTopK(queries, k, query_chunk=query_chunk, doc_chunk=doc_chunk)
    acc.add(docs)
    return acc.result()
