"""Retrieval: rank a corpus for every query; nDCG@10 over the top 1000, as MTEB does.

With ``spec.options["ignore_identical_ids"]`` (the ``beir`` source's default) a hit whose document id
equals the query id is dropped before the metrics, as BEIR does.

A ``Retriever`` ranks the corpus itself. Any other model is searched exactly, shard by shard, in its
*retrieval mode*: ``model.retrieval_mode`` if it has one, else ``"dense"`` for an ``Encoder`` and
``"sparse"`` for a ``SparseEncoder`` that is not one.

- ``"dense"``: dot product of the embeddings (cosine when the card's similarity is cosine).
- ``"sparse"``: dot product of the ``{term: weight}`` dicts of ``encode_sparse`` (mGTE's and BGE-M3's
  lexical score). A document sharing no term with a query scores 0 and is not retrieved for it, as an
  inverted index would not find it.
- ``"hybrid"`` (a model with both protocols): ``dense_weight * cosine + sparse_weight * lexical``, the
  weights from ``model.hybrid_weights`` (default ``(1.0, 0.1)``, mGTE's), exact over the whole corpus.
  A text that neither side has cached goes through the model once (``encode_hybrid`` of a ``HybridEncoder``).

Embeddings and term weights both go through the embedding cache, which every mode of a model shares.

The mode and the weights are a property of the model run, not of the task: they are not in the
record's ``task_options``. A registry model takes them as factory options (e.g. mGTE's
``--model-kwarg mode=hybrid``), which the runner appends to the stored revision (``seed-0+mode-hybrid``) but
leaves out of the cache fingerprint (they are the model's ``search_options``).

A ``Ranker`` (a cross-encoder, which cannot search a corpus) re-ranks a first stage: the registered model
``spec.options["first_stage"]`` (default ``bm25``) retrieves every query's top ``spec.options["rerank_depth"]``
(default 100), searched as above, and the ranker scores those pairs (:func:`rerank_run`, which TREC re-ranking
shares); the metrics see only those ``rerank_depth`` documents (``recall@1000`` is the first stage's recall at
that depth). Both settings are added to the ranker's record's ``task_options``, and a stored record with other
options is recomputed, so records of different depths never mix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from harness.datasets.local import RetrievalData
from harness.metrics import evaluate_run, trec_sorted
from harness.tasks.base import (
    EvalContext,
    SplitOutput,
    Task,
    encode_hybrid_texts,
    encode_sparse_texts,
    encode_texts,
    task_type,
)
from zoo.errors import ZooError
from zoo.protocols import Encoder, Ranker, Retriever, SparseEncoder
from zoo.registry import create_model
from zoo.search import (
    BlockScores,
    DenseScorer,
    SparseScorer,
    TopKMerger,
)

__all__ = [
    "Retrieval",
    "RETRIEVAL_MODES",
    "retrieval_mode",
    "hybrid_weights",
    "search",
    "rerank_run",
    "dense_run",
    "sparse_run",
    "hybrid_run",
    "top_of_run",
    "without_identical_ids",
]

TOP_K = 1000  # depth of the ranked lists the metrics see (recall@1000)
RUN_DEPTH = 100  # depth of the run file kept beside the result
SHARD_SIZE = 50_000  # documents encoded and searched at a time: memory stays bounded on any corpus
HYBRID_WEIGHTS = (1.0, 0.1)  # (dense, sparse): mGTE's defaults (its gte_embedding.py)
FIRST_STAGE, RERANK_DEPTH = "bm25", 100  # what a Ranker re-ranks by default: BM25's top 100
Run = dict[str, dict[str, float]]

# The protocols each mode needs.
RETRIEVAL_MODES: dict[str, tuple[type, ...]] = {
    "dense": (Encoder,),
    "sparse": (SparseEncoder,),
    "hybrid": (Encoder, SparseEncoder),
}


def retrieval_mode(model: Any) -> str:
    """The mode a (non-``Retriever``) model is searched in: its ``retrieval_mode``, else from its protocols.

    Raises:
        ZooError: an unknown mode, or a mode whose protocols the model lacks.
    """
    name, mode = model.card.name, getattr(model, "retrieval_mode", None)
    if mode is None:
        mode = "dense" if isinstance(model, Encoder) else "sparse"
    if mode not in RETRIEVAL_MODES:
        raise ZooError(f"model {name}: unknown retrieval mode {mode!r} (one of {', '.join(RETRIEVAL_MODES)})")
    missing = [p.__name__ for p in RETRIEVAL_MODES[mode] if not isinstance(model, p)]
    if missing:
        raise ZooError(f"model {name}: {mode} retrieval needs {' and '.join(missing)}")
    return mode


def hybrid_weights(model: Any) -> tuple[float, float]:
    """``(dense_weight, sparse_weight)`` of a hybrid model: its ``hybrid_weights``, else ``(1.0, 0.1)``."""
    dense, sparse = getattr(model, "hybrid_weights", HYBRID_WEIGHTS)
    return float(dense), float(sparse)


def _as_run(queries: Mapping[str, str], doc_ids: list[str], scores: np.ndarray, idx: np.ndarray) -> Run:
    """``(nq, k)`` scores and document rows -> ``{query_id: {doc_id: score}}``."""
    return {
        qid: {doc_ids[j]: float(s) for j, s in zip(idx[row], scores[row], strict=True)}
        for row, qid in enumerate(queries)
    }


def _search(
    queries: Mapping[str, str], corpus: dict[str, str], top_k: int, bind: Callable[[list[str]], BlockScores]
) -> Run:
    """Exact search, one shard of ``SHARD_SIZE`` documents at a time: ``bind(texts)`` encodes a shard and returns
    its block scorer against the (already encoded) queries; blocks merge into one running top-k."""
    doc_ids = list(corpus)
    acc = TopKMerger(len(queries), top_k)
    for start in range(0, len(doc_ids), SHARD_SIZE):
        texts = [corpus[i] for i in doc_ids[start : start + SHARD_SIZE]]
        acc.add_blocks(len(texts), bind(texts))
    return _as_run(queries, doc_ids, *acc.result())


def dense_run(
    model: Encoder, queries: dict[str, str], corpus: dict[str, str], ctx: EvalContext, *, top_k: int = TOP_K
) -> Run:
    """Exact dense search of ``corpus`` for every query: ``{query_id: {doc_id: score}}``.

    The corpus is encoded and searched one shard of ``SHARD_SIZE`` documents at a time (the unit
    that can later be spread over ranks), so only one shard of embeddings is ever in memory.
    """
    scorer = DenseScorer(encode_texts(model, list(queries.values()), "query", ctx))  # (nq, dim)
    return _search(queries, corpus, top_k, lambda texts: scorer.bind(encode_texts(model, texts, "document", ctx)))


def sparse_run(
    model: SparseEncoder, queries: dict[str, str], corpus: dict[str, str], ctx: EvalContext, *, top_k: int = TOP_K
) -> Run:
    """Exact sparse search (dot products of term weights), shard by shard; hits scoring 0 are left out."""
    scorer = SparseScorer(encode_sparse_texts(model, list(queries.values()), "query", ctx))  # (nq, V)
    run = _search(queries, corpus, top_k, lambda texts: scorer.bind(encode_sparse_texts(model, texts, "document", ctx)))
    return {q: {d: s for d, s in docs.items() if s != 0.0} for q, docs in run.items()}


def _unit_rows(emb: np.ndarray, model: Encoder) -> np.ndarray:
    """``emb`` with unit rows (``encode_texts`` already normalises them when the card's similarity is cosine)."""
    if getattr(model.card, "similarity", None) == "cosine":
        return emb
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.where(norms == 0, 1, norms)


def _weighted(dense: BlockScores, sparse: BlockScores, dense_weight: float, sparse_weight: float) -> BlockScores:
    """The block scorer ``dense_weight * dense + sparse_weight * sparse``."""

    def scores(rows: slice, doc_rows: slice) -> Any:
        return dense_weight * dense(rows, doc_rows) + sparse_weight * sparse(rows, doc_rows)  # (nq', nd')

    return scores


def hybrid_run(
    model: Any,
    queries: dict[str, str],
    corpus: dict[str, str],
    ctx: EvalContext,
    *,
    top_k: int = TOP_K,
    weights: tuple[float, float] | None = None,
) -> Run:
    """Exact hybrid search: ``dense_weight * cosine + sparse_weight * lexical`` over the whole corpus.

    Both sides of a text come from one model pass (:func:`encode_hybrid_texts`). Every block of a shard is the
    weighted sum of its dense block (``q . d`` of unit embeddings) and its sparse block, merged into one running
    top-k.

    Args:
        model: an ``Encoder`` and ``SparseEncoder``.
        queries: query id to text.
        corpus: document id to text.
        ctx: the evaluation context (batch size, cache, timers).
        top_k: results per query.
        weights: ``(dense_weight, sparse_weight)``; default :func:`hybrid_weights` of the model.
    """
    dense_weight, sparse_weight = weights if weights is not None else hybrid_weights(model)
    q_dense, q_sparse = encode_hybrid_texts(model, list(queries.values()), "query", ctx)
    dense, lexical = DenseScorer(_unit_rows(q_dense, model)), SparseScorer(q_sparse)  # (nq, dim), (nq, V)

    def bind(texts: list[str]) -> BlockScores:
        d_dense, d_sparse = encode_hybrid_texts(model, texts, "document", ctx)
        blocks = dense.bind(_unit_rows(d_dense, model)), lexical.bind(d_sparse)  # (nd, dim), (nd, V)
        return _weighted(*blocks, dense_weight, sparse_weight)

    return _search(queries, corpus, top_k, bind)


_RUNS: dict[str, Callable[..., Run]] = {"dense": dense_run, "sparse": sparse_run, "hybrid": hybrid_run}


def search(model: Any, queries: dict[str, str], corpus: dict[str, str], ctx: EvalContext, *, top_k: int) -> Run:
    """The top ``top_k`` of ``corpus`` for every query: a ``Retriever``'s own ranking, else exact search in the
    model's retrieval mode (:func:`retrieval_mode`)."""
    if isinstance(model, Retriever):
        return model.retrieve(queries, corpus, top_k=top_k)
    return _RUNS[retrieval_mode(model)](model, queries, corpus, ctx, top_k=top_k)


def rerank_run(
    model: Ranker, queries: Mapping[str, str], texts: Mapping[str, str], first: Run, ctx: EvalContext
) -> Run:
    """Every query's candidates in ``first`` scored by ``model.score(query, candidate texts)``, with a progress bar.

    Returns:
        ``{query_id: {doc_id: score}}`` over the same documents as ``first``.
    """
    from tqdm.auto import tqdm

    run = {}
    for qid, docs in tqdm(first.items(), desc=f"{ctx.task_id} rerank", unit="query", disable=not ctx.progress):
        scores = np.asarray(model.score(queries[qid], [texts[d] for d in docs]), dtype=np.float64)
        run[qid] = {d: float(s) for d, s in zip(docs, scores, strict=True)}
        ctx.count("pairs_scored", len(docs))
    return run


def without_identical_ids(run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """``run`` without the hits whose document id equals the query id (BEIR's ``ignore_identical_ids``)."""
    return {q: {d: s for d, s in docs.items() if d != q} for q, docs in run.items()}


def top_of_run(run: dict[str, dict[str, float]], depth: int = RUN_DEPTH) -> dict[str, dict[str, float]]:
    """The best ``depth`` documents of every query."""
    return {q: dict(trec_sorted(docs, depth)) for q, docs in run.items()}


@task_type
class Retrieval(Task):
    """Self-indexing (``Retriever``), dense (``Encoder``), sparse (``SparseEncoder``) or hybrid retrieval
    over a BEIR-layout split, or a ``Ranker`` re-ranking a first stage (see the module docstring)."""

    type = "retrieval"
    main_score = "ndcg@10"
    instruction = "Given a query, retrieve relevant documents that answer the query"
    requires = (Retriever, Encoder, SparseEncoder, Ranker)
    metrics = (
        "ndcg@10",
        "ndcg@1",
        "ndcg@100",
        "map@100",
        "mrr@10",
        "recall@10",
        "recall@100",
        "recall@1000",
        "precision@10",
    )

    def _rerank_options(self) -> dict[str, Any]:
        """``first_stage`` and ``rerank_depth``: the spec's, else BM25's top 100 (validated)."""
        first = self.spec.options.get("first_stage", FIRST_STAGE)
        depth = self.spec.options.get("rerank_depth", RERANK_DEPTH)
        if not isinstance(first, str) or isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ZooError(
                f"task {self.spec.id!r}: first_stage must be a model name and rerank_depth a positive integer, "
                f"got {first!r} and {depth!r}"
            )
        return {"first_stage": first, "rerank_depth": depth}

    @staticmethod
    def _reranks(model: Any) -> bool:
        return isinstance(model, Ranker) and not isinstance(model, Retriever | Encoder | SparseEncoder)

    def run_options(self, model: Any) -> dict[str, Any]:
        """The spec's options, plus ``first_stage`` and ``rerank_depth`` for a ``Ranker``."""
        return {**self.spec.options, **(self._rerank_options() if self._reranks(model) else {})}

    def option_sets(self) -> list[dict[str, Any]]:
        """The spec's options, and those of a re-ranking run."""
        return [dict(self.spec.options), {**self.spec.options, **self._rerank_options()}]

    def _evaluate_split(self, model: Any, data: RetrievalData, ctx: EvalContext) -> SplitOutput:
        # BEIR drops hits whose id is the query's, searching one deeper so that TOP_K (or the depth) remain.
        ignore = bool(self.spec.options.get("ignore_identical_ids", False))
        if self._reranks(model):
            run = self._rerank(model, data, ctx, ignore)
        else:
            run = search(model, data.queries, data.corpus, ctx, top_k=TOP_K + ignore)
        if ignore:
            run = top_of_run(without_identical_ids(run), TOP_K)
        scores = evaluate_run(data.qrels, run, self.metrics)
        return SplitOutput(scores, n_items=len(data.queries), run=top_of_run(run), qrels=data.qrels)

    def _rerank(self, model: Ranker, data: RetrievalData, ctx: EvalContext, ignore: bool) -> Run:
        """The first stage's top ``rerank_depth`` of every query, scored by the ranker."""
        options = self._rerank_options()
        first_ctx = dataclasses.replace(ctx, cache=None)  # the ranker's cache is keyed by the ranker
        first = search(
            create_model(options["first_stage"]),
            data.queries,
            data.corpus,
            first_ctx,
            top_k=options["rerank_depth"] + ignore,
        )
        if ignore:
            first = without_identical_ids(first)
        first = top_of_run(first, options["rerank_depth"])
        return rerank_run(model, data.queries, data.corpus, first, ctx)
