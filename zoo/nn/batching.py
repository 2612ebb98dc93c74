"""The fast CPU encode path shared by the encoder families: token-budget batches, free cores, bf16 support.

Texts are tokenized once, sorted by token count (descending) and cut into batches of at most
``max_texts`` texts and ``max_tokens`` padded tokens (:func:`token_batches`), so little padding is
computed and long texts go a few at a time. :func:`length_sorted_batches` builds the padded tensors of
those batches; :func:`inference` runs them under ``torch.inference_mode`` with optional bf16 autocast on
the cores other processes leave free (:func:`free_cores`), restoring the thread count and training mode.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from zoo.errors import ZooError

__all__ = [
    "DTYPES",
    "check_dtype",
    "resolve_device",
    "token_batches",
    "free_cores",
    "cpu_has_bf16",
    "length_sorted_batches",
    "encode_ids",
    "place_for_inference",
    "tokenize_batch",
    "pad_ids",
    "inference",
]

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def resolve_device(spec: str = "auto") -> torch.device:
    """``"auto"``: ``cuda:<LOCAL_RANK>`` when CUDA is available, else ``cpu``; any other torch device string as is.

    Raises:
        ZooError: an unknown device string, or CUDA asked for where torch has none.
    """
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ZooError(f"unknown device {spec!r} (auto, cpu, cuda, cuda:<n>)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ZooError(f"device {spec!r}: torch sees no CUDA device here (use --device cpu or auto)")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def token_batches(lengths: Sequence[int], max_tokens: int, max_texts: int) -> list[slice]:
    """Consecutive runs of descending ``lengths``: at most ``max_texts`` texts and ``max_tokens`` padded tokens each."""
    batches, start = [], 0
    while start < len(lengths):
        size = max(1, min(max_texts, max_tokens // max(1, lengths[start])))
        batches.append(slice(start, min(start + size, len(lengths))))
        start += size
    return batches


def _others_running() -> int | None:
    """Runnable threads of other processes now (Linux ``/proc``), or None where that cannot be read."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            running = next(int(line.split()[1]) for line in f if line.startswith("procs_running"))
        own = 0
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError), open(f"/proc/self/task/{tid}/stat", encoding="ascii") as f:
                stat = f.read()
                own += stat[stat.rindex(")") + 2] == "R"
    except (OSError, StopIteration, ValueError):
        return None
    return max(0, running - own)


def free_cores(samples: int = 5) -> int:
    """Cores this process can use that other processes are not busy on (at least 1).

    Torch's threads wait for each other at every op, so when another process holds a core, a second
    thread mostly waits: on the shared 2-core machine, one thread encoded 2.5-3.5x faster than two.
    The count is the median of ``samples`` looks at ``/proc/stat`` 2 ms apart, minus this process's threads.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    seen = []
    for i in range(samples):
        others = _others_running()
        if others is None:
            return cores
        seen.append(others)
        if i + 1 < samples:
            time.sleep(0.002)
    return max(1, cores - int(np.median(seen)))


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bfloat16 matmuls natively (AVX512-BF16 or AMX); else bf16 is emulated and slow."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, p, lambda: False)() for p in probes)


def length_sorted_batches(
    features: Mapping[str, Sequence[Sequence[int]]],
    *,
    batch_size: int,
    max_batch_tokens: int,
    pad_ids: Mapping[str, int],
    device: torch.device | str = "cpu",
    padding_side: str = "right",
) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """Padded tensors of token-budget batches over texts sorted by length.

    Args:
        features: per input name (``input_ids``, ``token_type_ids``, ...) one id list per text, all of the
            same lengths as ``features["input_ids"]``.
        batch_size: texts per batch at most.
        max_batch_tokens: padded tokens per batch at most (a longer text goes alone).
        pad_ids: the pad value per input name (default 0).
        device: where the tensors go.
        padding_side: ``"right"`` (encoders) or ``"left"`` (decoders pooling their last token).

    Yields:
        ``(rows, batch)``: the texts' indices in the input order, and ``(B, T)`` int64 tensors of every feature
        plus ``attention_mask``.
    """
    if padding_side not in ("right", "left"):
        raise ZooError(f"padding_side {padding_side!r} is not 'right' or 'left'")
    lengths = np.array([len(x) for x in features["input_ids"]], dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    for part in token_batches(lengths[order].tolist(), max_batch_tokens, max(1, batch_size)):
        rows = order[part]
        batch = {}
        for key, values in features.items():
            padded, mask = _pad([values[i] for i in rows], pad_ids.get(key, 0), padding_side)
            batch[key] = torch.from_numpy(padded).to(device)
        batch["attention_mask"] = torch.from_numpy(mask).to(device)
        yield rows, batch


def _pad(rows: Sequence[Sequence[int]], pad: int, side: str) -> tuple[np.ndarray, np.ndarray]:
    """``(B, T)`` int64 ids padded to the longest row on ``side``, and the ``(B, T)`` int64 mask of real tokens."""
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    width = int(lengths.max()) if len(rows) else 0
    arr = np.full((len(rows), width), pad, dtype=np.int64)  # (B, T)
    for r, (values, n) in enumerate(zip(rows, lengths, strict=True)):
        arr[r, width - n if side == "left" else 0 :][:n] = values
    mask = np.arange(width)[None, :] < lengths[:, None]  # (B, T) right-aligned below for left padding
    if side == "left":
        mask = np.ascontiguousarray(mask[:, ::-1])
    return arr, mask.astype(np.int64)


def pad_ids(ids: Sequence[Sequence[int]], *, pad_id: int, padding_side: str = "right") -> dict[str, torch.Tensor]:
    """A ``(B, T)`` batch of token id lists in their order, padded on ``padding_side``: ``input_ids`` and
    ``attention_mask`` (what a decoder's ``tokenize`` gives the trainer)."""
    if padding_side not in ("right", "left"):
        raise ZooError(f"padding_side {padding_side!r} is not 'right' or 'left'")
    padded, mask = _pad(ids, pad_id, padding_side)
    return {"input_ids": torch.from_numpy(padded), "attention_mask": torch.from_numpy(mask)}


def check_dtype(dtype: Any) -> None:
    """Raise a ``ZooError`` unless ``dtype`` names one of :data:`DTYPES` (a list or a number is refused too)."""
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ZooError(f"unknown dtype {dtype!r} (one of {', '.join(DTYPES)})")


def place_for_inference(model: torch.nn.Module, *, dtype: str, device: str | None) -> None:
    """Check ``dtype``, move ``model`` to ``device`` (``auto``: CUDA when present; None: where it is), and warn when
    bf16 would be emulated (a CPU without AVX512-BF16 or AMX). What every runtime encoder and ranker does first.

    Raises:
        ZooError: an unknown dtype or device.
    """
    check_dtype(dtype)
    if device is not None:
        model.to(resolve_device(device))
    if dtype == "bfloat16" and next(model.parameters()).device.type == "cpu" and not cpu_has_bf16():
        warnings.warn("no native bfloat16 on this CPU (AVX512-BF16/AMX): bf16 is emulated and slow", stacklevel=3)


def tokenize_batch(
    tokenizer: Any, texts: Sequence[str], pairs: Sequence[str] | None = None, *, max_length: int
) -> dict[str, torch.Tensor]:
    """A padded, truncated ``(B, T)`` batch of texts, or of pairs ``[CLS] text [SEP] pair [SEP]`` (truncation:
    longest first): ``input_ids``, ``attention_mask``, and ``token_type_ids`` for pairs when the tokenizer makes
    them. What the trainable families' ``tokenize`` / ``tokenize_pairs`` share."""
    args = (list(texts),) if pairs is None else (list(texts), list(pairs))
    enc = tokenizer(*args, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    keys = ("input_ids", "attention_mask") + (("token_type_ids",) if pairs is not None else ())
    return {k: enc[k] for k in keys if k in enc}


def encode_ids(
    ids: Sequence[Sequence[int]],
    forward: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    *,
    width: int,
    batch_size: int,
    max_batch_tokens: int,
    pad_id: int,
    device: torch.device | str = "cpu",
    padding_side: str = "right",
) -> np.ndarray:
    """The inference encode loop every family shares: token-budget batches of length-sorted texts through
    ``forward(batch) -> (B, width)`` vectors, back in input order. Run it under :func:`inference`.

    Args:
        ids: token ids per text (prompts prepended, truncated).
        forward: the model's pooled output of a ``(B, T)`` batch (``input_ids``, ``attention_mask``).
        width: the vectors' width.
        batch_size: texts per batch at most.
        max_batch_tokens: padded tokens per batch at most.
        pad_id: the tokenizer's pad id.
        device: where the batches go.
        padding_side: ``"right"``, or ``"left"`` for last-token pooling of decoders.

    Returns:
        ``(len(ids), width)`` float32.
    """
    out = np.empty((len(ids), width), dtype=np.float32)
    batches = length_sorted_batches(
        {"input_ids": ids},
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
        pad_ids={"input_ids": pad_id},
        device=device,
        padding_side=padding_side,
    )
    for rows, batch in batches:
        out[rows] = forward(batch).float().cpu().numpy()
    return out


@contextlib.contextmanager
def inference(model: torch.nn.Module, *, dtype: str = "float32", threads: int | None = None) -> Iterator[None]:
    """Eval mode, ``torch.inference_mode``, bf16 autocast for ``dtype="bfloat16"`` and ``threads`` torch threads
    (None: the free cores, at most torch's setting); the thread count and training mode are restored after."""
    before, training = torch.get_num_threads(), model.training
    device = next(model.parameters()).device
    autocast = torch.autocast(device.type, dtype=DTYPES[dtype]) if dtype != "float32" else contextlib.nullcontext()
    torch.set_num_threads(threads or min(before, free_cores()))
    model.eval()
    try:
        with torch.inference_mode(), autocast:
            yield
    finally:
        torch.set_num_threads(before)
        model.train(training)
