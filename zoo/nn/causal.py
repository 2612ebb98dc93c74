"""Causal-LM label helpers shared by the LLM-ranker family and the training objectives.

A batch marks the tokens a causal LM is scored on with ``labels`` ``(B, T)``: the token's id where it counts,
:data:`IGNORE` elsewhere (transformers' convention, unshifted). The logits at position ``t`` predict token
``t + 1``, so :func:`next_token_select` gives the positions whose logits are read and the ids they should predict.
"""

from __future__ import annotations

import torch

__all__ = ["IGNORE", "next_token_select", "mean_per_row"]

IGNORE = -100  # the label of a position that is not scored


def next_token_select(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The positions whose next token is labelled, and those labels, row-major: ``(B, T) -> (B, T) bool, (M,)``."""
    select = torch.zeros_like(labels, dtype=torch.bool)  # (B, T)
    select[:, :-1] = labels[:, 1:] != IGNORE
    return select, labels[:, 1:][select[:, :-1]]


def mean_per_row(values: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
    """The mean of the ``values`` ``(M,)`` of each row's selected positions (``select`` ``(B, T)``): ``(B,)``."""
    rows = select.nonzero()[:, 0]  # (M,)
    sums = values.new_zeros(select.shape[0]).index_add(0, rows, values)  # (B,)
    return sums / select.sum(-1).clamp(min=1)
