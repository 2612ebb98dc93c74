"""The one exception users see as a one-line message (the CLI prints it and exits with code 2)."""

from __future__ import annotations

__all__ = ["ZooError"]


class ZooError(Exception):
    """A user-facing error: bad input, an unknown name, missing data. Its message is one line."""
