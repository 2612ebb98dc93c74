"""Sequence labelling: Chinese word segmentation (CWS) and named-entity recognition (NER) over character CoNLL.

The type owns its data: ``{split}.conll`` in the task folder (the local source's layout), read here.

**Format.** One token and its tag per line, separated by a tab or spaces; a blank line (or several) between
sentences. A token is a character, or a few (weibo-ner keeps ``e1``-style tokens); spans are counted in tokens.
The gold tags of a split decide its kind and scheme:

- untyped ``B M E S``: word segmentation in **BMES** (every token is in a word, so ``O`` is illegal);
- typed ``B-X I-X`` and ``O``: NER in **BIO**;
- typed, with any ``E-X``, ``S-X`` or ``M-X``: NER in **BIOES**, ``M`` read as ``I`` (msra-ner's BMES naming).

**Gold is strict.** A malformed line, a tag outside the scheme, or an illegal sequence -- ``E`` without ``B``,
``I-X`` after ``B-Y`` or ``I-Y``, ``M`` after ``S``, a sentence ending inside a word or entity (BMES, BIOES) -- is a
one-line ``ZooError`` naming the file and line, raised before the model runs. One leniency, in BIO only: ``I-X``
after ``O`` (or first in a sentence) starts an entity, as in IOB1 and as conlleval and seqeval read it. The shared
weibo-ner test split has four such tokens (lines 4450, 5021, 10279, 14155), all where a person mention starts;
refusing them would make the set unreadable while changing no score.

**Predictions are lenient**, read as seqeval's default (conlleval) mode reads them: a chunk starts at ``B``/``S``,
at ``I``/``E`` after ``O``/``E``/``S``, or where the type changes; it ends before ``B``/``S``/``O``, after
``E``/``S``, or where the type changes. A tag that is not ``O`` or ``B I M E S`` (``-type``) is an error of the model.

**Metrics** (0..1, all higher-is-better: ``f1``, ``precision``, ``recall``; main score ``f1``):

- CWS: word P/R/F1 as the SIGHAN bakeoff scorer (Emerson 2005) counts them: words are token spans, a predicted word
  is correct when its span equals a gold word's span; P = correct / predicted words, R = correct / gold words.
- NER: entity-level micro P/R/F1 as seqeval's default mode: an entity is ``(type, start, end)``, correct when the
  gold has the same triple; a type the model never predicts counts as missed entities.
- F1 = 2PR / (P + R) = 2 correct / (predicted + gold); 0 when there is nothing to count (seqeval's zero division).

**Per-sentence statistic.** The stored items hold each sentence's ``correct``, ``pred`` and ``gold`` counts (and
the predicted tags); every metric is a ratio of sums over sentences, so the paired bootstrap of
``harness.significance`` re-weights sentences: F1 of a resample = 2 sum(w * correct) / sum(w * (pred + gold)).

**Models.** Any ``zoo.protocols.Tagger`` whose ``kinds`` include the split's kind. A fine-tuning protocol (an
encoder with a trained head, a Tagger built from the train split) hands its Tagger to :func:`score_tagger`, the
same scorer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.tasks.base import EvalContext, ItemStat, SplitOutput, Task, task_type
from zoo.errors import ZooError
from zoo.protocols import Tagger

__all__ = [
    "SeqLabel",
    "SeqLabelData",
    "Span",
    "read_conll",
    "read_split",
    "infer_scheme",
    "check_gold",
    "chunks",
    "count_spans",
    "prf",
    "score_tagger",
]

Span = tuple[str, int, int]  # (type, first token, one past the last token); type "" for a CWS word
_LINE = re.compile(r"([^\t ]+)[\t ]+([^\t ]+)")
_PREFIXES = frozenset("BIMESO")
_SCHEME_PREFIXES = {"BMES": "BMES", "BIO": "BIO", "BIOES": "BIMESO"}  # what each scheme's gold may use
_BLOCK = 256  # sentences per call of the tagger (progress granularity)


# DATA =============================================================================================


@dataclass(frozen=True)
class SeqLabelData:
    """One split: tokens and gold tags per sentence, the kind and scheme they imply, and the gold spans.

    Attributes:
        path: the CoNLL file.
        tokens: ``(n_sentences,)`` lists of tokens.
        tags: the gold tags, one per token.
        kind: ``"cws"`` or ``"ner"``.
        scheme: ``"BMES"``, ``"BIO"`` or ``"BIOES"``.
        types: the entity types of the gold, sorted (empty for CWS).
        spans: the gold spans of each sentence.
    """

    path: str
    tokens: list[list[str]]
    tags: list[list[str]]
    kind: str
    scheme: str
    types: tuple[str, ...]
    spans: list[set[Span]]


def read_conll(path: Path) -> tuple[list[list[str]], list[list[str]], list[list[int]]]:
    """Tokens, tags and line numbers (1-based) of each sentence of a CoNLL file, the format unchecked beyond lines.

    Raises:
        ZooError: a missing or empty file, a line that is not UTF-8, or one that is not ``<token> <tag>``.
    """
    sentences: tuple[list[list[str]], list[list[str]], list[list[int]]] = ([], [], [])
    current: tuple[list[str], list[str], list[int]] = ([], [], [])
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise ZooError(f"{path}: file not found") from None
    with f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").lstrip("\ufeff" if lineno == 1 else "").rstrip("\r\n\t ")
            except UnicodeDecodeError:
                raise ZooError(f"{path}:{lineno}: not UTF-8 text") from None
            if not line:
                if current[0]:
                    for whole, part in zip(sentences, current, strict=True):
                        whole.append(part)
                    current = ([], [], [])
                continue
            m = _LINE.fullmatch(line)
            if m is None:
                raise ZooError(f"{path}:{lineno}: expected '<token><TAB><tag>', got {line!r}")
            current[0].append(m.group(1))
            current[1].append(m.group(2))
            current[2].append(lineno)
    if current[0]:
        for whole, part in zip(sentences, current, strict=True):
            whole.append(part)
    if not sentences[0]:
        raise ZooError(f"{path}: no sentences")
    return sentences


def _parse(tag: str) -> tuple[str, str] | None:
    """``(prefix, type)`` of a tag (``M`` read as ``I``), or None when it is not ``O`` / ``B I M E S`` [``-type``]."""
    prefix, dash, kind = tag.partition("-")
    if prefix not in _PREFIXES or (dash and not kind) or (prefix == "O" and dash):
        return None
    return ("I" if prefix == "M" else prefix), kind


def infer_scheme(tags: Sequence[Sequence[str]]) -> str:
    """``"BMES"`` when no tag has a type, ``"BIOES"`` when a typed tag uses ``E``, ``S`` or ``M``, else ``"BIO"``."""
    typed = [t for sentence in tags for t in sentence if "-" in t]
    if not typed:
        return "BMES"
    return "BIOES" if any(t[0] in "ESM" for t in typed) else "BIO"


def _illegal(prev: tuple[str, str] | None, cur: tuple[str, str], scheme: str) -> bool:
    """Whether tag ``cur`` may not follow ``prev`` (None: sentence start) in gold of ``scheme``."""
    if scheme == "BIO":  # I-X after O starts an entity (IOB1, conlleval); after B-Y / I-Y it is an error
        return cur[0] == "I" and prev is not None and prev[0] in "BI" and prev[1] != cur[1]
    inside = prev is not None and prev[0] in "BI"  # a word / entity is open
    return (cur[0] not in "IE" or cur[1] != prev[1]) if inside else cur[0] in "IE"


def check_gold(path: Path, tags: Sequence[Sequence[str]], lines: Sequence[Sequence[int]], scheme: str) -> None:
    """Refuse gold tags outside ``scheme`` or in an illegal order (see the module docstring).

    Raises:
        ZooError: ``<path>:<line>: <problem>`` for the first bad tag.
    """
    allowed, cws = _SCHEME_PREFIXES[scheme], scheme == "BMES"
    what = "word" if cws else "entity"
    for sentence, numbers in zip(tags, lines, strict=True):
        prev: tuple[str, str] | None = None
        prev_tag = ""
        for tag, lineno in zip(sentence, numbers, strict=True):
            cur = _parse(tag)
            if cur is None or tag[0] not in allowed or (cur[0] != "O" and bool(cur[1]) == cws):
                need = "B, M, E or S" if cws else f"O or {'/'.join(c for c in allowed if c != 'O')}-<type>"
                raise ZooError(f"{path}:{lineno}: tag {tag!r} is not a {scheme} tag ({need})")
            if _illegal(prev, cur, scheme):
                after = "at the start of a sentence" if prev is None else f"after {prev_tag!r}"
                raise ZooError(f"{path}:{lineno}: illegal {scheme} sequence: {tag!r} {after}")
            prev, prev_tag = cur, tag
        if scheme != "BIO" and prev is not None and prev[0] in "BI":
            raise ZooError(f"{path}:{numbers[-1]}: the sentence ends inside a {what} (last tag {prev_tag!r})")


def read_split(folder: Path, split: str) -> SeqLabelData:
    """Read and check ``<folder>/<split>.conll``.

    Raises:
        ZooError: see :func:`read_conll` and :func:`check_gold`.
    """
    path = folder / f"{split}.conll"
    tokens, tags, lines = read_conll(path)
    scheme = infer_scheme(tags)
    check_gold(path, tags, lines, scheme)
    spans = [chunks(sentence) for sentence in tags]
    types = tuple(sorted({s[0] for sentence in spans for s in sentence} - {""}))
    return SeqLabelData(str(path), tokens, tags, "cws" if scheme == "BMES" else "ner", scheme, types, spans)


# SPANS AND COUNTS =================================================================================


def _ends(prev: tuple[str, str], cur: tuple[str, str]) -> bool:
    """Whether the chunk holding ``prev`` ends before ``cur`` (conlleval)."""
    if prev[0] == "O":
        return False
    return prev[0] in "ES" or cur[0] in "BSO" or prev[1] != cur[1]


def _starts(prev: tuple[str, str], cur: tuple[str, str]) -> bool:
    """Whether ``cur`` starts a chunk (conlleval)."""
    if cur[0] == "O":
        return False
    return cur[0] in "BS" or prev[0] in "OES" or prev[1] != cur[1]


def chunks(tags: Sequence[str]) -> set[Span]:
    """The spans of one sentence's tags, read as conlleval / seqeval's default mode reads them.

    On legal tags (gold) these are exactly the scheme's words or entities; on any other sequence they are what
    seqeval would count.

    Raises:
        ValueError: a tag that is not ``O`` or ``B I M E S`` with an optional ``-type``.
    """
    out: set[Span] = set()
    prev, begin = ("O", ""), 0
    for i, tag in enumerate([*tags, "O"]):  # the sentinel closes the last chunk
        cur = _parse(tag)
        if cur is None:
            raise ValueError(f"tag {tag!r} is not O or B/I/M/E/S[-type]")
        if _ends(prev, cur):
            out.add((prev[1], begin, i))
        if _starts(prev, cur):
            begin = i
        prev = cur
    return out


def count_spans(gold: set[Span], pred: set[Span]) -> tuple[int, int, int]:
    """``(correct, predicted, gold)`` span counts of one sentence."""
    return len(gold & pred), len(pred), len(gold)


def prf(correct: float, predicted: float, gold: float) -> dict[str, float]:
    """Precision, recall and F1 from counts; 0 where a denominator is 0 (seqeval's zero division)."""
    return {
        "precision": correct / predicted if predicted else 0.0,
        "recall": correct / gold if gold else 0.0,
        "f1": 2 * correct / (predicted + gold) if predicted + gold else 0.0,
    }


def _ratio(numerator: str, denominators: tuple[str, ...], scale: float) -> ItemStat:
    """An :class:`ItemStat`: ``scale * sum(w * numerator) / sum(w * denominators)`` per resample, 0 on 0 / 0."""

    def stat(items: Mapping[str, Any], w: np.ndarray) -> np.ndarray:
        num = scale * (w @ np.asarray(items[numerator], np.float64))  # (rows,)
        den = sum(w @ np.asarray(items[k], np.float64) for k in denominators)  # (rows,)
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    return ItemStat(stat, numerator, ("gold",))


# SCORING ==========================================================================================


def _model_name(model: Any) -> str:
    card = getattr(model, "card", None)
    return card.name if card is not None else type(model).__name__


def _predicted_spans(model: Any, data: SeqLabelData, index: int, tags: Sequence[str]) -> set[Span]:
    """Spans of a model's tags for sentence ``index``, refusing a wrong length or an unreadable tag."""
    where = f"sentence {index + 1} of {data.path}"
    if len(tags) != len(data.tokens[index]):
        raise ZooError(
            f"model {_model_name(model)} gave {len(tags)} tags for the {len(data.tokens[index])} tokens of {where}"
        )
    try:
        return chunks(tags)
    except ValueError as e:
        raise ZooError(f"model {_model_name(model)}: {e} ({where})") from None


def _tag_all(tagger: Tagger, data: SeqLabelData, ctx: EvalContext) -> list[list[str]]:
    """The tagger's tags for every sentence, in blocks of ``_BLOCK`` sentences with a progress bar."""
    from tqdm.auto import tqdm

    out: list[list[str]] = []
    n = len(data.tokens)
    with tqdm(total=n, desc=f"{ctx.task_id} tag", unit="sentence", disable=not ctx.progress, leave=False) as bar:
        for start in range(0, n, _BLOCK):
            block = data.tokens[start : start + _BLOCK]
            tags = tagger.tag(block, kind=data.kind, types=data.types, batch_size=ctx.batch_size)  # type: ignore[arg-type]
            if len(tags) != len(block):
                raise ZooError(f"model {_model_name(tagger)} gave {len(tags)} tag sequences for {len(block)} sentences")
            out.extend([str(t) for t in sentence] for sentence in tags)
            bar.update(len(block))
    return out


def score_tagger(tagger: Tagger, data: SeqLabelData, ctx: EvalContext) -> SplitOutput:
    """Tag a split and score it (see the module docstring).

    Args:
        tagger: a model whose ``kinds`` include ``data.kind``.
        data: the split (:func:`read_split`).
        ctx: the evaluation context (batch size, progress, timers: ``tag_s``).

    Returns:
        ``f1``, ``precision``, ``recall``; ``n_items`` = sentences; items ``correct``, ``pred``, ``gold`` (counts per
        sentence) and ``tags`` (the predicted tags).

    Raises:
        ZooError: the tagger gave a wrong number of sentences or tags, or a tag that is not O / B I M E S [-type].
    """
    import time

    t0 = time.perf_counter()
    predicted = _tag_all(tagger, data, ctx)
    ctx.add_time("tag_s", time.perf_counter() - t0)
    counts = np.array(
        [
            count_spans(gold, _predicted_spans(tagger, data, i, tags))
            for i, (gold, tags) in enumerate(zip(data.spans, predicted, strict=True))
        ],
        dtype=np.int64,
    ).reshape(-1, 3)  # (n_sentences, 3): correct, predicted, gold
    correct, pred, gold = (counts[:, j].tolist() for j in range(3))
    scores = prf(sum(correct), sum(pred), sum(gold))
    items = {"correct": correct, "pred": pred, "gold": gold, "tags": predicted}
    return SplitOutput(scores, n_items=len(data.tokens), items=items)


# THE TASK TYPE ====================================================================================


@task_type
class SeqLabel(Task):
    """Word segmentation or NER on character CoNLL, scored by span (SIGHAN words, seqeval entities)."""

    type = "seqlabel"
    main_score = "f1"
    instruction = "Segment the text into words, or label its named entities."
    metrics = ("f1", "precision", "recall")
    requires = (Tagger,)
    item_stats = {
        "f1": _ratio("correct", ("pred", "gold"), 2.0),
        "precision": _ratio("correct", ("pred",), 1.0),
        "recall": _ratio("correct", ("gold",), 1.0),
    }

    def load(self, split: str) -> SeqLabelData:
        """``<spec.path>/<split>.conll``, read and checked (:func:`read_split`)."""
        return read_split(Path(self.spec.path), split)

    def supports(self, model: Any) -> bool:
        """Whether ``model`` is a Tagger of this task's kind (read from the first split's gold tags)."""
        if not isinstance(model, Tagger):
            return False
        return self.load(self.spec.splits[0]).kind in model.kinds

    def requirement(self) -> str:
        """``a Tagger of kind 'cws'`` (or ``'ner'``), for messages."""
        return f"a Tagger of kind {self.load(self.spec.splits[0]).kind!r}"

    def _evaluate_split(self, model: Any, data: SeqLabelData, ctx: EvalContext) -> SplitOutput:
        return score_tagger(model, data, ctx)
