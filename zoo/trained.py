"""Trained models as registry entries: every finished training folder under the models dir.

``zoobench train`` writes ``<models dir>/<name>/``: an HF-style folder of its family (for GTE:
config.json, model.safetensors, tokenizer files, zoobench.json) plus ``train.json``, the training
record (resolved recipe, data checksums, git revision, weights sha256). The registry calls
:func:`discover` on every lookup, so a model is listed (``zoobench ls models``) and runnable
(``zoobench run --model <name>``) as soon as its ``train.json`` exists, without editing any code.

- The models dir is ``$ZOOBENCH_MODELS``, else ``./models``.
- The card is built from the folder: name and family from ``train.json``, ``revision`` =
  ``sha256-<first 12 hex digits of model.safetensors>`` (recorded at the end of training and checked
  when the weights load), pooling / prompts / max tokens from the family's config file.
- A folder whose name is already registered by a family, or whose weights are not safetensors, is skipped with a
  warning that says why.
- A LoRA folder (``[model.lora]``, ``zoo.train.lora``) holds an adapter instead of the family's weights: its
  revision is the adapter file's hash, and it loads onto its base, whose weights must still have the recorded hash.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import ZooError
from zoo.protocols import Encoder
from zoo.registry import ModelCard, get_family
from zoo.weights import INDEX, WEIGHTS, sha256_file, st_modules, weight_files, weights_sha256

__all__ = [
    "TRAIN_RECORD",
    "WEIGHTS",
    "is_lora",
    "trained_sha256",
    "check_safetensors",
    "models_dir",
    "discover",
    "card_from_folder",
    "trained",
    "export_sentence_transformers",
]

TRAIN_RECORD = "train.json"
# a LoRA folder (zoo.train.lora): peft's two files and the reference to the base
ADAPTER_CONFIG, ADAPTER_WEIGHTS, ADAPTER_BASE = "adapter_config.json", "adapter_model.safetensors", "adapter_base.json"
MODELS_ENV = "ZOOBENCH_MODELS"


def models_dir() -> Path:
    """Where trained models live: ``$ZOOBENCH_MODELS``, else ``./models``."""
    return Path(os.environ.get(MODELS_ENV) or "models")


def is_lora(folder: Path) -> bool:
    """Whether a training folder holds a LoRA adapter (over a base it refers to) rather than whole weights."""
    return (folder / ADAPTER_CONFIG).is_file()


def trained_sha256(folder: Path) -> str:
    """What a training folder's weights are identified by: the LoRA adapter file's sha256, else the family's
    weights' (``zoo.weights.weights_sha256``: one file or shards)."""
    check_safetensors(folder)
    return sha256_file(folder / ADAPTER_WEIGHTS) if is_lora(folder) else weights_sha256(folder)


def check_safetensors(folder: Path) -> None:
    """Refuse a training folder whose weights are not safetensors (a look-alike with ``pytorch_model.bin`` or
    ``adapter_model.bin``: checkpoints never load from pickle).

    Raises:
        ZooError: naming the file that is missing.
    """
    if not is_lora(folder):
        weight_files(folder)
    elif not (folder / ADAPTER_WEIGHTS).is_file():
        raise ZooError(f"{folder}: no {ADAPTER_WEIGHTS} (weights load from safetensors only)")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ZooError(f"{path}: unreadable training record ({type(e).__name__})") from None
    if not isinstance(data, dict):
        raise ZooError(f"{path}: expected a JSON object")
    return data


def card_from_folder(folder: Path) -> ModelCard:
    """The card of a finished training folder (see the module docstring)."""
    record = _read_json(folder / TRAIN_RECORD)
    extra_path = folder / "zoobench.json"
    extra = _read_json(extra_path) if extra_path.exists() else {}
    try:
        name, family, sha = record["name"], record["family"], record["weights_sha256"]
    except KeyError as e:
        raise ZooError(f"{folder / TRAIN_RECORD}: missing key {e.args[0]!r}") from None
    return ModelCard(
        name=name,
        family=family,
        revision=f"sha256-{sha.removeprefix('sha256:')[:12]}",
        source=f"trained:{folder.name}",
        upstream=f"trained by zoobench ({record.get('recipe', '?')}) from {_origin(record)}",
        params=record.get("params"),
        embed_dim=record.get("embed_dim"),
        max_tokens=extra.get("max_tokens"),
        languages=tuple(record.get("languages") or ()),
        pooling=extra.get("pooling"),
        prompts=dict(extra.get("prompts") or {}),
        training_data=tuple(f"{s['name']} ({s['examples']} examples)" for s in record.get("data", [])),
        citation=record.get("citation"),
    )


def discover(taken: Sequence[str] = ()) -> list[tuple[ModelCard, Callable[..., Any]]]:
    """Cards and factories of the finished training folders under :func:`models_dir`.

    The folders are read once for as long as nothing in them changes (the memo is keyed by the folders and the
    modification times of their ``train.json`` and weights), so a command that resolves several names scans once.

    Args:
        taken: names already registered; a folder with one of them is skipped (with a warning).
    """
    root = models_dir()
    if not root.is_dir():
        return []
    folders = sorted(p for p in root.iterdir() if (p / TRAIN_RECORD).is_file())
    return list(_discover(tuple(taken), tuple((str(f), _stamp(f)) for f in folders)))


def _stamp(folder: Path) -> tuple[int, ...]:
    stats = [folder / TRAIN_RECORD, folder / (ADAPTER_WEIGHTS if is_lora(folder) else WEIGHTS), folder / INDEX]
    return tuple(int(p.stat().st_mtime_ns) if p.exists() else 0 for p in stats)


@functools.lru_cache(maxsize=8)
def _discover(taken: tuple[str, ...], folders: tuple[tuple[str, tuple[int, ...]], ...]) -> tuple[Any, ...]:
    found = []
    for folder in (Path(f) for f, _ in folders):
        try:
            check_safetensors(folder)
            card = card_from_folder(folder)
        except ZooError as e:
            print(f"zoobench: warning: skipped trained model {folder}: {e}", file=sys.stderr)
            continue
        if card.name in taken or card.name.count(".") > 1:
            print(f"zoobench: warning: skipped {folder}: model name {card.name!r} is taken or invalid", file=sys.stderr)
            continue
        found.append((card, _factory(card.family, folder)))
    return tuple(found)


def _runner_class(family: str, folder: Path) -> type | None:
    """What the family's runtime gives for this folder (``Family.runtime_class``), read without loading weights;
    for a LoRA folder, what it gives for the base."""
    if (folder / ADAPTER_BASE).is_file():
        from zoo.checkpoints import resolve

        folder = resolve(_read_json(folder / ADAPTER_BASE)["source"])
    try:
        found = get_family(family).runtime_class(folder)
    except (OSError, ValueError) as e:  # an unreadable weights file: the load will say more
        raise ZooError(f"{folder}: cannot read the weights' header ({type(e).__name__})") from None
    return found if isinstance(found, type) else None


def _factory(family: str, folder: Path) -> Callable[..., Any]:
    """:func:`trained`, with a ``model_class(card)`` that says which class the family's runtime gives for the folder
    (:func:`_runner_class`; asked only when needed, so listing trained folders imports no family).

    ``create_model(lazy=True)`` builds its stand-in from that class: it offers all its protocols (mGTE's
    ``encode_sparse``, or ``score`` for a trained reranker) and option-determined attributes
    (``lazy_attributes``: mGTE's ``retrieval_mode``), not only ``Encoder.encode``.
    """

    def factory(card: ModelCard, **kwargs: Any) -> Any:
        return trained(card, **kwargs)

    runner_class = functools.cache(lambda: _runner_class(family, folder))
    factory.model_class = lambda card: runner_class()  # type: ignore[attr-defined]
    factory.__doc__ = trained.__doc__
    return factory


def trained(card: ModelCard, *, check_revision: bool = True, **kwargs: Any) -> Encoder:
    """Load a discovered training folder (the factory of every discovered card).

    The weights are checked against ``train.json`` (their sha256), then the family's model class loads
    them and its ``runtime(model, card, **kwargs)`` wraps them: a trained GTE model encodes through
    :class:`zoo.families.gte.GTEEncoder` (length-sorted token batches, ``dtype="bfloat16"`` autocast). A LoRA
    folder loads its base through the family, checks the base's sha256 and merges the adapter into it
    (``zoo.train.lora.load_lora``).

    Args:
        card: a card from :func:`discover`.
        check_revision: refuse weights whose sha256 differs from the training record.
        **kwargs: passed to the family's encoder (``dtype``, ``threads``, ``max_batch_tokens`` for GTE).
    """
    from zoo.checkpoints import resolve

    folder = resolve(card.source)
    record = _read_json(folder / TRAIN_RECORD)
    if check_revision and trained_sha256(folder) != record["weights_sha256"]:
        raise ZooError(f"{folder}: the weights changed after training (sha256 differs from train.json)")
    family = get_family(card.family)
    kwargs.setdefault("device", "auto")  # the family's runtime moves the model (CUDA when present)
    return family.runtime(_load_model(family, folder), card, **kwargs)


def _load_model(family: Any, folder: Path) -> Any:
    """A trained folder's model: a LoRA adapter merged into its (checked) base, or the folder's full weights."""
    if is_lora(folder):
        from zoo.train.lora import load_lora

        return load_lora(family, folder)
    return family.model.from_pretrained(folder)


def _origin(record: dict[str, Any]) -> str:
    """What a trained model started from: its init, scratch, or the merge (method, task models, base, alphas)."""
    merge = record.get("merge")
    if not merge:
        return record.get("init") or "scratch"
    alphas = merge.get("alphas")
    learned = f", learned alphas {json.dumps(alphas, separators=(',', ':'))}" if alphas else ""
    return f"a {merge['method']} merge of {', '.join(merge['models'])} over {merge['base']}{learned}"


# SENTENCE-TRANSFORMERS EXPORT ====================================================================

_ST_POOLING = {"mean": "mean", "cls": "cls", "last": "lasttoken"}


def export_sentence_transformers(name: str, out: str | os.PathLike[str], *, verify: bool = True) -> Path:
    """Write a trained model as a sentence-transformers folder (``SentenceTransformer(out)`` loads it, without
    ``trust_remote_code``).

    The folder holds the transformer weights in an architecture stock transformers knows (the family's own folder,
    or what its ``Family.to_transformers`` converts it to: mGTE becomes transformers' ``gte``), the tokenizer, a
    Pooling module with the model's pooling, for a Matryoshka width a Dense module keeping the first features, a
    Normalize module when the model normalises, ``max_seq_length`` = the card's max tokens, and the card's prompts
    (``encode(texts, prompt_name="query")``).

    Args:
        name: a trained model (see ``zoobench ls models``).
        out: the folder to write.
        verify: reload the folder with sentence-transformers and check that it embeds a few texts as
            zoobench does (max abs difference <= 1e-4).

    Returns:
        The folder.

    Raises:
        ZooError: for a model that is not a trained encoder folder, an unsupported pooling or architecture, or a
            failed check.

    Example:
        >>> export_sentence_transformers("gte-minilm-l6.two-stage", "/tmp/st")
        >>> SentenceTransformer("/tmp/st").encode(["hello"]).shape
        (1, 384)
    """
    from zoo.registry import get_card

    card = get_card(name)
    if not card.source.startswith("trained:"):
        raise ZooError(f"model {name!r} is not a trained folder; only trained models export to sentence-transformers")
    from zoo.checkpoints import resolve

    folder = resolve(card.source)
    runner = _runner_class(card.family, folder)
    if not hasattr(runner, "encode"):
        raise ZooError(f"model {name!r} is a {runner.__name__}; only encoders export to sentence-transformers")
    family = get_family(card.family)
    if family.to_sentence_transformers is not None:  # the family writes its own modules from the loaded model
        out = family.to_sentence_transformers(_load_model(family, folder), out, prompts=dict(card.prompts))
        return _verify_st(name, card, out) if verify else out
    if is_lora(folder):
        raise ZooError(f"model {name!r} is a LoRA adapter; only full weights export to sentence-transformers")
    extra = _read_json(folder / "zoobench.json") if (folder / "zoobench.json").exists() else {}
    pooling = extra.get("pooling", "mean")
    if pooling not in _ST_POOLING:
        raise ZooError(f"model {name!r}: pooling {pooling!r} has no sentence-transformers equivalent")
    from sentence_transformers import SentenceTransformer

    modules = st_modules()
    Dense, Normalize, Pooling, Transformer = modules.Dense, modules.Normalize, modules.Pooling, modules.Transformer
    import torch
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the family's folders have no pooler: nothing to report
    try:
        with tempfile.TemporaryDirectory(prefix="zoobench-st-") as stock:
            convert = get_family(card.family).to_transformers  # a folder stock transformers cannot load as it is
            source = convert(folder, Path(stock)) if convert else folder
            transformer = Transformer(
                str(source),
                max_seq_length=card.max_tokens,
                model_kwargs={"add_pooling_layer": False, "use_safetensors": True},
            )
    finally:
        hf_logging.set_verbosity(level)
    width = transformer.get_embedding_dimension()
    modules = [transformer, Pooling(width, pooling_mode=_ST_POOLING[pooling])]
    if extra.get("dim"):  # Matryoshka: the first `dim` features, before normalisation (a 0/1 matrix, exact)
        eye = torch.eye(extra["dim"], width)
        modules.append(Dense(width, extra["dim"], bias=False, activation_function=torch.nn.Identity(), init_weight=eye))
    if extra.get("normalize", True):
        modules.append(Normalize())
    st = SentenceTransformer(modules=modules, prompts=dict(card.prompts) or None, device="cpu")
    out = Path(out)
    st.save(str(out))
    return _verify_st(name, card, out) if verify else out


def _verify_st(name: str, card: ModelCard, out: Path) -> Path:
    """Reload ``out`` with sentence-transformers and check it embeds a few texts as zoobench does (1e-4), as queries
    and as documents (each with its card prompt, which sentence-transformers takes by ``prompt_name``); a folder
    that fails is removed."""
    from sentence_transformers import SentenceTransformer

    probe = ["A short sentence.", "Scientific claims need evidence from abstracts " * 8, "x"]
    model, st = trained(card), SentenceTransformer(str(out), device="cpu")
    for kind in ("query", "document"):
        ours = model.encode(probe, kind=kind)
        prompt = kind if card.prompts.get(kind) else None
        theirs = st.encode(probe, prompt_name=prompt, convert_to_numpy=True)
        diff = float(np.abs(ours - theirs).max())
        if diff > 1e-4:
            shutil.rmtree(out, ignore_errors=True)
            raise ZooError(
                f"sentence-transformers export of {name!r} embeds {kind} texts differently (max abs diff {diff:.2e})"
            )
    return out
