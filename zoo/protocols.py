"""The only interfaces the harness sees. Each is a small runtime-checkable Protocol.

A model implements one or more of them and carries its :class:`~zoo.registry.ModelCard` as
``card``. Task types name the protocols they need; a model that implements none of them is
refused with a ``TypeError`` naming the model and the task type (mteb's convention).

A model whose factory takes options that change only how the harness searches with it, not what it
encodes (e.g. mGTE's retrieval ``mode`` and hybrid weights), names them in a class attribute
``search_options: tuple[str, ...]``: they stay out of the embedding cache's fingerprint (so runs that differ
only in them share cached embeddings) but not out of the stored result revision.

A card prompt that holds :data:`INSTRUCTION` (``"Instruct: {instruction}\nQuery: "``, gte-Qwen2's format) makes the
encoder instruction-aware: the harness passes the task's instruction as ``encode(..., instruction=...)`` for that
kind, and keys the embedding cache by it (:func:`takes_instruction`); the model fills it in.

:class:`Trainable` is the other side: what the training engine (``zoo.train``) needs of a family's model
class (``zoo.family.Family.model``). The harness never sees it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import os
    from pathlib import Path

    import numpy as np
    import torch

    from zoo.registry import ModelCard

__all__ = [
    "INSTRUCTION",
    "takes_instruction",
    "Kind",
    "TagKind",
    "Encoder",
    "SparseEncoder",
    "HybridEncoder",
    "Retriever",
    "Ranker",
    "Tagger",
    "TokenEncoder",
    "Trainable",
]

Kind = Literal["query", "document"]
TagKind = Literal["cws", "ner"]
INSTRUCTION = "{instruction}"


def takes_instruction(card: ModelCard, kind: str) -> bool:
    """Whether the card's prompt for ``kind`` has an :data:`INSTRUCTION` field for the task's instruction."""
    return INSTRUCTION in (card.prompts or {}).get(kind, "")


@runtime_checkable
class Encoder(Protocol):
    """A dense text encoder."""

    card: ModelCard

    def encode(self, texts: Sequence[str], *, kind: Kind = "document", batch_size: int = 32) -> np.ndarray:
        """Embed texts.

        Args:
            texts: the texts, raw (the model adds the prompt its card declares for ``kind``).
            kind: ``"query"`` or ``"document"``. Symmetric tasks (STS, classification, clustering,
                pair classification) encode every text as ``"query"``, as mteb does for E5-style
                prompts.
            batch_size: texts per forward pass.

        Returns:
            A float32 array of shape ``(len(texts), embed_dim)``; L2-normalised when the card's
            similarity is ``"cosine"`` and the model normalises (the harness does not rely on it).
        """
        ...


@runtime_checkable
class SparseEncoder(Protocol):
    """A sparse (lexical-weight) encoder, e.g. a learned term-weight head."""

    card: ModelCard

    def encode_sparse(
        self, texts: Sequence[str], *, kind: Kind = "document", batch_size: int = 32
    ) -> list[dict[str, float]]:
        """Weight the terms of each text.

        Args:
            texts: the texts.
            kind: ``"query"`` or ``"document"``.
            batch_size: texts per forward pass.

        Returns:
            One ``{term: weight}`` dict per text; relevance is the dot product of two dicts.
        """
        ...


@runtime_checkable
class HybridEncoder(Protocol):
    """An ``Encoder`` and ``SparseEncoder`` that gives both outputs of a text from one forward pass."""

    card: ModelCard

    def encode_hybrid(
        self, texts: Sequence[str], *, kind: Kind = "document", batch_size: int = 32
    ) -> tuple[np.ndarray, list[dict[str, float]]]:
        """Embed texts and weight their terms at once.

        Args:
            texts: the texts.
            kind: ``"query"`` or ``"document"``.
            batch_size: texts per forward pass.

        Returns:
            ``(encode(texts), encode_sparse(texts))``, as the two protocol methods would return them.
        """
        ...


@runtime_checkable
class Retriever(Protocol):
    """A system that indexes a corpus itself and returns ranked lists (e.g. BM25)."""

    card: ModelCard

    def retrieve(
        self, queries: Mapping[str, str], corpus: Mapping[str, str], *, top_k: int = 1000
    ) -> dict[str, dict[str, float]]:
        """Rank the corpus for every query.

        Args:
            queries: query id to query text.
            corpus: document id to document text (title and body already joined).
            top_k: how many documents to return per query.

        Returns:
            ``{query_id: {doc_id: score}}`` with at most ``top_k`` documents per query.
        """
        ...


@runtime_checkable
class Ranker(Protocol):
    """A re-ranker that scores (query, document) pairs, e.g. a cross-encoder or an LLM ranker."""

    card: ModelCard

    def score(self, query: str, docs: Sequence[str]) -> np.ndarray:
        """Score candidate documents for one query.

        Args:
            query: the query text.
            docs: candidate document texts.

        Returns:
            A float array of shape ``(len(docs),)``; higher is more relevant.
        """
        ...


@runtime_checkable
class Tagger(Protocol):
    """A sequence labeller: Chinese word segmentation (``"cws"``) and/or named-entity recognition (``"ner"``).

    One protocol serves a segmenter (jieba), a tagger that does both (Baidu LAC) and, later, a Tagger built from an
    encoder by a fine-tuning protocol: the caller says which ``kind`` of labels it wants and, for NER, the entity
    types the data set annotates; the tagger answers in tags the harness reads as spans
    (``harness.tasks.seqlabel``). A tagger maps its own entity labels to the set's ``types`` where they correspond
    and leaves the rest ``O``: a type it never predicts counts as missed entities, not as an error.
    """

    card: ModelCard
    kinds: tuple[TagKind, ...]  # what the tagger can label: ("cws",), ("ner",) or both

    def tag(
        self, sentences: Sequence[Sequence[str]], *, kind: TagKind, types: Sequence[str] = (), batch_size: int = 32
    ) -> list[list[str]]:
        """Label every token.

        Args:
            sentences: token sequences (characters for Chinese; a token may hold several characters, e.g. ``e1``).
            kind: ``"cws"``: word segmentation, tags ``B M E S`` (begin, middle, end of a word, single-token word);
                ``"ner"``: entities, tags ``O`` and ``B-X I-X`` (BIO) or also ``E-X S-X`` (BIOES), ``X`` in ``types``.
            types: the entity types the data set annotates (``"PER"``, ``"GPE.NAM"``, ``"address"`` ...); empty for
                ``"cws"``.
            batch_size: sentences per forward pass, for taggers that batch.

        Returns:
            One tag sequence per sentence, each as long as its sentence.
        """
        ...


@runtime_checkable
class TokenEncoder(Protocol):
    """An encoder that gives a state per input character (or symbol), not only one vector per text.

    What a token-level protocol (``harness.tasks.seqlabel``'s linear probe) trains a head on. A subword model
    aligns its tokens to the characters itself (``zoo.nn.tokens`` has the shared rule: a token's state goes to
    every character it covers, a character covered by several tokens gets their mean) and splits a sentence
    longer than its input into windows.
    """

    card: ModelCard

    def encode_tokens(self, sentences: Sequence[Sequence[str]], *, batch_size: int = 32) -> list[np.ndarray]:
        """The frozen last-layer states of every character of every sentence.

        Args:
            sentences: the sentences as sequences of symbols: characters for Chinese, or a few characters each
                (weibo-ner's ``e1``); they are joined without separators into the text the model reads.
            batch_size: windows per forward pass.

        Returns:
            One float32 array of shape ``(len(sentence), H)`` per sentence, row ``i`` the state of symbol ``i``.
        """
        ...


@runtime_checkable
class Trainable(Protocol):
    """What the training engine needs of a model: a ``torch.nn.Module`` that loads, saves, tokenizes and gives its
    outputs from one forward pass.

    The engine's objectives (``zoo.train.objectives``) ask ``heads`` for the outputs their loss declares:
    ``"dense"`` ``(B, D)`` embeddings, ``"sparse"`` ``(B, T)`` token weights (with ``special_token_ids``),
    ``"rerank"`` ``(B,)`` pair logits (with ``tokenize_pairs``), ``"mlm"`` / ``"lm"`` token logits of the
    positions ``select`` marks, ``(M, V)``. A model lists what it can give in ``head_outputs``; a loss that
    needs another output fails before training, naming it.
    """

    prompts: Mapping[str, str]  # text prepended per kind in training, as the card's prompts at evaluation
    head_outputs: tuple[str, ...]

    @property
    def embed_dim(self) -> int:
        """Width of the dense embeddings."""
        ...

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike[str], **overrides: object) -> Trainable:
        """Load a folder or checkpoint source (``zoo.checkpoints.resolve``); ``overrides`` are the recipe's."""
        ...

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """Write a folder :meth:`from_pretrained` loads back (safetensors); returns it."""
        ...

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        """Pad and truncate a batch: at least ``input_ids`` and ``attention_mask``, ``(B, T)``."""
        ...

    def heads(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: object) -> dict[str, torch.Tensor]:
        """``{output: float32 tensor}`` for each of ``kwargs["outputs"]``, from one backbone pass."""
        ...
