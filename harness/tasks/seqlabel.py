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

**Boundary Information Metric** (``bim``; word segmentation run by a TokenEncoder only; Semi-BABERT, Zhang et al.
2024, arXiv:2404.05560, proposes a training-free measure of how much word-boundary information a model's character
states hold; its exact formula was not at hand, so this is ours): over the scored sentences' *adjacent* character
pairs ``(i, i + 1)`` with the model's frozen states ``h``,

    bim = mean cos(h_i, h_i+1) over pairs inside a gold word - mean cos(h_i, h_i+1) over pairs across a word boundary

(-2..2, higher-is-better: states change more across a boundary than within a word). Adjacent pairs only, so the
two groups are compared at the same distance (pairs further apart are more often across a boundary and less similar
for that reason alone). Items per sentence: the sums and counts of both groups, so a bootstrap resample's bim is a
difference of two ratios of sums. No training: it ranks encoders without the probe's head.

**Models.** Any ``zoo.protocols.Tagger`` whose ``kinds`` include the split's kind. A ``zoo.protocols.TokenEncoder``
that is not a Tagger runs through the task's fine-tuning protocol, so far one: a linear probe on its frozen
per-character states, trained on the train split (``spec.train_split``, else ``train.conll`` in the folder) or, where
there is none, on a seeded half of each evaluated split whose other half is scored
(``harness/tasks/seqlabel_probe.py`` has the details). A train split's gold is checked for its tags but not
for their order: a head learns from tags, and weibo-ner's train split has one ``I-PER.NOM`` right after
``I-PER.NAM`` (line 1266), which the strict reader refuses. The probe is a Tagger handed to :func:`score_tagger`, the
same scorer; its settings, training split and sizes are the record's ``task_options`` (``protocol``, ``probe``),
so a stored record made another way is recomputed. The spec option ``protocol`` names the protocol
(``"linear-probe"``, the default; the seam where full fine-tuning would go).
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
from zoo.protocols import Tagger, TokenEncoder

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
PROTOCOLS = ("linear-probe",)  # how a TokenEncoder is turned into a Tagger (harness/tasks/seqlabel_probe.py)


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
        index: for a subset of a file (the probe's seeded half), each sentence's 0-based number in the file.
    """

    path: str
    tokens: list[list[str]]
    tags: list[list[str]]
    kind: str
    scheme: str
    types: tuple[str, ...]
    spans: list[set[Span]]
    index: list[int] | None = None


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


def check_gold(
    path: Path, tags: Sequence[Sequence[str]], lines: Sequence[Sequence[int]], scheme: str, *, order: bool = True
) -> None:
    """Refuse gold tags outside ``scheme`` or, with ``order``, in an illegal order (see the module docstring).

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
            if order and _illegal(prev, cur, scheme):
                after = "at the start of a sentence" if prev is None else f"after {prev_tag!r}"
                raise ZooError(f"{path}:{lineno}: illegal {scheme} sequence: {tag!r} {after}")
            prev, prev_tag = cur, tag
        if order and scheme != "BIO" and prev is not None and prev[0] in "BI":
            raise ZooError(f"{path}:{numbers[-1]}: the sentence ends inside a {what} (last tag {prev_tag!r})")


def read_split(folder: Path, split: str, *, order: bool = True) -> SeqLabelData:
    """Read and check ``<folder>/<split>.conll``; ``order=False`` checks the tags but not their order (training data).

    Raises:
        ZooError: see :func:`read_conll` and :func:`check_gold`.
    """
    path = folder / f"{split}.conll"
    tokens, tags, lines = read_conll(path)
    scheme = infer_scheme(tags)
    check_gold(path, tags, lines, scheme, order=order)
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


# BOUNDARY INFORMATION METRIC ====================================================================


def boundary_pairs(states: np.ndarray, spans: set[Span]) -> tuple[float, int, float, int]:
    """``(inside sum, inside count, across sum, across count)`` of the cosines of adjacent characters' states
    ``(T, H)`` of one sentence, split by its gold words (``spans``: ``(type, start, end)``, end exclusive)."""
    if len(states) < 2:
        return 0.0, 0, 0.0, 0
    x = states.astype(np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    cos = (x[:-1] * x[1:]).sum(axis=1)  # (T - 1,): pair (i, i + 1)
    inside = np.zeros(len(cos), dtype=bool)
    for _, start, end in spans:
        inside[start : end - 1] = True  # pairs (start, start + 1) .. (end - 2, end - 1)
    return float(cos[inside].sum()), int(inside.sum()), float(cos[~inside].sum()), int((~inside).sum())


def bim_items(states: Sequence[np.ndarray], data: SeqLabelData) -> dict[str, list[Any]]:
    """Per sentence ``bim_in``, ``bim_in_n``, ``bim_out``, ``bim_out_n`` (:func:`boundary_pairs`)."""
    rows = [boundary_pairs(x, spans) for x, spans in zip(states, data.spans, strict=True)]
    return {key: [r[j] for r in rows] for j, key in enumerate(("bim_in", "bim_in_n", "bim_out", "bim_out_n"))}


def bim(items: Mapping[str, Any], w: np.ndarray) -> np.ndarray:
    """``bim`` of each row of sentence weights ``w (rows, n)``: inside mean minus across mean (0 for an empty group)."""

    def mean(total: str, count: str) -> np.ndarray:
        num = w @ np.asarray(items[total], np.float64)
        den = w @ np.asarray(items[count], np.float64)
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    return mean("bim_in", "bim_in_n") - mean("bim_out", "bim_out_n")


# SCORING ==========================================================================================


def _model_name(model: Any) -> str:
    card = getattr(model, "card", None)
    return card.name if card is not None else type(model).__name__


def _predicted_spans(model: Any, data: SeqLabelData, index: int, tags: Sequence[str]) -> set[Span]:
    """Spans of a model's tags for sentence ``index``, refusing a wrong length or an unreadable tag."""
    where = f"sentence {(data.index[index] if data.index else index) + 1} of {data.path}"
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
    metrics = ("f1", "precision", "recall", "bim")
    requires = (Tagger, TokenEncoder)
    item_stats = {
        "f1": _ratio("correct", ("pred", "gold"), 2.0),
        "precision": _ratio("correct", ("pred",), 1.0),
        "recall": _ratio("correct", ("gold",), 1.0),
        "bim": ItemStat(bim, "bim_in", ("gold",)),
    }

    def load(self, split: str) -> SeqLabelData:
        """``<spec.path>/<split>.conll``, read and checked (:func:`read_split`), once per task object (the kind,
        the probe's sizes and the evaluation all read it)."""
        return self._read(split, order=True)

    def _read(self, split: str, *, order: bool) -> SeqLabelData:
        loaded: dict[tuple[str, bool], SeqLabelData] = self.__dict__.setdefault("_loaded", {})
        if (split, order) not in loaded:
            loaded[split, order] = read_split(Path(self.spec.path), split, order=order)
        return loaded[split, order]

    def _kind(self) -> str:
        return self.load(self.spec.splits[0]).kind

    def _tags(self, model: Any) -> bool:
        """Whether ``model`` tags this task's kind itself (else a TokenEncoder goes through the probe)."""
        return isinstance(model, Tagger) and self._kind() in model.kinds

    def supports(self, model: Any) -> bool:
        """Whether ``model`` is a Tagger of this task's kind (read from the first split's gold tags) or a
        TokenEncoder (probed)."""
        return self._tags(model) or isinstance(model, TokenEncoder)

    def requirement(self) -> str:
        """``a Tagger of kind 'cws' or a TokenEncoder`` (or ``'ner'``), for messages."""
        return f"a Tagger of kind {self._kind()!r} or a TokenEncoder"

    # THE PROBE PROTOCOL ==========================================================================

    def _train_split(self) -> str | None:
        """The split the probe trains on: ``spec.train_split``, else ``train`` when the folder has it; None when
        the probe must use a seeded half of each evaluated split."""
        split = self.spec.train_split or ("train" if (Path(self.spec.path) / "train.conll").exists() else None)
        return None if split in self.spec.splits else split

    def _probe_options(self) -> dict[str, Any]:
        """``{"protocol", "probe"}``: the probe's settings, the training split and its sizes (recorded)."""
        from harness.tasks.seqlabel_probe import PROBE, split_half

        protocol = self.spec.options.get("protocol", PROTOCOLS[0])
        if protocol not in PROTOCOLS:
            raise ZooError(f"task {self.spec.id}: unknown protocol {protocol!r} (one of {', '.join(PROTOCOLS)})")
        settings = {k: v for k, v in PROBE.to_dict().items() if k != "protocol"}
        train = self._train_split()
        if train is not None:
            n_train = len(self._read(train, order=False).tokens)
            n_eval = {split: len(self.load(split).tokens) for split in self.spec.splits}
            return {"protocol": protocol, "probe": {**settings, "train": train, "n_train": n_train, "n_eval": n_eval}}
        halves = {split: split_half(len(self.load(split).tokens), PROBE.seed) for split in self.spec.splits}
        split_info = {
            "train": "seeded half of each evaluated split",
            "n_train": {split: len(a) for split, (a, _) in halves.items()},
            "n_eval": {split: len(b) for split, (_, b) in halves.items()},
        }
        return {"protocol": protocol, "probe": {**settings, **split_info}}

    def run_options(self, model: Any) -> dict[str, Any]:
        """The spec's options, plus the probe's (:meth:`_probe_options`) for a TokenEncoder that is not a Tagger."""
        return {**self.spec.options, **({} if self._tags(model) else self._probe_options())}

    def option_sets(self) -> list[dict[str, Any]]:
        """The spec's options (a Tagger), and those of a probe run."""
        return [dict(self.spec.options), {**self.spec.options, **self._probe_options()}]

    def _evaluate_split(self, model: Any, data: SeqLabelData, ctx: EvalContext) -> SplitOutput:
        if self._tags(model):
            return score_tagger(model, data, ctx)
        from harness.tasks.seqlabel_probe import PROBE, encode_states, fit_probe, split_half, subset

        train_split = self._train_split()
        if train_split is None:
            train_rows, eval_rows = split_half(len(data.tokens), PROBE.seed)
            train, scored = subset(data, train_rows), subset(data, eval_rows)
        else:
            train, scored = self._read(train_split, order=False), data
        if train.scheme != data.scheme:
            raise ZooError(f"{train.path}: {train.scheme} tags, but {data.path} has {data.scheme}: cannot train on it")
        probe = fit_probe(model, train, ctx, PROBE)
        if data.kind != "cws":
            return score_tagger(probe, scored, ctx)
        states = encode_states(model, scored.tokens, ctx, "encode")  # once: for the probe's tags and for bim
        out = score_tagger(_Precomputed(probe, scored.tokens, states), scored, ctx)
        items = bim_items(states, scored)
        out.scores["bim"] = float(bim(items, np.ones((1, len(scored.tokens))))[0])
        assert out.items is not None
        out.items.update(items)
        return out


class _Precomputed:
    """A probe tagging the sentences of a split from states computed once (the same objects ``score_tagger``
    passes back in blocks), so the split is encoded once for its tags and its ``bim``."""

    def __init__(self, probe: Any, sentences: Sequence[Sequence[str]], states: Sequence[np.ndarray]) -> None:
        self.probe, self.card, self.kinds = probe, probe.card, probe.kinds
        self._states = {id(s): x for s, x in zip(sentences, states, strict=True)}

    def tag(self, sentences: Sequence[Sequence[str]], **_: Any) -> list[list[str]]:
        return self.probe.tag_states([self._states[id(s)] for s in sentences], sentences)
