"""BABERT: boundary-aware BERT for Chinese sequence labelling: its unsupervised boundary statistics and its model.

Paper: Jiang, Long, Zhang, Xie, Zhang & Zhang (2022), Unsupervised Boundary-Aware Language Model Pretraining for
Chinese Sequence Labeling, Findings of EMNLP 2022, arXiv:2210.15231. BABERT continues BERT pre-training with MLM
plus a regression loss that makes an intermediate layer's character states predict per-character *boundary
features*, computed once from raw text. This file holds that computation (the statistics section) and the ``babert``
family (the model section): a BERT encoder with an MLM head and a boundary head, trained by the ``babert`` loss of
``zoo.train.losses`` (MLM + weight x MSE of the boundary head against the features).

Notable features:
- n-grams of 1..``max_n`` symbols (characters; a CoNLL token such as weibo-ner's ``e1`` is one symbol) are counted
  inside sentences only: an n-gram never crosses a sentence edge.
- **Probabilities** are per length: ``p(g) = c(g) / T_n`` with ``T_n`` the number of n-gram occurrences of length
  ``n = |g|`` in the corpus, so the n-grams of each length form a distribution (a shared denominator, e.g. the
  character count, would shift every PMI by a constant that depends on n).
- **Internal cohesion** is the PMI of the n-gram's *weakest binary split* (BABERT's cohesion as shared/FAMILIES.md
  (g) and issue 14 describe it, and the usual rule of the new-word-discovery literature it builds on; the paper's
  own section was not at hand to check the split rule and the denominators [paper?])::

      PMI(g) = min_{1 <= m < n} log [ p(g) / (p(g[:m]) * p(g[m:])) ]     (nats; defined for n >= 2)

  The minimum, because an n-gram is only as cohesive as its loosest seam: a strongly bound word plus an arbitrary
  neighbouring character would look cohesive under the maximum, the mean or a fixed split.
- **External freedom** is the branching entropy of the symbol just left (right) of the n-gram's occurrences::

      LE(g) = - sum_x p(x | g) log p(x | g),   p(x | g) = c(x g) / c(g)      (nats)

  where x runs over the preceding symbols and the sentence start counts as one more symbol, ``<s>``: all
  occurrences at a sentence start pool into that single outcome (likewise ``</s>`` on the right). A fragment seen
  only sentence-initially thus has LE = 0, the same as one always preceded by one character; the alternative
  (every edge a distinct outcome) would make a sentence start look maximally free and rank short sentences'
  first n-grams as words for no reason but the corpus's sentence splitting.
- **Per-character boundary features**: for every n-gram (n <= ``max_n``) that contains a character, its statistics
  go into the slot of (n, the character's position k in the n-gram): ``(LE, RE)`` for n = 1 and
  ``(PMI, LE, RE)`` for n >= 2, so F = 2 + 3 * (2 + ... + max_n) (29 for max_n = 4); :attr:`BoundaryStats.layout`
  names every column. A slot whose n-gram does not exist (it would cross the sentence edge, or was never seen in
  the corpus) is NaN raw and 0 normalised. The paper's exact grouping is not reproduced here [paper?]: one slot
  per (n, position) keeps every n-gram's numbers apart, and can be pooled into begin / middle / end groups later.
- **Normalisation** (default): each column is z-scored, ``(x - mean) / std``, with the mean and the population std
  of its statistic over the corpus's n-gram *occurrences* of that length (token-weighted, so over the corpus's
  characters every filled column has mean 0 and variance 1: what an MSE regression target wants); a missing slot
  is then the mean, 0. A statistic that is constant over the corpus gets std 1.
- Vectorised with numpy: symbols become integer ids, an n-gram's key is its (n-1)-prefix's id times the base plus
  its last symbol's id, so keys stay below (types x vocabulary) for any n; counting is ``np.unique`` on those keys,
  entropies a ``bincount`` over (n-gram, neighbour) pair keys. No Python loop runs per n-gram or per character
  beyond reading the symbols into ids.
- **The model** (:class:`BABERTModel`, family ``babert``): a transformers ``BertModel`` (GTE's, ``zoo.families.gte``:
  mean pooling, the same ``Encoder`` / ``TokenEncoder`` runtime, :class:`zoo.families.gte.GTEEncoder`) with two heads:
  ``mlm`` (BERT's prediction-head transform, dense + activation + LayerNorm, then a decoder tied to the word
  embeddings) and ``boundary``, ``Linear(H, F)`` over the states of layer ``boundary_layer``, predicting each
  token's boundary feature vector. The default layer is the middle one, ``num_layers // 2`` (2 of 4, 6 of 12): the
  paper puts the regression on an intermediate layer [paper? for the index]; the middle leaves the upper layers to
  MLM and keeps the boundary signal below the last layer that token probes (seqlabel, BIM) read.
- **Character vocabulary** (from scratch): the scratch tokenizer is the engine's WordPiece trainer with no merges
  (``vocab_size = 0``: the special tokens and the alphabet of the tokenizer corpora only). BERT's normaliser puts
  every CJK character in a word of its own, so a Chinese character is one token; a run of Latin letters or digits
  is one pre-tokenized word and becomes one token per character, the first bare (``2``), the rest in WordPiece's
  word-inner form (``##0 ##2 ##6``); lower-casing follows ``lowercase``. A word holding a character outside the
  alphabet is one ``[UNK]``. The scratch builder refuses a vocabulary with a multi-character token.
- **Boundary targets** are computed over the model's own token sequences: the statistics are
  :func:`boundary_statistics` over the token ids (as strings) of the stage's training texts (special tokens and
  pads dropped, cut at the stage's ``max_length`` as the steps cut them), so every real token has its feature
  vector and the targets are a function of the data and the tokenizer only (a resumed run recomputes the same).

Citations:
    Jiang, Long, Zhang, Xie, Zhang & Zhang (2022), Unsupervised Boundary-Aware Language Model Pretraining for Chinese
    Sequence Labeling, Findings of EMNLP 2022, arXiv:2210.15231.
    Zhang, Long, Zhang et al. (2024), Chinese Sequence Labeling with Semi-Supervised Boundary-Aware
    Language Model Pre-training, LREC-COLING 2024, arXiv:2404.05560.

BibTeX::

    @inproceedings{jiang-etal-2022-unsupervised,
      title = {Unsupervised Boundary-Aware Language Model Pretraining for {C}hinese Sequence Labeling},
      author = {Jiang, Peijie and Long, Dingkun and Zhang, Yanzhao and Xie, Pengjun and Zhang, Meishan and
                Zhang, Min},
      booktitle = {Findings of the Association for Computational Linguistics: EMNLP 2022},
      year = {2022}, eprint = {2210.15231}, archivePrefix = {arXiv}}
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from zoo.checkpoints import resolve
from zoo.errors import ZooError
from zoo.families.gte import GTEEncoder, GTEModel
from zoo.family import Family, ScratchConfig
from zoo.weights import WEIGHTS, load_weights

__all__ = [
    "BoundaryStats",
    "NgramStats",
    "boundary_statistics",
    "BABERTModel",
    "BABERTScratchConfig",
    "FAMILY",
    "BOUNDARY",
    "CITATION",
]

CITATION = (
    "Jiang, Long, Zhang, Xie, Zhang & Zhang (2022), Unsupervised Boundary-Aware Language Model Pretraining for "
    "Chinese Sequence Labeling, Findings of EMNLP 2022, arXiv:2210.15231."
)
BOUNDARY = "<s>"  # symbol id 0: the sentence edge, as a left (start) or right (end) neighbour
Sentence = str | Sequence[str]  # a string is a sentence of characters; a sequence holds one symbol per element


# BOUNDARY STATISTICS ==============================================================================================


class NgramStats(NamedTuple):
    """The statistics of one n-gram (PMI is NaN for a single symbol)."""

    count: int
    pmi: float
    left_entropy: float
    right_entropy: float


@dataclass(frozen=True, eq=False)
class BoundaryStats:
    """Counts, PMI and branching entropies of every n-gram of a corpus, and the per-character features they give.

    Per length n (1..max_n) the n-gram *types* are rows of sorted tables; every dict below is keyed by n and holds
    ``(U_n,)`` arrays over those types (see the module docstring for the formulas).

    Attributes:
        max_n: the longest n-gram counted.
        symbols: the vocabulary; id i is ``symbols[i]``, and id 0 is the sentence edge :data:`BOUNDARY`.
        keys: ``(U_n,)`` int64 sorted keys, ``key = id_{n-1}(prefix) * base + id(last symbol)`` (n = 1: the symbol
            id), where ``id_{n-1}`` is the prefix's row in the (n-1) table.
        counts: ``(U_n,)`` int64 occurrences.
        totals: ``T_n``, the occurrences of length n (the sum of ``counts[n]``).
        pmi: ``(U_n,)`` float64, nats; NaN for n = 1.
        left_entropy: ``(U_n,)`` float64, nats.
        right_entropy: ``(U_n,)`` float64, nats.
        mean: ``(F,)`` float64, each feature column's mean over the corpus (normalisation).
        std: ``(F,)`` float64, each column's population std (1 where the statistic is constant).
    """

    max_n: int
    symbols: tuple[str, ...]
    keys: dict[int, np.ndarray]
    counts: dict[int, np.ndarray]
    totals: dict[int, int]
    pmi: dict[int, np.ndarray]
    left_entropy: dict[int, np.ndarray]
    right_entropy: dict[int, np.ndarray]
    mean: np.ndarray
    std: np.ndarray

    @property
    def base(self) -> int:
        """The radix of the packed keys: the vocabulary size including the edge symbol."""
        return len(self.symbols)

    @property
    def layout(self) -> list[tuple[int, int, str]]:
        """``(n, position in the n-gram, statistic)`` of each feature column, in order; statistic in pmi/le/re."""
        return _layout(self.max_n)

    def ngram_ids(self, n: int) -> np.ndarray:
        """``(U_n, n)`` int64 symbol ids of the n-gram types, row i being the type of ``counts[n][i]``."""
        if n not in self.keys:
            raise ZooError(f"n-gram length must be 1..{self.max_n}, got {n}")
        ids = self.keys[1][:, None]
        for k in range(2, n + 1):
            prefix, last = np.divmod(self.keys[k], self.base)
            ids = np.concatenate([ids[prefix], last[:, None]], axis=1)
        return ids

    def lookup(self, ngram: Sentence) -> NgramStats | None:
        """The statistics of one n-gram (1 <= n <= max_n), or None when the corpus never has it.

        Example:
            >>> stats = boundary_statistics(["北京人", "北京市"], max_n=2)
            >>> stats.lookup("北京").count
            2
        """
        n = len(ngram)
        if not 1 <= n <= self.max_n:
            raise ZooError(f"n-gram length must be 1..{self.max_n}, got {n}")
        rows = _lookup_rows(self._encode([ngram]), self.keys, self.base, n)
        row = int(rows[n][1])  # position 0 is the leading edge
        if row < 0:
            return None
        return NgramStats(
            int(self.counts[n][row]),
            float(self.pmi[n][row]),
            float(self.left_entropy[n][row]),
            float(self.right_entropy[n][row]),
        )

    def features(self, sentence: Sentence, *, normalize: bool = True) -> np.ndarray:
        """Boundary features of each character of one sentence (seen in the corpus or not).

        Args:
            sentence: a string of characters, or a sequence of symbols.
            normalize: z-score each column with the corpus's mean and std (missing slots 0); else raw values
                (nats; missing slots NaN).

        Returns:
            ``(len(sentence), F)`` float32, columns as :attr:`layout`.
        """
        return self.features_many([sentence], normalize=normalize)[0]

    def features_many(self, sentences: Sequence[Sentence], *, normalize: bool = True) -> list[np.ndarray]:
        """:meth:`features` of many sentences in one vectorised pass: a list of ``(len_i, F)`` float32 arrays."""
        if not sentences:
            return []
        seq = self._encode(sentences)
        rows = _lookup_rows(seq, self.keys, self.base, self.max_n)
        raw = _scatter_features(rows, self.max_n, self.pmi, self.left_entropy, self.right_entropy)  # (L, F)
        if normalize:
            raw = np.nan_to_num((raw - self.mean) / self.std, nan=0.0)
        lengths = np.array([len(s) for s in sentences], dtype=np.int64)
        starts = np.cumsum(lengths + 1) - lengths  # each sentence follows its leading edge symbol
        chars = raw[_positions(starts, lengths)].astype(np.float32)
        return np.split(chars, np.cumsum(lengths)[:-1])

    @cached_property
    def _index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.symbols) if i}

    def _encode(self, sentences: Sequence[Sentence]) -> np.ndarray:
        index = self._index
        return _join([[index.get(s, 0) for s in sentence] for sentence in sentences])  # unknown: like an edge


def boundary_statistics(sentences: Sequence[Sentence], max_n: int = 4) -> BoundaryStats:
    """Count every n-gram (n <= max_n) of a corpus and compute its PMI and left / right branching entropy.

    Args:
        sentences: the corpus; each sentence a string of characters or a sequence of symbols (empty ones are
            skipped). N-grams do not cross sentences.
        max_n: the longest n-gram, at least 2.

    Returns:
        The statistics, and the normalisation of :meth:`BoundaryStats.features`.

    Raises:
        ZooError: ``max_n < 2`` or a corpus without a single symbol.

    Example:
        >>> stats = boundary_statistics(["北京人", "北京市", "市北京"], max_n=3)
        >>> stats.features("北京市").shape
        (3, 17)
    """
    if not isinstance(max_n, int) or max_n < 2:
        raise ZooError(f"boundary statistics need max_n >= 2 (PMI splits an n-gram in two), got {max_n!r}")
    if not any(len(s) for s in sentences):
        raise ZooError(f"boundary statistics need a non-empty corpus, got {len(sentences)} sentences and no symbol")
    symbols = (BOUNDARY, *sorted({s for sentence in sentences for s in sentence}))
    index = {s: i for i, s in enumerate(symbols)}
    seq = _join([[index[s] for s in sentence] for sentence in sentences])
    base = len(symbols)
    keys, rows, counts = _count_ngrams(seq, max_n, base)
    totals = {n: int(c.sum()) for n, c in counts.items()}
    log_p = {n: np.log(c) - np.log(max(totals[n], 1)) for n, c in counts.items()}  # (U_n,) log p(g)
    pmi = {1: np.full(len(counts[1]), np.nan)}
    left, right = {}, {}
    for n in range(1, max_n + 1):
        starts = np.flatnonzero(rows[n] >= 0)  # (T_n,) occurrence positions in seq
        if n > 1:
            pmi[n] = _min_split_pmi(rows, log_p, n, starts)
        left[n] = _branching_entropy(rows[n][starts], seq[starts - 1], counts[n], base)
        right[n] = _branching_entropy(rows[n][starts], seq[starts + n], counts[n], base)
    mean, std = _column_moments(max_n, counts, pmi, left, right)
    return BoundaryStats(max_n, symbols, keys, counts, totals, pmi, left, right, mean, std)


def _join(encoded: Sequence[Sequence[int]]) -> np.ndarray:
    """``(L,)`` int64: the sentences' ids, each preceded by an edge (0), with a final edge; L = sum(len + 1) + 1."""
    lengths = np.array([len(s) for s in encoded], dtype=np.int64)
    seq = np.zeros(int(lengths.sum() + len(encoded) + 1), dtype=np.int64)
    starts = np.cumsum(lengths + 1) - lengths
    seq[_positions(starts, lengths)] = np.fromiter((i for s in encoded for i in s), np.int64, int(lengths.sum()))
    return seq


def _positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``(sum lengths,)`` the indices ``start_i .. start_i + len_i - 1`` of every run, concatenated."""
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + offsets


def _ngram_keys(seq: np.ndarray, prev_rows: np.ndarray, n: int, base: int) -> np.ndarray:
    """``(L,)`` packed key of the n-gram starting at each position of seq, -1 where it crosses an edge."""
    if n == 1:
        return np.where(seq > 0, seq, -1)
    last = np.zeros_like(seq)
    last[: len(seq) - n + 1] = seq[n - 1 :]  # (L,) the n-gram's last symbol, 0 past the end
    return np.where((prev_rows >= 0) & (last > 0), prev_rows * base + last, -1)


def _count_ngrams(
    seq: np.ndarray, max_n: int, base: int
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Per n: the sorted type keys ``(U_n,)``, each position's type row ``(L,)`` (-1: none) and the counts."""
    keys, rows, counts = {}, {}, {}
    prev = np.zeros_like(seq)
    for n in range(1, max_n + 1):
        if n > 1 and len(keys[n - 1]) * base >= 2**62:
            raise ZooError(f"too many {n - 1}-gram types for 64-bit keys ({len(keys[n - 1])} x {base} symbols)")
        key = _ngram_keys(seq, prev, n, base)
        valid = key >= 0
        keys[n], inverse, counts[n] = np.unique(key[valid], return_inverse=True, return_counts=True)
        rows[n] = np.full(len(seq), -1, dtype=np.int64)
        rows[n][valid] = inverse
        prev = rows[n]
    return keys, rows, counts


def _lookup_rows(seq: np.ndarray, keys: dict[int, np.ndarray], base: int, max_n: int) -> dict[int, np.ndarray]:
    """Per n: the corpus row of the n-gram starting at each position of seq, ``(L,)``, -1 where unseen."""
    rows, prev = {}, np.zeros_like(seq)
    for n in range(1, max_n + 1):
        key = _ngram_keys(seq, prev, n, base)
        at = np.minimum(np.searchsorted(keys[n], key), max(len(keys[n]) - 1, 0))
        found = (key >= 0) & (keys[n][at] == key) if len(keys[n]) else np.zeros(len(seq), dtype=bool)
        rows[n] = prev = np.where(found, at, -1)
    return rows


def _min_split_pmi(rows: dict[int, np.ndarray], log_p: dict[int, np.ndarray], n: int, starts: np.ndarray) -> np.ndarray:
    """``(U_n,)`` float64: PMI of each n-gram type at its weakest binary split, from one occurrence of each."""
    first = np.zeros(len(log_p[n]), dtype=np.int64)
    first[rows[n][starts]] = starts  # any occurrence will do: its parts are the same
    splits = [log_p[n] - log_p[m][rows[m][first]] - log_p[n - m][rows[n - m][first + m]] for m in range(1, n)]
    return np.min(splits, axis=0)  # (n - 1, U_n) -> (U_n,)


def _branching_entropy(row: np.ndarray, neighbour: np.ndarray, counts: np.ndarray, base: int) -> np.ndarray:
    """``(U,)`` nats: entropy of the neighbour symbol over each type's occurrences (row, neighbour: ``(T,)``)."""
    pairs, pair_counts = np.unique(row * base + neighbour, return_counts=True)
    types = pairs // base
    p = pair_counts / counts[types]
    return np.bincount(types, weights=-p * np.log(p), minlength=len(counts))


def _layout(max_n: int) -> list[tuple[int, int, str]]:
    stats = {1: ("le", "re")}
    return [(n, k, s) for n in range(1, max_n + 1) for k in range(n) for s in stats.get(n, ("pmi", "le", "re"))]


def _scatter_features(
    rows: dict[int, np.ndarray],
    max_n: int,
    pmi: dict[int, np.ndarray],
    left: dict[int, np.ndarray],
    right: dict[int, np.ndarray],
) -> np.ndarray:
    """``(L, F)`` float64 raw features of every position of seq, NaN where the slot's n-gram is missing."""
    tables = {"pmi": pmi, "le": left, "re": right}
    out = np.full((len(rows[1]), len(_layout(max_n))), np.nan)
    for col, (n, k, stat) in enumerate(_layout(max_n)):
        row = np.full(len(rows[n]), -1, dtype=np.int64)
        row[k:] = rows[n][: len(rows[n]) - k]  # the n-gram that holds this position at offset k starts k before
        hit = row >= 0
        out[hit, col] = tables[stat][n][row[hit]]
    return out


def _column_moments(max_n: int, counts: dict, pmi: dict, left: dict, right: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(F,)`` mean and population std of each column's statistic, weighted by the n-grams' counts."""
    tables = {"pmi": pmi, "le": left, "re": right}
    mean, std = [], []
    for n, _, stat in _layout(max_n):
        w, x = counts[n], tables[stat][n]
        mu = float(np.average(x, weights=w)) if w.sum() else 0.0
        sd = float(np.sqrt(np.average((x - mu) ** 2, weights=w))) if w.sum() else 0.0
        mean.append(mu)
        std.append(sd if sd > 1e-12 else 1.0)
    return np.array(mean), np.array(std)


# MODEL ============================================================================================

_HEAD_PREFIXES = ("mlm_transform.", "mlm_decoder.", "boundary_head.")
_TIED = "mlm_decoder.weight"  # the word embeddings: saved once, under the backbone's name
_SETTINGS = "zoobench.json"  # GTE's folder settings, plus the boundary head's layer and n-gram order


class BABERTModel(GTEModel):
    """A BERT encoder (:class:`zoo.families.gte.GTEModel`, mean pooling) with BABERT's MLM and boundary heads.

    Args:
        backbone: a transformers ``BertModel`` (no pooler).
        tokenizer: its fast tokenizer (character-level for a model built from scratch; see the module docstring).
        boundary_layer: the layer whose states the boundary head reads, 1..num_layers (``hidden_states`` index:
            the output of that transformer layer); None: the middle, ``num_layers // 2`` (at least 1).
        boundary_max_n: the longest n-gram of the boundary features; the head predicts
            F = 2 + 3 * (2 + ... + max_n) values per token (29 for 4).
        **settings: GTE's ``pooling`` (default mean), ``normalize``, ``max_tokens``, ``prompts``, ``rerank_head``.
    """

    def __init__(
        self,
        backbone: torch.nn.Module,
        tokenizer: Any,
        *,
        boundary_layer: int | None = None,
        boundary_max_n: int = 4,
        **settings: Any,
    ) -> None:
        from transformers.models.bert.modeling_bert import BertPredictionHeadTransform

        super().__init__(backbone, tokenizer, **{"pooling": "mean", **settings})
        c = backbone.config
        layer = max(1, c.num_hidden_layers // 2) if boundary_layer is None else boundary_layer
        if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= c.num_hidden_layers:
            raise ZooError(f"boundary_layer must be an integer from 1 to {c.num_hidden_layers}, got {layer!r}")
        if isinstance(boundary_max_n, bool) or not isinstance(boundary_max_n, int) or boundary_max_n < 2:
            raise ZooError(f"boundary_max_n must be an integer >= 2, got {boundary_max_n!r}")
        self.boundary_layer, self.boundary_max_n = layer, boundary_max_n
        self.mlm_transform = BertPredictionHeadTransform(c)
        self.mlm_decoder = torch.nn.Linear(c.hidden_size, c.vocab_size)
        self.mlm_decoder.weight = backbone.embeddings.word_embeddings.weight  # tied, as BERT's MLM head
        self.boundary_head = torch.nn.Linear(c.hidden_size, len(_layout(boundary_max_n)))
        self._init_heads(c.initializer_range)

    def _init_heads(self, std: float) -> None:
        """normal(0, initializer_range) matrices and zero biases, as transformers initialises BERT's heads."""
        with torch.no_grad():
            for layer in (self.mlm_transform.dense, self.boundary_head):
                layer.weight.normal_(0.0, std)
                layer.bias.zero_()
            self.mlm_decoder.bias.zero_()

    @property
    def head_outputs(self) -> tuple[str, ...]:
        """The outputs :meth:`heads` can give."""
        return ("dense", "mlm", "boundary")

    @property
    def boundary_features(self) -> int:
        """F, the width of the boundary head."""
        return self.boundary_head.out_features

    def boundary_statistics(self, sentences: Sequence[Sequence[str]]) -> BoundaryStats:
        """:func:`boundary_statistics` of a corpus at this model's n-gram order (what its boundary head predicts)."""
        return boundary_statistics(sentences, max_n=self.boundary_max_n)

    def heads(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        *,
        outputs: Sequence[str] = ("dense",),
        select: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """One backbone pass over ``(B, T)`` inputs, then ``{output: float32 tensor}`` for each of ``outputs``:
        ``"dense"`` ``(B, H)`` mean-pooled embeddings, ``"mlm"`` ``(M, V)`` token logits of the ``M`` positions
        ``select`` ``(B, T)`` marks (row-major order), ``"boundary"`` ``(B, T, F)`` predicted boundary features
        at every position (pads and special tokens included: the loss picks the real ones)."""
        unknown = [o for o in outputs if o not in self.head_outputs]
        if unknown:
            raise ZooError(f"BABERT has no {unknown[0]!r} output (it has: {', '.join(self.head_outputs)})")
        if "mlm" in outputs and select is None:
            raise ZooError("the mlm output needs select, the (B, T) positions to predict")
        out = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            output_hidden_states="boundary" in outputs,
        )
        hidden = out.last_hidden_state  # (B, T, H)
        makers = {
            "dense": lambda: self._dense(hidden, attention_mask),  # (B, H)
            "mlm": lambda: self.mlm_decoder(self.mlm_transform(hidden[select])).float(),  # (M, V)
            "boundary": lambda: self.boundary_head(out.hidden_states[self.boundary_layer]).float(),  # (B, T, F)
        }
        return {name: makers[name]() for name in outputs}

    @classmethod
    def from_config(cls, config: Any, tokenizer: Any, *, seed: int = 0, **settings: Any) -> BABERTModel:
        """A randomly initialised model, backbone and heads from ``seed`` (the global RNG is left as it was);
        ``settings``: :class:`BABERTModel`'s keywords."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)  # the heads (GTE seeds the backbone with ``seed`` itself)
            return super().from_config(config, tokenizer, seed=seed, **settings)

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike[str], **overrides: Any) -> BABERTModel:
        """Load a folder :meth:`save_pretrained` wrote (safetensors only), strictly: the backbone as GTE loads it,
        then every head weight (a missing one is an error, never a random init).

        Args:
            source: a folder or checkpoint source (``zoo.checkpoints.resolve``).
            **overrides: :meth:`zoo.families.gte.GTEModel.from_pretrained`'s keywords (``dtype``, ``max_tokens``,
                ``boundary_layer`` ...).

        Raises:
            ZooError: an unresolvable source, or a folder without the MLM and boundary heads.
        """
        model = super().from_pretrained(source, **overrides)
        folder = resolve(str(source))
        state = {k: v for k, v in load_weights(folder).items() if k.startswith(_HEAD_PREFIXES)}
        expected = {k: v for k, v in model.state_dict().items() if k.startswith(_HEAD_PREFIXES) and k != _TIED}
        missing = sorted(set(expected) - set(state))
        if missing:
            raise ZooError(f"{source}: not a BABERT folder: the weights lack {', '.join(missing[:3])}")
        for key, value in state.items():
            if key not in expected or value.shape != expected[key].shape:
                want = tuple(expected[key].shape) if key in expected else "no such weight"
                raise ZooError(f"{source}: {key} has shape {tuple(value.shape)}, expected {want}")
        model.load_state_dict(state, strict=False)
        return model.to(next(model.backbone.parameters()).dtype).eval()

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """GTE's folder (config.json, tokenizer, zoobench.json) with the heads beside the backbone in
        ``model.safetensors`` (the tied decoder weight once, as the word embeddings) and the boundary settings in
        zoobench.json; returns the folder."""
        from safetensors.torch import save_file

        folder = super().save_pretrained(folder)
        state = {k: v for k, v in self.backbone.state_dict().items()}
        state |= {k: v for k, v in self.state_dict().items() if k.startswith(_HEAD_PREFIXES) and k != _TIED}
        save_file({k: v.detach().contiguous() for k, v in state.items()}, folder / WEIGHTS, {"format": "pt"})
        settings = json.loads((folder / _SETTINGS).read_text(encoding="utf-8"))
        settings |= {"boundary_layer": self.boundary_layer, "boundary_max_n": self.boundary_max_n}
        (folder / _SETTINGS).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        return folder


# SCRATCH AND FAMILY ===============================================================================


@dataclass
class BABERTScratchConfig(ScratchConfig):
    """The scratch table of a BABERT recipe: a character vocabulary and the boundary head's layer and n-gram order."""

    vocab_size: int = 0  # no WordPiece merges: the special tokens and the corpora's characters only
    boundary_layer: int | None = None  # None: the middle layer, num_layers // 2
    boundary_max_n: int = 4


def _check_characters(tokenizer: Any) -> None:
    """Refuse a vocabulary with a token of more than one character (``##x`` counts as one)."""
    specials = set(tokenizer.all_special_tokens)
    long = sorted(t for t in tokenizer.get_vocab() if t not in specials and len(t.removeprefix("##")) != 1)
    if long:
        raise ZooError(
            f"model.scratch: BABERT needs one character per token, but the vocabulary has {long[0]!r} "
            f"({len(long)} such tokens); set vocab_size = 0 (the alphabet only)"
        )


def _write_scratch(folder: Path, tokenizer: Any, cfg: BABERTScratchConfig, *, seed: int) -> Path:
    """Write a randomly initialised BABERT (BERT encoder, MLM and boundary heads, seeded) and its character
    tokenizer as a folder :meth:`BABERTModel.from_pretrained` loads."""
    _check_characters(tokenizer)
    config = {
        "vocab_size": len(tokenizer),
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "intermediate_size": cfg.intermediate_size,
        "max_position_embeddings": cfg.max_position,
        "hidden_dropout_prob": cfg.dropout,
        "attention_probs_dropout_prob": cfg.dropout,
        "pad_token_id": tokenizer.pad_token_id,
    }
    tokenizer.model_max_length = cfg.max_position
    model = BABERTModel.from_config(
        config,
        tokenizer,
        seed=seed,
        boundary_layer=cfg.boundary_layer,
        boundary_max_n=cfg.boundary_max_n,
        max_tokens=cfg.max_position,
    )
    return model.save_pretrained(folder)


FAMILY = Family(
    name="babert",
    model=BABERTModel,
    runtime=BABERTModel.as_encoder,
    runtime_class=lambda folder: GTEEncoder,
    scratch=_write_scratch,
    scratch_config=BABERTScratchConfig,
    citation=CITATION,
)
