"""The training engine every family reuses: losses, data, the loop (``zoo.train.trainer``).

This package imports nothing heavy, so the CLI can declare ``zoobench train`` without loading torch.

    zoobench train --recipe gte/minilm-two-stage [--set stages.*.steps=50] [--out DIR]
    python -m zoo.train --recipe gte/tiny-scratch                     # the same, without the CLI
    torchrun --standalone --nproc_per_node 2 -m zoo.train --recipe ...  # DDP (gloo on CPU, NCCL on CUDA)
    zoobench train --recipe gte/minilm-two-stage --device cuda        # the same recipe on a GPU (default: auto)
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["train", "add_arguments", "train_from_args"]


def train(
    recipe: str | os.PathLike[str] | dict[str, Any],
    overrides: Iterable[str] = (),
    *,
    out: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    progress: bool = True,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
    device: str | None = None,
) -> Path:
    """Train a model from a recipe and register it; see :func:`zoo.train.trainer.train`."""
    from zoo.train.trainer import train as _train

    return _train(
        recipe,
        overrides,
        out=out,
        data_dir=data_dir,
        resume=resume,
        progress=progress,
        on_step=on_step,
        device=device,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``zoobench train`` and ``python -m zoo.train``."""
    parser.add_argument("--recipe", "-r", required=True, help="a recipe .toml file or a name such as gte/tiny-scratch")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key (repeatable), e.g. seed=1, stages.*.steps=20, stages.weak.lr=1e-4",
    )
    parser.add_argument(
        "--out", help="output folder (default: <models dir>/<recipe name>; $ZOOBENCH_MODELS or ./models)"
    )
    parser.add_argument(
        "--data-dir", help="where the training data lives (default: $ZOOBENCH_DATA, ./data, ../shared/data)"
    )
    parser.add_argument(
        "--device", help="where to train: auto (CUDA when present, else CPU), cpu, cuda, cuda:1 (default: the recipe's)"
    )
    parser.add_argument("--no-resume", action="store_true", help="start over even if OUT has checkpoints")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def train_from_args(args: argparse.Namespace) -> Path:
    """Run :func:`train` with the arguments :func:`add_arguments` declared (both CLIs share this)."""
    return train(
        args.recipe,
        args.overrides,
        out=args.out,
        data_dir=args.data_dir,
        resume=not args.no_resume,
        progress=not args.no_progress,
        device=args.device,
    )
