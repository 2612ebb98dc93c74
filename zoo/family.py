"""The family seam: what a model family declares once, in its own module, for the registry and the trainer.

A family module (``zoo/families/<name>.py``, or a plugin's module) ends with one value::

    FAMILY = Family(
        name="gte",
        model=GTEModel,                     # a zoo.protocols.Trainable class
        runtime=GTEModel.as_encoder,        # (model, card, **kwargs) -> Encoder / Ranker / Tagger
        runtime_class=lambda folder: GTEEncoder,
        scratch=_write_scratch,             # (folder, tokenizer, config, seed) -> folder, or None
        scratch_config=ScratchConfig,       # the dataclass of the recipe's [model.scratch] table
    )

The registry collects it when it imports the module (``zoo.registry.load_plugins``), or a caller registers
one directly (``zoo.registry.register_family``). The trainer builds, loads and saves models through it
(``zoo.train``), and a trained folder of the family becomes a registered model through it (``zoo.trained``).
Nothing else names a family: no side tables.

This module imports nothing heavy (the registry and the recipe parser use it without torch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Family", "ScratchConfig"]


@dataclass
class ScratchConfig:
    """A model built from nothing: a WordPiece tokenizer trained on ``tokenizer_corpora``, random weights.

    A family whose scratch models need more keys subclasses it (mGTE: which task heads to add) and names the
    subclass as its ``Family.scratch_config``; the recipe's ``[model.scratch]`` table is read into it.
    """

    tokenizer_corpora: list[str] = field(default_factory=list)  # .jsonl files under the data dir (string fields)
    tokenizer_max_texts: int = 20000
    vocab_size: int = 4000
    lowercase: bool = True
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 256
    max_position: int = 128
    dropout: float = 0.1


@dataclass(frozen=True)
class Family:
    """A model family as the registry and the trainer see it.

    Attributes:
        name: the key recipes (``[model] family``) and cards (``ModelCard.family``) use.
        model: the trainable model class (``zoo.protocols.Trainable``): ``from_pretrained(source, **overrides)``,
            ``save_pretrained(folder)``, ``tokenize``, ``heads`` ...
        runtime: ``(model, card, **kwargs) -> Encoder | Ranker | Tagger``: what a loaded folder serves as
            (``kwargs`` are the factory options a user gives, e.g. ``dtype``).
        runtime_class: ``folder -> class``: the class ``runtime`` gives for a saved folder, found without
            loading its weights (the registry's lazy stand-ins offer that class's protocol methods).
        scratch: ``(folder, tokenizer, config, seed) -> folder``: writes a random-init folder that ``model``
            loads, with the given tokenizer; None when the family cannot be trained from nothing.
        scratch_config: the dataclass the recipe's ``[model.scratch]`` table is read into.
        to_transformers: ``(folder, out) -> out``: writes a saved folder's backbone as an architecture stock
            transformers loads (``AutoModel``, no remote code), for families whose own folders it cannot load (mGTE's
            ``model_type: "new"``); None when a saved folder already is one (GTE's BERT folders). The
            sentence-transformers export (``zoo.trained.export_sentence_transformers``) goes through it.
        to_sentence_transformers: ``(model, out, prompts=...) -> out``: writes a loaded ``model`` (LoRA adapters
            merged) as a sentence-transformers folder, for families whose pooling needs more than a stock Pooling
            module over the folder (the decoder's last token: left padding and an appended end token); None: the
            generic export over the folder.
        citation: the family's paper.
    """

    name: str
    model: type
    runtime: Callable[..., Any]
    runtime_class: Callable[[Path], type]
    scratch: Callable[..., Path] | None = None
    scratch_config: type = ScratchConfig
    to_transformers: Callable[[Path, Path], Path] | None = None
    to_sentence_transformers: Callable[..., Path] | None = None
    citation: str = ""
