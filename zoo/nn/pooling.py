"""Pooling of token states into one vector per text."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["POOLING", "mean_pool", "cls_pool", "last_token_pool"]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the unmasked token states: ``(B, T, D), (B, T) -> (B, D)``."""
    m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (B, D)


def cls_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The first token's state: ``(B, T, D) -> (B, D)``."""
    return hidden[:, 0]


def last_token_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The last unmasked token's state, with right or left padding: ``(B, T, D) -> (B, D)``."""
    last = mask.shape[1] - 1 - mask.flip(1).long().argmax(1)  # (B,) the last 1 of each row
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, D)


POOLING: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mean": mean_pool,
    "cls": cls_pool,
    "last": last_token_pool,
}
