"""The data files the harness and the trainer both read: where the data dir is, strict line readers, BEIR folders.

Below both ``harness`` (task loaders) and ``zoo.train`` (training sources): every reader names the file and
line of the first bad record in a one-line ``ZooError``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

__all__ = [
    "DEFAULT_DATA_DIRS",
    "RetrievalData",
    "resolve_data_dir",
    "lines",
    "jsonl_records",
    "text_field",
    "number_field",
    "split_fields",
    "int_field",
    "read_beir",
]

DEFAULT_DATA_DIRS = ("./data", "../shared/data")


@dataclass(frozen=True)
class RetrievalData:
    """A BEIR-style split: doc id -> text (title and body joined), query id -> text, qrels."""

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data dir: ``data_dir``, else ``$ZOOBENCH_DATA``, else ``./data``, else ``../shared/data``.

    Raises:
        ZooError: when none of them exists (the message lists where it looked).
    """
    candidates = [data_dir] if data_dir else []
    if not data_dir and os.environ.get("ZOOBENCH_DATA"):
        candidates.append(os.environ["ZOOBENCH_DATA"])
    if not candidates:
        candidates.extend(DEFAULT_DATA_DIRS)
    for c in candidates:
        if Path(c).is_dir():
            return Path(c).resolve()
    raise ZooError(f"no data dir: looked in {', '.join(str(c) for c in candidates)} (set --data-dir or $ZOOBENCH_DATA)")


def lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) for non-blank lines, decoding strictly as UTF-8."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ZooError(f"{path}: file not found") from None
    for lineno, line in enumerate(raw.splitlines(), 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ZooError(
                f"{path}:{lineno}: not valid UTF-8 (byte 0x{line[e.start]:02x} at column {e.start + 1})"
            ) from None
        if text.strip():
            yield lineno, text


def jsonl_records(path: Path, fields: tuple[str, ...]) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in lines(path):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ZooError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(rec, dict):
            raise ZooError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
        missing = [f for f in fields if f not in rec]
        if missing:
            raise ZooError(f"{path}:{lineno}: missing field {missing[0]!r} (expected {', '.join(fields)})")
        yield lineno, rec


def text_field(value: Any, path: Path, lineno: int, what: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ZooError(f"{path}:{lineno}: {what} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise ZooError(f"{path}:{lineno}: empty text in {what}")
    return value


def number_field(value: Any, path: Path, lineno: int, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ZooError(f"{path}:{lineno}: {what} must be a number, got {value!r}")
    return float(value)


def split_fields(line: str, n: int, path: Path, lineno: int, sep: str | None, names: str) -> list[str]:
    parts = line.rstrip("\r\n").split(sep) if sep else line.split()
    if len(parts) != n:
        raise ZooError(
            f"{path}:{lineno}: expected {n} {'tab-separated ' if sep else ''}fields ({names}), got {len(parts)}"
        )
    return parts


def int_field(value: str, path: Path, lineno: int, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ZooError(f"{path}:{lineno}: {what} must be an integer, got {value!r}") from None


def read_beir(folder: Path, split: str) -> RetrievalData:
    """Read corpus.jsonl, queries.jsonl and qrels/<split>.tsv; keep only the queries that are judged."""
    qrels_path = folder / "qrels" / f"{split}.tsv"
    qrels: dict[str, dict[str, int]] = {}
    for lineno, line in lines(qrels_path):
        qid, did, score = split_fields(line, 3, qrels_path, lineno, "\t", "query-id, corpus-id, score")
        if lineno == 1 and score.strip() == "score":
            continue
        qrels.setdefault(qid, {})[did] = int_field(score, qrels_path, lineno, "score")
    if not qrels:
        raise ZooError(f"{qrels_path}: no judgements")
    corpus: dict[str, str] = {}
    path = folder / "corpus.jsonl"
    for lineno, rec in jsonl_records(path, ("_id", "text")):
        # Empty documents occur in real collections (Cranfield 471, 995); they stay, as in BEIR/MTEB.
        title = text_field(rec.get("title") or "", path, lineno, "title", allow_empty=True)
        body = text_field(rec["text"], path, lineno, "text", allow_empty=True)
        corpus[str(rec["_id"])] = f"{title} {body}".strip() if title else body
    path = folder / "queries.jsonl"
    queries = {
        str(rec["_id"]): text_field(rec["text"], path, lineno, "text")
        for lineno, rec in jsonl_records(path, ("_id", "text"))
        if str(rec["_id"]) in qrels
    }
    unknown_q = next((q for q in qrels if q not in queries), None)
    if unknown_q is not None:
        raise ZooError(f"{qrels_path}: query-id {unknown_q!r} is not in {folder / 'queries.jsonl'}")
    unknown_d = next((d for rels in qrels.values() for d in rels if d not in corpus), None)
    if unknown_d is not None:
        raise ZooError(f"{qrels_path}: corpus-id {unknown_d!r} is not in {folder / 'corpus.jsonl'}")
    return RetrievalData(corpus, queries, qrels)
