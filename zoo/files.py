"""Files that several processes share: atomic writes and ``flock`` locks (the embedding cache, result records).

Below both the zoo and the harness, so either can write safely without importing the other.
"""

from __future__ import annotations

import fcntl
import glob
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write", "temporaries", "FileLock"]


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, rename it over ``path`` and fsync the folder
    (so what is written after it is never on disk without it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """The temporary files :func:`atomic_write` leaves beside ``path`` when it is killed (only the holder of the
    lock on ``path``'s writers may remove them)."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))


class FileLock:
    """An ``flock`` on ``path``, exclusive or shared, held until :meth:`release` (or the process ends, killed or
    not). The last holder to let go removes the file (a killed holder's stays until the next one lets go).

    Example:
        >>> with FileLock(Path("results/.stsb.json.lock")):
        ...     pass  # no other process holds it here
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, *, shared: bool = False, wait: bool = True) -> bool:
        """Take (or convert to) the lock; with ``wait=False`` return False at once if another process holds it."""
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
        if self._fd is not None:
            fcntl.flock(self._fd, mode)  # exclusive to shared never waits
            return True
        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, mode)
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    self._fd = fd
                    return True
            except BlockingIOError:
                os.close(fd)
                return False
            except FileNotFoundError:
                pass
            os.close(fd)  # the file was removed by its last holder meanwhile: lock the new one

    def release(self) -> None:
        """Let go; remove the file if no other process holds or waits for it."""
        if self._fd is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.path.unlink(missing_ok=True)
        except BlockingIOError:
            pass
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    __del__ = release
