"""Embedding cache, content-addressed by (model fingerprint, kind, text), memory-mapped on disk.

Layout: ``<cache dir>/<fingerprint>/<shard>.npy`` (float32 rows) with ``<shard>.keys`` beside it
(16-byte blake2b digests of ``kind + "\\0" + text``, one per row). Shards are append-only and
written atomically (the ``.keys`` file last), so an interrupted run leaves only whole shards and
several processes can share a cache. Reading maps the shards with ``np.load(mmap_mode="r")``.

The fingerprint hashes everything that changes an embedding: the model card (name, revision =
the weights, prompts, pooling, max tokens, similarity), the factory's keyword arguments (dtype,
device) and ``ENCODE_VERSION`` (bumped when zoobench's encode path changes numbers). The cache dir
is ``--cache-dir``, else ``$ZOOBENCH_CACHE``, else ``~/.cache/zoobench/embeddings``.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.results import atomic_write

__all__ = ["ENCODE_VERSION", "EmbeddingCache", "fingerprint", "default_cache_dir"]

ENCODE_VERSION = 2  # 2: non-finite rows become zero vectors
_KEY_BYTES = 16


def default_cache_dir() -> Path:
    """``$ZOOBENCH_CACHE``, else ``~/.cache/zoobench/embeddings``."""
    env = os.environ.get("ZOOBENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "zoobench" / "embeddings"


def fingerprint(card: Any, model_kwargs: Mapping[str, Any] | None = None) -> str:
    """A stable id of what a model would embed: card + factory kwargs + encode-path version."""
    payload = {"card": card.to_dict(), "kwargs": dict(model_kwargs or {}), "encode_version": ENCODE_VERSION}
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return f"{card.name}-{hashlib.sha256(blob).hexdigest()[:16]}"


def _key(kind: str, text: str) -> bytes:
    return hashlib.blake2b(f"{kind}\0{text}".encode(), digest_size=_KEY_BYTES).digest()


class EmbeddingCache:
    """The cached embeddings of one model fingerprint."""

    def __init__(self, root: str | os.PathLike[str], fingerprint: str) -> None:
        self.dir = Path(root) / fingerprint
        self._index: dict[bytes, tuple[int, int]] = {}  # key -> (shard number, row)
        self._shards: list[np.ndarray] = []
        if self.dir.is_dir():
            for keys_path in sorted(self.dir.glob("*.keys")):
                self._open_shard(keys_path)

    def _open_shard(self, keys_path: Path) -> None:
        keys = keys_path.read_bytes()
        vectors = np.load(keys_path.with_suffix(".npy"), mmap_mode="r")
        if len(keys) != _KEY_BYTES * len(vectors):
            return  # not a whole shard (written by another version or damaged): ignore it
        shard = len(self._shards)
        self._shards.append(vectors)
        for row in range(len(vectors)):
            self._index.setdefault(keys[row * _KEY_BYTES : (row + 1) * _KEY_BYTES], (shard, row))

    def __len__(self) -> int:
        return len(self._index)

    def get(self, texts: Sequence[str], kind: str) -> tuple[list[int], np.ndarray | None]:
        """Look texts up.

        Returns:
            The positions in ``texts`` that missed, and a ``(len(texts), dim)`` array with the hits
            filled in (``None`` when nothing hit).
        """
        found = [self._index.get(_key(kind, t)) for t in texts]
        missing = [i for i, f in enumerate(found) if f is None]
        if len(missing) == len(texts):
            return missing, None
        dim = self._shards[0].shape[1]
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for i, f in enumerate(found):
            if f is not None:
                out[i] = self._shards[f[0]][f[1]]
        return missing, out

    def put(self, texts: Sequence[str], kind: str, vectors: np.ndarray) -> None:
        """Append embeddings as a new shard (atomically: vectors first, keys last)."""
        if not len(texts):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        name = uuid.uuid4().hex
        npy, keys = self.dir / f"{name}.npy", self.dir / f"{name}.keys"
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{name}.npy.tmp"
        with open(tmp, "wb") as f:
            np.save(f, vectors)
        os.replace(tmp, npy)
        atomic_write(keys, b"".join(_key(kind, t) for t in texts))
        self._open_shard(keys)
