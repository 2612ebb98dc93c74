"""Training objectives: how a batch of rows becomes model inputs, outputs and a loss, chosen by the loss.

Each loss names its objective (``Loss.objective``); the trainer keeps one loop (optimizer, schedule, clipping,
autocast, DDP, checkpoints, resume, logging) and hands every batch to the objective of its source's loss:

==============  ===============================================  ============================================
objective       model inputs -> outputs                          losses
==============  ===============================================  ============================================
``embedding``   each text column on its own -> ``heads``'s       gte, infonce, cosent, mse-distill,
                dense (+ sparse) outputs, all-gathered across    cosine-distill, score-kl, mrl-infonce, mgte
                ranks; GradCache                                 (dense + sparse)
``pair``        (query, candidate) pairs -> one score each       listwise-ce (rerank logits), rankinggpt
                (``tokenize_pairs`` + the ``rerank`` output;     (query likelihoods + the lm logits of the
                + the ``lm`` logits of the labelled tokens)      query tokens, in one process)
``token``       token sequences -> per-token logits of the       mlm (masked LM), causal-lm (the target span
                positions the loss selects (``mlm``, ``lm``),    of ``tokenize_pairs``), babert (MLM + the
                + other token outputs whole (``boundary``)       boundary head's regression)
==============  ===============================================  ============================================

Every objective checks before training that the model gives what its loss needs (the outputs, pair
encodings, a mask token ...) and fails with one line naming the stage, the source and what is missing.

In a ``torchrun`` run every rank holds the same global batch of rows and works on its slice
(``Dist.slice``); the objectives make the loss of the global batch: ``embedding`` and ``pair`` gather the
slices' outputs (this rank's part keeps its graph) and every rank computes the same global loss; ``token``
sums its slice's per-token losses, divided by the global count of loss tokens. Either way the gradients
summed over ranks are the gradient of the global loss, so two processes reproduce one.

Targets from a teacher (``Loss.targets``): a loss may name keyword arguments computed by the stage's
``teacher`` for the whole global batch, without gradients: ``"embeddings:<column>"`` (``(B, D)``, the column
embedded as the harness would, queries and symmetric texts with the query prompt) or ``"scores:<a>,<b>"`` (the
teacher's in-batch cosine matrix of two columns, ``(B, B)``). The teacher is a registered encoder, or
``"frozen"``: a frozen copy of the model as the stage starts (e.g. a stage-1 model distilling into stage 2), which
can also give ``"logprobs:<output>"``: the log-softmax of its ``<output>`` token logits on the objective's own
batch (RankingGPT's KL reference), without gradients, once per step. The frozen copy is saved in the run's
checkpoints folder when the stage starts, so a resumed run keeps the reference of the stage's start.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from zoo.errors import ZooError
from zoo.nn.causal import next_token_select
from zoo.train.config import StageConfig
from zoo.train.data import SourceConfig
from zoo.train.dist import Dist, all_max, all_sum, gather_with_grad
from zoo.train.losses import Encoded, Loss, TokenWeights, content_mask

__all__ = ["Objective", "EmbeddingObjective", "PairObjective", "TokenObjective", "Teacher", "OBJECTIVES"]

# Query-side columns are cut at query_max_length, all others at max_length. Prompts (``model.prompts``,
# e.g. E5's "query: " / "passage: ") follow the harness: queries and symmetric texts (scored pairs,
# distillation texts, sources marked ``symmetric``) take the query prompt, documents the document prompt.
TEXT_COLUMNS = {
    "query": "query",
    "positive": "document",
    "negatives": "document",
    "sentence1": "symmetric",
    "sentence2": "symmetric",
    "text": "symmetric",
}
_MULTI = ("dense", "sparse", "layer")  # what Encoded holds (``layer:<i>``: the mean-pooled states of layer i)


class Objective:
    """Turns one global batch of rows into this rank's forward pass, the loss and its backward pass.

    Args:
        model: the model in training (``zoo.protocols.Trainable``).
        loss: the source's loss.
        stage: the stage's config (lengths, batch size, GradCache chunk).
        source: the source's config.
        dist: this process's rank, world size and device.
        bf16: bf16 autocast of the model's forward.
        where: ``stage 's', source 'x'``, for error messages.

    Raises:
        ZooError: the model cannot give what the loss needs.
    """

    name: ClassVar[str]
    outputs: ClassVar[tuple[str, ...]]  # the model outputs this objective can ask for

    def __init__(
        self, model: Any, loss: Loss, stage: StageConfig, source: SourceConfig, dist: Dist, bf16: bool, where: str
    ) -> None:
        self.model, self.loss, self.stage, self.source, self.dist, self.bf16 = model, loss, stage, source, dist, bf16
        unknown = [o for o in loss.outputs if o.partition(":")[0] not in self.outputs]
        if unknown:
            raise ZooError(
                f"{where}: loss {loss.name!r} needs output {unknown[0]!r}, which the {self.name} objective cannot make"
            )
        available = tuple(getattr(model, "head_outputs", ()))
        missing = [o for o in loss.outputs if o not in available]
        if missing or not callable(getattr(model, "heads", None)):
            raise ZooError(
                f"{where}: loss {loss.name!r} needs the model's {' and '.join(missing or loss.outputs)} output, "
                f"which this {type(model).__name__} lacks (it has: {', '.join(available) or 'no heads()'})"
            )
        for method in self.needs(loss):
            if getattr(model, method, None) is None:
                raise ZooError(f"{where}: loss {loss.name!r} needs {type(model).__name__}.{method}, which it lacks")

    def needs(self, loss: Loss) -> tuple[str, ...]:
        """Model attributes the objective uses with this loss (checked before training)."""
        return ()

    def step(self, rows: dict[str, list[Any]], targets: dict[str, torch.Tensor], generator: torch.Generator) -> float:
        """Forward, loss and backward of this rank's share of the global batch; returns the global loss.

        Args:
            rows: the global batch's columns (every rank gets the same rows).
            targets: the teacher's targets for the loss (``Loss.targets``), whole global batch.
            generator: seeded by (run seed, step) only, the same on every rank: randomness of the inputs (masks).
        """
        raise NotImplementedError

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(self.dist.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _to_device(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.dist.device) for k, v in batch.items()}


# EMBEDDING =======================================================================================


class EmbeddingObjective(Objective):
    """Text columns -> embeddings (dense, or dense + token weights from one ``heads`` pass), gathered; GradCache.

    GradCache (``grad_cache_chunk``): embed the batch in chunks without a graph, take the loss and its gradient
    with respect to the embeddings, then re-embed chunk by chunk with the saved RNG state and back-propagate
    those gradients, so a batch larger than memory allows gets the same gradient. Token weights
    (``TokenWeights``, special tokens dropped) are padded to a common width before they are concatenated or
    gathered.
    """

    name = "embedding"
    outputs = _MULTI

    def needs(self, loss: Loss) -> tuple[str, ...]:
        return ("special_token_ids",) if "sparse" in loss.outputs else ()

    def step(self, rows: dict[str, list[Any]], targets: dict[str, torch.Tensor], generator: torch.Generator) -> float:
        texts = self._local_texts(rows)
        extra: dict[str, torch.Tensor] = dict(targets)
        if "score" in rows:
            extra["score"] = torch.tensor(rows["score"], dtype=torch.float32, device=self.dist.device)  # (B,)
        chunk = self.stage.grad_cache_chunk
        if chunk:
            reps, states = self._forward_cached(texts, chunk)
        else:
            reps = {col: self._embed(t, n) for col, (t, n) in texts.items()}
        emb = {col: self._gather(e) for col, e in reps.items()}  # (B[*K], D) [+ (B[*K], T)]
        if "negatives" in emb:
            emb["negatives"] = _group(emb["negatives"], self.stage.batch_size)  # (B, K, D) [+ (B, K, T)]
        loss = self.loss(**emb, **extra)
        loss.backward()
        if chunk:
            self._backward_cached(texts, reps, states, chunk)
        return float(loss.detach())

    def _local_texts(self, rows: dict[str, list[Any]]) -> dict[str, tuple[list[str], int]]:
        """Flat texts of this rank's slice per text column, prompts prepended, with their max length."""
        mine, stage = self.dist.slice(self.stage.batch_size), self.stage
        prompts = getattr(self.model, "prompts", None) or {}
        out = {}
        for col, side in TEXT_COLUMNS.items():
            if col not in rows:
                continue
            vals = rows[col][mine]
            flat = [t for group in vals for t in group] if col == "negatives" else vals
            length = (stage.query_max_length or stage.max_length) if side == "query" else stage.max_length
            prompt = prompts.get("document" if side == "document" and not self.source.symmetric else "query", "")
            out[col] = ([prompt + t for t in flat] if prompt else flat, length)
        return out

    def _embed(self, texts: list[str], max_length: int) -> torch.Tensor | Encoded:
        """Dense embeddings ``(n, D)``, or with the sparse output an ``Encoded`` from one ``heads`` pass."""
        batch = self._to_device(self.model.tokenize(texts, max_length))
        outputs = self.loss.outputs
        with self._autocast():
            out = self.model.heads(**batch, outputs=outputs)
        if outputs == ("dense",):
            return out["dense"].float()  # (n, D)
        sparse = None
        if "sparse" in out:  # (n, T) token weights, 0 at pads and special tokens
            sparse = TokenWeights.from_heads(batch["input_ids"], out["sparse"].float(), self.model.special_token_ids)
        layer = next((out[o].float() for o in outputs if o.startswith("layer:")), None)  # (n, H)
        return Encoded(out["dense"].float(), sparse, layer)  # (n, D) + (n, T) + (n, H)

    def _gather(self, value: torch.Tensor | Encoded) -> torch.Tensor | Encoded:
        """``gather_with_grad`` of a column value; token weights are padded to the widest rank's ``T`` first."""
        d = self.dist
        if isinstance(value, torch.Tensor):
            return gather_with_grad(value, d.world, d.rank)  # (world * n, D)
        sparse = value.sparse
        if sparse is not None and d.world > 1:
            sparse = sparse.padded(all_max(sparse.ids.shape[-1], d.world, d.device))  # (n, T_max)
            sparse = TokenWeights(
                gather_with_grad(sparse.ids, d.world, d.rank), gather_with_grad(sparse.weights, d.world, d.rank)
            )
        shallow = None if value.shallow is None else gather_with_grad(value.shallow, d.world, d.rank)
        return Encoded(gather_with_grad(value.dense, d.world, d.rank), sparse, shallow)

    def _forward_cached(self, texts: dict[str, tuple[list[str], int]], chunk: int) -> tuple[dict[str, Any], dict]:
        reps, states = {}, {}
        with torch.no_grad():
            for col, (t, n) in texts.items():
                parts, states[col] = [], []
                for i in range(0, len(t), chunk):
                    states[col].append(_rng_state(self.dist.device))  # replayed in the second pass: same dropout
                    parts.append(self._embed(t[i : i + chunk], n))
                reps[col] = _cat(parts)  # (n_col, D) [+ (n_col, T)]
                for leaf in _float_leaves(reps[col]):
                    leaf.requires_grad_()  # a leaf that collects dL/d(embedding)
        return reps, states

    def _backward_cached(self, texts: dict, reps: dict[str, Any], states: dict, chunk: int) -> None:
        for col, (t, n) in texts.items():
            for j, i in enumerate(range(0, len(t), chunk)):
                _set_rng_state(states[col][j], self.dist.device)
                out = self._embed(t[i : i + chunk], n)
                if isinstance(out, torch.Tensor):
                    out.backward(reps[col].grad[i : i + chunk])
                    continue
                pairs = [
                    (x, cached.grad[i : i + chunk, ..., : x.shape[-1]])  # token weights: this chunk's width
                    for x, cached in zip(_float_leaves(out), _float_leaves(reps[col]), strict=True)
                    if cached.grad is not None
                ]
                torch.autograd.backward([x for x, _ in pairs], [g for _, g in pairs])


def _rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple[torch.Tensor, torch.Tensor | None], device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def _cat(parts: list[Any]) -> Any:
    """Chunks of one column concatenated: tensors ``(n_i, D)``, or ``Encoded`` (token weights padded)."""
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts)
    sparse = TokenWeights.cat([p.sparse for p in parts]) if parts[0].sparse is not None else None
    shallow = torch.cat([p.shallow for p in parts]) if parts[0].shallow is not None else None
    return Encoded(torch.cat([p.dense for p in parts]), sparse, shallow)


def _float_leaves(value: Any) -> list[torch.Tensor]:
    """The float tensors of a column value that carry gradients (dense embeddings, token weights)."""
    if isinstance(value, torch.Tensor):
        return [value]
    sparse = [value.sparse.weights] if value.sparse is not None else []
    return [value.dense, *sparse] + ([value.shallow] if value.shallow is not None else [])


def _group(value: Any, b: int) -> Any:
    """Negatives per example: ``(B*K, D) -> (B, K, D)`` (and token weights ``(B*K, T) -> (B, K, T)``)."""
    if isinstance(value, torch.Tensor):
        return value.reshape(b, -1, value.shape[-1])
    sparse = value.sparse
    if sparse is not None:
        t = sparse.ids.shape[-1]
        sparse = TokenWeights(sparse.ids.reshape(b, -1, t), sparse.weights.reshape(b, -1, t))
    shallow = None if value.shallow is None else value.shallow.reshape(b, -1, value.shallow.shape[-1])
    return Encoded(value.dense.reshape(b, -1, value.dense.shape[-1]), sparse, shallow)


# PAIR SCORE ======================================================================================


class PairObjective(Objective):
    """(query, candidate) pairs -> one score each: a cross-encoder's ``rerank`` logits.

    Each example of this rank's slice gives the pairs (query, positive), (query, negative_1..K), tokenized as
    pairs by the model's ``tokenize_pairs`` (``[CLS] query [SEP] doc [SEP]`` with token types, cut at the stage's
    ``max_length``: ``query_max_length`` does not apply to a pair) and scored by ``heads(outputs=("rerank",))``;
    the ``(b, 1 + K)`` logits are all-gathered to ``(B, 1 + K)`` and passed as ``scores``. No prompts: a
    cross-encoder sees the raw pair, as the ranker scores it at inference. GradCache does not apply (there is no
    embedding to cache).
    """

    name = "pair"
    outputs = ("rerank", "lm")

    def __init__(
        self, model: Any, loss: Loss, stage: StageConfig, source: SourceConfig, dist: Dist, bf16: bool, where: str
    ) -> None:
        super().__init__(model, loss, stage, source, dist, bf16, where)
        if "lm" in loss.outputs and dist.world > 1:  # its token terms are means over this rank's tokens
            raise ZooError(f"{where}: loss {loss.name!r} (per-token terms) runs in one process, not {dist.world}")

    def needs(self, loss: Loss) -> tuple[str, ...]:
        return ("tokenize_pairs",)

    def step(self, rows: dict[str, list[Any]], targets: dict[str, Any], generator: torch.Generator) -> float:
        mine = self.dist.slice(self.stage.batch_size)
        queries, docs = [], []
        examples = list(zip(*(rows[c][mine] for c in ("query", "positive", "negatives")), strict=True))
        for q, pos, negs in examples:
            for doc in (pos, *negs):
                queries.append(q)
                docs.append(doc)
        batch = self._to_device(self.model.tokenize_pairs(queries, docs, self.stage.max_length))
        with self._autocast():
            out = self.model.heads(**batch, outputs=self.loss.outputs)
        logits = out["rerank"].float()  # (b * (1 + K),)
        scores = gather_with_grad(logits.reshape(len(examples), -1), self.dist.world, self.dist.rank)  # (B, 1 + K)
        extra = {}
        if "lm" in self.loss.outputs:  # the logits of the positions predicting a labelled (query) token
            select, labels = next_token_select(batch["labels"])  # (n, T), (M,)
            candidate = select.nonzero()[:, 0] % (len(queries) // len(examples))  # (M,) 0: the positive
            extra = {"logits": out["lm"].float(), "labels": labels, "candidate": candidate}
        targets = {k: v(batch) if callable(v) else v for k, v in targets.items()}  # per-token targets of this batch
        loss = self.loss(scores=scores, **extra, **targets)
        loss.backward()
        return float(loss.detach())


# TOKEN ===========================================================================================


class TokenObjective(Objective):
    """Token sequences -> per-token logits of the positions the loss selects -> the mean per-token loss.

    The loss prepares the inputs of the whole global batch (``Loss.token_inputs``: e.g. MLM masks 30% of the
    tokens), drawing from the step's generator (the same on every rank, so a slice's masks do not depend on the
    number of ranks), and its per-row targets of the unmasked global batch (``Loss.token_targets``: BABERT's boundary
    features), sliced to this rank's rows; this rank runs its rows, gives the loss the logits of the selected
    positions (the loss's first output) and its other outputs whole, and sums the per-token losses; the sum is
    divided by the number of loss tokens in the global batch, so the ranks' gradients add up to the gradient of the
    global mean.
    """

    name = "token"
    outputs = ("mlm", "lm", "boundary")

    def needs(self, loss: Loss) -> tuple[str, ...]:
        return ("tokenize_pairs",) if isinstance(loss.column, tuple) else ("tokenizer",)

    def _tokenized(self, rows: dict[str, list[Any]]) -> dict[str, torch.Tensor]:
        """The whole global batch ``(B, T)``: a text column with the query prompt, or (target, context) pairs."""
        column = self.loss.column
        if isinstance(column, tuple):  # the model's pair encoding labels the target span
            return self.model.tokenize_pairs(rows[column[0]], rows[column[1]], self.stage.max_length)
        prompts = getattr(self.model, "prompts", None) or {}
        return self.model.tokenize([prompts.get("query", "") + t for t in rows[column]], self.stage.max_length)

    def corpus(self, texts: list[str], chunk: int = 1024) -> list[list[int]]:
        """Each text's content token ids as a step tokenizes it (prompt, ``max_length``), specials and pads dropped:
        what a loss that ``fits`` learns from."""
        out: list[list[int]] = []
        for i in range(0, len(texts), chunk):
            batch = self._tokenized({self.loss.column: texts[i : i + chunk]})
            real = content_mask(batch, self.model.tokenizer)  # (b, T)
            out += [row[keep].tolist() for row, keep in zip(batch["input_ids"], real, strict=True)]
        return out

    def step(self, rows: dict[str, list[Any]], targets: dict[str, torch.Tensor], generator: torch.Generator) -> float:
        tokenized = self._tokenized(rows)
        batch, select, labels = self.loss.token_inputs(tokenized, self.model, generator)  # select (B, T), labels (M,)
        mine = self.dist.slice(self.stage.batch_size)
        rows_targets = {
            k: v[mine].to(self.dist.device) for k, v in self.loss.token_targets(tokenized, select, self.model).items()
        }
        local = self._to_device({k: v[mine] for k, v in batch.items()})
        local_select = select[mine].to(self.dist.device)
        before = int(select[: mine.start].sum())  # labels are in row order: this rank's run is contiguous
        local_labels = labels[before : before + int(local_select.sum())].to(self.dist.device)
        total = max(1, int(select.sum()))
        first, *others = self.loss.outputs
        with self._autocast():
            out = self.model.heads(**local, outputs=self.loss.outputs, select=local_select)
        whole = {name: out[name].float() for name in others}  # e.g. boundary (b, T, F)
        per_token = self.loss(logits=out[first].float(), labels=local_labels, **whole, **rows_targets, **targets)
        summed = per_token.sum()
        (summed / total).backward()
        return float(all_sum(summed.detach(), self.dist.world)) / total


OBJECTIVES: dict[str, type[Objective]] = {o.name: o for o in (EmbeddingObjective, PairObjective, TokenObjective)}


# TEACHER =========================================================================================


class Teacher:
    """Targets of distillation losses for a global batch (``Loss.targets``), computed without gradients.

    Args:
        spec: a registered encoder's name, or ``"frozen"``: a frozen copy of ``model`` as it is now, served by
            its family's runtime.
        model: the model in training.
        family: its family (for ``"frozen"``).
        saved: where the frozen copy is kept for a resumed run (loaded from there when it exists, else written
            there by the process that ``writes``); None: not kept (a LoRA model).
        writes: whether this process writes ``saved`` (rank 0).
    """

    def __init__(
        self, spec: str, model: Any, family: Any, saved: Path | None = None, writes: bool = True, cache: bool = True
    ) -> None:
        self.spec, self.model, self.cache = spec, None, None
        if spec == "frozen":
            from zoo.registry import ModelCard

            frozen = self.model = _frozen_copy(model, family, saved, writes)
            prompts = dict(getattr(model, "prompts", None) or {})
            card = ModelCard(name="frozen", family=family.name, revision="frozen", source="none", prompts=prompts)
            self.encoder = family.runtime(frozen, card)
        else:
            from zoo.cache import EmbeddingCache, default_cache_dir, fingerprint
            from zoo.registry import create_model, get_card

            # The harness's cache of the same model (``zoobench run --model <spec>``): each text is embedded once,
            # whichever run or evaluation needs it first; the weights load only if some text misses it.
            self.encoder = create_model(spec, lazy=True)
            if cache:
                self.cache = EmbeddingCache(default_cache_dir(), fingerprint(get_card(spec)))

    def targets(self, specs: Mapping[str, str], rows: dict[str, list[Any]], device: torch.device) -> dict:
        """``{loss argument: tensor}`` for each ``"embeddings:<column>"`` / ``"scores:<a>,<b>"`` spec, and for a
        ``"logprobs:<output>"`` spec a function of the objective's batch giving the frozen model's log-probabilities."""
        out: dict[str, Any] = {}
        embedded: dict[str, torch.Tensor] = {}
        for arg, spec in specs.items():
            kind, _, columns = spec.partition(":")
            if kind == "logprobs":
                if self.model is None:
                    raise ZooError(f'teacher target {spec!r}: needs teacher = "frozen" (a copy of the model)')
                out[arg] = functools.partial(self._logprobs, columns)
                continue
            cols = columns.split(",")
            for col in cols:
                if col not in embedded:
                    if col not in rows or col == "negatives":
                        raise ZooError(f"teacher target {spec!r}: the batch has no text column {col!r}")
                    side = "document" if TEXT_COLUMNS.get(col) == "document" else "query"
                    embedded[col] = torch.from_numpy(self._encode(rows[col], side))
            if kind == "embeddings" and len(cols) == 1:
                out[arg] = embedded[cols[0]].to(device)  # (B, D)
            elif kind == "scores" and len(cols) == 2:
                a, b = (torch.nn.functional.normalize(embedded[c], dim=-1) for c in cols)
                out[arg] = (a @ b.T).to(device)  # (B, B)
            else:
                raise ZooError(f"teacher target {spec!r}: expected embeddings:<column> or scores:<column>,<column>")
        return out

    def _encode(self, texts: list[str], kind: str) -> np.ndarray:
        """The teacher's float32 embeddings ``(n, D)`` of ``texts``, read from its embedding cache where it has
        them; the rest encoded and added to it."""
        missing, out = self.cache.get(texts, kind) if self.cache is not None else (list(range(len(texts))), None)
        if missing:
            fresh = np.asarray(self.encoder.encode([texts[i] for i in missing], kind=kind), dtype=np.float32)
            if self.cache is not None:
                self.cache.put([texts[i] for i in missing], kind, fresh)
            if out is None:
                return fresh
            out[missing] = fresh
        return out  # a new array: get() copies the cached rows

    @property
    def dim(self) -> int:
        """The width of the teacher's embeddings (its card's, else measured on one text)."""
        card = getattr(self.encoder, "card", None)
        if card is not None and card.embed_dim:
            return int(card.embed_dim)
        return int(self._encode(["dimension probe"], "query").shape[1])

    def _logprobs(self, output: str, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The frozen model's log-softmax of its ``output`` token logits on ``batch``: ``(M, V)``, no gradients."""
        with torch.no_grad():
            return self.model.heads(**batch, outputs=(output,))[output].float().log_softmax(-1)


def _frozen_copy(model: Any, family: Any, saved: Path | None, writes: bool) -> Any:
    """A frozen copy of ``model``: loaded from ``saved`` when a run resumes, else copied (and written there)."""
    if saved is not None and saved.is_dir():
        frozen = family.model.from_pretrained(saved).to(next(model.parameters()).device)
    else:
        frozen = copy.deepcopy(model)
        if saved is not None and writes:
            tmp = saved.with_name(saved.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            frozen.save_pretrained(tmp)
            os.replace(tmp, saved)
    return frozen.eval().requires_grad_(False)
