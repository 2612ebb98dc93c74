"""Embedding cache, content-addressed by (model fingerprint, kind, text): dense rows and sparse term weights.

Dense layout: ``<cache dir>/<fingerprint>/<shard>.npy`` (float32 rows) with ``<shard>.keys`` beside it: a magic
line, the CRC-32 of the ``.npy`` bytes and of the keys, then the keys (16-byte blake2b digests of
``kind + "\\0" + text``, one per row). Reading checks the checksum and the lengths, then maps the shards with
``np.load(mmap_mode="r")``; a shard that fails is deleted with a one-line warning, so its texts are encoded again.

Sparse layout (:class:`SparseCache`, same keys): ``<cache dir>/<fingerprint>/sparse-v1/<shard>.npz`` holding
``keys`` (n, 16) uint8, ``indptr`` (n + 1) int64, ``terms`` int32 indices into ``vocab`` (the shard's terms, a
UTF-8 JSON list) and ``weights`` float32 (what the sparse scorer computes in). A shard that does not read back
whole and consistent (truncated, a zip CRC mismatch) is deleted with a one-line warning, so its texts are
encoded again.

Shards are append-only and written atomically (data, fsync, then rename; a dense shard's ``.keys`` last),
so an interrupted run leaves only whole shards and several processes can share a cache. Each user of a
fingerprint holds a shared lock on its ``.lock``; one that finds itself alone (the lock taken exclusively) first
removes what killed writers left: temporaries and ``.npy`` files without their ``.keys``.

The fingerprint hashes everything that changes an embedding: the model card (name, revision =
the weights, prompts, pooling, max tokens, similarity), the factory's keyword arguments (dtype,
device; the runner leaves out a model's ``search_options``) and ``ENCODE_VERSION`` (bumped when
zoobench's encode path changes numbers). The cache dir is ``--cache-dir``, else ``$ZOOBENCH_CACHE``,
else ``~/.cache/zoobench/embeddings``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import uuid
import warnings
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.files import FileLock, atomic_write

__all__ = ["ENCODE_VERSION", "EmbeddingCache", "SparseCache", "fingerprint", "default_cache_dir"]

ENCODE_VERSION = 2  # 2: non-finite rows become zero vectors
_KEY_BYTES = 16
_KEYS_MAGIC = b"zoobench-keys-v2\n"  # then the CRC-32 of the shard (npy bytes + keys, 4 bytes), then the keys
_KEYS_HEAD = len(_KEYS_MAGIC) + 4
_SPARSE_DIR = "sparse-v1"  # the sparse shard format (bump the suffix when the layout changes)
_SPARSE_ARRAYS = ("keys", "indptr", "terms", "weights", "vocab")


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
    """The cached embeddings of one model fingerprint; :meth:`close` lets go of its lock."""

    def __init__(self, root: str | os.PathLike[str], fingerprint: str) -> None:
        self.dir = Path(root) / fingerprint
        self._index: dict[bytes, tuple[int, int]] = {}  # key -> (shard number, row)
        self._shards: list[np.ndarray] = []
        self._seen: set[str] = set()
        self._lock = FileLock(self.dir / ".lock")
        if self._lock.acquire(wait=False):  # no other process uses the fingerprint: clear what a killed one left
            _sweep(self.dir)
        self._lock.acquire(shared=True)
        self.refresh()

    def refresh(self) -> None:
        """Read the shards written since (by another process too)."""
        for keys_path in sorted(self.dir.glob("*.keys")):
            if keys_path.name not in self._seen:
                self._seen.add(keys_path.name)
                self._open_shard(keys_path)
        if "sparse" in self.__dict__:
            self.sparse.refresh()

    def close(self) -> None:
        """Release the lock (the process's end does too)."""
        self._lock.release()

    def _open_shard(self, keys_path: Path) -> None:
        try:
            keys, vectors = _read_dense_shard(keys_path)
        except (OSError, ValueError) as err:
            _drop(keys_path, err, keys_path.with_suffix(".npy"))
            return
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
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(vectors, dtype=np.float32))
        name, keys = uuid.uuid4().hex, b"".join(_key(kind, t) for t in texts)
        atomic_write(self.dir / f"{name}.npy", buf.getvalue())
        atomic_write(self.dir / f"{name}.keys", _KEYS_MAGIC + _checksum(buf.getbuffer(), keys) + keys)
        self._seen.add(f"{name}.keys")
        self._open_shard(self.dir / f"{name}.keys")

    @functools.cached_property
    def sparse(self) -> SparseCache:
        """The sparse term weights of the same fingerprint (read on first use)."""
        return SparseCache(self.dir.parent, self.dir.name)


class SparseCache:
    """The cached ``{term: weight}`` dicts of one model fingerprint (layout in the module docstring)."""

    def __init__(self, root: str | os.PathLike[str], fingerprint: str) -> None:
        self.dir = Path(root) / fingerprint / _SPARSE_DIR
        self._index: dict[bytes, tuple[int, int]] = {}  # key -> (shard number, row)
        self._shards: list[dict[str, Any]] = []
        self._seen: set[str] = set()
        self.refresh()

    def refresh(self) -> None:
        """Read the shards written since (by another process too)."""
        for path in sorted(self.dir.glob("*.npz")) if self.dir.is_dir() else []:
            if path.name in self._seen:
                continue
            self._seen.add(path.name)
            try:
                shard = _read_sparse_shard(path)
            except (OSError, ValueError, TypeError, KeyError, EOFError, zipfile.BadZipFile) as err:
                _drop(path, err)
                continue
            self._add(shard)

    def _add(self, shard: dict[str, Any]) -> None:
        number = len(self._shards)
        self._shards.append(shard)
        for row, key in enumerate(shard.pop("keys")):
            self._index.setdefault(key.tobytes(), (number, row))

    def __len__(self) -> int:
        return len(self._index)

    def get(self, texts: Sequence[str], kind: str) -> tuple[list[int], list[dict[str, float]]]:
        """Look texts up.

        Returns:
            The positions in ``texts`` that missed, and one ``{term: weight}`` dict per text (``{}`` where missed).
        """
        found = [self._index.get(_key(kind, t)) for t in texts]
        out: list[dict[str, float]] = [{} for _ in texts]
        for i, f in enumerate(found):
            if f is not None:
                shard = self._shards[f[0]]
                span = slice(shard["indptr"][f[1]], shard["indptr"][f[1] + 1])
                terms, vocab = shard["terms"][span].tolist(), shard["vocab"]
                out[i] = dict(zip([vocab[t] for t in terms], shard["weights"][span].tolist(), strict=True))
        return [i for i, f in enumerate(found) if f is None], out

    def put(self, texts: Sequence[str], kind: str, weights: Sequence[Mapping[str, float]]) -> None:
        """Append term weights as a new shard (atomically: written, fsynced, then renamed into place)."""
        if not len(texts):
            return
        vocab: dict[str, int] = {}
        indptr, terms, values = [0], [], []
        for w in weights:
            terms.extend(vocab.setdefault(t, len(vocab)) for t in w)
            values.extend(w.values())
            indptr.append(len(terms))
        shard = {
            "keys": np.frombuffer(b"".join(_key(kind, t) for t in texts), np.uint8).reshape(-1, _KEY_BYTES),
            "indptr": np.asarray(indptr, dtype=np.int64),
            "terms": np.asarray(terms, dtype=np.int32),
            "weights": np.asarray(values, dtype=np.float32),
            "vocab": np.frombuffer(json.dumps(list(vocab)).encode(), np.uint8),
        }
        buf = io.BytesIO()
        np.savez(buf, **shard)
        name = f"{uuid.uuid4().hex}.npz"
        atomic_write(self.dir / name, buf.getvalue())
        self._seen.add(name)
        self._add({**shard, "vocab": list(vocab)})


def _read_sparse_shard(path: Path) -> dict[str, Any]:
    """A sparse shard's arrays, read whole (the zip checks each array's CRC) and checked for consistency.

    Raises:
        ValueError: arrays that do not fit together (the zip and npy readers raise their own errors).
    """
    with np.load(path, allow_pickle=False) as z:
        shard = {name: z[name] for name in _SPARSE_ARRAYS}
    shard["vocab"] = json.loads(shard["vocab"].tobytes())
    keys, indptr, terms, weights = (shard[n] for n in ("keys", "indptr", "terms", "weights"))
    ok = (
        isinstance(shard["vocab"], list)
        and keys.dtype == np.uint8
        and keys.shape == (len(indptr) - 1, _KEY_BYTES)
        and indptr[0] == 0
        and (np.diff(indptr) >= 0).all()
        and indptr[-1] == len(terms) == len(weights)
        and (len(terms) == 0 or 0 <= terms.min() <= terms.max() < len(shard["vocab"]))
        and np.isfinite(weights).all()
    )
    if not ok:
        raise ValueError("inconsistent arrays")
    return shard


def _checksum(*parts: Any) -> bytes:
    """CRC-32 over the parts (it catches torn and flipped bytes; blake2b would cost the warm rerun ~5%)."""
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    return crc.to_bytes(4, "little")


def _read_dense_shard(keys_path: Path) -> tuple[bytes, np.ndarray]:
    """A dense shard's keys and rows (memory-mapped), checked against the checksum in its key file.

    Raises:
        ValueError: a key file of another format, a checksum or length mismatch (the npy reader raises its own).
    """
    head = keys_path.read_bytes()
    keys = head[_KEYS_HEAD:]
    if not head.startswith(_KEYS_MAGIC[: len(head)]):
        raise ValueError("not a key file of this version")
    if len(head) < _KEYS_HEAD or len(keys) % _KEY_BYTES:
        raise ValueError("truncated key file")
    npy = keys_path.with_suffix(".npy")
    if _checksum(np.memmap(npy, dtype=np.uint8, mode="r"), keys) != head[len(_KEYS_MAGIC) : _KEYS_HEAD]:
        raise ValueError("checksum mismatch")
    vectors = np.load(npy, mmap_mode="r")
    if vectors.dtype != np.float32 or vectors.ndim != 2 or len(vectors) * _KEY_BYTES != len(keys):
        raise ValueError("rows and keys do not match")
    return keys, vectors


def _drop(path: Path, err: Exception, *others: Path) -> None:
    """Delete a damaged shard (the file that publishes it first), with a one-line warning.

    A shard is renamed into place whole and fsynced before it is published, so a damaged one stays damaged.
    """
    what = "sparse cache" if path.suffix == ".npz" else "cache"
    warnings.warn(f"{what}: dropped damaged shard {path} ({err}); its texts are encoded again", stacklevel=3)
    for p in (path, *others):
        p.unlink(missing_ok=True)


def _sweep(folder: Path) -> None:
    """Remove what killed writers left in a fingerprint's folder (call it holding the exclusive lock)."""
    leftovers = [*folder.glob(".*.tmp"), *folder.glob(f"{_SPARSE_DIR}/.*.tmp")]
    leftovers += [p for p in folder.glob("*.npy") if not p.with_suffix(".keys").exists()]
    for path in leftovers:
        path.unlink(missing_ok=True)
