"""Exact dense search: chunked matmul with a streaming top-k.

The full query x corpus score matrix is never materialised: queries are taken ``query_chunk`` at a
time, documents ``doc_chunk`` at a time, and each block's top-k is merged into the running top-k. Peak
extra memory is about ``query_chunk * (doc_chunk + 2k)`` floats.
"""

from __future__ import annotations

import numpy as np

__all__ = ["dense_topk"]


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
    import torch

    k = min(k, len(docs))
    q_all = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    d_all = torch.from_numpy(np.ascontiguousarray(docs, dtype=np.float32))
    out_s = np.empty((len(queries), k), dtype=np.float32)
    out_i = np.empty((len(queries), k), dtype=np.int64)
    with torch.inference_mode():
        for qs in range(0, len(queries), query_chunk):
            q = q_all[qs : qs + query_chunk]
            best_s = torch.full((len(q), k), -torch.inf)
            best_i = torch.zeros((len(q), k), dtype=torch.int64)
            for ds in range(0, len(docs), doc_chunk):
                block = q @ d_all[ds : ds + doc_chunk].T  # (nq, chunk)
                bk = min(k, block.shape[1])
                s, i = torch.topk(block, bk, dim=1)  # (nq, bk)
                cand_s = torch.cat([best_s, s], dim=1)  # (nq, k + bk)
                cand_i = torch.cat([best_i, i + ds], dim=1)
                best_s, pos = torch.topk(cand_s, k, dim=1)
                best_i = torch.gather(cand_i, 1, pos)
            out_s[qs : qs + len(q)] = best_s.numpy()
            out_i[qs : qs + len(q)] = best_i.numpy()
    return out_s, out_i
