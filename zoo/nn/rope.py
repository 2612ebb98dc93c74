"""Rotary position embeddings (RoPE), rotate-half convention, with optional NTK scaling.

Su et al. (2021), RoFormer: Enhanced Transformer with Rotary Position Embedding, arXiv:2104.09864.

A head vector ``x`` of ``dim`` features is split into halves ``x1 = x[:dim/2]`` and ``x2 = x[dim/2:]``;
pair ``(x1[i], x2[i])`` is rotated by the angle ``pos * inv_freq[i]``. Written with real tensors:
``x' = x * cos + rotate_half(x) * sin`` where ``cos``/``sin`` repeat the ``dim/2`` angles twice
(``cat(freqs, freqs)``) and ``rotate_half(x) = cat(-x2, x1)``. This is the GPT-NeoX / Llama / mGTE layout
(not GPT-J's interleaved pairs). ``cos``/``sin`` are computed in float32 for arbitrary position ids, so
packed (unpadded) batches whose positions restart at 0 for every sequence need no cache.

Example:
    >>> rope = RotaryEmbedding(dim=64, base=160000.0)
    >>> cos, sin = rope(torch.arange(5))  # (5, 64) each, float32
    >>> q = apply_rotary(torch.randn(5, 12, 64), cos[:, None], sin[:, None])  # (N, heads, dim)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

__all__ = ["RotaryEmbedding", "rotate_half", "apply_rotary", "inv_frequencies", "ROPE_SCALING"]


def _plain(inv_freq: torch.Tensor, dim: int, base: float, **_: Any) -> torch.Tensor:
    return inv_freq


def _ntk(inv_freq: torch.Tensor, dim: int, base: float, *, factor: float, mixed_b: float | None = None) -> torch.Tensor:
    """NTK-aware scaling (bloc97 2023; mixed_b from Peng & Quesnelle's "NTK-by-parts" variant, as mGTE has it).

    The official mGTE class rebuilds its cos/sin cache for ``max_position_embeddings * factor`` positions at
    init, which is beyond the trained length whenever ``factor > 1``: the scaled frequencies are then used
    for every position. ``factor <= 1`` leaves the frequencies unchanged, as there.
    """
    if factor <= 1:
        return inv_freq
    half = torch.arange(0, dim, 2, dtype=torch.float32) / dim  # (dim/2,)
    if mixed_b is None:
        return 1.0 / (base * factor) ** half / factor ** (2 / dim)  # (dim/2,)
    a = math.log(factor) / (dim / 2) ** mixed_b
    lam = torch.exp(a * torch.arange(1, dim // 2 + 1, dtype=torch.float32) ** mixed_b)  # (dim/2,)
    return inv_freq / lam


# rope_scaling["type"] -> f(inv_freq, dim, base, **the other keys of rope_scaling)
ROPE_SCALING: dict[str, Callable[..., torch.Tensor]] = {"ntk": _ntk}


def inv_frequencies(dim: int, base: float, scaling: Mapping[str, Any] | None = None) -> torch.Tensor:
    """The ``dim/2`` rotation frequencies ``1 / base^(2i/dim)``, float32, optionally scaled.

    Args:
        dim: the rotated width (a head's width); even.
        base: ``rope_theta``.
        scaling: an HF-style ``rope_scaling`` dict, e.g. ``{"type": "ntk", "factor": 2.0, "mixed_b": None}``.

    Returns:
        A float32 tensor of shape ``(dim/2,)``.

    Raises:
        ValueError: an odd ``dim`` or an unknown scaling type.
    """
    if dim % 2:
        raise ValueError(f"rotary dim must be even, got {dim}")
    inv_freq = 1.0 / base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (dim/2,)
    if not scaling:
        return inv_freq
    kind = scaling.get("type", scaling.get("rope_type"))
    if kind not in ROPE_SCALING:
        raise ValueError(f"unsupported rope_scaling type {kind!r} (supported: {', '.join(ROPE_SCALING)})")
    extra = {k: v for k, v in scaling.items() if k not in ("type", "rope_type")}
    return ROPE_SCALING[kind](inv_freq, dim, base, **extra).float()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``cat(-x2, x1)`` over the last dim, ``x1``/``x2`` its halves."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (``(..., dim)``) by broadcastable ``cos``/``sin``; computed in ``x``'s dtype (as upstream)."""
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)


class RotaryEmbedding(torch.nn.Module):
    """cos/sin tables for given position ids; ``inv_freq`` is a non-persistent buffer (not in state dicts).

    Args:
        dim: the rotated width (a head's width).
        base: ``rope_theta``.
        scaling: an HF-style ``rope_scaling`` dict (see :func:`inv_frequencies`).
    """

    def __init__(self, dim: int, base: float = 10000.0, scaling: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.dim, self.base, self.scaling = dim, float(base), dict(scaling) if scaling else None
        self.register_buffer("inv_freq", inv_frequencies(dim, self.base, self.scaling), persistent=False)

    def _apply(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> RotaryEmbedding:
        # ``model.bfloat16()`` would round the frequencies (and so every angle); keep them float32.
        super()._apply(fn, *args, **kwargs)
        if self.inv_freq.dtype != torch.float32 and self.inv_freq.device.type != "meta":
            self.inv_freq = inv_frequencies(self.dim, self.base, self.scaling).to(self.inv_freq.device)
        return self

    def forward(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(...,)`` integer positions -> ``cos``, ``sin`` of shape ``(..., dim)``, float32."""
        freqs = position_ids.float().unsqueeze(-1) * self.inv_freq.float()  # (..., dim/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (..., dim)
        return emb.cos(), emb.sin()
