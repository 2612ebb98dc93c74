"""BEIR: ``beir/<name>`` is a retrieval task over a BEIR-layout folder, evaluated as BEIR does.

Where the folder comes from, first match wins:

1. ``<data dir>/<name>`` when it is in BEIR layout (``corpus.jsonl``, ``queries.jsonl``, ``qrels/``),
   so ``beir/scifact`` runs offline from the shared data;
2. ``<download dir>/<name>``, downloaded and unzipped by beir's own ``beir.util.download_and_unzip``
   from the BEIR server where the network allows (the download dir is ``$ZOOBENCH_BEIR_DIR``, else
   ``~/.cache/zoobench/beir``). Offline, the task stops with a one-line ``ZooError``.

A name must be one of the public BEIR datasets in :data:`DATASETS`, or a BEIR-layout folder of the
data dir. CQADupStack is not declared: its zip nests twelve forums, each its own task.

BEIR's exact search and its ``EvaluateRetrieval.evaluate`` drop every hit whose document id equals
the query id (it matters on ArguAna and Quora, whose queries are also corpus documents). Here that
is the explicit option ``ignore_identical_ids``: True for this source, as in BEIR (the ``local``
source keeps MTEB's False); the retrieval type honours it and every result records it.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import shutil
import tempfile
from pathlib import Path

from harness.datasets.local import RetrievalData, folder_checksum, read_beir, resolve_data_dir
from harness.spec import TaskSpec
from zoo.errors import ZooError

__all__ = ["DATASETS", "URL", "specs", "spec", "load", "checksum", "download_dir"]

URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
CITATION = (
    "Thakur et al. (2021), BEIR: A Heterogeneous Benchmark for Zero-shot Evaluation of Information "
    "Retrieval Models, NeurIPS Datasets and Benchmarks."
)

DATASETS: dict[str, str] = {  # name -> the split BEIR reports
    "msmarco": "dev",
    "trec-covid": "test",
    "nfcorpus": "test",
    "nq": "test",
    "hotpotqa": "test",
    "fiqa": "test",
    "arguana": "test",
    "webis-touche2020": "test",
    "quora": "test",
    "dbpedia-entity": "test",
    "scidocs": "test",
    "fever": "test",
    "climate-fever": "test",
    "scifact": "test",
}

_BASE = TaskSpec(
    id="beir/",
    type="retrieval",
    source="beir",
    path="",
    main_score="ndcg@10",
    citation=CITATION,
    options={"ignore_identical_ids": True},
)


def download_dir() -> Path:
    """``$ZOOBENCH_BEIR_DIR``, else ``~/.cache/zoobench/beir``."""
    env = os.environ.get("ZOOBENCH_BEIR_DIR")
    return Path(env) if env else Path.home() / ".cache" / "zoobench" / "beir"


def _is_beir(folder: Path) -> bool:
    return (folder / "corpus.jsonl").is_file() and (folder / "queries.jsonl").is_file() and (folder / "qrels").is_dir()


def _data_root(data_dir: str | os.PathLike[str] | None) -> Path | None:
    try:
        return resolve_data_dir(data_dir)
    except ZooError:  # no data dir at all: BEIR data can still come from the download dir
        return None


def _spec(name: str, root: Path | None) -> TaskSpec | None:
    local = root / name if root is not None else None
    if local is not None and _is_beir(local):
        splits = sorted(p.stem for p in (local / "qrels").glob("*.tsv"))
        split = DATASETS.get(name) or ("test" if "test" in splits else "dev")
        folder = local
    elif name in DATASETS:
        split, folder = DATASETS[name], download_dir() / name
    else:
        return None
    return dataclasses.replace(_BASE, id=f"beir/{name}", path=str(folder), splits=(split,))


def specs(data_dir: str | os.PathLike[str] | None = None) -> list[TaskSpec]:
    """A spec for every declared BEIR dataset (from the data dir where it is there)."""
    root = _data_root(data_dir)
    return [s for s in (_spec(name, root) for name in sorted(DATASETS)) if s is not None]


def spec(name: str, data_dir: str | os.PathLike[str] | None = None) -> TaskSpec:
    """The spec of ``beir/<name>`` (nothing is downloaded yet).

    Raises:
        ZooError: neither a declared BEIR dataset nor a BEIR-layout folder of the data dir.
    """
    root = _data_root(data_dir)
    found = _spec(name, root)
    if found is None:
        close = difflib.get_close_matches(name, list(DATASETS), n=3)
        hint = f"; did you mean {', '.join('beir/' + c for c in close)}?" if close else ""
        where = f" nor a BEIR folder in data dir {root}" if root is not None else ""
        raise ZooError(f"unknown task 'beir/{name}': not a BEIR dataset{where}{hint}")
    return found


def _folder(spec: TaskSpec) -> Path:
    """The task's folder, downloaded first if need be."""
    folder = Path(spec.path)
    if _is_beir(folder):
        return folder
    name = spec.id.split("/", 1)[1]
    url = URL.format(name=name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))  # unzipped here, then moved whole
    try:
        from beir.util import download_and_unzip

        unzipped = Path(download_and_unzip(url, str(tmp)))
        if not _is_beir(unzipped):
            raise ZooError(f"{spec.id}: {url} did not unzip to a BEIR folder ({unzipped})")
        if not _is_beir(folder):  # another process may have finished first
            os.replace(unzipped, folder)
    except ZooError:
        raise
    except Exception as e:
        detail = " ".join(str(e).split())[:120]  # one line
        reason = "DNS lookup failed" if "NameResolution" in detail else f"{type(e).__name__}: {detail}"
        raise ZooError(
            f"{spec.id}: could not download {url} ({reason}); put the BEIR folder at {folder} "
            "or in the data dir, or run once with network access"
        ) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load(spec: TaskSpec, split: str) -> RetrievalData:
    """One split of a BEIR task (downloading the dataset first if it is not there)."""
    return read_beir(_folder(spec), split)


def checksum(spec: TaskSpec) -> str:
    """sha256 of the dataset folder's files (downloading it first if it is not there)."""
    return folder_checksum(_folder(spec))
