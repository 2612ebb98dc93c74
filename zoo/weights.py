"""A model folder's weights: one ``model.safetensors``, or the shards that ``model.safetensors.index.json`` lists
(``model-00001-of-00003.safetensors`` ..., transformers' layout for large models); safetensors only, never pickle.

- :func:`weight_files` the files, :func:`weight_names` the tensor names (headers only), :func:`load_weights` the
  tensors of every file in one dict;
- :func:`weights_sha256` the identity of the weights: the file's sha256, or for shards the sha256 of the list of
  ``<shard name> <shard sha256>`` lines (so a changed shard, a renamed one or a missing one changes it). Trained
  folders, cards and LoRA bases are pinned to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

__all__ = [
    "WEIGHTS",
    "INDEX",
    "sha256_file",
    "weight_files",
    "weight_names",
    "weights_sha256",
    "load_weights",
    "quiet_transformers",
    "st_modules",
]

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"


def sha256_file(path: Path) -> str:
    """``sha256:<hex>`` of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def weight_files(folder: str | Path) -> list[Path]:
    """``[model.safetensors]``, or the shards of ``model.safetensors.index.json`` in name order.

    Raises:
        ZooError: neither exists, the index is unreadable, or a shard it lists is missing.
    """
    folder = Path(folder)
    if (folder / WEIGHTS).is_file():
        return [folder / WEIGHTS]
    index = folder / INDEX
    if not index.is_file():
        raise ZooError(f"{folder}: no {WEIGHTS} or {INDEX} (weights load from safetensors only)")
    try:
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ZooError(f"{index}: unreadable shard index ({type(e).__name__})") from None
    missing = [s for s in shards if not (folder / s).is_file()]
    if missing or not shards:
        raise ZooError(f"{index}: lists {missing[0] if missing else 'no shard'!r}, which is not in {folder}")
    return [folder / s for s in shards]


def weight_names(folder: str | Path) -> list[str]:
    """The tensor names of every weights file, read from the safetensors headers only."""
    from safetensors import safe_open

    names: list[str] = []
    for path in weight_files(folder):
        with safe_open(str(path), framework="pt") as f:
            names.extend(f.keys())  # noqa: SIM118 (safe_open is not a mapping)
    return names


def weights_sha256(folder: str | Path) -> str:
    """``sha256:<hex>`` of the weights (see the module docstring)."""
    files = weight_files(folder)
    if len(files) == 1 and files[0].name == WEIGHTS:
        return sha256_file(files[0])
    listing = "".join(f"{p.name} {sha256_file(p)}\n" for p in files)
    return "sha256:" + hashlib.sha256(listing.encode()).hexdigest()


def load_weights(folder: str | Path) -> dict[str, Any]:
    """Every tensor of the folder's weights files (``safetensors.torch.load_file``), by name.

    Raises:
        ZooError: a tensor name in two shards.
    """
    from safetensors.torch import load_file

    state: dict[str, Any] = {}
    for path in weight_files(folder):
        part = load_file(str(path))
        twice = next((k for k in part if k in state), None)
        if twice is not None:
            raise ZooError(f"{path}: tensor {twice!r} is also in another shard")
        state.update(part)
    return state


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bars (they would print on every model load)."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def st_modules() -> Any:
    """sentence-transformers' module classes (``Transformer``, ``Pooling``, ``Dense``, ``Normalize``) from where the
    installed version keeps them (``sentence_transformer.modules`` from 6 on, ``models`` before)."""
    try:
        from sentence_transformers.sentence_transformer import modules
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers import models as modules
    return modules
