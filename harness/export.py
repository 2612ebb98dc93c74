"""Export zoobench result records in another tool's format; for now mteb's results folder.

Layout written by :func:`export_mteb` (mteb's own, as its ``ResultCache`` reads it)::

    <out>/<org__name>/<revision>/<TaskName>.json    one mteb TaskResult per zoobench record
    <out>/<org__name>/<revision>/model_meta.json     the model card as an mteb ModelMeta

- The model is ``zoobench/<card name>`` (folder ``zoobench__<card name>``) at the card's revision;
  its ModelMeta is built from the card stored in the record (``harness.datasets.mteb.model_meta``).
- ``mteb/<TaskName>`` records keep their MTEB name and mteb's own per-subset score dicts (every
  key, as mteb computed them), kept beside the record in its per-item file.
- Tasks without an MTEB name are exported under their zoobench id with ``/`` replaced by ``__``
  (``local/stsb`` -> ``local__stsb``): one subset ``default``, scores under mteb's names
  (``ndcg@10`` -> ``ndcg_at_10``), ``main_score`` the record's, ``dataset_revision`` the data checksum.
- ``mteb_version`` is the version that computed an ``mteb/`` record, else the installed one (the
  version of the file format).

mteb reads the folder as a result cache: export to ``<cache>/results``, then
``mteb.ResultCache("<cache>").load_results()``.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import gzip
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.datasets.mteb import model_meta, mteb_languages, mteb_task_name, to_mteb_metric
from harness.results import TaskResult, atomic_write, items_path, load_results
from zoo.errors import ZooError

__all__ = ["FORMATS", "export", "export_mteb"]


def _mteb_scores(record: TaskResult, results_dir: Path, split: str) -> list[dict[str, Any]]:
    """mteb's own per-subset scores of an ``mteb/`` record, else the record's scores as one subset."""
    path = items_path(results_dir, record.model, record.revision, record.task_id, split)
    if record.task_id.startswith("mteb/") and path.exists():
        with gzip.open(path, "rt", encoding="utf-8") as f:
            stored = json.load(f).get("mteb_scores")
        if stored:
            return stored
    scores = {to_mteb_metric(k): v for k, v in record.scores[split].items()}
    return [{**scores, "hf_subset": "default", "languages": mteb_languages(record.languages) or ["und"]}]


def _mteb_result(record: TaskResult, results_dir: Path) -> Any:
    import mteb
    from mteb.results import TaskResult as MtebTaskResult

    return MtebTaskResult(
        dataset_revision=record.dataset_revision or record.data_checksum,
        task_name=mteb_task_name(record.task_id),
        mteb_version=record.task_options.get("mteb_version") or mteb.__version__,
        scores={split: _mteb_scores(record, results_dir, split) for split in record.scores},
        evaluation_time=record.runtime.get("total_s"),
        date=dt.datetime.fromisoformat(record.date),
    )


def export_mteb(
    results_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    model: str = "*",
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> list[Path]:
    """Write every record of ``results_dir`` as an mteb TaskResult, in mteb's results-folder layout.

    Args:
        results_dir: a zoobench results folder.
        out_dir: the mteb results folder to write (see the module docstring for the layout).
        model: fnmatch pattern on zoobench model names.
        log: receives a warning for each record file that could not be read.

    Returns:
        The task files written, sorted.

    Raises:
        ZooError: when no record matches.

    Example:
        >>> export_mteb("results", "/tmp/mteb-cache/results", model="minilm-*")
        >>> mteb.ResultCache("/tmp/mteb-cache").load_results().to_dataframe()
    """
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    records, warnings = load_results(results_dir)
    for w in warnings:
        log(f"zoobench: warning: skipped {w}")
    records = [r for r in records if fnmatch.fnmatchcase(r.model, model)]
    if not records:
        raise ZooError(f"no results in {results_dir} for models matching {model!r}")
    written = []
    for record in records:
        meta = model_meta(record.model_card or {"name": record.model, "revision": record.revision})
        folder = out_dir / meta.model_name_as_path() / meta.revision
        result = _mteb_result(record, results_dir)
        path = folder / f"{result.task_name}.json"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{path.name}.tmp"
        result.to_disk(tmp)  # mteb's own serialisation, then an atomic rename
        os.replace(tmp, path)
        atomic_write(folder / "model_meta.json", json.dumps(meta.to_dict(), default=str, indent=4).encode())
        written.append(path)
    return sorted(written)


FORMATS: dict[str, Callable[..., list[Path]]] = {"mteb": export_mteb}


def export(
    fmt: str, results_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, model: str = "*"
) -> list[Path]:
    """Export the records of ``results_dir`` in format ``fmt`` (one of ``FORMATS``) to ``out_dir``.

    Raises:
        ZooError: for an unknown format, or when no record matches.
    """
    try:
        writer = FORMATS[fmt]
    except KeyError:
        raise ZooError(f"unknown export format {fmt!r}; formats: {', '.join(sorted(FORMATS))}") from None
    return writer(results_dir, out_dir, model=model)
