"""Exact search: dense (chunked matmul) and sparse (term-weight dot products), both with a streaming top-k.

The full query x corpus score matrix is never materialised: queries are taken ``query_chunk`` at a
time, documents ``doc_chunk`` at a time, and each block's top-k is merged into the running top-k
(:class:`TopKMerger`). The corpus itself can arrive in shards, so it never has to be in memory whole.
Peak extra memory is about ``query_chunk * (doc_chunk + 2k)`` floats plus the running top-k.

A block of scores comes from a *scorer* bound to one shard of documents: :class:`DenseScorer` (``q . d``)
or :class:`SparseScorer` (``sum_t w_q(t) * w_d(t)`` over ``{term: weight}`` dicts, through scipy CSR
matrices). Scorers of one shard can be combined (a hybrid score is a weighted sum of their blocks) and
fed to :meth:`TopKMerger.add_blocks`. Every path merges through the same code, so equal scores are
broken the same way whatever produced them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch and scipy load on first use: importing the harness stays fast
    import torch
    from scipy import sparse as sp

__all__ = [
    "BlockScores",
    "TopKMerger",
    "DenseScorer",
    "SparseScorer",
    "StreamingTopK",
    "SparseStreamingTopK",
    "dense_topk",
    "sparse_topk",
]

# The scores of a block of one shard: (query rows, document rows of the shard) -> (nq', nd') float32.
BlockScores = Callable[[slice, slice], "torch.Tensor"]


class TopKMerger:
    """The running top-k documents of every query, fed blocks of scores one corpus shard at a time.

    Args:
        n_queries: number of queries (rows of every score block).
        k: results kept per query.
        query_chunk: queries per block.
        doc_chunk: documents per block.

    Example:
        >>> acc = TopKMerger(n_queries=3, k=10)
        >>> acc.add_scores(scores)  # (3, n_docs) precomputed
        >>> scores, indices = acc.result()
    """

    def __init__(self, n_queries: int, k: int, *, query_chunk: int = 1024, doc_chunk: int = 16384) -> None:
        import torch

        self.k, self.query_chunk, self.doc_chunk = k, query_chunk, doc_chunk
        self.n_queries = n_queries
        self._best_s = torch.full((n_queries, k), -torch.inf)  # (nq, k)
        self._best_i = torch.full((n_queries, k), -1, dtype=torch.int64)  # (nq, k)
        self.n_docs = 0

    def add_blocks(self, n_docs: int, scores: BlockScores) -> None:
        """Merge a shard of ``n_docs`` documents (numbered after all earlier shards) given its block scorer.

        ``scores(query_rows, doc_rows)`` is called once per ``(query_chunk, doc_chunk)`` block, document
        chunks in the outer loop, and must return the ``(nq', nd')`` float32 scores of that block.
        """
        import torch

        with torch.inference_mode():
            for ds in range(0, n_docs, self.doc_chunk):
                doc_rows = slice(ds, min(ds + self.doc_chunk, n_docs))
                for qs in range(0, self.n_queries, self.query_chunk):
                    rows = slice(qs, min(qs + self.query_chunk, self.n_queries))
                    self._merge(rows, scores(rows, doc_rows), self.n_docs + ds)
        self.n_docs += n_docs

    def add_scores(self, block: np.ndarray | torch.Tensor) -> None:
        """Merge a precomputed ``(n_queries, n_docs)`` score block: the next ``n_docs`` documents."""
        import torch

        if isinstance(block, np.ndarray):
            block = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))  # (nq, nd)
        if block.ndim != 2 or block.shape[0] != self.n_queries:
            raise ValueError(f"a score block must be ({self.n_queries}, n_docs), not {tuple(block.shape)}")
        self.add_blocks(block.shape[1], lambda rows, doc_rows: block[rows, doc_rows].float())

    def _merge(self, rows: slice, block: torch.Tensor, offset: int) -> None:
        """Merge the ``(nq', nd')`` scores of documents ``offset ...`` into the top-k of queries ``rows``."""
        import torch

        best_s, best_i = self._best_s[rows], self._best_i[rows]  # (nq', k)
        s, i = torch.topk(block, min(self.k, block.shape[1]), dim=1)  # (nq', k')
        cand_s = torch.cat([best_s, s], dim=1)  # (nq', k + k')
        cand_i = torch.cat([best_i, i + offset], dim=1)
        best_s, pos = torch.topk(cand_s, self.k, dim=1)  # (nq', k)
        self._best_s[rows], self._best_i[rows] = best_s, torch.gather(cand_i, 1, pos)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, indices)``, both ``(n_queries, min(k, n_docs))``, best first."""
        k = min(self.k, self.n_docs)
        return self._best_s[:, :k].numpy().copy(), self._best_i[:, :k].numpy().copy()


class DenseScorer:
    """Dot products of fixed query vectors with the documents of a shard.

    Args:
        queries: ``(n_queries, dim)`` (normalise both sides first for cosine).
    """

    def __init__(self, queries: np.ndarray) -> None:
        import torch

        self.queries = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))  # (nq, dim)

    def __len__(self) -> int:
        return len(self.queries)

    def bind(self, docs: np.ndarray) -> BlockScores:
        """The block scorer of a shard of ``(n_docs, dim)`` document vectors."""
        import torch

        d = torch.from_numpy(np.ascontiguousarray(docs, dtype=np.float32))  # (nd, dim)
        return lambda rows, doc_rows: self.queries[rows] @ d[doc_rows].T  # (nq', nd')


class SparseScorer:
    """Dot products of fixed ``{term: weight}`` query vectors with those of a shard's documents.

    The term vocabulary is the queries' terms only: a document term absent from every query cannot score,
    so it is dropped when the shard is bound. Queries are a CSR ``(n_queries, V)`` matrix, a shard's
    documents a CSR ``(n_docs, V)`` one; a block is ``Q[rows] @ D[doc_rows].T``, densified.

    Args:
        queries: one ``{term: weight}`` dict per query.
    """

    def __init__(self, queries: Sequence[Mapping[str, float]]) -> None:
        self.vocabulary: dict[str, int] = {}
        for q in queries:
            for term in q:
                self.vocabulary.setdefault(term, len(self.vocabulary))
        self.queries = self.matrix(queries)  # (nq, V)

    def __len__(self) -> int:
        return self.queries.shape[0]

    def matrix(self, vectors: Sequence[Mapping[str, float]]) -> sp.csr_matrix:
        """``(len(vectors), V)`` float32 CSR over the query vocabulary (other terms dropped)."""
        from scipy import sparse as sp

        vocab = self.vocabulary
        indptr, indices, data = [0], [], []
        for v in vectors:
            for term, w in v.items():
                j = vocab.get(term)
                if j is not None:
                    indices.append(j)
                    data.append(w)
            indptr.append(len(indices))
        return sp.csr_matrix(
            (np.asarray(data, dtype=np.float32), np.asarray(indices, dtype=np.int64), np.asarray(indptr)),
            shape=(len(vectors), len(vocab)),
        )

    def bind(self, docs: Sequence[Mapping[str, float]]) -> BlockScores:
        """The block scorer of a shard of document ``{term: weight}`` dicts."""
        import torch

        d = self.matrix(docs)  # (nd, V)
        chunk: dict[tuple[int, int], sp.csr_matrix] = {}  # the transposed current document chunk

        def scores(rows: slice, doc_rows: slice) -> torch.Tensor:
            key = (doc_rows.start, doc_rows.stop)
            if key not in chunk:  # document chunks are the outer loop: transpose each once
                chunk.clear()
                chunk[key] = d[doc_rows].T.tocsr()  # (V, nd')
            return torch.from_numpy((self.queries[rows] @ chunk[key]).toarray())  # (nq', nd')

        return scores


class StreamingTopK(TopKMerger):
    """The running top-k documents of every query by dot product, fed one corpus shard at a time.

    Example:
        >>> acc = StreamingTopK(queries, k=100)
        >>> for shard in shards:
        ...     acc.add(shard)
        >>> scores, indices = acc.result()
    """

    scorer_class: type[DenseScorer] | type[SparseScorer] = DenseScorer

    def __init__(self, queries: Any, k: int, *, query_chunk: int = 1024, doc_chunk: int = 16384) -> None:
        super().__init__(len(queries), k, query_chunk=query_chunk, doc_chunk=doc_chunk)
        self.scorer = self.scorer_class(queries)

    def add(self, docs: Any) -> None:
        """Merge a shard of documents (rows numbered after all earlier shards) into the top-k."""
        self.add_blocks(len(docs), self.scorer.bind(docs))


class SparseStreamingTopK(StreamingTopK):
    """The same by sparse dot product: queries and shards are ``{term: weight}`` dicts.

    Example:
        >>> acc = SparseStreamingTopK([{"cat": 1.2}], k=100)
        >>> acc.add([{"cat": 0.5, "mat": 0.1}, {"dog": 1.0}])
        >>> acc.result()  # (array([[0.6, 0.]]), array([[0, 1]]))
    """

    scorer_class = SparseScorer


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


def sparse_topk(
    queries: Sequence[Mapping[str, float]],
    docs: Sequence[Mapping[str, float]],
    k: int,
    *,
    query_chunk: int = 1024,
    doc_chunk: int = 16384,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k documents by sparse dot product ``sum_t w_q(t) * w_d(t)`` for every query.

    Args:
        queries: one ``{term: weight}`` dict per query.
        docs: one ``{term: weight}`` dict per document.
        k: results per query (capped at ``n_docs``).
        query_chunk: queries per block.
        doc_chunk: documents per block.

    Returns:
        ``(scores, indices)``, both ``(n_queries, k)`` (float32, int64), best first; indices index ``docs``.
        A document sharing no term with a query scores 0 for it (and may still be among its top k).
    """
    acc = SparseStreamingTopK(queries, k, query_chunk=query_chunk, doc_chunk=doc_chunk)
    acc.add(docs)
    return acc.result()
