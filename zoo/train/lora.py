"""LoRA through peft: an adapter trained on a family's frozen base, saved as peft's adapter folder.

Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", arXiv:2106.09685: a targeted ``Linear`` computes
``W x + (alpha / r) * B A dropout(x)`` with ``W`` fixed and only ``A`` (r x in) and ``B`` (out x r, zero at start)
trained.

With a ``[model.lora]`` table (``zoo.train.config.LoraConfig``) the trainer injects LoRA layers into the family's
model in place (``peft.inject_adapter_in_model``): the model keeps its class, so its heads, tokenizer and the
objectives work unchanged; the base weights stay fixed and the adapter trains, with what ``model.trainable`` names
(a task head). Checkpoints and the finished folder hold:

- ``adapter_config.json``: peft's ``LoraConfig``, ``target_modules`` resolved to the full module names;
- ``adapter_model.safetensors``: peft's adapter state (``<module>.lora_A.weight``, ``<module>.lora_B.weight``)
  and the trained base parameters (a head) under their names in the adapted model; ``train.json``'s
  ``weights_sha256`` is this file's;
- ``adapter_base.json``: the base: family, checkpoint source, the recipe's overrides, sha256 of its weights file;
- ``zoobench.json``: pooling, normalisation, max tokens and prompts of the model, for its card.

``zoo.trained`` loads such a folder with :func:`load_lora`: the base through its family, checked against the
recorded sha256, the adapter applied and merged into the base weights (``W + (alpha / r) B A``), so the family's
runtime serves a plain model of its class at the base's speed.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ZooError
from zoo.trained import ADAPTER_BASE, ADAPTER_WEIGHTS
from zoo.weights import weights_sha256

__all__ = [
    "ATTENTION",
    "ADAPTER_PARAMS",
    "require_peft",
    "add_lora",
    "base_record",
    "save_adapter",
    "resume_adapter",
    "load_lora",
]

# the default target_modules: the attention projections of BERT (GTE's backbone) and of mGTE
ATTENTION = ("query", "key", "value", "attention.output.dense", "qkv_proj", "q_proj", "k_proj", "v_proj", "o_proj")
# the adapter's parameters, as model.trainable patterns
ADAPTER_PARAMS = ("*.lora_A.*", "*.lora_B.*")


def require_peft() -> Any:
    """The peft module, or a one-line error saying how to install it."""
    try:
        import peft
    except ImportError:
        raise ZooError("LoRA needs peft: pip install zoobench[train]") from None
    return peft


def _matches(name: str, pattern: str) -> bool:
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return name == pattern or name.endswith("." + pattern)


def _target_names(model: torch.nn.Module, patterns: list[str] | None) -> list[str]:
    """The names of the ``Linear`` modules the patterns match (``LoraConfig.target_modules``; None: ``ATTENTION``).

    Raises:
        ZooError: a given pattern matches no ``Linear`` module, or none of ``ATTENTION`` is found.
    """
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    for pattern in patterns or ():
        if not any(_matches(n, pattern) for n in names):
            raise ZooError(f"model.lora.target_modules: {pattern!r} matches no Linear module (e.g. {names[0]!r})")
    found = [n for n in names if any(_matches(n, p) for p in (ATTENTION if patterns is None else patterns))]
    if not found:
        raise ZooError(f"model.lora: {type(model).__name__} has none of the attention projections {ATTENTION}")
    return found


def add_lora(model: torch.nn.Module, cfg: Any, *, seed: int) -> None:
    """Inject LoRA layers (``cfg``: a ``LoraConfig``) into ``model`` in place; ``A`` is drawn from ``seed``.

    Every parameter is left trainable: the caller chooses what moves (``ADAPTER_PARAMS`` and ``model.trainable``).
    """
    peft = require_peft()
    config = peft.LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=_target_names(model, cfg.target_modules),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        peft.inject_adapter_in_model(config, model)
    model.requires_grad_(True)  # undo peft's freezing: the recipe's patterns decide


def base_record(family: str, source: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """What ``adapter_base.json`` says of the base: family, checkpoint source, overrides and weights sha256."""
    from zoo.checkpoints import resolve

    try:
        sha = weights_sha256(resolve(source))
    except ZooError as e:
        raise ZooError(f"model.lora: the base {source} has no weights to pin the adapter to ({e})") from None
    return {"family": family, "source": source, "overrides": overrides, "sha256": sha}


def save_adapter(model: torch.nn.Module, folder: Path, base: dict[str, Any]) -> Path:
    """Write the adapter folder of an adapted model (see the module docstring); returns it."""
    from safetensors.torch import save_file

    peft = require_peft()
    folder.mkdir(parents=True, exist_ok=True)
    state = peft.get_peft_model_state_dict(model)
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad and ".lora_" not in n}
    state.update(trained)
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(folder / ADAPTER_WEIGHTS))
    model.peft_config["default"].save_pretrained(str(folder))
    (folder / ADAPTER_BASE).write_text(json.dumps(base, indent=2) + "\n")
    card = {k: getattr(model, k) for k in ("pooling", "normalize", "max_tokens", "prompts") if hasattr(model, k)}
    (folder / "zoobench.json").write_text(json.dumps(card, indent=2) + "\n")
    return folder


def load_adapter(model: torch.nn.Module, folder: Path) -> None:
    """Load a folder's adapter (and trained base parameters) into a model adapted as it was.

    Raises:
        ZooError: the file lacks an adapter weight of the model, or has a weight the model lacks.
    """
    from safetensors.torch import load_file

    result = require_peft().set_peft_model_state_dict(model, load_file(folder / ADAPTER_WEIGHTS))
    missing = [k for k in result.missing_keys if ".lora_" in k]
    if missing or result.unexpected_keys:
        bad = missing or result.unexpected_keys
        raise ZooError(f"{folder / ADAPTER_WEIGHTS}: does not fit the model ({bad[0]} missing or unexpected)")


def resume_adapter(model: torch.nn.Module, folder: Path, base: dict[str, Any]) -> None:
    """Load a checkpoint's adapter into the model ``add_lora`` adapted, after checking it was trained on ``base``."""
    if json.loads((folder / ADAPTER_BASE).read_text()) != base:
        raise ZooError(f"{folder}: the base {base['source']} changed since this checkpoint; use --no-resume")
    load_adapter(model, folder)


def load_lora(family: Any, folder: Path) -> torch.nn.Module:
    """The model of an adapter folder: its base through ``family``, checked, with the adapter merged in.

    Args:
        family: the base's ``zoo.family.Family``.
        folder: an adapter folder (``save_adapter``).

    Returns:
        A plain model of ``family.model`` (no peft layers), in eval mode.

    Raises:
        ZooError: the base's weights changed since training (their sha256), or the adapter does not fit.
    """
    peft = require_peft()
    from peft.tuners.tuners_utils import BaseTunerLayer

    base = json.loads((folder / ADAPTER_BASE).read_text())
    got = base_record(base["family"], base["source"], base["overrides"])["sha256"]
    if got != base["sha256"]:
        want = base["sha256"].removeprefix("sha256:")[:12]
        raise ZooError(f"{folder}: its base {base['source']} changed since training (sha256 {want} recorded)")
    model = family.model.from_pretrained(base["source"], **base["overrides"])
    peft.inject_adapter_in_model(peft.LoraConfig.from_pretrained(str(folder)), model)
    load_adapter(model, folder)
    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):  # W += (alpha / r) B A, then the plain Linear takes its place
            module.merge(safe_merge=True)
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, module.get_base_layer())
    del model.peft_config
    return model.eval()
