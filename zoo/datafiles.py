"""The data files the harness and the trainer both read: where the data dir is, strict line readers, BEIR folders.

Below both ``harness`` (task loaders) and ``zoo.train`` (training sources): every reader names the file and
line of the first bad record in a one-line ``ZooError``.
"""

from __future__ import annotations

import json
import math
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
    "conll_texts",
    "text_field",
    "number_field",
    "split_fields",
    "int_field",
    "float_field",
    "check_unique",
    "add_judgement",
    "check_varies",
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


def conll_texts(path: Path) -> list[str]:
    """The sentences of a CoNLL file as plain texts (raw text for pre-training; the tags are not read): the first
    column of each line joined without separators, blank lines ending sentences.

    Raises:
        ZooError: a missing or non-UTF-8 file, or one without a sentence.
    """
    sentences: list[str] = []
    current: list[str] = []
    last = -1
    for lineno, text in lines(path):
        if current and lineno != last + 1:  # a blank line (or several) since the previous token
            sentences.append("".join(current))
            current = []
        current.append(text.split()[0])
        last = lineno
    if current:
        sentences.append("".join(current))
    if not sentences:
        raise ZooError(f"{path}: no sentences")
    return sentences


def jsonl_records(path: Path, fields: tuple[str, ...]) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in lines(path):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ZooError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
        except ValueError as e:  # an integer of more than 4300 digits
            raise ZooError(f"{path}:{lineno}: invalid JSON ({e})") from None
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
    try:
        number = float(value)
    except OverflowError:  # an integer of hundreds of digits
        number = math.inf
    if not math.isfinite(number):  # JSON readers accept NaN, Infinity and 1e999
        raise ZooError(f"{path}:{lineno}: {what} must be a finite number, got {number!r}")
    return number


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


def float_field(value: str, path: Path, lineno: int, what: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ZooError(f"{path}:{lineno}: {what} must be a number, got {value!r}") from None
    return number_field(number, path, lineno, what)


# VALIDATION: what every reader checks beyond the syntax of a line ================================
# ``at`` names the file and line (or record) of the value being read; ``unit`` is "line" or "record".


def check_unique(first: dict[str, int], key: str, n: int, at: str, what: str, unit: str = "line") -> None:
    """Remember that ``key`` is at line ``n``; a second line with it is an error (the later one would win)."""
    seen = first.setdefault(key, n)
    if seen != n:
        raise ZooError(f"{at}: duplicate {what} {key!r} (first on {unit} {seen}); each id must be unique")


def add_judgement(
    qrels: dict[str, dict[str, int]],
    first: dict[tuple[str, str], int],
    qid: str,
    did: str,
    rel: int,
    n: int,
    at: str,
    unit: str = "line",
) -> None:
    """Add one judgement: a repeat of an earlier one is accepted, a conflicting one is an error."""
    docs = qrels.setdefault(qid, {})
    if did in docs and docs[did] != rel:
        raise ZooError(
            f"{at}: query {qid!r}, document {did!r} judged {rel} here and {docs[did]} on {unit} {first[qid, did]}; "
            "keep one judgement"
        )
    first.setdefault((qid, did), n)
    docs[did] = rel


def check_varies(values: list[Any], path: Path, what: str) -> None:
    """Gold labels or scores that are all equal make every score meaningless (a correlation is NaN)."""
    if values and all(v == values[0] for v in values):
        raise ZooError(f"{path}: every {what} is {values[0]!r}; an evaluation split needs at least two different ones")


def read_beir(folder: Path, split: str) -> RetrievalData:
    """Read corpus.jsonl, queries.jsonl and qrels/<split>.tsv; keep only the queries that are judged."""
    qrels_path = folder / "qrels" / f"{split}.tsv"
    qrels: dict[str, dict[str, int]] = {}
    judged: dict[tuple[str, str], int] = {}
    for lineno, line in lines(qrels_path):
        qid, did, score = split_fields(line, 3, qrels_path, lineno, "\t", "query-id, corpus-id, score")
        if lineno == 1 and score.strip() == "score":
            continue
        rel = int_field(score, qrels_path, lineno, "score")
        add_judgement(qrels, judged, qid, did, rel, lineno, f"{qrels_path}:{lineno}")
    if not qrels:
        raise ZooError(f"{qrels_path}: no judgements")
    corpus: dict[str, str] = {}
    path = folder / "corpus.jsonl"
    first: dict[str, int] = {}
    for lineno, rec in jsonl_records(path, ("_id", "text")):
        # Empty documents occur in real collections (Cranfield 471, 995); they stay, as in BEIR/MTEB.
        title = text_field(rec.get("title") or "", path, lineno, "title", allow_empty=True)
        body = text_field(rec["text"], path, lineno, "text", allow_empty=True)
        check_unique(first, str(rec["_id"]), lineno, f"{path}:{lineno}", "_id")
        corpus[str(rec["_id"])] = f"{title} {body}".strip() if title else body
    path = folder / "queries.jsonl"
    queries: dict[str, str] = {}
    first = {}
    for lineno, rec in jsonl_records(path, ("_id", "text")):
        check_unique(first, str(rec["_id"]), lineno, f"{path}:{lineno}", "_id")
        if str(rec["_id"]) in qrels:
            queries[str(rec["_id"])] = text_field(rec["text"], path, lineno, "text")
    unknown_q = next((q for q in qrels if q not in queries), None)
    if unknown_q is not None:
        raise ZooError(f"{qrels_path}: query-id {unknown_q!r} is not in {folder / 'queries.jsonl'}")
    unknown_d = next((d for rels in qrels.values() for d in rels if d not in corpus), None)
    if unknown_d is not None:
        raise ZooError(f"{qrels_path}: corpus-id {unknown_d!r} is not in {folder / 'corpus.jsonl'}")
    return RetrievalData(corpus, queries, qrels)
