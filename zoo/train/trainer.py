"""The training loop: one engine for every family (``python -m zoo.train``, ``zoobench train``).

A run executes the stages of a recipe (``zoo.train.config``) in order on one model of a registered family
(``zoo.family.Family``: its model class loads, builds from scratch and saves; nothing here names a family):

- AdamW (no weight decay on biases and norms), linear warmup then linear / cosine / constant decay,
  gradient clipping, optional bf16 autocast (CPU AMX, CUDA) and gradient checkpointing; ``model.freeze`` /
  ``model.trainable`` patterns choose the weights that move (BitFit: ``trainable = ["*.bias"]``), and
  ``[model.lora]`` trains a LoRA adapter on the fixed base weights instead (``zoo.train.lora``, peft);
- the device of ``device`` (``"auto"``: CUDA when present, else the CPU; ``--device`` overrides it), so the
  same recipe runs on both (``zoo.train.dist``);
- batches from ``zoo.train.data.MultiTaskSampler`` (one source per batch), losses from ``zoo.train.losses``
  (per source, default the stage's); each loss names its objective (``zoo.train.objectives``: ``embedding``
  with all-gather and GradCache, ``pair`` for cross-encoders, ``token`` for masked LM), which turns the batch's
  rows into model inputs, runs the forward and backward passes and returns the loss; a loss's teacher targets
  (distillation) come from the stage's ``teacher`` (a registered encoder, or ``"frozen"``);
- ``torchrun`` data parallelism (gloo on CPU, NCCL on CUDA): every rank draws the same global batch and runs
  its slice; the objectives make the loss of the whole global batch, and the gradients are summed across
  ranks, so a 2-process run reproduces the 1-process loss;
- checkpoints every ``checkpoint_every`` steps (model folder, optimizer state, sampler position) and
  automatic resume from the newest. The RNG is reseeded at every step from (seed, step, rank), and the
  inputs' randomness (MLM masks) comes from a generator of (seed, step), so what a step draws does not depend
  on what ran before it: a resumed run ends with exactly the weights of an uninterrupted one;
- a tqdm bar and ``metrics.jsonl`` (one line per step: loss, lr, grad norm, source, timings).

The output folder holds the family's HF-style folder (``save_pretrained``), ``train.json`` (resolved
recipe, data sha256s, git revision, weights sha256, timings), ``recipe.toml`` (the resolved recipe,
runnable as is) and ``metrics.jsonl``; with LoRA the adapter folder and the reference to its base take the place
of the family's folder. Under the models dir it is a registered model at once
(``zoo.trained``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import fnmatch
import hashlib
import inspect
import json
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as tdist

from zoo import merge
from zoo.datafiles import resolve_data_dir
from zoo.errors import ZooError
from zoo.family import Family
from zoo.provenance import code_revision, hardware
from zoo.registry import get_family
from zoo.train.config import RUN_CONTROL, StageConfig, TrainConfig, from_dict, load_recipe, to_dict, to_toml
from zoo.train.data import MultiTaskSampler, TrainSource, load_source
from zoo.train.dist import Dist, init_dist, resolve_device, sum_gradients
from zoo.train.lora import ADAPTER_PARAMS, add_lora, base_record, require_peft, resume_adapter, save_adapter
from zoo.train.losses import create_loss
from zoo.train.objectives import OBJECTIVES, Objective, Teacher
from zoo.train.tokenizer import corpus_texts, train_wordpiece
from zoo.trained import TRAIN_RECORD, models_dir, trained_sha256
from zoo.weights import sha256_file

__all__ = ["train", "main", "SCHEDULES", "lr_factor"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)?$")
LOSS_WEIGHTS = "losses.safetensors"  # a checkpoint's loss-owned weights (IBKD's projection), beside optimizer.pt


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
    return resolve_data_dir(data_dir or cfg.data_dir)


def _build_scratch(cfg: TrainConfig, family: Family, folder: Path, data_dir: Path) -> dict[str, Any]:
    """Train the tokenizer and write the family's random-init folder; returns what the record keeps about it."""
    if family.scratch is None:
        raise ZooError(f"family {family.name!r} cannot be built from scratch (set model.init)")
    sc = from_dict(family.scratch_config, cfg.model.scratch, "model.scratch")
    if not sc.tokenizer_corpora:
        raise ZooError("model.init is not set and model.scratch.tokenizer_corpora is empty: nothing to build from")
    paths = [data_dir / p for p in sc.tokenizer_corpora]
    tokenizer = train_wordpiece(
        corpus_texts(paths, sc.tokenizer_max_texts), vocab_size=sc.vocab_size, lowercase=sc.lowercase
    )
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    family.scratch(tmp, tokenizer, sc, seed=cfg.seed)
    info = {
        "config": dataclasses.asdict(sc),
        "tokenizer_corpora": {p: sha256_file(data_dir / p) for p in sc.tokenizer_corpora},
        "vocab": len(tokenizer),
    }
    (tmp / "scratch.json").write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, folder)
    return info


def _init_model(
    cfg: TrainConfig, family: Family, out: Path, data_dir: Path, d: Dist
) -> tuple[Any, dict | None, merge.Positioning | None]:
    """The model a run starts from, its scratch record (from scratch) and Self Positioning's layout (that merge)."""
    if cfg.model.merge is not None:  # a merge (zoo.merge.build); self-positioning's alphas: model.merge_alphas
        model, positioning = merge.build(family, cfg.model.merge, cfg.model.overrides)
        return model, None, positioning
    if cfg.model.init:
        return family.model.from_pretrained(cfg.model.init, **cfg.model.overrides), None, None
    folder = out / "init"
    if d.rank == 0 and not (folder / "scratch.json").exists():
        _build_scratch(cfg, family, folder, data_dir)
    d.barrier()
    info = json.loads((folder / "scratch.json").read_text())
    return family.model.from_pretrained(folder, **cfg.model.overrides), info, None


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


def _matches(name: str, pattern: str) -> bool:
    """A pattern with ``*``, ``?`` or ``[`` is an fnmatch glob over the whole name, one without is a prefix."""
    return fnmatch.fnmatchcase(name, pattern) if any(c in pattern for c in "*?[") else name.startswith(pattern)


def _select_trainable(model: torch.nn.Module, freeze: list[str], trainable: list[str]) -> None:
    """Fix the parameters ``freeze`` matches, and with ``trainable`` set every one it does not match.

    Raises:
        ZooError: a pattern matches no parameter.
    """
    names = [n for n, _ in model.named_parameters()]
    for key, patterns in (("model.freeze", freeze), ("model.trainable", trainable)):
        for pattern in patterns:
            if not any(_matches(n, pattern) for n in names):
                raise ZooError(f"{key}: {pattern!r} matches no parameter (names look like {names[0]!r})")
    for n, p in model.named_parameters():
        moving = any(_matches(n, t) for t in trainable) if trainable else True
        if not moving or any(_matches(n, f) for f in freeze):
            p.requires_grad_(False)


def _configure(model: Any, stage: StageConfig) -> None:
    """Apply a stage's ``model`` table (e.g. a larger RoPE base and length for mGTE's second MLM stage)."""
    configure = getattr(model, "configure", None)
    if configure is None:
        raise ZooError(f"stage {stage.name!r}: {type(model).__name__} has no configure() for the stage's model table")
    try:
        configure(**stage.model)
    except TypeError as e:
        raise ZooError(f"stage {stage.name!r}: model table {stage.model!r}: {e}") from None


def _with_lora(cfg: TrainConfig, model: Any, out: Path, checkpoint: Path | None) -> tuple[dict | None, list[str]]:
    """With ``[model.lora]``, inject the adapter (a resumed run's from its checkpoint). Returns the base the adapter is
    pinned to (``zoo.train.lora.base_record``; None without LoRA) and the ``model.trainable`` patterns to apply."""
    if cfg.model.lora is None:
        return None, cfg.model.trainable
    base = base_record(cfg.model.family, cfg.model.init or f"local:{(out / 'init').resolve()}", cfg.model.overrides)
    add_lora(model, cfg.model.lora, seed=cfg.seed)
    if checkpoint is not None:
        resume_adapter(model, checkpoint, base)
    return base, [*cfg.model.trainable, *ADAPTER_PARAMS]  # the adapter, and what the recipe names besides (a head)


def _save_model(model: Any, folder: Path, lora_base: dict[str, Any] | None) -> None:
    """The family's folder, or with LoRA the adapter and the reference to its base (``zoo.train.lora``)."""
    if lora_base is None:
        model.save_pretrained(folder)
    else:
        save_adapter(model, folder, lora_base)


def _optimizer(model: torch.nn.Module, stage: StageConfig, losses: list[torch.nn.Module]) -> torch.optim.AdamW:
    """AdamW over the model's trainable parameters and the losses' own (IBKD's projection)."""
    decay, keep = [], []  # weight decay on matrices; not on biases, norms or merge alphas
    named = [*model.named_parameters(), *(np for loss in losses for np in loss.named_parameters())]
    for n, p in named:
        if p.requires_grad:
            (decay if p.ndim >= 2 and n != "merge_alphas" else keep).append(p)
    groups = [{"params": decay, "weight_decay": stage.weight_decay}, {"params": keep, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=stage.lr)


# CHECKPOINTS =====================================================================================


def _checkpoints(out: Path) -> list[Path]:
    found = [p for p in (out / "checkpoints").glob("step-*") if (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def _save_checkpoint(
    out: Path, model: Any, stage: _Stage, state: dict[str, Any], keep: int, lora_base: dict | None
) -> None:
    from safetensors.torch import save_file

    final = out / "checkpoints" / f"step-{state['global_step']:07d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _save_model(model, tmp / "model", lora_base)
    torch.save(stage.optimizer.state_dict(), tmp / "optimizer.pt")
    if stage.loss_params:
        save_file(stage.loss_state(), tmp / LOSS_WEIGHTS)
    (tmp / "state.json").write_text(json.dumps(state, indent=1) + "\n")  # last: marks the checkpoint complete
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in _checkpoints(out)[: -max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)


def _config_hash(cfg: TrainConfig) -> str:
    """What determines the weights: the resolved config without run-control keys."""
    data = {k: v for k, v in to_dict(cfg).items() if k not in RUN_CONTROL}
    if data["model"]["lora"] is None:  # runs without LoRA keep the hashes they had before [model.lora] existed
        del data["model"]["lora"]
    return "sha256:" + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


# ONE STAGE =======================================================================================


class _Stage:
    """A stage's sources, their losses and objectives, the sampler, the optimizer and the teacher."""

    def __init__(
        self, cfg: TrainConfig, index: int, model: Any, family: Family, data_dir: Path, d: Dist, frozen: Path | None
    ) -> None:
        self.cfg, self.index = cfg.stages[index], index
        self.sources: list[TrainSource] = [load_source(data_dir, s, seed=cfg.seed) for s in self.cfg.sources]
        self.objectives: list[Objective] = []
        for s_cfg, src in zip(self.cfg.sources, self.sources, strict=True):
            name = s_cfg.loss or self.cfg.loss
            args = dict(s_cfg.loss_args) if s_cfg.loss else {**self.cfg.loss_args, **s_cfg.loss_args}
            loss = create_loss(name, args)
            where = f"stage {self.cfg.name!r}, source {src.name!r}"
            if src.format not in loss.formats:
                raise ZooError(f"{where}: loss {name!r} trains on {' or '.join(loss.formats)}, not {src.format}")
            objective = OBJECTIVES[loss.objective]
            if self.cfg.grad_cache_chunk and objective.name != "embedding":
                raise ZooError(f"stage {self.cfg.name!r}: grad_cache_chunk does not apply to the {name!r} loss")
            self.objectives.append(objective(model, loss, self.cfg, s_cfg, d, cfg.bf16, where))
        self.sampler = MultiTaskSampler(
            self.sources,
            self.cfg.batch_size,
            alpha=self.cfg.alpha,
            seed=cfg.seed * 1000 + index,
            length_buckets=self.cfg.length_buckets,
        )
        self.teacher = None
        if any(o.loss.targets for o in self.objectives):
            if not self.cfg.teacher:
                raise ZooError(
                    f"stage {self.cfg.name!r}: a distillation loss needs `teacher` (a registered encoder, or frozen)"
                )
            self.teacher = Teacher(self.cfg.teacher, model, family, frozen, writes=d.rank == 0)
        self.losses = [o.loss for o in self.objectives]
        self._fit(model)
        for i, loss in enumerate(self.losses):  # a loss's own layers (IBKD's projection), seeded alike on every rank
            if loss.builds:
                loss.build(model.embed_dim, self.teacher.dim, seed=cfg.seed * 1000 + index * 10 + i)
                loss.to(d.device).train()
        self.optimizer = _optimizer(model, self.cfg, self.losses)

    def _fit(self, model: Any) -> None:
        """Fit the losses that learn from the stage's texts (``Loss.fits``: BABERT's boundary statistics) on the
        texts of every ``texts`` source of the stage, once per loss name, before the first step. The state is a
        function of the sources' rows and the model's tokenizer only, so a resumed run recomputes the same."""
        fitting = [o for o in self.objectives if o.loss.fits]
        if not fitting:
            return
        texts = [t for src in self.sources if src.format == "texts" for t in src.columns["text"]]
        fitted: dict[str, Any] = {}
        for o in fitting:
            if o.loss.name not in fitted:
                fitted[o.loss.name] = o.loss.fit(model, o.corpus(texts))
            o.loss.fitted = fitted[o.loss.name]

    def step(self, source: int, rows: dict[str, list[Any]], generator: torch.Generator, device: torch.device) -> float:
        """The objective's forward and backward passes on one global batch of ``source``; returns the loss."""
        objective = self.objectives[source]
        targets = self.teacher.targets(objective.loss.targets, rows, device) if objective.loss.targets else {}
        return objective.step(rows, targets, generator)

    def records(self) -> list[dict[str, Any]]:
        return [{"stage": self.cfg.name, **src.record()} for src in self.sources]

    @property
    def loss_params(self) -> list[torch.nn.Parameter]:
        """The losses' own trainable parameters: computed from the gathered batch, so every rank's gradient is
        already the global one (not summed across ranks)."""
        return [p for loss in self.losses for p in loss.parameters() if p.requires_grad]

    def loss_state(self) -> dict[str, torch.Tensor]:
        """The losses' own weights, for a checkpoint (``<source index>.<name>``)."""
        return {
            f"{i}.{k}": v.detach().contiguous()
            for i, loss in enumerate(self.losses)
            for k, v in loss.state_dict().items()
        }

    def load_loss_state(self, state: Mapping[str, torch.Tensor]) -> None:
        for i, loss in enumerate(self.losses):
            mine = {k.split(".", 1)[1]: v for k, v in state.items() if k.split(".", 1)[0] == str(i)}
            if mine or loss.builds:
                loss.load_state_dict(mine)


def _update(stage: _Stage, params: list[torch.nn.Parameter], world: int, lr: float) -> float:
    """After the backward pass: gradient sum across ranks, clipping and the AdamW update; the gradient norm."""
    sc = stage.cfg
    sum_gradients(params, world)
    params = params + stage.loss_params
    if sc.grad_clip > 0:
        norm = float(torch.nn.utils.clip_grad_norm_(params, sc.grad_clip))
    else:
        norm = float(torch.norm(torch.stack([p.grad.norm() for p in params if p.grad is not None])))
    for group in stage.optimizer.param_groups:
        group["lr"] = lr
    stage.optimizer.step()
    stage.optimizer.zero_grad(set_to_none=True)
    return norm


# THE RUN =========================================================================================


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
    def __init__(
        self, cfg: TrainConfig, family: Family, out: Path, data_dir: Path, d: Dist, progress: bool, on_step: Any
    ) -> None:
        self.cfg, self.family, self.out, self.data_dir, self.d = cfg, family, out, data_dir, d
        self.progress, self.on_step = progress, on_step
        self.config_hash = _config_hash(cfg)
        self.lora_base: dict[str, Any] | None = None  # with [model.lora]: the base the adapter is pinned to
        self.positioning: merge.Positioning | None = None  # with self-positioning: the alphas' layout

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
        model, scratch, self.positioning = _init_model(cfg, self.family, out, self.data_dir, d)
        resume_from = ckpts[-1] / "model" if state is not None else None
        self.lora_base, trainable = _with_lora(cfg, model, out, resume_from)
        if self.positioning is not None:
            trainable = ["merge_alphas"]  # nothing else moves (zoo.merge.position)
        if resume_from is not None:
            if self.lora_base is None:  # (a LoRA checkpoint holds the adapter only: loaded by _with_lora)
                model = self.family.model.from_pretrained(resume_from)
            self._truncate_log(state["global_step"])
        model = model.to(d.device)
        _select_trainable(model, cfg.model.freeze, trainable)
        if cfg.gradient_checkpointing:
            _enable_gradient_checkpointing(model)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
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
                if sc.model:
                    _configure(model, sc)
                # a frozen teacher is kept beside the checkpoints, so a resumed stage keeps its start as reference
                frozen = None if self.lora_base else out / "checkpoints" / f"frozen-stage-{index}"
                stage = _Stage(cfg, index, model, self.family, self.data_dir, d, frozen)
                if not any(r["stage"] == sc.name for r in data_records):
                    data_records += stage.records()
                if state is not None and state["stage"] == index and step > begin:
                    stage.optimizer.load_state_dict(torch.load(ckpts[-1] / "optimizer.pt", weights_only=True))
                    if (ckpts[-1] / LOSS_WEIGHTS).is_file():
                        from safetensors.torch import load_file

                        stage.load_loss_state(load_file(ckpts[-1] / LOSS_WEIGHTS, device=str(d.device)))
                    stage.sampler.load_state_dict(state["sampler"])
                for local in range(step - begin, sc.steps):
                    t0 = time.perf_counter()
                    torch.manual_seed((cfg.seed * 1_000_003 + step) * 1009 + d.rank)
                    inputs_rng = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # the same on all ranks
                    source, idx = stage.sampler.next_batch()
                    lr = sc.lr * lr_factor(local, sc.steps, sc.warmup_ratio, sc.schedule)
                    loss = stage.step(source, stage.sources[source].rows(idx), inputs_rng, d.device)
                    last = {"loss": loss, "grad_norm": _update(stage, params, d.world, lr)}
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
                            _save_checkpoint(out, model, stage, ckpt_state, cfg.keep_checkpoints, self.lora_base)
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
        cfg, out = self.cfg, self.out
        trained_params = sum(p.numel() for p in model.parameters() if p.requires_grad) if cfg.total_steps else 0
        merged = None
        if cfg.model.merge is not None:
            merged = dataclasses.asdict(cfg.model.merge)
            if self.positioning is not None:
                merged["alphas"] = self.positioning.alphas(model)  # {task model: {slot: alpha}}
                merge.bake(model)
        _save_model(model, out, self.lora_base)
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
            "git_revision": code_revision(),
            "weights_sha256": trained_sha256(out),
            "params": sum(p.numel() for p in model.parameters()),
            "trained_params": trained_params,
            "merge": merged,
            "embed_dim": model.embed_dim,
            "languages": cfg.languages,
            "steps": cfg.total_steps,
            "world_size": self.d.world,
            "device": str(self.d.device),
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
    device: str | None = None,
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
        device: where to train (``auto``, ``cpu``, ``cuda``, ``cuda:1``); default: the recipe's ``device``. The
            recipe is not changed: the same text runs on a CPU and on a GPU, and a run may resume on another device.

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
    family = get_family(cfg.model.family)
    from_dict(family.scratch_config, cfg.model.scratch, "model.scratch")  # unknown keys fail before anything runs
    if cfg.model.lora is not None:
        require_peft()
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
    d = init_dist(resolve_device(device or cfg.device))  # the recipe (and recipe.toml) keeps its own device
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        run = _Run(cfg, family, out_path, _data_dir(cfg, data_dir), d, progress, on_step)
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
