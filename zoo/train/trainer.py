"""The training loop: one engine for every family (``python -m zoo.train``, ``zoobench train``).

A run executes the stages of a recipe (``zoo.train.config``) in order on one model:

- AdamW (no weight decay on biases and norms), linear warmup then linear / cosine / constant decay,
  gradient clipping, optional bf16 autocast (CPU AMX) and gradient checkpointing;
- batches from ``zoo.train.data.MultiTaskSampler`` (one source per batch), losses from
  ``zoo.train.losses`` (per source, default the stage's);
- GradCache (``grad_cache_chunk``): embed the batch in chunks without a graph, take the loss and its
  gradient with respect to the embeddings, then re-embed chunk by chunk with the saved RNG state and
  back-propagate those gradients, so a batch larger than memory allows gets the same gradient;
- multi-output losses (``Loss.outputs``, e.g. mGTE's dense + sparse ``mgte``): the texts are embedded by
  the model's ``heads(**batch, outputs=...)`` (one pass for all outputs) into ``losses.Encoded`` values
  (dense ``(n, D)`` + ``TokenWeights`` ``(n, T)``, special tokens dropped), which GradCache and the
  all-gather handle like tensors (token weights are padded to a common width first); a model without
  the outputs fails before training;
- cross-encoder losses (``Loss.outputs == ("rerank",)``, e.g. ``listwise-ce``): no column is embedded on
  its own; each example of this rank's slice gives the pairs (query, positive), (query, negative_1..K),
  tokenized as pairs by the model's ``tokenize_pairs`` (``[CLS] query [SEP] doc [SEP]`` with token types,
  cut at the stage's ``max_length``: ``query_max_length`` does not apply to a pair) and scored by
  ``heads(**batch, outputs=("rerank",))``; the ``(b, 1 + K)`` logits are all-gathered to ``(B, 1 + K)``
  and passed as ``scores``. No prompts: a cross-encoder sees the raw pair, as the ranker scores it at
  inference. GradCache is refused for these losses (there is no embedding to cache);
- ``torchrun`` data parallelism (gloo on CPU): every rank draws the same global batch and embeds its
  slice; embeddings are all-gathered (this rank's slice keeps its graph), every rank computes the
  loss of the whole batch, so in-batch negatives span ranks, and gradients are summed across ranks
  (each rank's backward reaches the weights only through its own slice, so the sum is the gradient of
  the global loss: a 2-process run reproduces the 1-process loss);
- checkpoints every ``checkpoint_every`` steps (model folder, optimizer state, sampler position) and
  automatic resume from the newest. The RNG is reseeded at every step from (seed, step, rank), so the
  dropout masks of a step do not depend on what ran before it: a resumed run ends with exactly the
  weights of an uninterrupted one;
- a tqdm bar and ``metrics.jsonl`` (one line per step: loss, lr, grad norm, source, timings).

The output folder holds the family's HF-style folder (``save_pretrained``), ``train.json`` (resolved
recipe, data sha256s, git revision, weights sha256, timings), ``recipe.toml`` (the resolved recipe,
runnable as is) and ``metrics.jsonl``. Under the models dir it is a registered model at once
(``zoo.trained``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import inspect
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as tdist

from zoo.errors import ZooError
from zoo.train.config import RUN_CONTROL, StageConfig, TrainConfig, load_recipe, to_dict, to_toml
from zoo.train.data import MultiTaskSampler, SourceConfig, TrainSource, load_source, sha256_file
from zoo.train.losses import Encoded, Loss, TokenWeights, create_loss
from zoo.train.tokenizer import SCRATCH, corpus_texts, train_wordpiece
from zoo.trained import MODEL_CLASSES, TRAIN_RECORD, WEIGHTS, load_model_class, models_dir

__all__ = ["train", "main", "SCHEDULES", "lr_factor", "gather_with_grad"]

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
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)?$")


# DISTRIBUTED =====================================================================================


@dataclasses.dataclass(frozen=True)
class _Dist:
    rank: int = 0
    world: int = 1
    owns_group: bool = False

    def barrier(self) -> None:
        if self.world > 1:
            tdist.barrier()


def _init_dist() -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return _Dist()
    owns = not tdist.is_initialized()
    if owns:
        tdist.init_process_group("gloo")
    return _Dist(tdist.get_rank(), tdist.get_world_size(), owns)


def gather_with_grad(x: torch.Tensor, world: int, rank: int) -> torch.Tensor:
    """All ranks' ``x`` concatenated in rank order; this rank's part keeps its autograd graph.

    ``(b, D) -> (world * b, D)``; with one process ``x`` itself.
    """
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    tdist.all_gather(parts, x.detach().contiguous())
    parts[rank] = x
    return torch.cat(parts)  # (world * b, D)


def _sum_gradients(params: list[torch.nn.Parameter], world: int) -> None:
    """Sum the gradients of all ranks in one flat all-reduce (missing gradients count as zero)."""
    if world == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])  # (P,)
    tdist.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


# SCHEDULES =======================================================================================

# progress after warmup in [0, 1] -> learning-rate factor
SCHEDULES: dict[str, Callable[[float], float]] = {
    "linear": lambda p: max(0.0, 1.0 - p),
    "cosine": lambda p: 0.5 * (1.0 + math.cos(math.pi * min(1.0, p))),
    "constant": lambda p: 1.0,
}


def lr_factor(step: int, total: int, warmup_ratio: float, schedule: str) -> float:
    """The learning-rate factor of optimizer step ``step`` (0-based) of ``total``: warmup, then decay."""
    warmup = int(round(warmup_ratio * total))
    if step < warmup:
        return (step + 1) / warmup
    return SCHEDULES[schedule]((step - warmup) / max(1, total - warmup))


# MODEL ===========================================================================================


def _data_dir(cfg: TrainConfig, data_dir: str | os.PathLike[str] | None) -> Path:
    from harness.datasets.local import resolve_data_dir

    return resolve_data_dir(data_dir or cfg.data_dir)


def _build_scratch(cfg: TrainConfig, folder: Path, data_dir: Path) -> dict[str, Any]:
    """Train the tokenizer and write the random-init folder; returns what the record keeps about it."""
    sc = cfg.model.scratch
    if not sc.tokenizer_corpora:
        raise ZooError("model.init is not set and model.scratch.tokenizer_corpora is empty: nothing to build from")
    paths = [data_dir / p for p in sc.tokenizer_corpora]
    tokenizer = train_wordpiece(
        corpus_texts(paths, sc.tokenizer_max_texts), vocab_size=sc.vocab_size, lowercase=sc.lowercase
    )
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    SCRATCH[cfg.model.family](tmp, tokenizer, sc, seed=cfg.seed)
    info = {"tokenizer_corpora": {p: sha256_file(data_dir / p) for p in sc.tokenizer_corpora}, "vocab": len(tokenizer)}
    (tmp / "scratch.json").write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, folder)
    return info


def _init_model(cfg: TrainConfig, out: Path, data_dir: Path, d: _Dist) -> tuple[Any, dict[str, Any] | None]:
    cls = load_model_class(cfg.model.family)
    if cfg.model.init:
        return cls.from_pretrained(cfg.model.init, **cfg.model.overrides), None
    if cfg.model.family not in SCRATCH:
        raise ZooError(f"family {cfg.model.family!r} cannot be built from scratch (set model.init)")
    folder = out / "init"
    if d.rank == 0 and not (folder / "scratch.json").exists():
        _build_scratch(cfg, folder, data_dir)
    d.barrier()
    info = json.loads((folder / "scratch.json").read_text())
    return cls.from_pretrained(folder, **cfg.model.overrides), info


# transformers >= 5 names it activation checkpointing (the old name warns), earlier versions gradient checkpointing
_CHECKPOINTING = {
    "activation_checkpointing_enable": "activation_checkpointing_kwargs",
    "gradient_checkpointing_enable": "gradient_checkpointing_kwargs",
}


def _enable_gradient_checkpointing(model: torch.nn.Module) -> None:
    for module in model.modules():  # the first HF backbone inside the family's model
        for method, kwarg in _CHECKPOINTING.items():
            if hasattr(module, method):
                getattr(module, method)(**{kwarg: {"use_reentrant": False}})
                return
    raise ZooError(f"{type(model).__name__} has no module supporting gradient checkpointing")


def _freeze(model: torch.nn.Module, prefixes: list[str]) -> None:
    """Keep the parameters whose names start with one of ``prefixes`` fixed; a prefix matching nothing is an error."""
    names = [n for n, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(n.startswith(prefix) for n in names):
            raise ZooError(f"model.freeze: {prefix!r} matches no parameter (names look like {names[0]!r})")
    for n, p in model.named_parameters():
        if any(n.startswith(prefix) for prefix in prefixes):
            p.requires_grad_(False)


def _optimizer(model: torch.nn.Module, stage: StageConfig) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": stage.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},  # biases and norms
    ]
    return torch.optim.AdamW(groups, lr=stage.lr)


# CHECKPOINTS =====================================================================================


def _checkpoints(out: Path) -> list[Path]:
    found = [p for p in (out / "checkpoints").glob("step-*") if (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def _save_checkpoint(out: Path, model: Any, opt: torch.optim.Optimizer, state: dict[str, Any], keep: int) -> None:
    final = out / "checkpoints" / f"step-{state['global_step']:07d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp / "model")
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps(state, indent=1) + "\n")  # last: marks the checkpoint complete
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in _checkpoints(out)[: -max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)


def _config_hash(cfg: TrainConfig) -> str:
    """What determines the weights: the resolved config without run-control keys."""
    data = {k: v for k, v in to_dict(cfg).items() if k not in RUN_CONTROL}
    return "sha256:" + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


# ONE STAGE =======================================================================================


class _Stage:
    """A stage's sources, sampler, losses and optimizer."""

    def __init__(self, cfg: TrainConfig, index: int, model: Any, data_dir: Path) -> None:
        self.cfg, self.index = cfg.stages[index], index
        self.sources: list[TrainSource] = [load_source(data_dir, s, seed=cfg.seed) for s in self.cfg.sources]
        self.losses: list[Loss] = []
        for s_cfg, src in zip(self.cfg.sources, self.sources, strict=True):
            name = s_cfg.loss or self.cfg.loss
            args = dict(s_cfg.loss_args) if s_cfg.loss else {**self.cfg.loss_args, **s_cfg.loss_args}
            loss = create_loss(name, args)
            if src.format not in loss.formats:
                raise ZooError(
                    f"stage {self.cfg.name!r}, source {src.name!r}: loss {name!r} trains on "
                    f"{' or '.join(loss.formats)}, not {src.format}"
                )
            _check_outputs(model, loss, f"stage {self.cfg.name!r}, source {src.name!r}")
            if loss.outputs == _RERANK and self.cfg.grad_cache_chunk:
                raise ZooError(f"stage {self.cfg.name!r}: grad_cache_chunk does not apply to the rerank loss {name!r}")
            self.losses.append(loss)
        self.sampler = MultiTaskSampler(
            self.sources, self.cfg.batch_size, alpha=self.cfg.alpha, seed=cfg.seed * 1000 + index
        )
        self.optimizer = _optimizer(model, self.cfg)
        self.teacher = None
        if any(src.format == "texts" for src in self.sources):
            if not self.cfg.teacher:
                raise ZooError(f"stage {self.cfg.name!r}: a distillation source needs `teacher` (a registered encoder)")
            from zoo.registry import create_model

            self.teacher = create_model(self.cfg.teacher)

    def records(self) -> list[dict[str, Any]]:
        return [{"stage": self.cfg.name, **src.record()} for src in self.sources]


_DENSE = ("dense",)
_MULTI_OUTPUTS = ("dense", "sparse")  # what Encoded holds
_RERANK = ("rerank",)  # a cross-encoder loss: logits of (query, document) pairs


def _check_outputs(model: Any, loss: Loss, where: str) -> None:
    """Fail before training when ``loss`` needs outputs ``model`` cannot give (from one ``heads`` pass)."""
    if loss.outputs == _DENSE:
        return
    unknown = [o for o in loss.outputs if o not in (_MULTI_OUTPUTS if loss.outputs != _RERANK else _RERANK)]
    if unknown:
        raise ZooError(f"{where}: loss {loss.name!r} needs output {unknown[0]!r}, which the trainer cannot embed")
    has_heads = callable(getattr(model, "heads", None))
    available = tuple(getattr(model, "head_outputs", _DENSE)) if has_heads else _DENSE
    missing = [o for o in loss.outputs if o not in available]
    if missing:
        raise ZooError(
            f"{where}: loss {loss.name!r} needs the model's {' and '.join(missing)} output, which this "
            f"{type(model).__name__} lacks (it has: {', '.join(available)}{'' if has_heads else '; no heads()'})"
        )
    if loss.outputs == _RERANK and not callable(getattr(model, "tokenize_pairs", None)):
        raise ZooError(f"{where}: loss {loss.name!r} needs pair encodings, which {type(model).__name__} cannot make")


def _embed(
    model: Any, texts: list[str], max_length: int, bf16: bool, outputs: tuple[str, ...] = _DENSE
) -> torch.Tensor | Encoded:
    """Dense embeddings ``(n, D)``, or with more ``outputs`` an ``Encoded`` from one ``model.heads`` pass."""
    batch = model.tokenize(texts, max_length)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        if outputs == _DENSE:
            return model(**batch).float()  # (n, D)
        out = model.heads(**batch, outputs=outputs)
    sparse = None
    if "sparse" in out:  # (n, T) token weights, 0 at pads and special tokens
        sparse = TokenWeights.from_heads(batch["input_ids"], out["sparse"].float(), model.special_token_ids)
    return Encoded(out["dense"].float(), sparse)  # (n, D) + (n, T)


def _cat(parts: list[Any]) -> Any:
    """Chunks of one column concatenated: tensors ``(n_i, D)``, or ``Encoded`` (token weights padded)."""
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts)
    sparse = TokenWeights.cat([p.sparse for p in parts]) if parts[0].sparse is not None else None
    return Encoded(torch.cat([p.dense for p in parts]), sparse)


def _float_leaves(value: Any) -> list[torch.Tensor]:
    """The float tensors of a column value that carry gradients (dense embeddings, token weights)."""
    if isinstance(value, torch.Tensor):
        return [value]
    return [value.dense] + ([value.sparse.weights] if value.sparse is not None else [])


def _gather(value: Any, d: _Dist) -> Any:
    """``gather_with_grad`` of a column value; token weights are padded to the widest rank's ``T`` first."""
    if isinstance(value, torch.Tensor):
        return gather_with_grad(value, d.world, d.rank)  # (world * n, D)
    sparse = value.sparse
    if sparse is not None and d.world > 1:
        width = torch.tensor(sparse.ids.shape[-1])
        tdist.all_reduce(width, op=tdist.ReduceOp.MAX)
        sparse = sparse.padded(int(width))  # (n, T_max)
        sparse = TokenWeights(
            gather_with_grad(sparse.ids, d.world, d.rank), gather_with_grad(sparse.weights, d.world, d.rank)
        )
    return Encoded(gather_with_grad(value.dense, d.world, d.rank), sparse)


def _group(value: Any, b: int) -> Any:
    """Negatives per example: ``(B*K, D) -> (B, K, D)`` (and token weights ``(B*K, T) -> (B, K, T)``)."""
    if isinstance(value, torch.Tensor):
        return value.reshape(b, -1, value.shape[-1])
    sparse = value.sparse
    if sparse is not None:
        t = sparse.ids.shape[-1]
        sparse = TokenWeights(sparse.ids.reshape(b, -1, t), sparse.weights.reshape(b, -1, t))
    return Encoded(value.dense.reshape(b, -1, value.dense.shape[-1]), sparse)


class _Stepper:
    """One optimizer step on one global batch."""

    def __init__(self, cfg: TrainConfig, model: Any, d: _Dist) -> None:
        self.cfg, self.model, self.d = cfg, model, d
        self.params = [p for p in model.parameters() if p.requires_grad]

    def _rank_rows(self, stage: StageConfig) -> slice:
        """This rank's rows of the global batch (``batch_size / world`` consecutive examples)."""
        b = stage.batch_size // self.d.world
        return slice(self.d.rank * b, (self.d.rank + 1) * b)

    def _local_texts(
        self, stage: StageConfig, source: SourceConfig, rows: dict[str, list[Any]]
    ) -> dict[str, tuple[list[str], int]]:
        """Flat texts of this rank's slice per text column, prompts prepended, with their max length."""
        mine = self._rank_rows(stage)
        prompts = getattr(self.model, "prompts", None) or {}
        out = {}
        for col, side in TEXT_COLUMNS.items():
            if col not in rows:
                continue
            vals = rows[col][mine]
            flat = [t for group in vals for t in group] if col == "negatives" else vals
            length = (stage.query_max_length or stage.max_length) if side == "query" else stage.max_length
            prompt = prompts.get("document" if side == "document" and not source.symmetric else "query", "")
            out[col] = ([prompt + t for t in flat] if prompt else flat, length)
        return out

    def _forward_with_grad(self, texts: dict[str, tuple[list[str], int]], outputs: tuple[str, ...]) -> dict[str, Any]:
        return {col: _embed(self.model, t, n, self.cfg.bf16, outputs) for col, (t, n) in texts.items()}

    def _forward_cached(
        self, texts: dict[str, tuple[list[str], int]], chunk: int, outputs: tuple[str, ...]
    ) -> tuple[dict[str, Any], dict]:
        reps, states = {}, {}
        with torch.no_grad():
            for col, (t, n) in texts.items():
                parts, states[col] = [], []
                for i in range(0, len(t), chunk):
                    states[col].append(torch.get_rng_state())  # replayed in the second pass: same dropout
                    parts.append(_embed(self.model, t[i : i + chunk], n, self.cfg.bf16, outputs))
                reps[col] = _cat(parts)  # (n_col, D) [+ (n_col, T)]
                for leaf in _float_leaves(reps[col]):
                    leaf.requires_grad_()  # a leaf that collects dL/d(embedding)
        return reps, states

    def _backward_cached(
        self, texts: dict, reps: dict[str, Any], states: dict, chunk: int, outputs: tuple[str, ...]
    ) -> None:
        for col, (t, n) in texts.items():
            for j, i in enumerate(range(0, len(t), chunk)):
                torch.set_rng_state(states[col][j])
                out = _embed(self.model, t[i : i + chunk], n, self.cfg.bf16, outputs)
                if isinstance(out, torch.Tensor):
                    out.backward(reps[col].grad[i : i + chunk])
                    continue
                pairs = [
                    (x, cached.grad[i : i + chunk, ..., : x.shape[-1]])  # token weights: this chunk's width
                    for x, cached in zip(_float_leaves(out), _float_leaves(reps[col]), strict=True)
                    if cached.grad is not None
                ]
                torch.autograd.backward([x for x, _ in pairs], [g for _, g in pairs])

    def _rerank_scores(self, stage: StageConfig, rows: dict[str, list[Any]]) -> torch.Tensor:
        """Rerank logits of this rank's slice, ``(b, 1 + K)``: the pair with the positive first, then the negatives."""
        mine = self._rank_rows(stage)
        queries, docs = [], []
        examples = list(zip(*(rows[c][mine] for c in ("query", "positive", "negatives")), strict=True))
        for q, pos, negs in examples:
            for doc in (pos, *negs):
                queries.append(q)
                docs.append(doc)
        batch = self.model.tokenize_pairs(queries, docs, stage.max_length)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.bf16):
            logits = self.model.heads(**batch, outputs=_RERANK)["rerank"].float()  # (b * (1 + K),)
        return logits.reshape(len(examples), -1)  # (b, 1 + K)

    def step(self, stage: _Stage, source: int, rows: dict[str, list[Any]], lr: float) -> dict[str, float]:
        """Forward, loss, backward, gradient sum across ranks, clipping and the AdamW update."""
        sc, d = stage.cfg, self.d
        if stage.losses[source].outputs == _RERANK:
            scores = gather_with_grad(self._rerank_scores(sc, rows), d.world, d.rank)  # (B, 1 + K)
            loss = stage.losses[source](scores=scores)
            loss.backward()
            return self._update(stage, loss, lr)
        texts = self._local_texts(sc, sc.sources[source], rows)
        extra: dict[str, torch.Tensor] = {}
        if "score" in rows:
            extra["score"] = torch.tensor(rows["score"], dtype=torch.float32)  # (B,) the whole global batch
        if stage.sources[source].format == "texts":  # distillation targets, for the whole global batch
            extra["teacher"] = torch.from_numpy(stage.teacher.encode(rows["text"], kind="query")).float()  # (B, D)
        chunk, outputs = sc.grad_cache_chunk, stage.losses[source].outputs
        if chunk:
            reps, states = self._forward_cached(texts, chunk, outputs)
        else:
            reps = self._forward_with_grad(texts, outputs)
        emb = {col: _gather(e, d) for col, e in reps.items()}  # (B[*K], D) [+ (B[*K], T)]
        if "negatives" in emb:
            emb["negatives"] = _group(emb["negatives"], sc.batch_size)  # (B, K, D) [+ (B, K, T)]
        loss = stage.losses[source](**emb, **extra)
        loss.backward()
        if chunk:
            self._backward_cached(texts, reps, states, chunk, outputs)
        return self._update(stage, loss, lr)

    def _update(self, stage: _Stage, loss: torch.Tensor, lr: float) -> dict[str, float]:
        """After the backward pass: gradient sum across ranks, clipping and the AdamW update."""
        sc = stage.cfg
        _sum_gradients(self.params, self.d.world)
        if sc.grad_clip > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(self.params, sc.grad_clip))
        else:
            norm = float(torch.norm(torch.stack([p.grad.norm() for p in self.params if p.grad is not None])))
        for group in stage.optimizer.param_groups:
            group["lr"] = lr
        stage.optimizer.step()
        stage.optimizer.zero_grad(set_to_none=True)
        return {"loss": float(loss.detach()), "grad_norm": norm}


# THE RUN =========================================================================================


def _git_revision() -> str:
    from harness.runner import code_revision

    return code_revision()


def _register(out: Path, name: str) -> Path | None:
    """Make a folder outside the models dir visible there (a symlink); None if the name is taken."""
    root = models_dir()
    with contextlib.suppress(ValueError):
        out.resolve().relative_to(root.resolve())
        return out
    link = root / name
    if link.is_symlink() and link.resolve() == out.resolve():
        return link
    if link.exists() or link.is_symlink():
        return None
    root.mkdir(parents=True, exist_ok=True)
    link.symlink_to(out.resolve(), target_is_directory=True)
    return link


class _Run:
    def __init__(self, cfg: TrainConfig, out: Path, data_dir: Path, d: _Dist, progress: bool, on_step: Any) -> None:
        self.cfg, self.out, self.data_dir, self.d = cfg, out, data_dir, d
        self.progress, self.on_step = progress, on_step
        self.config_hash = _config_hash(cfg)

    def _log_path(self) -> Path:
        return self.out / "metrics.jsonl"

    def _truncate_log(self, step: int) -> None:
        path = self._log_path()
        if self.d.rank == 0 and path.exists():
            keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
            path.write_text("".join(ln + "\n" for ln in keep))

    def execute(self, resume: bool, recipe: str) -> Path:
        cfg, out, d = self.cfg, self.out, self.d
        started = time.time()
        ckpts = _checkpoints(out) if resume else []
        state = json.loads((ckpts[-1] / "state.json").read_text()) if ckpts else None
        if state is not None and state["config_hash"] != self.config_hash:
            raise ZooError(f"{ckpts[-1]}: written by a different recipe or overrides; use another --out or --no-resume")
        if d.rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            if state is None:
                shutil.rmtree(out / "checkpoints", ignore_errors=True)
                self._log_path().unlink(missing_ok=True)
        d.barrier()
        model, scratch = _init_model(cfg, out, self.data_dir, d)
        if state is not None:
            model = load_model_class(cfg.model.family).from_pretrained(ckpts[-1] / "model")
            self._truncate_log(state["global_step"])
        _freeze(model, cfg.model.freeze)
        if cfg.gradient_checkpointing:
            _enable_gradient_checkpointing(model)
        model.train()
        stepper = _Stepper(cfg, model, d)
        step = state["global_step"] if state else 0
        data_records: list[dict[str, Any]] = list(state["data"]) if state else []
        last: dict[str, float] = {}
        bar = None
        if self.progress and d.rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.total_steps, initial=step, desc=cfg.name, dynamic_ncols=True)
        try:
            begin = 0
            for index, sc in enumerate(cfg.stages):
                end = begin + sc.steps
                if step >= end:
                    begin = end
                    continue
                if sc.batch_size % d.world:
                    raise ZooError(f"stage {sc.name!r}: batch_size {sc.batch_size} is not divisible by {d.world} ranks")
                stage = _Stage(cfg, index, model, self.data_dir)
                if not any(r["stage"] == sc.name for r in data_records):
                    data_records += stage.records()
                if state is not None and state["stage"] == index and step > begin:
                    stage.optimizer.load_state_dict(torch.load(ckpts[-1] / "optimizer.pt", weights_only=True))
                    stage.sampler.load_state_dict(state["sampler"])
                for local in range(step - begin, sc.steps):
                    t0 = time.perf_counter()
                    torch.manual_seed((cfg.seed * 1_000_003 + step) * 1009 + d.rank)
                    source, idx = stage.sampler.next_batch()
                    lr = sc.lr * lr_factor(local, sc.steps, sc.warmup_ratio, sc.schedule)
                    last = stepper.step(stage, source, stage.sources[source].rows(idx), lr)
                    step += 1
                    metrics = {"step": step, "stage": sc.name, "source": stage.sources[source].name, **last, "lr": lr}
                    metrics["seconds"] = round(time.perf_counter() - t0, 4)
                    self._log(metrics, bar)
                    if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.total_steps:
                        ckpt_state = {
                            "global_step": step,
                            "stage": index,
                            "sampler": stage.sampler.state_dict(),
                            "config_hash": self.config_hash,
                            "data": data_records,
                        }
                        if d.rank == 0:
                            _save_checkpoint(out, model, stage.optimizer, ckpt_state, cfg.keep_checkpoints)
                        d.barrier()
                    if self.on_step is not None:
                        self.on_step(step, metrics)
                begin = end
        finally:
            if bar is not None:
                bar.close()
        model.eval()
        if d.rank == 0:
            self._finish(model, recipe, data_records, scratch, last, time.time() - started)
        d.barrier()
        return out

    def _log(self, metrics: dict[str, Any], bar: Any) -> None:
        if self.d.rank != 0:
            return
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", src=metrics["source"])
        if metrics["step"] % self.cfg.log_every == 0 or metrics["step"] == self.cfg.total_steps:
            with open(self._log_path(), "a", encoding="utf-8") as f:
                f.write(json.dumps(metrics) + "\n")

    def _finish(
        self, model: Any, recipe: str, data: list[dict[str, Any]], scratch: dict | None, last: dict, seconds: float
    ) -> None:
        from harness.runner import hardware

        cfg, out = self.cfg, self.out
        model.save_pretrained(out)
        losses = {s.loss for s in cfg.stages} | {src.loss for s in cfg.stages for src in s.sources if src.loss}
        citations = sorted({create_loss(name).citation for name in losses})
        record = {
            "schema_version": 1,
            "name": cfg.name,
            "family": cfg.model.family,
            "recipe": recipe,
            "init": cfg.model.init,
            "config": to_dict(cfg),
            "config_hash": self.config_hash,
            "data": data,
            "scratch": scratch,
            "git_revision": _git_revision(),
            "weights_sha256": sha256_file(out / WEIGHTS),
            "params": sum(p.numel() for p in model.parameters()),
            "embed_dim": model.embed_dim,
            "languages": cfg.languages,
            "steps": cfg.total_steps,
            "world_size": self.d.world,
            "final": last,
            "seconds": round(seconds, 1),
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "hardware": hardware(),
            "citation": " ".join(citations),
        }
        (out / "recipe.toml").write_text(
            f"# {cfg.name}: the resolved recipe of this model (zoobench train --recipe {out / 'recipe.toml'})\n"
            + to_toml(to_dict(cfg)),
            encoding="utf-8",
        )
        tmp = out / (TRAIN_RECORD + ".tmp")
        tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, out / TRAIN_RECORD)  # last: its presence marks the model finished
        shutil.rmtree(out / "checkpoints", ignore_errors=True)


def train(
    recipe: str | os.PathLike[str] | dict[str, Any],
    overrides: Iterable[str] = (),
    *,
    out: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    progress: bool = True,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
) -> Path:
    """Train a model from a recipe, write its folder and register it.

    Args:
        recipe: a recipe (``.toml`` path, name under ``zoo/recipes``, or dict); see ``zoo.train.config``.
        overrides: ``key=value`` strings over the recipe.
        out: the output folder (default ``<models dir>/<name>``); a folder elsewhere is linked into
            the models dir so the registry finds it.
        data_dir: where the data lives (default: the recipe's ``data_dir``, then ``resolve_data_dir``).
        resume: continue from the newest checkpoint in ``out`` (same recipe and overrides required).
        progress: show a progress bar (rank 0).
        on_step: called after every step with (global step, metrics) on every rank.

    Returns:
        The output folder.

    Raises:
        ZooError: bad recipe or data, a checkpoint from another recipe, or an ``out`` that already
            holds a different finished model.

    Example:
        >>> folder = train("gte/tiny-scratch", ["stages.*.steps=5"], out="/tmp/tiny")
        >>> zoo.create_model(json.loads((folder / "train.json").read_text())["name"]).encode(["hi"]).shape
        (1, 64)
    """
    cfg = load_recipe(recipe, overrides)
    if not _NAME.match(cfg.name):
        raise ZooError(f"model name {cfg.name!r}: use lower-case kebab case with at most one dot (arch.tag)")
    if cfg.model.family not in MODEL_CLASSES:
        raise ZooError(f"family {cfg.model.family!r} has no trainable model (known: {', '.join(MODEL_CLASSES)})")
    for sc in cfg.stages:
        if sc.schedule not in SCHEDULES:
            raise ZooError(f"stage {sc.name!r}: unknown schedule {sc.schedule!r} ({', '.join(SCHEDULES)})")
    out_path = Path(out) if out else models_dir() / cfg.name
    recipe_id = "dict" if isinstance(recipe, dict) else str(recipe)
    done = out_path / TRAIN_RECORD
    if done.exists():
        if json.loads(done.read_text()).get("config_hash") == _config_hash(cfg):
            return out_path
        raise ZooError(f"{out_path} already holds a different trained model; choose another --out")
    d = _init_dist()
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        run = _Run(cfg, out_path, _data_dir(cfg, data_dir), d, progress, on_step)
        result = run.execute(resume, recipe_id)
        if d.rank == 0 and _register(out_path, cfg.name) is None:
            print(f"zoobench: warning: {models_dir() / cfg.name} exists; {out_path} is not registered", file=sys.stderr)
        return result
    finally:
        torch.set_num_threads(threads)
        if d.owns_group:
            tdist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    """``python -m zoo.train``: train from a recipe; errors print one line and exit with code 2."""
    from zoo.train import add_arguments, train_from_args

    parser = argparse.ArgumentParser(prog="python -m zoo.train", description=inspect.getdoc(sys.modules[__name__]))
    add_arguments(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        folder = train_from_args(args)
    except ZooError as e:
        print(f"zoobench: error: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained {folder}")
    return 0
