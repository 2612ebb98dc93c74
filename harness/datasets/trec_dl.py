"""TREC Deep Learning: the ``trec-dl`` source, and every TREC-style collection read through ir_datasets.

Tasks (type ``trec``; measures and modes in ``harness/tasks/trec.py``):

==================  ==========================================  =====================================
id                  ir_datasets id                              what is ranked
==================  ==========================================  =====================================
``trec-dl/2019``    ``msmarco-passage/trec-dl-2019/judged``     the official BM25 top-1000, re-ranked
``trec-dl/2020``    ``msmarco-passage/trec-dl-2020/judged``     the official BM25 top-1000, re-ranked
``trec-dl/2021``    ``msmarco-passage-v2/trec-dl-2021/judged``  the official top-100, re-ranked
``trec-dl/2022``    ``msmarco-passage-v2/trec-dl-2022/judged``  the official top-100, re-ranked
``trec-dl/20xx-full``  as above (2019, 2020)                   all 8.8M MS MARCO v1 passages
==================  ==========================================  =====================================

The 2019/2020 top-1000 files carry no scores (ir_datasets gives every candidate score 0), so their
candidates are re-ranked whole. There is no full-ranking variant of 2021/2022: MS MARCO v2 has 138M
passages. ir_datasets downloads into ``$IR_DATASETS_HOME`` (default ``~/.cache/zoobench/ir_datasets``;
the Makefile sets ``.cache/ir_datasets``); offline, a task stops at once with a one-line ``ZooError``
naming it and the file it could not download. MS MARCO is under non-commercial research terms.

Local TREC folders (``queries.tsv`` + ``qrels.txt`` + ``docs.tsv`` + an optional ``*.run``, typed
``trec`` by ``harness.datasets.local``) go through the same code path: :func:`read_trec_folder`
wraps them in an ir_datasets dataset (``ir_datasets.create_dataset`` plus ``TrecScoredDocs`` for the
run) and :class:`TrecData` reads both kinds alike, streaming documents with ``docs_iter()``. It never
calls ``docs_store()`` on a local folder: that would build an index next to the tsv. A local folder
with a run file defaults to re-ranking its top 100 (``mode = "rerank"``, ``depth = 100``); without one,
to full ranking; a ``[options]`` table in its ``task.toml`` overrides either.

The shared ``trec-dl-2019-passage`` folder holds texts only for the BM25 top-100 passages (and some
other judged ones): only its re-ranking figures are comparable to published DL19 numbers; a full
ranking over its 6,377 passages is not.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from harness.spec import TaskSpec
from zoo.datafiles import add_judgement, check_unique, float_field, lines, split_fields
from zoo.errors import ZooError

__all__ = ["TrecData", "read_trec_folder", "local_options", "specs", "spec", "load", "checksum", "SPECS"]

DEFAULT_HOME = os.path.join(os.path.expanduser("~"), ".cache", "zoobench", "ir_datasets")  # as harness.metrics
LOCAL_DEPTH = 100  # a local run is re-ranked to this depth unless task.toml says otherwise
_FOLDER_FILES = {"docs_tsv": "docs.tsv", "queries_tsv": "queries.tsv", "qrels_trec": "qrels.txt"}


def _ir_datasets() -> Any:
    os.environ.setdefault("IR_DATASETS_HOME", DEFAULT_HOME)
    try:
        import ir_datasets
    except ImportError:
        raise ZooError("TREC tasks need ir_datasets: pip install 'zoobench[suites]'") from None
    return ir_datasets


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "missing"


# READING =========================================================================================


class _Position:
    """How many records of a file have been read (names the bad one in errors)."""

    n = 0


def _download_failure(e: BaseException) -> ZooError | None:
    """ir_datasets raises RuntimeError("All download sources failed", [(download, error), ...])."""
    if not (isinstance(e, RuntimeError) and e.args and e.args[0] == "All download sources failed"):
        return None
    tries = e.args[1] if len(e.args) > 1 else []
    urls = [getattr(d, "url", repr(d)) for d, _ in tries] or ["?"]
    last = tries[-1][1] if tries else e
    reason = "DNS lookup failed" if "NameResolution" in str(last) else type(last).__name__
    return ZooError(f"could not download {urls[0]} ({reason}; {len(urls)} source(s) tried)")


_READ_ERRORS: tuple[tuple[type[BaseException], str], ...] = (  # first match wins
    (FileNotFoundError, "{where}: file not found"),
    (UnicodeDecodeError, "{where}: not valid UTF-8 ({error})"),  # decoded by blocks: no record number
    (Exception, "{where}: record {n}: malformed ({error})"),
)


@contextmanager
def _reading(where: str) -> Iterator[_Position]:
    """Turn what ir_datasets raises while reading into a one-line ZooError; keep its logging quiet."""
    pos = _Position()
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # ir_datasets logs each retry of a failed download, and its DUA notice
    try:
        yield pos
    except ZooError:
        raise
    except Exception as e:
        failure = _download_failure(e)
        if failure is not None:
            raise ZooError(f"{where}: {failure}") from e
        fmt = next(fmt for cls, fmt in _READ_ERRORS if isinstance(e, cls))
        raise ZooError(fmt.format(where=where, n=pos.n + 1, error=f"{type(e).__name__}: {e}")) from e
    finally:
        logging.disable(previous)


@dataclass(frozen=True)
class TrecData:
    """A TREC-style collection behind an ir_datasets dataset, read on demand.

    Reading is lazy so that a re-ranking task reads only the texts of its candidates (and, for the
    ``trec-dl`` source, downloads only what it reads).

    Attributes:
        dataset: an ir_datasets dataset with docs, queries and qrels, and scoreddocs if it has a run.
        where: what to name in errors for each of ``docs``, ``queries``, ``qrels``, ``scoreddocs``.
        run_name: the first-stage run (a file name for local folders), or None.
        lookup: fetch candidate texts with ``docs_store()`` instead of streaming ``docs_iter()``;
            only where the store is an id-addressed cache of ir_datasets (never a local folder).
    """

    dataset: Any
    where: Mapping[str, str]
    run_name: str | None = None
    lookup: bool = False

    @property
    def has_run(self) -> bool:
        """Whether the collection has a first-stage run."""
        return bool(self.dataset.has_scoreddocs())

    def queries(self) -> dict[str, str]:
        """``{query_id: text}`` of every query (an empty text is an error)."""
        out: dict[str, str] = {}
        first: dict[str, int] = {}
        with _reading(self.where["queries"]) as pos:
            for rec in self.dataset.queries_iter():
                pos.n += 1
                at = f"{self.where['queries']}: record {pos.n}"
                if not rec.default_text().strip():
                    raise ZooError(f"{at}: empty text for query {rec.query_id!r}")
                check_unique(first, rec.query_id, pos.n, at, "query id", "record")
                out[rec.query_id] = rec.default_text()
        return out

    def qrels(self) -> dict[str, dict[str, int]]:
        """``{query_id: {doc_id: graded relevance}}``."""
        out: dict[str, dict[str, int]] = {}
        first: dict[tuple[str, str], int] = {}
        with _reading(self.where["qrels"]) as pos:
            for rec in self.dataset.qrels_iter():
                pos.n += 1
                at = f"{self.where['qrels']}: record {pos.n}"
                add_judgement(out, first, rec.query_id, rec.doc_id, int(rec.relevance), pos.n, at, "record")
        if not out:
            raise ZooError(f"{self.where['qrels']}: no judgements")
        return out

    def run(self) -> dict[str, dict[str, float]]:
        """The first-stage run: ``{query_id: {doc_id: score}}`` (a repeated pair is an error)."""
        if not self.has_run:
            raise ZooError(f"{self.where['scoreddocs']}: no first-stage run")
        out: dict[str, dict[str, float]] = {}
        with _reading(self.where["scoreddocs"]) as pos:
            for rec in self.dataset.scoreddocs_iter():
                pos.n += 1
                docs = out.setdefault(rec.query_id, {})
                if rec.doc_id in docs:
                    raise ZooError(
                        f"{self.where['scoreddocs']}: record {pos.n}: document {rec.doc_id!r} "
                        f"is listed twice for query {rec.query_id!r}"
                    )
                docs[rec.doc_id] = float(rec.score)
        return out

    def docs(self, ids: Collection[str] | None = None) -> dict[str, str]:
        """``{doc_id: text}`` of the documents in ``ids`` that the collection has (all when None)."""
        wanted = None if ids is None else set(ids)
        out: dict[str, str] = {}
        first: dict[str, int] = {}
        with _reading(self.where["docs"]) as pos:
            if self.lookup and wanted is not None:
                return {d.doc_id: d.default_text() for d in self.dataset.docs_store().get_many_iter(wanted)}
            for doc in self.dataset.docs_iter():
                pos.n += 1
                if wanted is None or doc.doc_id in wanted:  # a repeat of a wanted id after the last one goes unseen
                    at = f"{self.where['docs']}: record {pos.n}"
                    check_unique(first, doc.doc_id, pos.n, at, "document id", "record")
                    out[doc.doc_id] = doc.default_text()
                    if wanted is not None and len(out) == len(wanted):
                        break
        return out


# LOCAL FOLDERS ===================================================================================


def _run_file(folder: Path) -> Path | None:
    runs = sorted(folder.glob("*.run"))
    if len(runs) > 1:
        raise ZooError(f"{folder}: several run files ({', '.join(p.name for p in runs)}); keep one first-stage run")
    return runs[0] if runs else None


def _strict_run(path: Path) -> Any:
    """A local run file as ir_datasets scored docs, each line ``qid Q0 docid rank score tag`` with a finite score.

    ir_datasets' own reader also takes 2- and 3-column lines, and reads a 5-column line as the fields of the line
    before it (a malformed line then looks like a repeated document).
    """
    from ir_datasets.formats import GenericScoredDoc, TrecScoredDocs
    from ir_datasets.util import LocalDownload

    class StrictRun(TrecScoredDocs):
        def scoreddocs_iter(self) -> Iterator[Any]:
            for lineno, line in lines(path):
                qid, _, did, _, score, _ = split_fields(line, 6, path, lineno, None, "qid Q0 docid rank score tag")
                yield GenericScoredDoc(qid, did, float_field(score, path, lineno, "score"))

    return StrictRun(LocalDownload(str(path), mkdir=False))


def local_options(folder: Path) -> dict[str, Any]:
    """Default options of a local ``trec`` folder: re-rank the top 100 of its run, else rank everything."""
    runs = sorted(folder.glob("*.run"))  # several: the reader refuses them, listing stays possible
    if not runs:
        return {"mode": "full"}
    return {"mode": "rerank", "depth": LOCAL_DEPTH, **({"run": runs[0].name} if len(runs) == 1 else {})}


def read_trec_folder(folder: Path, split: str) -> TrecData:
    """A local TREC folder as an ir_datasets dataset (read lazily; nothing is written next to it).

    Args:
        folder: holds ``queries.tsv`` (qid, text), ``qrels.txt`` (TREC qrels), ``docs.tsv`` (docid,
            text) and at most one ``*.run`` (a TREC run, the first stage).
        split: the evaluation split (a TREC folder has one: its files are the test data).
    """
    ird = _ir_datasets()
    from ir_datasets.datasets.base import Dataset

    paths = {arg: folder / name for arg, name in _FOLDER_FILES.items()}
    missing = next((p for p in paths.values() if not p.is_file()), None)
    if missing is not None:
        raise ZooError(f"{missing}: file not found")
    run = _run_file(folder)
    parts = [ird.create_dataset(**{arg: str(p) for arg, p in paths.items()})]
    if run is not None:
        parts.append(_strict_run(run))
    where = {
        "docs": str(paths["docs_tsv"]),
        "queries": str(paths["queries_tsv"]),
        "qrels": str(paths["qrels_trec"]),
        "scoreddocs": str(run or folder / "*.run"),
    }
    return TrecData(Dataset(*parts), where, run_name=run.name if run else None)


# THE trec-dl SOURCE ==============================================================================

_CITE_IRDS = "MacAvaney et al. (2021), Simplified Data Wrangling with ir_datasets, SIGIR."
_LICENSE = "MS MARCO terms: non-commercial research (http://www.msmarco.org/dataset.aspx)"
_RERANK_1000 = {"mode": "rerank", "depth": 1000}

_DL19 = TaskSpec(
    id="trec-dl/2019",
    type="trec",
    source="trec-dl",
    path="msmarco-passage/trec-dl-2019/judged",
    main_score="ndcg@10",
    description="TREC DL 2019 passage ranking: re-rank the official BM25 top-1000 (43 judged queries)",
    license=_LICENSE,
    revision=f"ir_datasets-{_package_version('ir_datasets')}",
    citation="Craswell et al. (2020), Overview of the TREC 2019 Deep Learning Track, arXiv:2003.07820. " + _CITE_IRDS,
    options=_RERANK_1000,
)
_DL20 = dataclasses.replace(
    _DL19,
    id="trec-dl/2020",
    path="msmarco-passage/trec-dl-2020/judged",
    description="TREC DL 2020 passage ranking: re-rank the official BM25 top-1000 (54 judged queries)",
    citation="Craswell et al. (2021), Overview of the TREC 2020 Deep Learning Track, arXiv:2102.07662. " + _CITE_IRDS,
)
_DL21 = dataclasses.replace(
    _DL19,
    id="trec-dl/2021",
    path="msmarco-passage-v2/trec-dl-2021/judged",
    description="TREC DL 2021 passage ranking (MS MARCO v2): re-rank the official top-100",
    citation="Craswell et al. (2022), Overview of the TREC 2021 Deep Learning Track, TREC 2021. " + _CITE_IRDS,
    options={"mode": "rerank", "depth": 100},
)
_DL22 = dataclasses.replace(
    _DL21,
    id="trec-dl/2022",
    path="msmarco-passage-v2/trec-dl-2022/judged",
    description="TREC DL 2022 passage ranking (MS MARCO v2): re-rank the official top-100",
    citation="Craswell et al. (2023), Overview of the TREC 2022 Deep Learning Track, TREC 2022. " + _CITE_IRDS,
)


def _full(base: TaskSpec) -> TaskSpec:
    return dataclasses.replace(
        base,
        id=f"{base.id}-full",
        description=base.description.split(":")[0] + ": full ranking of the 8.8M MS MARCO passages",
        options={"mode": "full"},
    )


SPECS: dict[str, TaskSpec] = {s.id: s for s in (_DL19, _full(_DL19), _DL20, _full(_DL20), _DL21, _DL22)}

# What each ir_datasets id reads: (section of ir_datasets' etc/downloads.json, its docs key, topic set).
_DOWNLOADS: dict[str, tuple[str, str, str]] = {
    "msmarco-passage/trec-dl-2019/judged": ("msmarco-passage", "collectionandqueries", "trec-dl-2019"),
    "msmarco-passage/trec-dl-2020/judged": ("msmarco-passage", "collectionandqueries", "trec-dl-2020"),
    "msmarco-passage-v2/trec-dl-2021/judged": ("msmarco-passage-v2", "passages", "trec-dl-2021"),
    "msmarco-passage-v2/trec-dl-2022/judged": ("msmarco-passage-v2", "passages", "trec-dl-2022"),
}
_LOOKUP = frozenset({"msmarco-passage-v2"})  # v2 passage ids are file offsets: lookups need no index


def specs(data_dir: str | os.PathLike[str] | None = None) -> list[TaskSpec]:
    """The declared TREC DL tasks (``data_dir`` is unused: the data comes from ir_datasets)."""
    return sorted(SPECS.values(), key=lambda s: s.id)


def spec(name: str, data_dir: str | os.PathLike[str] | None = None) -> TaskSpec:
    """The spec of ``trec-dl/<name>``.

    Raises:
        ZooError: for an undeclared name (listing the declared ones).
    """
    try:
        return SPECS[f"trec-dl/{name}"]
    except KeyError:
        raise ZooError(f"unknown task 'trec-dl/{name}': one of {', '.join(sorted(SPECS))}") from None


def load(spec: TaskSpec, split: str) -> TrecData:
    """The collection of a ``trec-dl`` task (nothing is downloaded until it is read)."""
    ird = _ir_datasets()
    corpus = spec.path.split("/", 1)[0]
    where = {k: f"{spec.id} ({k} of ir_datasets {spec.path})" for k in ("docs", "queries", "qrels", "scoreddocs")}
    return TrecData(ird.load(spec.path), where, run_name="official first stage", lookup=corpus in _LOOKUP)


def checksum(spec: TaskSpec) -> str:
    """sha256 over the md5s that ir_datasets verifies the task's downloads against (known offline)."""
    ird = _ir_datasets()
    table = json.loads((Path(ird.__file__).parent / "etc" / "downloads.json").read_text(encoding="utf-8"))
    corpus, docs, topics = _DOWNLOADS[spec.path]
    keys = (docs, f"{topics}/queries", f"{topics}/qrels", f"{topics}/scoreddocs")
    lines = "".join(f"{corpus}/{k} {table[corpus][k]['expected_md5']}\n" for k in keys)
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()
