"""The local source: every folder of the data dir in one of the normalized formats is a task.

A folder ``<data dir>/<name>`` becomes task ``local/<name>``. Its type comes from an optional
``task.toml`` in the folder (keys: ``type``, ``main_score``, ``splits``, ``train_split``,
``languages``, ``description``, ``instruction``, ``revision``, and an ``[options]`` table over the type's default
options) or else
from these rules, first match wins:

================================================  =====================
files / first record                              type
================================================  =====================
``corpus.jsonl`` + ``queries.jsonl`` + ``qrels/``  retrieval (BEIR layout)
``queries.tsv`` + ``qrels.txt`` + ``docs.tsv``     trec (topics, qrels, passages, run files)
``*.conll``                                        seqlabel
``sentence1, sentence2, score`` (float)            sts
``sentence1, sentence2, label`` (0/1)              pair_classification
``text, label`` with a ``train`` split             classification
``text, label``, evaluation split only             clustering
``query, positive[], negative[]``                  reranking
================================================  =====================

A folder whose only split is ``train`` (training pairs and triplets) is training data, not a task.
The evaluation split is ``test``, else ``dev``. The language is read from the folder's README
(``- Language: zh``), else guessed: CJK characters in the first record mean ``zh``.

Every reader names the file and line of the first bad record in a one-line ``ZooError``. The seqlabel type reads
its ``{split}.conll`` files itself (``harness/tasks/seqlabel.py``: a task type owns its data).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.datasets.trec_dl import local_options as trec_options
from harness.datasets.trec_dl import read_trec_folder
from harness.spec import TaskSpec
from zoo.datafiles import (
    RetrievalData,
    check_varies,
    jsonl_records,
    number_field,
    read_beir,
    resolve_data_dir,
    text_field,
)
from zoo.errors import ZooError

__all__ = [
    "specs",
    "spec",
    "load",
    "checksum",
    "RetrievalData",
    "PairData",
    "LabelledData",
    "RerankingData",
    "resolve_data_dir",
    "discover",
    "detect",
    "load_split",
    "folder_checksum",
]

_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")


# DATA CLASSES ====================================================================================


@dataclass(frozen=True)
class PairData:
    """Sentence pairs with a gold score (STS: float) or label (pair classification: 0/1)."""

    sentence1: list[str]
    sentence2: list[str]
    gold: list[float]


@dataclass(frozen=True)
class LabelledData:
    """Texts with string labels (classification, clustering)."""

    texts: list[str]
    labels: list[str]


@dataclass(frozen=True)
class RerankingData:
    """One query per record with its positive and negative candidates."""

    queries: list[str]
    positives: list[list[str]]
    negatives: list[list[str]]


# DATA DIR ========================================================================================


# FORMAT READERS ==================================================================================


def read_pairs(folder: Path, split: str, gold_field: str) -> PairData:
    """Read {split}.jsonl records of sentence1, sentence2 and a numeric gold field."""
    path = folder / f"{split}.jsonl"
    s1, s2, gold = [], [], []
    for lineno, rec in jsonl_records(path, ("sentence1", "sentence2", gold_field)):
        s1.append(text_field(rec["sentence1"], path, lineno, "sentence1"))
        s2.append(text_field(rec["sentence2"], path, lineno, "sentence2"))
        gold.append(number_field(rec[gold_field], path, lineno, gold_field))
        if gold_field == "label" and gold[-1] not in (0, 1):
            raise ZooError(f"{path}:{lineno}: label must be 0 or 1, got {rec['label']!r}")
    if not gold:
        raise ZooError(f"{path}: no records")
    check_varies(gold, path, gold_field)
    return PairData(s1, s2, gold)


def read_labelled(folder: Path, split: str) -> LabelledData:
    """Read {split}.jsonl records of text and label (labels kept as strings)."""
    path = folder / f"{split}.jsonl"
    texts, labels = [], []
    for lineno, rec in jsonl_records(path, ("text", "label")):
        texts.append(text_field(rec["text"], path, lineno, "text"))
        if not isinstance(rec["label"], str | int) or isinstance(rec["label"], bool):
            raise ZooError(f"{path}:{lineno}: label must be a string or an integer, got {rec['label']!r}")
        labels.append(str(rec["label"]))
    if not texts:
        raise ZooError(f"{path}: no records")
    check_varies(labels, path, "label")  # one class: nothing to classify, a train split fails to fit
    return LabelledData(texts, labels)


def read_reranking(folder: Path, split: str) -> RerankingData:
    """Read {split}.jsonl records of query, positive (list) and negative (list)."""
    path = folder / f"{split}.jsonl"
    data = RerankingData([], [], [])
    for lineno, rec in jsonl_records(path, ("query", "positive", "negative")):
        data.queries.append(text_field(rec["query"], path, lineno, "query"))
        for key, out in (("positive", data.positives), ("negative", data.negatives)):
            if not isinstance(rec[key], list):
                raise ZooError(f"{path}:{lineno}: {key} must be a list of strings")
            out.append([text_field(t, path, lineno, key) for t in rec[key]])
        if not rec["positive"]:
            raise ZooError(f"{path}:{lineno}: no positive candidate")
    if not data.queries:
        raise ZooError(f"{path}: no records")
    return data


_READERS = {
    "retrieval": read_beir,
    "sts": lambda folder, split: read_pairs(folder, split, "score"),
    "pair_classification": lambda folder, split: read_pairs(folder, split, "label"),
    "classification": read_labelled,
    "clustering": read_labelled,
    "reranking": read_reranking,
    "trec": read_trec_folder,  # through ir_datasets, as the trec-dl source
}

# Default spec options per type (a task.toml [options] table overrides them); recorded with results.
_OPTIONS = {
    "retrieval": lambda folder: {"ignore_identical_ids": False},  # MTEB keeps a hit whose id is the query's
    "trec": trec_options,
}


def load_split(folder: Path, task_type: str, split: str) -> Any:
    """Load one split of a local folder in the format of ``task_type``."""
    if not folder.is_dir():
        raise ZooError(f"{folder}: data folder not found")
    try:
        reader = _READERS[task_type]
    except KeyError:
        raise ZooError(f"{folder}: no local reader for task type {task_type!r}") from None
    return reader(folder, split)


# DETECTION =======================================================================================

_SHAPES = (  # (fields of the first record, type); checked in order
    ({"sentence1", "sentence2", "score"}, "sts"),
    ({"sentence1", "sentence2", "label"}, "pair_classification"),
    ({"query", "positive", "negative"}, "reranking"),
    ({"text", "label"}, "labelled"),
)


def _first_record(path: Path) -> dict[str, Any]:
    for _, rec in jsonl_records(path, ()):
        return rec
    raise ZooError(f"{path}: no records")


# Instructions of known folders (a task.toml ``instruction`` wins): e5-mistral's / gte-Qwen2's MTEB instructions where
# the task is the same; the others fall back to their type's (``harness.tasks``).
INSTRUCTIONS = {
    "scifact": "Given a scientific claim, retrieve documents that support or refute the claim",
    "trec-dl-2019-passage": "Given a web search query, retrieve relevant passages that answer the query",
    "banking77": "Given a online banking query, find the corresponding intents",
    "trec-qc": "Classify the type of answer the given question asks for",
    "wikiqa-reranking": "Given a question, retrieve Wikipedia passages that answer the question",
    "cranfield": "Given a question about aerodynamics, retrieve abstracts that answer it",
    "mrpc": "Retrieve sentences that paraphrase the given sentence",
}


# The keys of a task.toml and the type of each value.
_TOML_KEYS = {
    "type": str,
    "main_score": str,
    "splits": list,
    "train_split": str,
    "languages": list,
    "description": str,
    "instruction": str,
    "revision": str,
    "options": dict,
}


def _check_task_toml(info: dict[str, Any], path: Path) -> None:
    unknown = sorted(set(info) - set(_TOML_KEYS))
    if unknown:
        raise ZooError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(_TOML_KEYS)})")
    for key, kind in _TOML_KEYS.items():
        value = info.get(key)
        if value is None or isinstance(value, kind) and kind is not list:
            continue
        if kind is dict:
            raise ZooError(f"{path}: {key} must be a table, got {value!r} (write [{key}] and its keys below it)")
        if kind is str:
            raise ZooError(f"{path}: {key} must be a string, got {value!r}")
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            example = f'{key} = ["{value}"]' if isinstance(value, str) else f'{key} = ["test"]'
            raise ZooError(f"{path}: {key} must be a list of strings, got {value!r} (write {example})")
        if not value:
            raise ZooError(f"{path}: {key} must be a non-empty list")


def _eval_split(splits: list[str]) -> str | None:
    return "test" if "test" in splits else ("dev" if "dev" in splits else None)


def detect(folder: Path) -> dict[str, Any] | None:
    """Describe the task a folder holds: type, splits, train_split, languages, ... or None.

    Returns:
        None for a folder that is not a task (training data, or no known format).

    Raises:
        ZooError: for an unreadable ``task.toml``, or a BEIR folder without its corpus.
    """
    info: dict[str, Any] = {}
    toml_path = folder / "task.toml"
    if toml_path.exists():
        try:
            info = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ZooError(f"{toml_path}: invalid TOML ({e})") from None
        _check_task_toml(info, toml_path)
    # The layout decides where the splits are; task.toml may still override the type and splits.
    if (folder / "queries.jsonl").exists() and (folder / "qrels").is_dir():
        if not (folder / "corpus.jsonl").exists():
            raise ZooError(f"{folder / 'corpus.jsonl'}: file not found (the folder has queries.jsonl and qrels/)")
        layout, splits = "retrieval", sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
    elif all((folder / f).exists() for f in ("queries.tsv", "qrels.txt", "docs.tsv")):
        layout, splits = "trec", ["test"]
    elif list(folder.glob("*.conll")):
        layout, splits = "seqlabel", sorted(p.stem for p in folder.glob("*.conll"))
    else:
        layout, splits = None, sorted(p.stem for p in folder.glob("*.jsonl"))
    eval_split = _eval_split(splits)
    if "type" not in info:
        if layout is None and eval_split is not None:
            keys = set(_first_record(folder / f"{eval_split}.jsonl"))
            layout = next((t for fields, t in _SHAPES if fields <= keys), None)
            if layout == "labelled":
                layout = "classification" if "train" in splits else "clustering"
        info["type"] = layout
    if info["type"] is None or (eval_split is None and "splits" not in info):
        return None
    info.setdefault("splits", [eval_split])
    if info["type"] == "classification":
        info.setdefault("train_split", "train")
    info.setdefault("languages", [_language(folder, info["splits"][0])])
    return info


def _language(folder: Path, split: str) -> str:
    readme = folder / "README.md"
    if readme.exists():
        m = re.search(r"^- Language:\s*([\w-]+)", readme.read_text(encoding="utf-8", errors="replace"), re.M)
        if m:
            return m.group(1)
    sample = ""
    for name in (f"{split}.jsonl", "queries.jsonl", "queries.tsv", f"{split}.conll"):
        if (folder / name).exists():
            with open(folder / name, encoding="utf-8", errors="replace") as f:
                sample = f.read(2000)
            break
    return "zh" if _CJK.search(sample) else "en"


def discover(data_dir: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """All task folders under ``data_dir``: ``{"local/<name>": (folder, detect(folder))}``."""
    found = {}
    for folder in sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        info = detect(folder)
        if info is not None:
            found[f"local/{folder.name}"] = (folder, info)
    return found


def folder_checksum(folder: Path) -> str:
    """sha256 over the names and bytes of the data files of a folder (READMEs excluded)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.lower().startswith("readme")):
        h.update(str(path.relative_to(folder)).encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return "sha256:" + h.hexdigest()


# THE SOURCE INTERFACE ============================================================================


def _to_spec(name: str, folder: Path, info: dict[str, Any]) -> TaskSpec:
    return TaskSpec(
        id=f"local/{name}",
        type=info["type"],
        source="local",
        path=str(folder),
        splits=tuple(info["splits"]),
        languages=tuple(info["languages"]),
        main_score=info.get("main_score"),
        train_split=info.get("train_split"),
        description=info.get("description", ""),
        instruction=info.get("instruction", INSTRUCTIONS.get(name, "")),
        revision=info.get("revision"),
        options={**_OPTIONS.get(info["type"], lambda folder: {})(folder), **info.get("options", {})},
    )


def specs(data_dir: str | os.PathLike[str] | None = None) -> list[TaskSpec]:
    """A spec for every task folder of the data dir, sorted by id."""
    return [_to_spec(tid.split("/", 1)[1], f, info) for tid, (f, info) in discover(resolve_data_dir(data_dir)).items()]


def spec(name: str, data_dir: str | os.PathLike[str] | None = None) -> TaskSpec:
    """The spec of task ``local/<name>``.

    Raises:
        ZooError: no such folder (naming the data dir, with close matches) or not a task.
    """
    root = resolve_data_dir(data_dir)
    folder = root / name
    if not folder.is_dir():
        close = difflib.get_close_matches(name, [p.name for p in root.iterdir() if p.is_dir()], n=3)
        hint = f"; did you mean {', '.join('local/' + c for c in close)}?" if close else ""
        raise ZooError(f"unknown task 'local/{name}': no folder {name!r} in data dir {root}{hint}")
    info = detect(folder)
    if info is None:
        raise ZooError(f"task 'local/{name}': {folder} holds no evaluation split in a known format (training data?)")
    return _to_spec(name, folder, info)


def load(spec: TaskSpec, split: str) -> Any:
    """One split of a local task, in the shape its type reads."""
    return load_split(Path(spec.path), spec.type, split)


def checksum(spec: TaskSpec) -> str:
    """sha256 of the task folder's data files."""
    return folder_checksum(Path(spec.path))
