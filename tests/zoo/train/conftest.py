"""Fixtures of the training tests: a synthetic data dir and tiny random-init GTE folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

WORDS = (
    "river mountain forest desert ocean island valley canyon glacier volcano meadow swamp "
    "piano violin guitar drum flute trumpet cello harp organ banjo "
    "apple banana cherry grape lemon mango orange peach pear plum "
    "doctor teacher farmer pilot baker lawyer painter singer dancer writer"
).split()


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def make_data(root: Path, *, seed: int = 0) -> Path:
    """A data dir whose pairs are learnable: a query and its positive share their two topic words."""
    rng = np.random.default_rng(seed)
    topics = [tuple(rng.choice(WORDS, 2, replace=False)) for _ in range(120)]
    pairs = [{"sentence1": f"what about {a} and {b}", "sentence2": f"{a} {b} are described here"} for a, b in topics]
    _write_jsonl(root / "pairs" / "train.jsonl", pairs)
    triplets = [
        {"anchor": f"a {a} near a {b}", "positive": f"the {b} is by the {a}", "negative": f"no {c} at all"}
        for (a, b), c in zip(topics, rng.choice(WORDS, len(topics)), strict=True)
    ]
    _write_jsonl(root / "triplets" / "train.jsonl", triplets)
    scored = [
        {"sentence1": f"{a} {b}", "sentence2": f"{a} {b if s > 2 else c}", "score": float(s)}
        for (a, b), c, s in zip(topics, rng.choice(WORDS, len(topics)), rng.integers(0, 6, len(topics)), strict=True)
    ]
    _write_jsonl(root / "scored" / "train.jsonl", scored)
    _write_jsonl(root / "texts" / "train.jsonl", [{"text": f"{a} with {b}"} for a, b in topics])
    labelled = [{"text": f"I would like a {w} please {i}", "label": w[0]} for i, w in enumerate(WORDS)]
    _write_jsonl(root / "labelled" / "train.jsonl", labelled)
    beir = root / "beir"
    docs = [{"_id": f"d{i}", "title": f"On {a}", "text": f"{a} and {b} together"} for i, (a, b) in enumerate(topics)]
    _write_jsonl(beir / "corpus.jsonl", docs)
    queries = [{"_id": f"q{i}", "text": f"is {a} related to {b}"} for i, (a, b) in enumerate(topics)]
    queries.append({"_id": "qdup", "text": queries[0]["text"]})  # a test query repeating train query q0
    _write_jsonl(beir / "queries.jsonl", queries)
    (beir / "qrels").mkdir()
    (beir / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(100))
    )
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "qdup\td0\t1\nq110\td110\t1\n")
    return root


@pytest.fixture(scope="session")
def train_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic data dir (read-only for tests)."""
    return make_data(tmp_path_factory.mktemp("train-data"))


def _tiny_folder(root: Path, dropout: float) -> Path:
    from zoo.family import ScratchConfig
    from zoo.registry import get_family
    from zoo.train.tokenizer import corpus_texts, train_wordpiece

    data = make_data(root / "data")
    texts = corpus_texts(sorted(data.rglob("*.jsonl")), 5000)
    tok = train_wordpiece(texts, vocab_size=400)
    cfg = ScratchConfig(
        hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, max_position=64, dropout=dropout
    )
    return get_family("gte").scratch(root / "model", tok, cfg, seed=0)


@pytest.fixture(scope="session")
def tiny_init(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer 64-d random-init GTE folder without dropout (deterministic forward passes)."""
    return _tiny_folder(tmp_path_factory.mktemp("tiny-init"), dropout=0.0)


@pytest.fixture(scope="session")
def tiny_init_dropout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same with dropout 0.1 (training depends on the RNG)."""
    return _tiny_folder(tmp_path_factory.mktemp("tiny-init-dropout"), dropout=0.1)


@pytest.fixture(autouse=True)
def _models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test registers trained models in its own models dir."""
    folder = tmp_path / "models"
    monkeypatch.setenv("ZOOBENCH_MODELS", str(folder))
    return folder
