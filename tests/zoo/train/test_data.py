"""zoo.train.data: readers, checksums, errors, hard-negative mining, multi-task sampling."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from zoo.errors import ZooError
from zoo.train.data import MultiTaskSampler, NegativesConfig, SourceConfig, TrainSource, load_source


def _src(reader: str, path: str, **kw) -> SourceConfig:
    return SourceConfig(name=kw.pop("name", reader), reader=reader, path=path, **kw)


# READERS =========================================================================================


def test_jsonl_readers_and_checksums(train_data: Path) -> None:
    pairs = load_source(train_data, _src("jsonl-pairs", "pairs/train.jsonl"), seed=0)
    assert pairs.format == "pairs" and len(pairs) == 120
    first = json.loads((train_data / "pairs/train.jsonl").read_text().splitlines()[0])
    assert pairs.columns["query"][0] == first["sentence1"] and pairs.columns["positive"][0] == first["sentence2"]
    digest = hashlib.sha256((train_data / "pairs/train.jsonl").read_bytes()).hexdigest()
    assert pairs.files == {"pairs/train.jsonl": f"sha256:{digest}"}

    swapped = load_source(
        train_data,
        _src("jsonl-pairs", "pairs/train.jsonl", fields={"query": "sentence2", "positive": "sentence1"}),
        seed=0,
    )
    assert swapped.columns["query"] == pairs.columns["positive"]

    trip = load_source(train_data, _src("jsonl-triplets", "triplets/train.jsonl"), seed=0)
    assert trip.format == "triplets" and all(len(n) == 1 for n in trip.columns["negatives"])
    scored = load_source(train_data, _src("jsonl-scored", "scored/train.jsonl"), seed=0)
    assert scored.format == "scored" and set(scored.columns["score"]) <= {0.0, 1.0, 2.0, 3.0, 4.0, 5.0}
    texts = load_source(train_data, _src("jsonl-texts", "texts/train.jsonl"), seed=0)
    assert texts.format == "texts" and len(texts) == 120


def test_conll_texts_reader_joins_each_sentences_first_column(tmp_path: Path) -> None:
    (tmp_path / "ner").mkdir()
    (tmp_path / "ner/train.conll").write_text("北\tB-LOC\n京\tI-LOC\n\n\ne1\tO\n好 O\n\n", encoding="utf-8")
    src = load_source(tmp_path, _src("conll-texts", "ner/train.conll"), seed=0)
    assert src.format == "texts" and src.columns == {"text": ["北京", "e1好"]}
    assert list(src.files) == ["ner/train.conll"]
    from zoo.train.tokenizer import corpus_texts

    assert list(corpus_texts([tmp_path / "ner/train.conll"], 1)) == ["北京"]  # a scratch tokenizer reads them too
    (tmp_path / "ner/empty.conll").write_text("\n\n", encoding="utf-8")
    with pytest.raises(ZooError, match="no sentences"):
        load_source(tmp_path, _src("conll-texts", "ner/empty.conll"), seed=0)
    with pytest.raises(ZooError, match="unknown column"):
        load_source(tmp_path, _src("conll-texts", "ner/train.conll", fields={"text": "x"}), seed=0)


def test_labelled_reader_pairs_different_texts_of_one_label(train_data: Path) -> None:
    src = load_source(train_data, _src("jsonl-labelled", "labelled/train.jsonl"), seed=0)
    label = {json.loads(x)["text"]: json.loads(x)["label"] for x in (train_data / "labelled/train.jsonl").open()}
    assert len(src) > 0
    for q, p in zip(src.columns["query"], src.columns["positive"], strict=True):
        assert q != p and label[q] == label[p]
    assert Counter(src.columns["query"]) == Counter(src.columns["positive"])  # each text is a query and a positive
    again = load_source(train_data, _src("jsonl-labelled", "labelled/train.jsonl"), seed=0)
    assert again.columns == src.columns


def test_beir_qrels_reader_excludes_queries_of_the_evaluated_split(train_data: Path) -> None:
    plain = load_source(train_data, _src("beir-qrels", "beir"), seed=0)
    guarded = load_source(train_data, _src("beir-qrels", "beir", exclude_split="test"), seed=0)
    q0 = "is " + plain.columns["query"][0].split("is ", 1)[1]
    assert len(plain) == 100 and len(guarded) == 99  # q0's text is also the test query qdup
    assert q0 not in guarded.columns["query"]
    assert guarded.notes == ["dropped 1 train queries whose text is also a test query"]
    assert set(guarded.files) == {
        "beir/corpus.jsonl",
        "beir/queries.jsonl",
        "beir/qrels/train.tsv",
        "beir/qrels/test.tsv",
    }
    assert guarded.columns["positive"][0].startswith("On ") and len(guarded.pool) == 120  # title + text; the corpus


def test_beir_titles_reader_reads_only_the_corpus(train_data: Path) -> None:
    src = load_source(train_data, _src("beir-titles", "beir"), seed=0)
    assert len(src) == 120 and list(src.files) == ["beir/corpus.jsonl"]
    assert src.columns["query"][0].startswith("On ") and " and " in src.columns["positive"][0]


def test_max_examples_is_a_seeded_subset(train_data: Path) -> None:
    a = load_source(train_data, _src("jsonl-pairs", "pairs/train.jsonl", max_examples=10), seed=0)
    b = load_source(train_data, _src("jsonl-pairs", "pairs/train.jsonl", max_examples=10), seed=0)
    c = load_source(train_data, _src("jsonl-pairs", "pairs/train.jsonl", max_examples=10), seed=1)
    assert len(a) == 10 and a.columns == b.columns and a.columns != c.columns


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"bad/train.jsonl:2: invalid JSON"),
        ('{"sentence1": "a"}', r"bad/train.jsonl:2: missing field 'sentence2'"),
        ('{"sentence1": "a", "sentence2": " "}', r"bad/train.jsonl:2: field 'sentence2' must be a non-empty string"),
        ("[1, 2]", r"bad/train.jsonl:2: expected a JSON object"),
    ],
)
def test_bad_lines_stop_with_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad/train.jsonl").write_text('{"sentence1": "a", "sentence2": "b"}\n' + line + "\n")
    with pytest.raises(ZooError, match=message):
        load_source(tmp_path, _src("jsonl-pairs", "bad/train.jsonl"), seed=0)


def test_other_input_errors(tmp_path: Path, train_data: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s/train.jsonl").write_text('{"sentence1": "a", "sentence2": "b", "score": "high"}\n')
    with pytest.raises(ZooError, match=r"s/train.jsonl:1: score must be a number"):
        load_source(tmp_path, _src("jsonl-scored", "s/train.jsonl"), seed=0)
    (tmp_path / "s/bin.jsonl").write_bytes(b'{"text": "caf\xe9"}\n')
    with pytest.raises(ZooError, match=r"bin.jsonl:1: not valid UTF-8"):
        load_source(tmp_path, _src("jsonl-texts", "s/bin.jsonl"), seed=0)
    with pytest.raises(ZooError, match="unknown reader 'csv'"):
        load_source(train_data, _src("csv", "pairs/train.jsonl"), seed=0)
    with pytest.raises(ZooError, match="file not found"):
        load_source(train_data, _src("jsonl-pairs", "missing/train.jsonl"), seed=0)
    with pytest.raises(ZooError, match="unknown column 'anchor'"):
        load_source(train_data, _src("jsonl-pairs", "pairs/train.jsonl", fields={"anchor": "x"}), seed=0)
    with pytest.raises(ZooError, match="expected a BEIR folder"):
        load_source(train_data, _src("beir-qrels", "pairs"), seed=0)


# HARD NEGATIVES ==================================================================================


def test_bm25_negatives_are_top_ranked_non_positives(train_data: Path) -> None:
    cfg = _src("beir-qrels", "beir", negatives=NegativesConfig(miner="bm25", k=1, depth=1, skip=0))
    src = load_source(train_data, cfg, seed=0)
    assert src.format == "triplets" and any(
        n.startswith("mined 1 negative(s) per example with bm25") for n in src.notes
    )
    from zoo.registry import create_model

    bm25 = create_model("bm25")
    checked = 0
    for q, p, (neg,) in list(zip(src.columns["query"], src.columns["positive"], src.columns["negatives"], strict=True))[
        :12
    ]:
        assert neg != p
        ranked = bm25.retrieve({"q": q}, {str(i): d for i, d in enumerate(src.pool)}, top_k=len(src.pool))["q"]
        scores = {src.pool[int(d)]: s for d, s in ranked.items() if src.pool[int(d)] != p}
        if scores:  # depth 1: a best-scored document that is not a positive (ties are equally good)
            assert scores.get(neg) == max(scores.values())
            checked += 1
    assert checked >= 8
    again = load_source(train_data, cfg, seed=0)
    assert again.columns == src.columns


def test_mined_negatives_never_include_any_positive_of_the_query(train_data: Path) -> None:
    src = TrainSource(
        "multi",
        "pairs",
        {"query": ["river", "river", "piano"], "positive": ["river valley", "river canyon", "piano drum"]},
        {},
        pool=["river valley", "river canyon", "river island", "piano drum", "piano harp"],
    )
    from zoo.train.data import mine_negatives

    out = mine_negatives(src, NegativesConfig(k=2, depth=10), seed=0)
    for q, negs in zip(out.columns["query"], out.columns["negatives"], strict=True):
        positives = {p for qq, p in zip(src.columns["query"], src.columns["positive"], strict=True) if qq == q}
        assert len(negs) == 2 and not set(negs) & positives and len(set(negs)) == 2


def test_model_miner(train_data: Path) -> None:
    cfg = _src("jsonl-pairs", "pairs/train.jsonl", negatives=NegativesConfig(miner="model:test-random", k=2))
    src = load_source(train_data, cfg, seed=0)
    assert all(
        len(n) == 2 and p not in n for p, n in zip(src.columns["positive"], src.columns["negatives"], strict=True)
    )
    with pytest.raises(ZooError, match="unknown miner"):
        load_source(
            train_data, _src("jsonl-pairs", "pairs/train.jsonl", negatives=NegativesConfig(miner="dpr")), seed=0
        )


# SAMPLING ========================================================================================


def _toy(name: str, n: int) -> TrainSource:
    return TrainSource(
        name, "pairs", {"query": [f"{name} q{i}" for i in range(n)], "positive": [f"{name} d{i}" for i in range(n)]}, {}
    )


def test_sampler_probabilities_follow_size_to_the_alpha() -> None:
    sources = [_toy("a", 400), _toy("b", 100), _toy("c", 25)]
    sampler = MultiTaskSampler(sources, 4, alpha=0.5, seed=0)
    assert np.allclose(sampler.probs, np.array([20, 10, 5]) / 35)
    counts = Counter(sampler.next_batch()[0] for _ in range(3500))
    for i, p in enumerate(sampler.probs):
        assert abs(counts[i] / 3500 - p) < 0.03
    weighted = MultiTaskSampler(sources, 4, alpha=0.0, seed=0)
    assert np.allclose(weighted.probs, [1 / 3] * 3)


def test_sampler_serves_each_example_once_per_epoch_without_duplicate_texts() -> None:
    src = TrainSource(
        "dups",
        "pairs",
        {
            "query": [f"q{i // 3}" for i in range(30)],
            "positive": [f"d{i}" for i in range(30)],
        },  # 3 answers per question
        {},
    )
    sampler = MultiTaskSampler([src], 5, seed=0)
    served = []
    for _ in range(6):
        _, rows = sampler.next_batch()
        assert len(rows) == 5 and len({src.columns["query"][r] for r in rows}) == 5
        served += rows
    assert sorted(served) == list(range(30))
    with pytest.raises(ZooError, match="cannot fill a batch of 11"):
        MultiTaskSampler([src], 11, seed=0).next_batch()  # only 10 distinct questions


def test_sampler_is_seeded_and_resumes_exactly() -> None:
    sources = [_toy("a", 50), _toy("b", 20)]
    full = MultiTaskSampler(sources, 8, seed=3)
    expected = [full.next_batch() for _ in range(25)]
    first = MultiTaskSampler(sources, 8, seed=3)
    got = [first.next_batch() for _ in range(9)]
    state = json.loads(json.dumps(first.state_dict()))  # JSON round trip, as in a checkpoint
    resumed = MultiTaskSampler(sources, 8, seed=3)
    resumed.load_state_dict(state)
    got += [resumed.next_batch() for _ in range(16)]
    assert got == expected
    other = MultiTaskSampler(sources, 8, seed=4)
    assert [other.next_batch() for _ in range(25)] != expected


def test_length_buckets_give_batches_of_similar_lengths_and_every_example_once() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 400, 256)
    src = TrainSource(
        "mixed",
        "pairs",
        {"query": [f"q{i}" for i in range(256)], "positive": [f"{i} " + "x" * n for i, n in enumerate(lengths)]},
        {},
    )

    def spread(sampler: MultiTaskSampler) -> tuple[float, list[int]]:
        batches = [sampler.next_batch()[1] for _ in range(16)]  # one epoch
        widths = [max(src.text_length(i) for i in b) - min(src.text_length(i) for i in b) for b in batches]
        return float(np.mean(widths)), sorted(i for b in batches for i in b)

    plain, served = spread(MultiTaskSampler([src], 16, seed=0))
    bucketed, served_b = spread(MultiTaskSampler([src], 16, seed=0, length_buckets=8))
    assert served == served_b == list(range(256))
    assert bucketed < plain / 4, (bucketed, plain)
    again, _ = spread(MultiTaskSampler([src], 16, seed=0, length_buckets=8))
    assert again == bucketed
