"""TREC Deep Learning-style ranking: graded qrels and the track's official measures.

Measures, as the TREC DL overviews report them (trec_eval; binary measures count relevance >= 2
as relevant, as ``trec_eval -l 2`` does):

- ``ndcg@10``: graded nDCG@10 (linear gains, trec_eval's ``ndcg_cut_10``), the main score;
- ``map@1000-l2``: MAP over the top 1000;
- ``recall@1000-l2``: recall at 1000;
- ``mrr@10-l2``: reciprocal rank of the first relevant passage in the top 10.

Modes, from ``spec.options["mode"]``:

- ``"rerank"``: re-order the first-stage run's top ``options["depth"]`` of every query. A ``Ranker``
  scores the (query, passage) pairs; an ``Encoder`` scores by the similarity of query and passage
  embeddings (cosine for a cosine card). :class:`FirstStage` keeps the run as it is: evaluating it
  gives the first stage's own figures through the same code path.
- ``"full"``: rank every document: an ``Encoder`` by exact dense search, a ``Retriever`` by its
  own index; the top 1000 are scored.

Only judged queries (those in the qrels) are evaluated; unjudged passages count as non-relevant.
The whole ranked list (up to 1000 per query) is kept as the run file, so every measure can be
recomputed per query.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from harness.datasets.trec_dl import TrecData
from harness.metrics import evaluate_run, trec_sorted
from harness.spec import TaskSpec
from harness.tasks.base import EvalContext, SplitOutput, Task, encode_texts, task_type
from harness.tasks.retrieval import dense_run, rerank_run, top_of_run
from zoo.errors import ZooError
from zoo.protocols import Encoder, Ranker, Retriever
from zoo.registry import ModelCard

__all__ = ["Trec", "FirstStage", "FULL_DEPTH"]

FULL_DEPTH = 1000  # documents per query a full ranking returns (MAP@1000, R@1000)
DEFAULT_DEPTH = 1000  # re-ranking depth when the spec does not give one (the official DL depth)

Run = dict[str, dict[str, float]]
Texts = dict[str, str]
Scorer = Callable[[Any, Texts, Texts, Run | None, EvalContext], Run]


class FirstStage:
    """A stand-in model for the task's first-stage run: re-ranking with it keeps the run's order.

    Example:
        >>> records = harness.evaluate(FirstStage(), ["local/trec-dl-2019-passage"])
        >>> round(records[0].get_score(), 4)  # BM25 on DL19, as Anserini reports it
        0.5058
    """

    card = ModelCard(
        name="first-stage",
        family="harness",
        revision="run",
        source="none (the task's own first-stage run)",
        similarity=None,
    )


# SCORERS: (model, queries, texts, first stage or None, ctx) -> run ===============================


def _keep(model: FirstStage, queries: Texts, texts: Texts, first: Run | None, ctx: EvalContext) -> Run:
    if len({s for docs in first.values() for s in docs.values()}) <= 1:
        raise ZooError(f"{ctx.task_id}: the first-stage run has no scores to rank by (all are equal)")
    return first


def _embeddings(model: Encoder, queries: Texts, texts: Texts, first: Run | None, ctx: EvalContext) -> Run:
    ids = list(texts)
    if not ids:  # no query has a candidate
        return {qid: {} for qid in first}
    q = encode_texts(model, [queries[qid] for qid in first], "query", ctx)  # (n_queries, dim)
    d = encode_texts(model, [texts[i] for i in ids], "document", ctx)  # (n_docs, dim)
    row = {doc_id: i for i, doc_id in enumerate(ids)}
    return {
        qid: {doc: float(s) for doc, s in zip(docs, d[[row[x] for x in docs]] @ q[i], strict=True)}
        for i, (qid, docs) in enumerate(first.items())
    }


def _retrieve(model: Retriever, queries: Texts, texts: Texts, first: Run | None, ctx: EvalContext) -> Run:
    return model.retrieve(queries, texts, top_k=FULL_DEPTH)


def _dense(model: Encoder, queries: Texts, texts: Texts, first: Run | None, ctx: EvalContext) -> Run:
    return dense_run(model, queries, texts, ctx, top_k=FULL_DEPTH)


@dataclass(frozen=True)
class _Mode:
    scorers: tuple[tuple[type, Scorer], ...]  # (protocol, scorer), the first the model implements wins
    reranks: bool  # whether the mode starts from the first-stage run


MODES: dict[str, _Mode] = {
    "rerank": _Mode(((FirstStage, _keep), (Ranker, rerank_run), (Encoder, _embeddings)), reranks=True),
    "full": _Mode(((Retriever, _retrieve), (Encoder, _dense)), reranks=False),
}


@task_type
class Trec(Task):
    """Re-ranking (``mode="rerank"``) or full ranking (``mode="full"``) scored with the DL measures."""

    type = "trec"
    main_score = "ndcg@10"
    instruction = "Given a web search query, retrieve relevant passages that answer the query"
    metrics = ("ndcg@10", "map@1000-l2", "recall@1000-l2", "mrr@10-l2")

    def __init__(self, spec: TaskSpec, source: ModuleType) -> None:
        super().__init__(spec, source)
        mode = spec.options.get("mode", "rerank")
        if mode not in MODES:
            raise ZooError(f"task {spec.id!r}: unknown mode {mode!r} (one of {', '.join(MODES)})")
        depth = spec.options.get("depth", DEFAULT_DEPTH)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ZooError(f"task {spec.id!r}: depth must be a positive integer, got {depth!r}")
        self.mode, self.depth = MODES[mode], depth

    @property
    def requires(self) -> tuple[type, ...]:  # type: ignore[override]  # depends on the mode
        """The protocols this task's mode can use."""
        return tuple(proto for proto, _ in self.mode.scorers)

    def supports(self, model: Any) -> bool:
        """Whether the mode can use ``model``.

        Raises:
            ZooError: a ``Ranker`` (which can only re-rank) on a task without a first-stage run (mode ``full``).
        """
        if not self.mode.reranks and isinstance(model, Ranker) and not super().supports(model):
            raise ZooError(
                f"task {self.spec.id!r}: a Ranker re-ranks a first-stage run and this task has none (mode 'full'); "
                "add a *.run file to its folder"
            )
        return super().supports(model)

    def _evaluate_split(self, model: Any, data: TrecData, ctx: EvalContext) -> SplitOutput:
        qrels = data.qrels()
        all_queries = data.queries()
        unknown = next((q for q in qrels if q not in all_queries), None)
        if unknown is not None:
            raise ZooError(
                f"{data.where['qrels']}: query {unknown!r} has judgements but no text in {data.where['queries']}"
            )
        queries = {q: all_queries[q] for q in qrels}
        first = self._first_stage(data, queries) if self.mode.reranks else None
        texts = data.docs({d for docs in first.values() for d in docs} if first is not None else None)
        if first is not None:
            missing = sorted({d for docs in first.values() for d in docs if d not in texts})
            if missing:
                raise ZooError(
                    f"{data.where['docs']}: {len(missing)} passages of the first-stage run have no text "
                    f"(e.g. {missing[0]!r})"
                )
        scorer = next(fn for proto, fn in self.mode.scorers if isinstance(model, proto))
        run = scorer(model, queries, texts, first, ctx)
        scores = evaluate_run(qrels, run, self.metrics)
        return SplitOutput(scores, n_items=len(qrels), run=top_of_run(run, FULL_DEPTH), qrels=qrels)

    def _first_stage(self, data: TrecData, queries: dict[str, str]) -> Run:
        """The run's top ``depth`` for every judged query (a query the run misses gets nothing)."""
        expected = self.spec.options.get("run")
        if expected is not None and expected != data.run_name:
            raise ZooError(f"task {self.spec.id!r}: options name run {expected!r} but the data has {data.run_name!r}")
        if not data.has_run:
            raise ZooError(
                f"task {self.spec.id!r}: mode 'rerank' needs a first-stage run ({data.where['scoreddocs']}); "
                'add one or set mode = "full"'
            )
        run = data.run()
        cut = any(len(run.get(q, {})) > self.depth for q in queries)
        if cut and len({s for docs in run.values() for s in docs.values()}) <= 1:
            raise ZooError(f"task {self.spec.id!r}: cannot take the top {self.depth} of a run whose scores all tie")
        return {q: dict(trec_sorted(run.get(q, {}), self.depth)) for q in queries}
