"""zoo.families.baselines: the BM25 tokenizer and the hashing encoder (the cheap models)."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.registry import create_model


@pytest.fixture(scope="module")
def bm25():
    return create_model("bm25")


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("The running cats are jumping", ["run", "cat", "jump"]),  # lower-case, stop words, Snowball stems
        ("中文分词", ["中文", "文分", "分词"]),  # CJK runs become overlapping bigrams
        ("中", ["中"]),  # a lone CJK character stays a unigram
        ("BM25 和 Lucene", ["bm25", "和", "lucen"]),
        ("", []),
    ],
)
def test_bm25_tokenize(bm25, text: str, tokens: list[str]) -> None:
    assert bm25.tokenize(text) == tokens


def test_bm25_top_k_and_chinese(bm25) -> None:
    corpus = {"a": "我爱北京天安门", "b": "北京是首都", "c": "上海的天气"}
    run = bm25.retrieve({"q": "北京"}, corpus, top_k=5)
    assert set(run["q"]) == {"a", "b"}  # "c" shares no bigram: zero scores are dropped
    assert run["q"]["b"] > run["q"]["a"]  # the shorter document wins on equal term frequency
    assert list(bm25.retrieve({"q": "北京"}, corpus, top_k=1)["q"]) == ["b"]


def test_hashing_encoder_sums_word_vectors() -> None:
    m = create_model("test-random")
    a, b, ab, empty = m.encode(["alpha", "beta", "alpha, BETA!", "  ... "])
    expected = m._vec("alpha") + m._vec("beta")
    np.testing.assert_allclose(ab, expected / np.linalg.norm(expected), rtol=1e-5)
    np.testing.assert_allclose(a, m._vec("alpha") / np.linalg.norm(m._vec("alpha")), rtol=1e-5)
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(empty, np.zeros(64, dtype=np.float32))  # no word: a zero vector, no NaN


def test_splade_weights_are_max_pooled_log_saturated_logits() -> None:
    import torch

    from zoo.families.baselines import SpladeEncoder

    model = create_model("splade-tiny.msmarco")
    assert isinstance(model, SpladeEncoder) and model.card.similarity == "dot"
    texts = ["Insulin resistance causes type 2 diabetes.", "what causes diabetes", "The Eiffel tower is in Paris."]
    doc, query, other = model.encode_sparse(texts, kind="document")
    batch = model.tokenizer(texts[:1], return_tensors="pt")
    with torch.no_grad():
        logits = model.model(**batch).logits[0, 1:-1]  # (T, V) without [CLS] and [SEP]
    want = torch.log1p(torch.relu(logits)).amax(dim=0)  # (V,)
    assert set(doc) == {model._terms[j] for j in torch.nonzero(want).flatten().tolist()} - {"[CLS]", "[SEP]"}
    for term in ("insulin", "diabetes", "resistance"):
        assert doc[term] == pytest.approx(float(want[model.tokenizer.convert_tokens_to_ids(term)]), rel=1e-5)
    assert "[CLS]" not in doc and "[SEP]" not in doc and min(doc.values()) > 0

    def dot(a: dict[str, float], b: dict[str, float]) -> float:
        return sum(w * b.get(t, 0.0) for t, w in a.items())

    assert dot(query, doc) > 5 * max(dot(query, other), 1e-3)  # a real first stage: the diabetes text ranks first
    for one, batched in zip(model.encode_sparse(texts, batch_size=1), model.encode_sparse(texts), strict=True):
        assert one.keys() == batched.keys()  # padding in a batch changes nothing but float rounding
        assert all(abs(one[t] - batched[t]) < 1e-5 for t in one)
