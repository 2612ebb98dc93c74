"""Unpadded ("varlen") token batches and attention over them, for CPU inference and training.

A padded batch ``(B, T, ...)`` wastes the work of every pad position in every Linear, MLP and LayerNorm,
which is where an encoder spends its FLOPs. :func:`unpad` packs the ``N`` real tokens into ``(N, ...)``
and returns an :class:`Unpadded` index that remembers where they came from; the per-token layers then run
on ``N`` rows only, and :func:`unpadded_attention` is the one place that needs the batch structure.

GPUs do that attention with a varlen kernel (flash-attn ``flash_attn_varlen_func``, xFormers'
``BlockDiagonalMask``) that never materialises padding. CPU PyTorch has no such kernel, so attention
calls ``torch.nn.functional.scaled_dot_product_attention`` once per sequence, on ``(1, heads, L, d)`` views
of the packed rows: no pads, no mask and no re-padding scatters, ``sum(L^2)`` attention work instead of
``B * T^2`` (about 15 us of dispatch per call, nothing next to a layer's matmuls). In inference each call
runs SDPA's fused (flash) CPU kernel, which never materialises the ``(heads, L, L)`` scores either.

:func:`keep_padding` gives the same index over *all* ``B * T`` positions (pads included, keys still
masked): the classic padded forward, whose attention is one masked call over ``(B, heads, T, d)``.

Example:
    >>> mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    >>> x, idx = unpad(torch.randn(2, 3, 8), mask)  # x: (4, 8) real tokens
    >>> idx.lengths.tolist(), idx.positions().tolist()
    ([3, 1], [0, 1, 2, 0])
    >>> idx.pad(x).shape  # zeros at the pads
    torch.Size([2, 3, 8])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Unpadded", "unpad", "keep_padding", "unpadded_attention"]


@dataclass(frozen=True)
class Unpadded:
    """Where the rows of a packed ``(N, ...)`` tensor sit in the padded ``(B, T, ...)`` batch.

    Attributes:
        indices: ``(N,)`` flat positions ``b * T + t`` of the kept tokens, in batch order.
        lengths: ``(B,)`` real tokens per sequence.
        key_mask: ``(B, T)`` bool, True at real tokens (what attention may look at).
        full: whether every position is kept (the padded path): pad/unpad are then reshapes.
    """

    indices: torch.Tensor
    lengths: torch.Tensor
    key_mask: torch.Tensor
    full: bool = False

    @property
    def batch(self) -> int:
        """``B``."""
        return self.key_mask.shape[0]

    @property
    def width(self) -> int:
        """``T``."""
        return self.key_mask.shape[1]

    def unpad(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, ...) -> (N, ...)``."""
        flat = x.reshape(self.batch * self.width, *x.shape[2:])  # (B*T, ...)
        return flat if self.full else flat[self.indices]

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, ...) -> (B, T, ...)`` with zeros at the positions that were not kept."""
        if not self.full:
            out = x.new_zeros(self.batch * self.width, *x.shape[1:])  # (B*T, ...)
            x = out.index_copy(0, self.indices, x)
        return x.reshape(self.batch, self.width, *x.shape[1:])

    def positions(self) -> torch.Tensor:
        """``(N,)`` position of every kept token in its own sequence, from 0 (counting real tokens only)."""
        pos = (self.key_mask.long().cumsum(1) - 1).clamp(min=0)  # (B, T)
        return self.unpad(pos)


def unpad(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, Unpadded]:
    """Pack the real tokens of a padded batch.

    Args:
        x: ``(B, T, ...)``, e.g. token ids ``(B, T)`` or states ``(B, T, H)``.
        mask: ``(B, T)``, nonzero at real tokens (any padding side).

    Returns:
        ``(N, ...)`` the real tokens in batch order, and the index to pad them back.
    """
    key_mask = mask.bool()
    idx = Unpadded(
        indices=key_mask.flatten().nonzero().squeeze(-1),  # (N,)
        lengths=key_mask.sum(1),  # (B,)
        key_mask=key_mask,
    )
    return idx.unpad(x), idx


def keep_padding(mask: torch.Tensor) -> Unpadded:
    """An index keeping all ``B * T`` positions (the classic padded forward); pads are still masked as keys."""
    key_mask = mask.bool()
    indices = torch.arange(key_mask.numel(), device=key_mask.device)  # (B*T,)
    return Unpadded(indices=indices, lengths=key_mask.sum(1), key_mask=key_mask, full=True)


def unpadded_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    idx: Unpadded,
    *,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> torch.Tensor:
    """Bidirectional attention of packed tokens within their own sequences.

    Args:
        q: ``(N, heads, d)`` queries; ``k``, ``v`` the same shape.
        idx: the index of the packing (:func:`unpad` or :func:`keep_padding`).
        dropout_p: dropout on the attention probabilities (pass 0 in eval mode).
        scale: the logits' scale, default ``1 / sqrt(d)``.

    Returns:
        ``(N, heads, d)``: for every token, the softmax-weighted values of the real tokens of its sequence.
    """
    if idx.full:  # the padded forward: one call over the whole batch, pads masked as keys
        q, k, v = (idx.pad(t).transpose(1, 2) for t in (q, k, v))  # (B, heads, T, d) each
        mask = idx.key_mask[:, None, None, :]  # (B, 1, 1, T): True = may attend
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale)  # (B, h, T, d)
        return idx.unpad(out.transpose(1, 2))  # (N, heads, d)
    lengths = idx.lengths.tolist()
    outs = [
        F.scaled_dot_product_attention(*(t[None].transpose(1, 2) for t in seq), dropout_p=dropout_p, scale=scale)
        for seq in zip(*(t.split(lengths) for t in (q, k, v)), strict=True)  # (L, heads, d) each
    ]  # (1, heads, L, d) each
    return torch.cat([o[0].transpose(0, 1) for o in outs])  # (N, heads, d)
