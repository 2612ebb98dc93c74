"""Writers of tiny task folders in the formats harness.datasets.local reads, and a table encoder."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.registry import ModelCard


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def beir(
    folder: Path,
    corpus: Mapping[str, str | tuple[str, str]],
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    split: str = "test",
    header: bool = True,
) -> Path:
    """corpus values are a text or a (title, text) pair."""
    docs = []
    for did, value in corpus.items():
        title, text = value if isinstance(value, tuple) else ("", value)
        docs.append({"_id": did, "title": title, "text": text})
    write_jsonl(folder / "corpus.jsonl", docs)
    write_jsonl(folder / "queries.jsonl", [{"_id": q, "text": t} for q, t in queries.items()])
    lines = ["query-id\tcorpus-id\tscore"] if header else []
    lines += [f"{q}\t{d}\t{r}" for q, rels in qrels.items() for d, r in rels.items()]
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def pair_records(rows: Sequence[tuple[str, str, float]], gold: str) -> list[dict[str, Any]]:
    return [{"sentence1": a, "sentence2": b, gold: g} for a, b, g in rows]


def sts(folder: Path, rows: Sequence[tuple[str, str, float]], split: str = "test") -> Path:
    write_jsonl(folder / f"{split}.jsonl", pair_records(rows, "score"))
    return folder


def pairs(folder: Path, rows: Sequence[tuple[str, str, int]], split: str = "test") -> Path:
    write_jsonl(folder / f"{split}.jsonl", pair_records(rows, "label"))
    return folder


def labelled(folder: Path, splits: Mapping[str, Sequence[tuple[str, Any]]]) -> Path:
    for split, rows in splits.items():
        write_jsonl(folder / f"{split}.jsonl", [{"text": t, "label": y} for t, y in rows])
    return folder


def reranking(folder: Path, rows: Sequence[tuple[str, list[str], list[str]]], split: str = "test") -> Path:
    write_jsonl(folder / f"{split}.jsonl", [{"query": q, "positive": p, "negative": n} for q, p, n in rows])
    return folder


# The three tasks of the ``tiny_data`` fixture ===================================================

STS_ROWS = [
    ("the cat sat on the mat", "the cat sat on the mat", 5.0),
    ("a man plays the guitar", "a man is playing a guitar", 4.0),
    ("the cat sat on the mat", "the cat lay on the rug", 3.0),
    ("a man plays the guitar", "a woman plays the violin", 2.0),
    ("heavy rain in the north", "bright sunny weather down south", 0.5),
    ("stocks fell sharply today", "my dog likes long walks", 0.0),
]

CORPUS = {
    "d1": ("Cats", "cats purr and sleep in the sun"),
    "d2": "dogs bark at the mailman every morning",
    "d3": "the stock market fell sharply on monday",
    "d4": "heavy rain flooded the northern valley",
    "d5": "a recipe for fresh tomato soup",
    "d6": "the guitar has six strings",
}
QUERIES = {  # each query is exactly the text of its relevant document
    "q1": "Cats cats purr and sleep in the sun",
    "q2": "the stock market fell sharply on monday",
    "q3": "the guitar has six strings",
}
QRELS = {"q1": {"d1": 1}, "q2": {"d3": 1, "d5": 0}, "q3": {"d6": 2}}

PAIR_ROWS = [
    ("the cat sat on the mat", "the cat sat on the mat", 1),
    ("a man plays the guitar", "a man plays a guitar", 1),
    ("he bought a new car", "he purchased a new car", 1),
    ("stocks fell sharply today", "my dog likes long walks", 0),
    ("heavy rain in the north", "bright sunny weather down south", 0),
    ("the soup is hot", "quantum physics lecture notes", 0),
]


def sts_folder(folder: Path) -> Path:
    return sts(folder, STS_ROWS)


def retrieval_folder(folder: Path) -> Path:
    return beir(folder, CORPUS, {**QUERIES, "q9": "an unjudged query"}, QRELS)


def pairs_folder(folder: Path) -> Path:
    return pairs(folder, PAIR_ROWS)


# A model whose embeddings are given by a table ===================================================

TABLE_CARD = ModelCard(name="table", family="tests", revision="r0", source="tests.taskdata.TableEncoder")


class TableEncoder:
    """An ``Encoder`` returning fixed vectors per text: makes cosines exactly hand-computable."""

    def __init__(self, table: Mapping[str, Sequence[float]], card: ModelCard = TABLE_CARD) -> None:
        self.card = card
        self.table = {t: np.asarray(v, dtype=np.float32) for t, v in table.items()}
        self.calls: list[tuple[str, list[str]]] = []

    def encode(self, texts: Sequence[str], *, kind: str = "document", batch_size: int = 32) -> np.ndarray:
        self.calls.append((kind, list(texts)))
        return np.stack([self.table[t] for t in texts])


class TableRanker:
    """A ``Ranker`` scoring documents from a table (query ignored)."""

    def __init__(self, scores: Mapping[str, float]) -> None:
        self.card = ModelCard(name="table-ranker", family="tests", revision="r0", source="tests", similarity=None)
        self.scores = dict(scores)

    def score(self, query: str, docs: Sequence[str]) -> np.ndarray:
        return np.asarray([self.scores[d] for d in docs], dtype=np.float64)


def unit(cos: float) -> list[float]:
    """A 2-d unit vector whose cosine with (1, 0) is ``cos``."""
    return [cos, float(np.sqrt(max(0.0, 1.0 - cos * cos)))]
