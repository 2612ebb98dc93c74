"""Reranking: order each query's candidates; MAP over the candidates, as MTEB does."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.datasets.local import RerankingData
from harness.metrics import evaluate_run
from harness.tasks.base import EvalContext, SplitOutput, Task, encode_texts, task_type
from zoo.protocols import Encoder, Ranker

__all__ = ["Reranking"]


@task_type
class Reranking(Task):
    """Score (query, candidate) pairs with a ``Ranker``, or by cosine of an ``Encoder``'s embeddings."""

    type = "reranking"
    main_score = "map"
    instruction = "Given a query, retrieve relevant documents that answer the query"
    requires = (Ranker, Encoder)
    metrics = ("map", "mrr@10", "ndcg@10")

    def _evaluate_split(self, model: Any, data: RerankingData, ctx: EvalContext) -> SplitOutput:
        candidates = [p + n for p, n in zip(data.positives, data.negatives, strict=True)]
        if isinstance(model, Ranker):
            scores = [
                np.asarray(model.score(q, c), dtype=np.float64) for q, c in zip(data.queries, candidates, strict=True)
            ]
        else:
            flat = [t for c in candidates for t in c]
            q = encode_texts(model, data.queries, "query", ctx)
            d = encode_texts(model, flat, "document", ctx)
            bounds = np.cumsum([0] + [len(c) for c in candidates])
            scores = [d[bounds[i] : bounds[i + 1]] @ q[i] for i in range(len(candidates))]
        run = {str(i): {f"c{j}": float(s) for j, s in enumerate(row)} for i, row in enumerate(scores)}
        qrels = {
            str(i): {f"c{j}": int(j < len(p)) for j in range(len(c))}
            for i, (p, c) in enumerate(zip(data.positives, candidates, strict=True))
        }
        return SplitOutput(evaluate_run(qrels, run, self.metrics), n_items=len(data.queries), run=run, qrels=qrels)
