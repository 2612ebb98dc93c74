"""Per-character states from a subword encoder: the token-to-character alignment every ``TokenEncoder`` shares.

A sentence arrives as a list of *elements* (characters, or a few characters such as weibo-ner's ``e1``), one output
row each. The elements are joined without separators into one text (Chinese has none; the CoNLL sets drop spaces),
tokenized once by the model's fast tokenizer with ``return_offsets_mapping``, and the model's last hidden states of
the tokens are mapped back to the elements by character offsets:

- a token whose offsets overlap several elements (WordPiece ``hello``, SentencePiece ``中国人民``) gives its state to
  each of them;
- an element overlapped by several tokens (``e1`` as ``e ##1``; a character split into byte pieces; SentencePiece's
  word-start ``▁``, whose offsets cover the first character of its word) gets their mean;
- an element no token overlaps (a character the normaliser drops, e.g. a zero-width space) takes the state of the
  nearest input token to its left: the previous content token, or the first input position ([CLS] / ``<s>``) at
  the start of the sentence. Characters the tokenizer does not know are not dropped: they are ``[UNK]`` tokens
  with offsets, and get that token's state.

**Long sentences.** The content tokens are cut into consecutive, non-overlapping windows of ``max_tokens`` minus
the special tokens; each window is wrapped in the tokenizer's own specials (read once from the encoding of one
character: the ids before and after its content, e.g. ``[CLS]`` / ``[SEP]``), encoded alone, and the windows'
content states are concatenated back in order. A token sees only its own window (no context across a cut).

No prompt is prepended: the states are those of the bare sentence.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Sequence

import numpy as np
import torch

from zoo.errors import ZooError
from zoo.nn.batching import length_sorted_batches

__all__ = ["element_spans", "align_elements", "special_affixes", "token_states"]

Hidden = Callable[[dict[str, torch.Tensor]], torch.Tensor]  # (B, T) inputs -> (B, T, H) last hidden states
FIRST = -1  # an alignment index meaning "the first input position of the sentence's first window"


def element_spans(elements: Sequence[str]) -> list[tuple[int, int]]:
    """``(start, end)`` character offsets of each element in ``"".join(elements)``."""
    starts = [0, *itertools.accumulate(len(e) for e in elements)]
    return list(itertools.pairwise(starts))


def align_elements(spans: Sequence[tuple[int, int]], offsets: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Which content tokens each element takes its state from (the module docstring's rule).

    Args:
        spans: ``(start, end)`` per element, ascending and contiguous (:func:`element_spans`).
        offsets: ``(start, end)`` character offsets per content token, in token order (specials excluded).

    Returns:
        One non-empty list of token indices per element; :data:`FIRST` where no token lies to the left.
    """
    covering: list[list[int]] = [[] for _ in spans]
    starts = [s for s, _ in spans]
    for t, (a, b) in enumerate(offsets):
        if b <= a:
            continue
        first = max(0, bisect.bisect_right(starts, a) - 1)  # the element holding character a
        for e in range(first, len(spans)):
            if spans[e][0] >= b:
                break
            if spans[e][1] > a:
                covering[e].append(t)
    ends = sorted((b, t) for t, (a, b) in enumerate(offsets) if b > a)  # tokens by where they end
    for e, (start, _) in enumerate(spans):
        if not covering[e]:  # the last token ending at or before the element, else the first input position
            k = bisect.bisect_right(ends, (start, len(offsets)))
            covering[e] = [ends[k - 1][1]] if k else [FIRST]
    return covering


def special_affixes(tokenizer: object) -> tuple[list[int], list[int]]:
    """The special-token ids a tokenizer puts before and after a single text's content (``[CLS]``, ``[SEP]``)."""
    enc = tokenizer("a", return_special_tokens_mask=True)  # type: ignore[operator]
    ids, mask = enc["input_ids"], enc["special_tokens_mask"]
    content = [i for i, m in enumerate(mask) if not m]
    if not content:
        raise ZooError(f"{type(tokenizer).__name__}: the text 'a' gives no content token")
    return ids[: content[0]], ids[content[-1] + 1 :]


def _windows(ids: Sequence[Sequence[int]], width: int) -> list[tuple[int, int, int]]:
    """``(sentence, first token, last token + 1)`` of every window; an empty sentence still gets one."""
    return [
        (s, start, min(start + width, len(x))) for s, x in enumerate(ids) for start in range(0, max(len(x), 1), width)
    ]


def token_states(
    tokenizer: object,
    sentences: Sequence[Sequence[str]],
    hidden: Hidden,
    *,
    max_tokens: int,
    batch_size: int,
    max_batch_tokens: int,
    pad_id: int,
    device: torch.device | str = "cpu",
    name: str = "model",
) -> list[np.ndarray]:
    """One ``(len(sentence), H)`` float32 array of states per sentence (see the module docstring).

    Run it under ``zoo.nn.batching.inference``.

    Args:
        tokenizer: a transformers *fast* tokenizer (offsets are needed).
        sentences: the elements of each sentence (characters, or a few characters each).
        hidden: ``(B, T)`` ``input_ids`` / ``attention_mask`` -> ``(B, T, H)`` last hidden states.
        max_tokens: the model's input length, special tokens included.
        batch_size: windows per forward pass at most.
        max_batch_tokens: padded tokens per forward pass at most.
        pad_id: the tokenizer's pad id.
        device: where the batches go.
        name: the model's name, for errors.

    Returns:
        The states, in the order of ``sentences``.

    Raises:
        ZooError: a slow tokenizer (no offsets), or a sentence whose tokens cannot be aligned to its elements.
    """
    if not sentences:
        return []
    if not getattr(tokenizer, "is_fast", False):
        raise ZooError(f"model {name}: per-character states need a fast tokenizer (offsets); {type(tokenizer)} is not")
    prefix, suffix = special_affixes(tokenizer)
    width = max_tokens - len(prefix) - len(suffix)
    if width < 1:
        raise ZooError(f"model {name}: max_tokens {max_tokens} leaves no room inside the special tokens")
    texts = ["".join(s) for s in sentences]
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)  # type: ignore[operator]
    windows = _windows(enc["input_ids"], width)
    inputs = [prefix + enc["input_ids"][s][a:b] + suffix for s, a, b in windows]
    states: list[np.ndarray] = [np.empty(0)] * len(windows)  # (T_w, H) each
    for rows, batch in length_sorted_batches(
        {"input_ids": inputs},
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
        pad_ids={"input_ids": pad_id},
        device=device,
    ):
        out = hidden(batch).float().cpu().numpy()  # (B, T, H)
        for i, r in enumerate(rows):
            states[r] = out[i, : len(inputs[r])]
    parts: list[list[np.ndarray]] = [[] for _ in sentences]  # content states of each window, (b - a, H)
    firsts: list[np.ndarray] = [np.empty(0)] * len(sentences)  # (H,) the first input position of the first window
    for state, (s, a, b) in zip(states, windows, strict=True):
        if a == 0:
            firsts[s] = state[0]
        parts[s].append(state[len(prefix) : len(prefix) + b - a])
    return [
        _sentence_states(sentences[s], enc["offset_mapping"][s], np.concatenate(parts[s]), firsts[s], name)
        for s in range(len(sentences))
    ]


def _sentence_states(
    elements: Sequence[str], offsets: Sequence[tuple[int, int]], tokens: np.ndarray, first: np.ndarray, name: str
) -> np.ndarray:
    """The ``(len(elements), H)`` states of one sentence from its ``(n_tokens, H)`` content token states and the
    ``(H,)`` state of its first input position."""
    text = "".join(elements)
    if not elements:
        return np.zeros((0, first.shape[0]), np.float32)
    if tokens.shape[0] != len(offsets):
        raise ZooError(f"model {name}: {tokens.shape[0]} token states for the {len(offsets)} tokens of {text[:40]!r}")
    rows = [
        np.mean([first if t == FIRST else tokens[t] for t in ts], axis=0)
        for ts in align_elements(element_spans(elements), offsets)
    ]
    out = np.asarray(rows, dtype=np.float32).reshape(len(elements), -1)  # (n, H)
    if out.shape != (len(elements), first.shape[0]):
        raise ZooError(f"model {name}: cannot align the tokens of {text[:40]!r} to its {len(elements)} characters")
    return out
