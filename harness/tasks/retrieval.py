"""Retrieval: rank a corpus for every query; nDCG@10 over the top 1000, as MTEB does.

With ``spec.options["ignore_identical_ids"]`` (the ``beir`` source's default) a hit whose document id
equals the query id is dropped before the metrics, as BEIR does.
"""

from __future__ import annotations

from typing import Any

from harness.datasets.local import RetrievalData
from harness.metrics import evaluate_run, trec_sorted
from harness.search import StreamingTopK
from harness.tasks.base import EvalContext, SplitOutput, Task, encode_texts, task_type
from zoo.protocols import Encoder, Retriever

__all__ = ["Retrieval", "dense_run", "top_of_run", "without_identical_ids"]

TOP_K = 1000  # depth of the ranked lists the metrics see (recall@1000)
RUN_DEPTH = 100  # depth of the run file kept beside the result
SHARD_SIZE = 50_000  # documents encoded and searched at a time: memory stays bounded on any corpus


def dense_run(
    model: Encoder, queries: dict[str, str], corpus: dict[str, str], ctx: EvalContext, *, top_k: int = TOP_K
) -> dict[str, dict[str, float]]:
    """Exact dense search of ``corpus`` for every query: ``{query_id: {doc_id: score}}``.

    The corpus is encoded and searched one shard of ``SHARD_SIZE`` documents at a time (the unit
    that can later be spread over ranks), so only one shard of embeddings is ever in memory.
    """
    doc_ids = list(corpus)
    acc = StreamingTopK(encode_texts(model, list(queries.values()), "query", ctx), top_k)
    for start in range(0, len(doc_ids), SHARD_SIZE):
        acc.add(encode_texts(model, [corpus[i] for i in doc_ids[start : start + SHARD_SIZE]], "document", ctx))
    scores, idx = acc.result()
    return {
        qid: {doc_ids[j]: float(s) for j, s in zip(idx[row], scores[row], strict=True)}
        for row, qid in enumerate(queries)
    }


def without_identical_ids(run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """``run`` without the hits whose document id equals the query id (BEIR's ``ignore_identical_ids``)."""
    return {q: {d: s for d, s in docs.items() if d != q} for q, docs in run.items()}


def top_of_run(run: dict[str, dict[str, float]], depth: int = RUN_DEPTH) -> dict[str, dict[str, float]]:
    """The best ``depth`` documents of every query."""
    return {q: dict(trec_sorted(docs, depth)) for q, docs in run.items()}


@task_type
class Retrieval(Task):
    """Dense (``Encoder``) or self-indexing (``Retriever``) retrieval over a BEIR-layout split."""

    type = "retrieval"
    main_score = "ndcg@10"
    requires = (Retriever, Encoder)
    metrics = ("ndcg@10", "ndcg@100", "map@100", "mrr@10", "recall@10", "recall@100", "recall@1000", "precision@10")

    def _evaluate_split(self, model: Any, data: RetrievalData, ctx: EvalContext) -> SplitOutput:
        # BEIR drops hits whose id is the query's, searching one deeper so that TOP_K remain.
        ignore = bool(self.spec.options.get("ignore_identical_ids", False))
        if isinstance(model, Retriever):
            run = model.retrieve(data.queries, data.corpus, top_k=TOP_K + ignore)
        else:
            run = dense_run(model, data.queries, data.corpus, ctx, top_k=TOP_K + ignore)
        if ignore:
            run = top_of_run(without_identical_ids(run), TOP_K)
        scores = evaluate_run(data.qrels, run, self.metrics)
        return SplitOutput(scores, n_items=len(data.queries), run=top_of_run(run), qrels=data.qrels)
