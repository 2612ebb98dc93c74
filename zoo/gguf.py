"""GGUF causal LMs (llama.cpp's format) turned into float32 Hugging Face folders, once.

transformers reads a GGUF file's config, tokenizer and (dequantized) tensors itself
(``AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)``, which needs the ``gguf`` package). That load
takes about 20-35 s for SmolLM2-135M; the folder :func:`convert` writes (``config.json``, ``model.safetensors``,
tokenizer files, ``conversion.json``) loads in a few seconds with the plain ``from_pretrained(folder)``.
The model keeps its causal-LM class (``LlamaForCausalLM`` ...), so both the decoder embedder (its backbone) and the
LLM ranker (its LM head) load it. The quantizer's record (``config.quantization_config``) is dropped before saving:
the weights are plain float32 after dequantization, and a folder that names a GGUF quantizer would not reload.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zoo.checkpoints import convert_once
from zoo.errors import ZooError

__all__ = ["CONVERTER_VERSION", "convert", "require_gguf"]

CONVERTER_VERSION = 1


def require_gguf() -> Any:
    """The ``gguf`` module, or a one-line error saying how to install it."""
    try:
        import gguf
    except ImportError:
        raise ZooError("reading GGUF files needs the gguf package: pip install gguf (or zoobench[llm])") from None
    return gguf


def convert(path: str | os.PathLike[str], *, name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The float32 HF folder of a GGUF causal LM, converted on first use (``zoo.checkpoints.convert_once``).

    Args:
        path: the ``.gguf`` file.
        name: the folder name's prefix (``smollm2-135m-instruct``).
        cache_dir: default ``$ZOOBENCH_CHECKPOINTS``, else ``~/.cache/zoobench/checkpoints``.

    Returns:
        The folder.

    Raises:
        ZooError: ``gguf`` is missing, or the file is not a GGUF causal LM that transformers reads.
    """
    require_gguf()
    return convert_once(path, name=name, version=CONVERTER_VERSION, write=_write_folder, cache_dir=cache_dir)


def _write_folder(path: Path, out: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zoo.weights import quiet_transformers

    try:
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    except Exception as e:  # transformers raises ValueError, KeyError, OSError ... for a file it cannot read
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise ZooError(f"{path}: not a GGUF causal LM that transformers can load ({why})") from None
    model.hf_quantizer = None  # dequantized already: the folder is plain float32
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(model.config, attr):
            delattr(model.config, attr)
    model.config.architectures = [type(model).__name__]
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return {"upstream": f"{path.name} (GGUF, dequantized to float32 by transformers)", "class": type(model).__name__}
