"""The mteb source, and the bridge between zoobench and mteb in both directions.

Notable features:
- ``mteb/<TaskName>``: any MTEB text task by its upstream name (verbatim, so results stay comparable);
  ``mteb/<TaskName>[<split>+..:<subset>+..]`` keeps only those evaluation splits and hf subsets (an
  empty part keeps all), as benchmarks do (``mteb/STS17[test:en-en]`` in ``MTEB(eng, v2)``). Run
  by mteb itself through ``mteb.evaluate(MtebEncoder(model), [task], cache=None)``: mteb's result
  cache is never used, so a stale score can never be returned for a changed model. A paper's name of a
  task (:data:`ALIASES`: ``mteb/MLDR`` is ``mteb/MultiLongDocRetrieval``) resolves to mteb's name, which
  the task id, and so its record, keeps.
- Score names are mapped here, once: ``ndcg_at_10 -> ndcg@10``, ``map_at_1000 -> map@1000``,
  ``recall_at_100 -> recall@100``, ``mrr_at_10 -> mrr@10`` (every ``<metric>_at_<k>``); the other
  names (``cosine_spearman``, ``accuracy``, ``v_measure``, ``cosine_ap``, ``max_ap``) are the same in
  both. Only metrics with a declared direction (``harness.metrics.HIGHER_IS_BETTER``) are kept in the
  scores; mteb's complete per-subset score dicts are kept in the per-item file under ``mteb_scores``.
- :class:`MtebEncoder` wraps any zoo ``Encoder`` as an mteb encoder (``AbsEncoder``) whose
  ``mteb_model_meta`` comes from the model card (name ``zoobench/<card name>``).
- :func:`to_mteb_task` turns a zoobench task (retrieval, sts, classification, clustering,
  pair_classification, reranking) into an mteb task over the same data, so both evaluators can be run
  on one model and one data set (tests/harness/test_mteb.py checks that they agree).
- Built-in mteb datasets download from the Hugging Face hub; offline (``HF_HUB_OFFLINE=1``) a task
  fails at once with a one-line ``ZooError`` naming the task and the hub dataset.

``mteb`` is imported on first use only (it takes seconds), so ``import harness`` stays fast; the two
classes that subclass mteb's or harness.tasks' classes (:class:`MtebEncoder`, :class:`MtebTask`) are
built on first access for that reason (harness.tasks imports this package's ``SOURCES``).
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harness.metrics import HIGHER_IS_BETTER
from harness.spec import TaskSpec
from zoo.errors import ZooError
from zoo.protocols import Encoder

if TYPE_CHECKING:
    from mteb import AbsTask
    from mteb.models.model_meta import ModelMeta

    from harness.tasks.base import Task, TaskOutput
    from zoo.cache import EmbeddingCache
    from zoo.registry import ModelCard

__all__ = [
    "MtebEncoder",  # noqa: F822 (built on first access, by the module's __getattr__)
    "MtebTask",  # noqa: F822
    "model_meta",
    "to_mteb_task",
    "mteb_task_name",
    "mteb_languages",
    "from_mteb_metric",
    "to_mteb_metric",
    "benchmark",
    "specs",
    "catalog",
    "spec",
    "benchmarks",
    "load",
    "checksum",
    "task_class",
    "ALIASES",
]

# NAMES ===========================================================================================

_AT_K = re.compile(r"^(?P<metric>[a-z_]+?)_at_(?P<k>\d+)$")
_RANX_AT_K = re.compile(r"^(?P<metric>[a-z_]+)@(?P<k>\d+)$")

# ISO 639-1 (zoobench) <-> ISO 639-3 + script (mteb); codes not listed pass through unchanged.
_LANGSCRIPTS = {
    "en": "eng-Latn",
    "zh": "cmn-Hans",
    "de": "deu-Latn",
    "fr": "fra-Latn",
    "es": "spa-Latn",
    "ru": "rus-Cyrl",
    "ja": "jpn-Jpan",
    "ko": "kor-Hang",
}
_ISO1 = {script.split("-")[0]: iso1 for iso1, script in _LANGSCRIPTS.items()} | {"zho": "zh"}


def from_mteb_metric(key: str) -> str:
    """zoobench's name of an mteb score key: ``ndcg_at_10 -> ndcg@10``; other names are kept."""
    m = _AT_K.match(key)
    return f"{m['metric']}@{m['k']}" if m else key


def to_mteb_metric(name: str) -> str:
    """mteb's name of a zoobench metric: ``ndcg@10 -> ndcg_at_10``; other names are kept."""
    m = _RANX_AT_K.match(name)
    return f"{m['metric']}_at_{m['k']}" if m else name


def _declared(metric: str) -> bool:
    return metric.split("@", 1)[0] in HIGHER_IS_BETTER


def mteb_task_name(task_id: str) -> str:
    """The MTEB task name of a zoobench task: ``mteb/STS17[test:en-en] -> STS17``, ``local/stsb -> local__stsb``.

    Tasks without an MTEB name keep their zoobench id with ``/`` replaced by ``__`` (mteb's own
    convention for model names in paths), so they can never collide with an upstream task name.
    """
    source, _, name = task_id.partition("/")
    return name.split("[", 1)[0] if source == "mteb" else task_id.replace("/", "__")


def mteb_languages(languages: Sequence[str]) -> list[str]:
    """mteb's codes of zoobench languages: ``["en"] -> ["eng-Latn"]`` (``multilingual`` is dropped)."""
    return [_LANGSCRIPTS.get(lang, lang) for lang in languages if lang != "multilingual"]


def _iso1(languages: Sequence[str]) -> tuple[str, ...]:
    codes = sorted({_ISO1.get(lang, lang) for lang in languages})
    return tuple(codes) if len(codes) <= 2 else ("multilingual",)


def _snake(name: str) -> str:
    """zoobench's name of an mteb task type: ``PairClassification -> pair_classification``, ``STS -> sts``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


# MODELS ==========================================================================================


def model_meta(card: ModelCard | Mapping[str, Any]) -> ModelMeta:
    """An mteb ``ModelMeta`` describing a zoobench model card.

    Args:
        card: a :class:`~zoo.registry.ModelCard` or its ``to_dict()`` (as stored in result records).

    Returns:
        Metadata named ``zoobench/<card name>`` at the card's revision, with the card's similarity
        (as mteb's ``ScoringFunction`` enum), dimension, context length, size, languages and licence.
    """
    from mteb.models.model_meta import ModelMeta, ScoringFunction

    c = card if isinstance(card, Mapping) else card.to_dict()
    similarity = {"cosine": ScoringFunction.COSINE, "dot": ScoringFunction.DOT_PRODUCT}
    upstream = c.get("upstream") or ""
    return ModelMeta.create_empty(
        overwrites={
            "name": f"zoobench/{c['name']}",
            "revision": c["revision"],
            "similarity_fn_name": similarity.get(c.get("similarity") or ""),
            "embed_dim": c.get("embed_dim"),
            "max_tokens": c.get("max_tokens"),
            "n_parameters": c.get("params"),
            "languages": mteb_languages(c.get("languages") or ()) or None,
            "license": c.get("license"),
            "citation": c.get("citation"),
            "use_instructions": bool(c.get("prompts")),
            # only a hub id names a model mteb could know
            "adapted_from": upstream if re.fullmatch(r"[\w.-]+/[\w.-]+", upstream) else None,
        }
    )


@functools.cache
def _encoder_class() -> type:
    from mteb.models.abs_encoder import AbsEncoder
    from mteb.types import PromptType

    from harness.tasks.base import EvalContext, encode_texts

    kinds = {PromptType.query: "query", PromptType.document: "document", None: "query"}

    class MtebEncoder(AbsEncoder):
        """A zoo ``Encoder`` as an mteb encoder.

        mteb's query prompts become ``kind="query"``, document prompts ``kind="document"``, and
        symmetric tasks (no prompt type) ``kind="query"``, zoobench's convention (``zoo.protocols``).
        Texts are embedded by ``harness.tasks.base.encode_texts``, the code path of zoobench's own
        task types (de-duplicated, length-sorted, through the embedding cache when one is given).

        Args:
            model: an object implementing ``zoo.protocols.Encoder``.
            batch_size: encoder batch size (mteb's ``encode_kwargs["batch_size"]`` wins when given).
            progress: show progress bars.
            cache: the model's embedding cache, if any.
            task_id: names the progress bars.

        Example:
            >>> enc = MtebEncoder(zoo.create_model("test-random"))
            >>> mteb.evaluate(enc, [to_mteb_task(get_task("local/stsb"))], cache=None)
        """

        def __init__(
            self,
            model: Encoder,
            *,
            batch_size: int = 32,
            progress: bool = False,
            cache: EmbeddingCache | None = None,
            task_id: str = "mteb",
        ) -> None:
            if not isinstance(model, Encoder):
                raise TypeError(f"MtebEncoder wraps a zoo Encoder, got {type(model).__name__}")
            self.model = model
            self.mteb_model_meta = model_meta(model.card)
            self.context = EvalContext(task_id, batch_size=batch_size, progress=progress, cache=cache)

        def encode(
            self,
            inputs: Any,
            *,
            task_metadata: Any,
            hf_split: str,
            hf_subset: str,
            prompt_type: PromptType | None = None,
            **kwargs: Any,
        ) -> Any:
            """Embed every ``batch["text"]`` of ``inputs`` (a torch DataLoader); returns ``(n, dim)``."""
            texts = [t for batch in inputs for t in batch["text"]]
            if "batch_size" in kwargs:
                self.context.batch_size = kwargs["batch_size"]
            return encode_texts(self.model, texts, kinds[prompt_type], self.context)

    return MtebEncoder


# ZOOBENCH TASKS AS MTEB TASKS ====================================================================


def _retrieval(data: Any) -> dict[str, Any]:
    from datasets import Dataset

    return {
        "corpus": Dataset.from_dict({"id": list(data.corpus), "text": list(data.corpus.values())}),
        "queries": Dataset.from_dict({"id": list(data.queries), "text": list(data.queries.values())}),
        "relevant_docs": {q: dict(rels) for q, rels in data.qrels.items()},
        "top_ranked": None,
    }


def _reranking(data: Any) -> dict[str, Any]:
    # Query i's candidates are documents "<i>-c<j>", positives first: the ids order as the native
    # task's "c<j>" do, so tied scores break the same way (by doc id, as trec_eval does).
    from datasets import Dataset

    ids, texts, qrels, top = [], [], {}, {}
    for i, (pos, neg) in enumerate(zip(data.positives, data.negatives, strict=True)):
        cands = [f"{i}-c{j}" for j in range(len(pos) + len(neg))]
        ids += cands
        texts += [*pos, *neg]
        qrels[str(i)] = {c: int(j < len(pos)) for j, c in enumerate(cands)}
        top[str(i)] = cands
    return {
        "corpus": Dataset.from_dict({"id": ids, "text": texts}),
        "queries": Dataset.from_dict({"id": [str(i) for i in range(len(data.queries))], "text": data.queries}),
        "relevant_docs": qrels,
        "top_ranked": top,
    }


def _pairs(column: str, cast: type) -> Any:
    def build(data: Any) -> Any:
        from datasets import Dataset

        return Dataset.from_dict(
            {"sentence1": data.sentence1, "sentence2": data.sentence2, column: [cast(g) for g in data.gold]}
        )

    return build


def _clustering(data: Any) -> Any:
    from datasets import Dataset

    return Dataset.from_dict({"sentences": data.texts, "labels": data.labels})


def _retrieval_dataset(splits: dict[str, Any], spec: TaskSpec, build: Any) -> dict[str, Any]:
    return {"default": {split: build(data) for split, data in splits.items()}}


def _flat_dataset(splits: dict[str, Any], spec: TaskSpec, build: Any) -> Any:
    from datasets import DatasetDict

    return DatasetDict({split: build(data) for split, data in splits.items()})


def _classification_dataset(splits: dict[str, Any], spec: TaskSpec, build: Any) -> Any:
    # Labels become integers in sorted order of their strings: the classes sklearn sees are then in the
    # same order as in the native task, and mteb's binary-only average precision accepts them.
    from datasets import Dataset, DatasetDict

    names = sorted({y for train, test in splits.values() for y in (*train.labels, *test.labels)})
    index = {y: i for i, y in enumerate(names)}

    def ds(part: Any) -> Any:
        return Dataset.from_dict({"text": part.texts, "label": [index[y] for y in part.labels]})

    train = next(iter(splits.values()))[0]
    return DatasetDict({spec.train_split or "train": ds(train), **{s: ds(test) for s, (_, test) in splits.items()}})


_LOCAL = {  # zoobench type -> (mteb base class, mteb type, main score, dataset layout, split builder)
    "retrieval": ("AbsTaskRetrieval", "Retrieval", "ndcg_at_10", _retrieval_dataset, _retrieval),
    "reranking": ("AbsTaskRetrieval", "Reranking", "map_at_1000", _retrieval_dataset, _reranking),
    "sts": ("AbsTaskSTS", "STS", "cosine_spearman", _flat_dataset, _pairs("score", float)),
    "pair_classification": (
        "AbsTaskPairClassification",
        "PairClassification",
        "cosine_ap",
        _flat_dataset,
        _pairs("labels", int),
    ),
    "classification": ("AbsTaskClassification", "Classification", "accuracy", _classification_dataset, None),
    "clustering": ("AbsTaskClustering", "Clustering", "v_measure", _flat_dataset, _clustering),
}


def to_mteb_task(task: Task) -> AbsTask:
    """An mteb task over the data of a zoobench task (no hub access).

    Retrieval, STS, classification (mteb's defaults: 10 experiments, 8 samples per label, seed 42),
    clustering (every text embedded: ``max_fraction_of_documents_to_embed=None``), pair
    classification (main score ``cosine_ap``) and reranking (an ``AbsTaskRetrieval`` of type
    ``Reranking`` with ``top_ranked`` candidates, main score ``map_at_1000``). The task is named
    :func:`mteb_task_name` of the zoobench id; its dataset revision is the data checksum.

    Args:
        task: a zoobench task of one of the six types above (e.g. ``get_task("local/stsb")``).

    Returns:
        An mteb ``AbsTask`` instance whose ``load_data`` reads through ``task.load``.

    Raises:
        ZooError: for a task type mteb has no equivalent of.

    Example:
        >>> res = mteb.evaluate(MtebEncoder(model), [to_mteb_task(get_task("local/stsb"))], cache=None)
        >>> res.task_results[0].get_score()
    """
    import mteb.abstasks
    from mteb.abstasks.task_metadata import TaskMetadata

    spec = task.spec
    try:
        base, mteb_type, main_score, layout, build = _LOCAL[spec.type]
    except KeyError:
        raise ZooError(f"{spec.id}: mteb has no equivalent of task type {spec.type!r}") from None
    metadata = TaskMetadata(
        name=mteb_task_name(spec.id),
        description=spec.description or f"zoobench task {spec.id}",
        type=mteb_type,
        main_score=main_score,
        dataset={"path": spec.path, "revision": task.checksum()},
        eval_splits=list(spec.splits),
        eval_langs=mteb_languages(spec.languages) or ["und"],
    )

    def load_data(self: AbsTask, num_proc: int | None = None, **kwargs: Any) -> None:
        if not self.data_loaded:
            self.dataset = layout({split: task.load(split) for split in spec.splits}, spec, build)
            self.data_loaded = True

    attrs = {
        "metadata": metadata,
        "load_data": load_data,
        "max_fraction_of_documents_to_embed": None,  # clustering: embed every text (mteb's default is 4%)
        "train_split": spec.train_split or "train",  # classification
    }
    cls = type(f"Zoobench{base.removeprefix('AbsTask')}", (getattr(mteb.abstasks, base),), attrs)
    return cls()


# THE SOURCE ======================================================================================


_SELECTION = re.compile(r"^(?P<task>[^\[\]]+?)(?:\[(?P<splits>[^\[\]:]*):(?P<subsets>[^\[\]:]*)\])?$")
ALIASES = {"MLDR": "MultiLongDocRetrieval"}  # the name a paper uses -> mteb's name of the task


def _canonical(name: str) -> str:
    """``name`` with mteb's name of the task: ``MLDR[test:en] -> MultiLongDocRetrieval[test:en]``."""
    task, bracket, rest = name.partition("[")
    return ALIASES.get(task, task) + bracket + rest


def _mteb_task(name: str) -> AbsTask:
    """mteb's task ``<TaskName>`` or ``<TaskName>[<split>+..:<subset>+..]`` (an empty part: all of them)."""
    import mteb

    m = _SELECTION.match(name)
    if m is None:
        raise ZooError(f"invalid task id 'mteb/{name}': expected mteb/<TaskName>[<split>+..:<subset>+..]")
    splits, subsets = ([v for v in (m[part] or "").split("+") if v] for part in ("splits", "subsets"))
    try:
        task = mteb.get_task(m["task"], eval_splits=splits or None, hf_subsets=subsets or None)
    except KeyError as e:
        hint = str(e.args[0] if e.args else e).removeprefix("KeyError: ")
        raise ZooError(f"unknown task 'mteb/{name}': {hint}") from None
    except ValueError:  # none of the subsets exists; reported below
        task = mteb.get_task(m["task"])
    for what, asked, known in (
        ("evaluation split", splits, task.metadata.eval_splits),
        ("subset", subsets, task.metadata.hf_subsets),
    ):
        unknown = [v for v in asked if v not in known]
        if unknown:
            raise ZooError(f"task 'mteb/{name}': {m['task']} has no {what} {unknown[0]!r} ({', '.join(known)})")
    return task


def specs(data_dir: str | os.PathLike[str] | None = None) -> list[TaskSpec]:
    """Nothing: mteb holds 1000+ tasks; :func:`catalog` lists them (``zoobench ls tasks 'mteb/*'``)."""
    return []


def catalog() -> list[TaskSpec]:
    """The spec of every text task in mteb's registry that zoobench can run (no download, no network).

    mteb's current tasks (``mteb.get_tasks()``: superseded, private and beta tasks left out) whose only
    modality is text and whose main score has a declared direction, sorted by id.
    """
    import mteb

    out = []
    for task in mteb.get_tasks(modalities=["text"], exclusive_modality_filter=True):
        try:
            out.append(_spec_of(task, task.metadata.name))
        except ZooError:  # a main score without a declared direction
            continue
    return sorted(out, key=lambda s: s.id)


def spec(name: str, data_dir: str | os.PathLike[str] | None = None) -> TaskSpec:
    """The spec of task ``mteb/<name>``, from mteb's metadata (no download).

    Raises:
        ZooError: an unknown name (with mteb's suggestion), a task that is not text-only, or a main
            score without a declared direction.
    """
    name = _canonical(name)
    return _spec_of(_mteb_task(name), name)


def _spec_of(task: AbsTask, name: str) -> TaskSpec:
    import mteb

    meta = task.metadata
    if meta.modalities != ["text"]:
        raise ZooError(f"task 'mteb/{name}' is a {'/'.join(meta.modalities)} task; zoobench runs text tasks only")
    main = from_mteb_metric(meta.main_score)
    if not _declared(main):
        raise ZooError(f"task 'mteb/{name}': its main score {meta.main_score!r} is not supported")
    return TaskSpec(
        id=f"mteb/{name}",
        type=_snake(meta.type),
        source="mteb",
        path=meta.dataset["path"],
        splits=tuple(task.eval_splits),
        languages=_iso1(task.languages),
        main_score=main,
        train_split=getattr(task, "train_split", None),
        description=meta.description,
        license=meta.license,
        revision=meta.revision,
        citation=(meta.bibtex_citation or "").strip() or None,
        options={"mteb_version": mteb.__version__, "hf_subsets": list(task.hf_subsets)},
    )


def _loaded(spec: TaskSpec) -> AbsTask:
    task = _mteb_task(spec.id.split("/", 1)[1])
    try:
        task.load_data()
    except OSError as e:  # ConnectionError, requests' errors, DatasetNotFoundError (a FileNotFoundError)
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        why = "offline: HF_HUB_OFFLINE is set" if offline else f"{type(e).__name__}: {str(e).splitlines()[0]}"
        raise ZooError(f"{spec.id}: cannot download {spec.path} from the Hugging Face hub ({why})") from None
    return task


def load(spec: TaskSpec, split: str) -> dict[str, Any]:
    """One split of an mteb task as mteb holds it: ``{hf_subset: data}`` (downloads from the hub)."""
    task = _loaded(spec)
    return {subset: _subset(task, subset)[split] for subset in task.hf_subsets}


def checksum(spec: TaskSpec) -> str:
    """The mteb dataset revision (a hub commit)."""
    return f"mteb:{spec.path}@{spec.revision}"


def task_class(spec: TaskSpec) -> type[Task]:
    """:class:`MtebTask`: mteb tasks are run by mteb itself (the hook of ``harness.tasks.get_task``)."""
    return _task_class()


def benchmarks() -> list[str]:
    """The names of mteb's benchmarks (``mteb.get_benchmarks()``, no network), e.g. ``MTEB(eng, v2)``."""
    import mteb

    return sorted(b.name for b in mteb.get_benchmarks())


def benchmark(name: str) -> tuple[str, ...]:
    """The task ids of an MTEB benchmark, e.g. ``benchmark("MTEB(eng, v2)")``.

    A task the benchmark narrows to some splits or subsets gets them in its id, so its record is not
    mistaken for the whole task's: ``MTEB(eng, v2)`` holds ``mteb/STS17[test:en-en]`` and
    ``mteb/MassiveIntentClassification[test:en]``.

    Raises:
        ZooError: for an unknown benchmark (with mteb's suggestion).
    """
    import mteb

    try:
        tasks = mteb.get_benchmark(name).tasks
    except KeyError as e:
        raise ZooError(f"unknown MTEB benchmark {name!r}: {e.args[0] if e.args else e}") from None
    ids = []
    for task in tasks:
        meta = task.metadata
        splits, subsets = list(task.eval_splits), list(task.hf_subsets)
        whole = splits == list(meta.eval_splits) and subsets == list(meta.hf_subsets)
        ids.append(f"mteb/{meta.name}" if whole else f"mteb/{meta.name}[{'+'.join(splits)}:{'+'.join(subsets)}]")
    return tuple(ids)


# RUNNING MTEB TASKS ==============================================================================


def _subset(task: AbsTask, subset: str) -> Any:
    # mteb's convention: a single-subset dataset may be stored without the "default" level
    return task.dataset[subset] if subset in task.dataset else task.dataset


def _run_and_qrels(
    task: AbsTask, predictions: dict[str, Any], split: str
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, int]]]:
    """Ranked lists and judgements of a retrieval-type split; query ids get ``<subset>/`` with >1 subset."""
    from harness.tasks.retrieval import top_of_run

    run, qrels = {}, {}
    for subset in task.hf_subsets:
        prefix = f"{subset}/" if len(task.hf_subsets) > 1 else ""
        qrels.update({prefix + q: dict(d) for q, d in _subset(task, subset)[split]["relevant_docs"].items()})
        run.update({prefix + q: d for q, d in top_of_run(predictions[subset][split]).items()})
    return run, qrels


def _n_items(task: AbsTask, split: str) -> int:
    parts = [_subset(task, s)[split] for s in task.hf_subsets]
    return sum(len(p["relevant_docs"]) if isinstance(p, dict) else len(p) for p in parts)


def to_task_output(result: Any, task: AbsTask, predictions: dict[str, Any], timings: dict[str, float]) -> TaskOutput:
    """zoobench's :class:`TaskOutput` of an mteb ``TaskResult``.

    Each split's scores are the means over its hf subsets (mteb's ``get_score``), under zoobench's
    metric names, keeping only metrics with a declared direction; ``main_score`` is mteb's. mteb's
    per-subset score dicts go to the split's items as ``mteb_scores``; retrieval-type tasks also
    get their ranked lists (top 100) and judgements, for significance tests.
    """
    import numpy as np

    from harness.tasks.base import TaskOutput

    out = TaskOutput({}, {}, {}, {}, {}, timings)
    for split, subsets in result.scores.items():
        values: dict[str, list[float]] = {}
        for scores in subsets:
            for key, value in scores.items():
                name = from_mteb_metric(key)
                if isinstance(value, int | float) and not isinstance(value, bool) and _declared(name):
                    values.setdefault(name, []).append(float(value))
        out.scores[split] = {
            **{k: float(np.mean(v)) for k, v in values.items()},
            "main_score": float(np.mean([s["main_score"] for s in subsets])),
        }
        out.n_items[split] = _n_items(task, split)
        out.items[split] = {"mteb_scores": [dict(s) for s in subsets]}
        if predictions and isinstance(_subset(task, task.hf_subsets[0])[split], dict):
            out.runs[split], out.qrels[split] = _run_and_qrels(task, predictions, split)
    return out


@functools.cache
def _task_class() -> type[Task]:
    from mteb.abstasks import AbsTaskRetrieval

    from harness.tasks.base import Task

    class MtebTask(Task):
        """An MTEB task, evaluated by mteb itself (``mteb.evaluate(..., cache=None)``) on a zoo ``Encoder``."""

        type: ClassVar[str] = "mteb"
        main_score: ClassVar[str] = "main_score"  # never used: the spec always names mteb's main score
        metrics: ClassVar[tuple[str, ...]] = ()
        requires: ClassVar[tuple[type, ...]] = (Encoder,)

        def load(self, split: str) -> dict[str, Any]:
            """See :func:`load`."""
            return load(self.spec, split)

        def evaluate(
            self, model: Any, *, batch_size: int = 32, progress: bool = True, cache: EmbeddingCache | None = None
        ) -> TaskOutput:
            """Evaluate ``model`` with mteb on every split of the task.

            Args:
                model: an object implementing ``zoo.protocols.Encoder``.
                batch_size: encoder batch size.
                progress: show progress bars.
                cache: the embedding cache of this model, if any.

            Returns:
                A ``TaskOutput`` (see :func:`to_task_output`).

            Raises:
                TypeError: if the model is not an ``Encoder``.
                ZooError: if the dataset cannot be downloaded (offline, unknown, private).
            """
            import mteb

            if not self.supports(model):
                raise TypeError(f"model {model.card.name} cannot run mteb task {self.spec.id}: needs Encoder")
            t0 = time.perf_counter()
            task = _loaded(self.spec)
            load_s = time.perf_counter() - t0
            encoder = _encoder_class()(
                model, batch_size=batch_size, progress=progress, cache=cache, task_id=self.spec.id
            )
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="zoobench-mteb-") as folder:
                result = mteb.evaluate(
                    encoder,
                    [task],
                    cache=None,  # never mteb's result cache: it would return stale scores for a changed model
                    encode_kwargs={"batch_size": batch_size, "show_progress_bar": progress},
                    show_progress_bar=progress,
                    co2_tracker=False,
                    prediction_folder=folder if isinstance(task, AbsTaskRetrieval) else None,
                )
                path = Path(folder) / task.prediction_file_name
                predictions = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
            timings = {"load_s": load_s, **encoder.context.timings, "evaluate_s": time.perf_counter() - t0}
            return to_task_output(result.task_results[0], task, predictions, timings)

    return MtebTask


def __getattr__(name: str) -> Any:
    # MtebEncoder and MtebTask are built on first access (see the module docstring).
    factories = {"MtebEncoder": _encoder_class, "MtebTask": _task_class}
    if name in factories:
        return factories[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
