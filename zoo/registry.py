"""The model registry: a decorator, a frozen card per published weight set, and query functions.

A registry key is what users type. The part before the dot selects the factory (architecture and
size), the tag after it selects the weights: ``minilm-l6.st``. Names without a tag (``bm25``) have a
single card. Families register themselves when imported; the built-in ones are imported lazily from
``FAMILIES``, third-party ones from the ``zoobench.models`` entry-point group or a module path given
on the command line (``--plugin my_pkg.models``) or in ``$ZOOBENCH_PLUGINS`` (comma-separated).

Listing and resolving cards (:func:`list_models`, :func:`get_card`) import no family module once a card index
exists: a JSON copy of every registered card, keyed by a hash of the zoo package's source files, the plugin
modules' files and the installed distributions (``$ZOOBENCH_CARD_INDEX``, else ``~/.cache/zoobench/cards.json``).
Any change to one of those rebuilds it on the next lookup (by importing the families, as before). Building a
model (:func:`create_model`) always imports its family.

Families (``zoo.family.Family``) are collected the same way: an imported module's ``FAMILY`` value is
registered (:func:`register_family`), and :func:`get_family` finds it by name for the trainer and for
trained folders.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import tempfile
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from importlib.metadata import distributions, entry_points
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.family import Family

__all__ = [
    "ModelCard",
    "register_model",
    "create_model",
    "get_card",
    "list_models",
    "load_plugins",
    "add_plugins",
    "register_family",
    "get_family",
    "FAMILIES",
]

FAMILIES: tuple[str, ...] = (
    "zoo.families.baselines",
    "zoo.families.gte",
    "zoo.families.mgte",
    "zoo.families.decoder",
    "zoo.families.llm_ranker",
    "zoo.families.taggers",
    "zoo.families.babert",
)
ENTRY_POINT_GROUP = "zoobench.models"
# Models found on disk at each lookup ("module:function" -> [(card, factory)]): trained folders, see zoo/trained.py.
DISCOVERY: tuple[str, ...] = ("zoo.trained:discover",)
CARD_INDEX_ENV = "ZOOBENCH_CARD_INDEX"


@dataclass(frozen=True)
class ModelCard:
    """What a model is, known before it is loaded.

    The harness records the card with every result, so everything that changes a score belongs here:
    the pooling and the prompts (``{"query": "query: ", "document": "passage: "}``) are card fields,
    never hidden defaults of a model class.
    """

    name: str
    family: str
    revision: str
    source: str  # a checkpoint source for zoo.checkpoints.resolve, or "none (...)"
    upstream: str | None = None  # the published model this is (a hub id), for listings and exports
    params: int | None = None
    embed_dim: int | None = None
    max_tokens: int | None = None
    languages: tuple[str, ...] = ()
    license: str | None = None
    similarity: str | None = "cosine"
    pooling: str | None = None
    prompts: Mapping[str, str] = field(default_factory=dict)
    training_data: tuple[str, ...] = ()
    citation: str | None = None

    @property
    def arch(self) -> str:
        """The factory part of the name (before the dot)."""
        return self.name.split(".", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (tuples become lists)."""
        d = asdict(self)
        d["prompts"] = dict(self.prompts)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelCard:
        """The card :meth:`to_dict` gave (lists become tuples again)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclass(frozen=True)
class _Entry:
    arch: str
    factory: Callable[..., Any]
    cards: tuple[ModelCard, ...]


_ARCHS: dict[str, _Entry] = {}
_CARDS: dict[str, tuple[_Entry, ModelCard]] = {}
_FAMILIES: dict[str, Family] = {}
_loaded_modules: set[str] = set()


def register_model(name: str, *, cards: Iterable[ModelCard]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a factory under ``name`` with the cards of the weights it can load.

    Args:
        name: the architecture key in kebab case; must equal the function name (``gte_small``
            registers as ``gte-small``).
        cards: one card per weight set; each card's name is ``name`` or ``name.<tag>``. The first is
            the default when users type the bare ``name``.

    Returns:
        The decorator; the factory is called as ``factory(card=card, **kwargs)``.

    Raises:
        ValueError: on a name that does not match its function, a duplicate, or a foreign card.
    """
    cards = tuple(cards)

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        if fn.__name__.replace("_", "-") != name:
            raise ValueError(f"register_model({name!r}) decorates {fn.__name__!r}; the names must match")
        if not cards:
            raise ValueError(f"model {name!r} registers no card")
        entry = _Entry(name, fn, cards)
        taken = [name] if name in _ARCHS else [c.name for c in cards if c.name in _CARDS]
        if taken:
            raise ValueError(f"model name {taken[0]!r} is registered twice")
        for card in cards:
            if card.arch != name or card.name.count(".") > 1:
                raise ValueError(f"card {card.name!r} does not belong to model {name!r}")
        _ARCHS[name] = entry
        _CARDS.update({c.name: (entry, c) for c in cards})
        return fn

    return decorator


def register_family(family: Family) -> Family:
    """Make a family known to the trainer and to trained folders (an imported module's ``FAMILY`` is registered
    this way); returns it.

    Raises:
        ValueError: another family already has the name.
    """
    if not isinstance(family, Family):
        raise TypeError(f"register_family expects a zoo.family.Family, got {type(family).__name__}")
    known = _FAMILIES.get(family.name)
    if known is not None and known is not family:
        raise ValueError(f"family {family.name!r} is registered twice")
    _FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    """The registered family called ``name`` (built-in families and plugins are imported first).

    Raises:
        ZooError: no family has that name (the message lists the known ones).
    """
    load_plugins()
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ZooError(f"unknown family {name!r} (known: {', '.join(sorted(_FAMILIES))})") from None


def _plugin_modules(modules: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(module, what) of the built-in families, ``$ZOOBENCH_PLUGINS``, the given modules and the entry points."""
    env = [m.strip() for m in os.environ.get("ZOOBENCH_PLUGINS", "").split(",") if m.strip()]
    found = [(m, m) for m in (*FAMILIES, *env, *modules, *_extra_plugins)]
    found += [(ep.value.split(":")[0], f"entry point {ep.name!r}") for ep in entry_points(group=ENTRY_POINT_GROUP)]
    return found


_extra_plugins: list[str] = []  # modules given to add_plugins / load_plugins (--plugin)


def add_plugins(modules: Iterable[str]) -> None:
    """Name plugin modules (``--plugin``) to import with the built-in families when a lookup first needs them."""
    _extra_plugins.extend(m for m in modules if m not in _extra_plugins)


def load_plugins(modules: Iterable[str] = ()) -> None:
    """Import the built-in families, entry-point plugins and the given module paths (once each); register the
    ``FAMILY`` each declares."""
    add_plugins(modules)
    for module, what in _plugin_modules():
        _import_once(module, what)


def _import_once(module: str, what: str) -> None:
    if module in _loaded_modules:
        return
    try:
        imported = importlib.import_module(module)
        family = getattr(imported, "FAMILY", None)
        if isinstance(family, Family):
            register_family(family)
    except Exception as e:  # a plugin's own failure (ImportError, a duplicate name, ...) is the user's input
        if module in _extra_plugins:  # reported once; not retried by every later lookup of this process
            _extra_plugins.remove(module)
        raise ZooError(f"cannot import model plugin {what}: {type(e).__name__}: {e}") from e
    _loaded_modules.add(module)


def _discovered(taken: tuple[str, ...] | None = None) -> dict[str, tuple[_Entry, ModelCard]]:
    found = {}
    for ref in DISCOVERY:
        module, _, function = ref.partition(":")
        names = tuple(_CARDS) if taken is None else taken
        for card, factory in getattr(importlib.import_module(module), function)(taken=names):
            found[card.name] = (_Entry(card.arch, factory, (card,)), card)
    return found


def _lookup(name: str) -> tuple[_Entry, ModelCard]:
    load_plugins()
    if name in _CARDS:
        return _CARDS[name]
    if name in _ARCHS:
        entry = _ARCHS[name]
        return entry, entry.cards[0]
    discovered = _discovered()
    if name in discovered:
        return discovered[name]
    close = difflib.get_close_matches(name, [*_CARDS, *discovered], n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `zoobench ls models`"
    raise ZooError(f"unknown model {name!r}{hint}")


def get_card(name: str) -> ModelCard:
    """The card of a registered model, without loading it (nor, with a current card index, its family)."""
    cards, defaults = _static_cards()
    if name in cards or name in defaults:
        return cards[defaults.get(name, name)]
    found = _discovered(tuple(cards))
    if name in found:
        return found[name][1]
    return _lookup(name)[1]  # the error, with close matches


def _static_cards() -> tuple[dict[str, ModelCard], dict[str, str]]:
    """Every card the plugin modules register, and each architecture's default card name: from the card index
    when its key matches, else by importing the modules (and writing the index)."""
    modules = tuple(m for m, _ in _plugin_modules())
    if not all(m in _loaded_modules for m in modules):
        indexed = _read_index(modules, str(_index_path()))
        if indexed is not None:  # plus what was registered in this process (register_model calls)
            cards, defaults = indexed
            cards = {**cards, **{n: c for n, (_, c) in _CARDS.items()}}
            return cards, {**defaults, **{a: e.cards[0].name for a, e in _ARCHS.items()}}
        load_plugins()
        _write_index(_index_path(), _index_key(list(modules)))
    return {n: c for n, (_, c) in _CARDS.items()}, {a: e.cards[0].name for a, e in _ARCHS.items()}


@functools.lru_cache(maxsize=4)
def _read_index(modules: tuple[str, ...], path: str) -> tuple[dict[str, ModelCard], dict[str, str]] | None:
    """The cards and defaults of the index at ``path`` when its key is that of ``modules``' sources, else None.

    Read once per process: hashing the sources and installed distributions takes about 0.1 s, and ``zoobench ls
    models`` resolves every card.
    """
    try:
        index = json.loads(Path(path).read_text(encoding="utf-8"))
        if index.get("key") != _index_key(list(modules)):
            return None
        return {c["name"]: ModelCard.from_dict(c) for c in index["cards"]}, dict(index["defaults"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # missing, unreadable or from another version: rebuilt by the caller


def _index_path() -> Path:
    env = os.environ.get(CARD_INDEX_ENV)
    return Path(env) if env else Path.home() / ".cache" / "zoobench" / "cards.json"


def _index_key(modules: list[str]) -> str:
    """A hash of what the registered cards are made from: the zoo package's and the plugin modules' source files
    and the installed distributions (checkpoint revisions name package versions)."""
    h = hashlib.sha256(json.dumps(modules).encode())
    files = set(Path(__file__).resolve().parent.rglob("*.py"))
    for module in modules:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin and os.path.isfile(spec.origin):
            files.add(Path(spec.origin).resolve())
    for f in sorted(files):
        h.update(f"{f}\0".encode() + f.read_bytes())
    for name, ver in sorted({(d.metadata["Name"] or "", d.version) for d in distributions()}):
        h.update(f"{name}=={ver}\0".encode())
    return h.hexdigest()


def _write_index(path: Path, key: str) -> None:
    index = {
        "key": key,
        "cards": [c.to_dict() for _, c in _CARDS.values()],
        "defaults": {a: e.cards[0].name for a, e in _ARCHS.items()},
    }
    try:  # a cache: a read-only home only means the next lookup imports the families again
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8") as f:
            json.dump(index, f)
        os.replace(f.name, path)
    except OSError:
        pass


# Methods of the protocols in zoo.protocols: a lazy model forwards exactly those its class has.
_PROTOCOL_METHODS = ("encode", "encode_sparse", "encode_hybrid", "encode_tokens", "retrieve", "score", "tag")


class _LazyModel:
    """Stands in for a model until one of its protocol methods is first called."""

    def __init__(self, card: ModelCard, load: Callable[[], Any]) -> None:
        self.card = card
        self._load = load
        self._model: Any = None

    @property
    def loaded(self) -> bool:
        """Whether the real model has been built."""
        return self._model is not None

    def _get(self) -> Any:
        if self._model is None:
            self._model = self._load()
        return self._model


def _forward(method: str) -> Callable[..., Any]:
    def call(self: _LazyModel, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._get(), method)(*args, **kwargs)

    call.__name__ = method
    return call


def _model_class(entry: _Entry, card: ModelCard) -> type | None:
    # A factory whose cards give different classes (a discovered folder's, me5-small's) says which: model_class(card).
    known = getattr(entry.factory, "model_class", None)
    if callable(known):
        return known(card)
    try:
        cls = typing.get_type_hints(entry.factory).get("return")
    except Exception:  # an unresolvable annotation only means "not known before loading"
        return None
    return cls if isinstance(cls, type) else None


def create_model(name: str, *, lazy: bool = False, **kwargs: Any) -> Any:
    """Build a registered model by name.

    Args:
        name: ``arch`` (its default weights) or ``arch.tag``, as listed by :func:`list_models`.
        lazy: return a stand-in that builds the model on the first protocol call (the harness uses
            it so that a fully cached evaluation never loads weights). It needs the factory's return
            annotation to know which protocols to offer; without one the model is built at once. When
            that class has a static ``lazy_attributes(**kwargs) -> dict``, the stand-in also carries
            the attributes it returns (those the options alone determine, validated up front), and
            always the class's ``search_options`` (see ``zoo.protocols``).
        **kwargs: passed to the family's factory (e.g. ``device``).

    Returns:
        An object implementing one or more of the protocols in ``zoo.protocols``; its ``card``
        attribute is the registered :class:`ModelCard`.

    Raises:
        ZooError: for an unknown name (with close matches suggested).

    Example:
        >>> model = create_model("test-random")
        >>> model.encode(["hello"], kind="query").shape
        (1, 64)
    """
    entry, card = _lookup(name)
    _check_options(card, entry, kwargs)
    cls = _model_class(entry, card) if lazy else None
    if cls is None:
        return entry.factory(card=card, **kwargs)
    methods = {m: _forward(m) for m in _PROTOCOL_METHODS if callable(getattr(cls, m, None))}
    declared = {"search_options": tuple(getattr(cls, "search_options", ()))}  # see zoo.protocols
    proxy = type(f"Lazy{cls.__name__}", (_LazyModel,), {**methods, **declared})
    lazy = proxy(card, lambda: entry.factory(card=card, **kwargs))
    # Attributes that the options alone determine (e.g. mGTE's retrieval_mode) are known before loading.
    known = getattr(cls, "lazy_attributes", None)
    for attribute, value in (known(**kwargs) if callable(known) else {}).items():
        setattr(lazy, attribute, value)
    return lazy


def _keywords(function: Callable[..., Any]) -> tuple[set[str], bool]:
    """The keyword parameters of ``function`` (``card`` and ``model`` excepted), and whether it takes ``**kwargs``."""
    params = inspect.signature(function).parameters.values()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self", "card", "model"}
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def _check_options(card: ModelCard, entry: _Entry, kwargs: Mapping[str, Any]) -> None:
    """Refuse a factory option that the model does not have, before anything loads (a lazy model would otherwise
    fail at its first call with a TypeError). Known: the factory's keywords, else those of the ``__init__`` of the
    class it returns along the class's bases, plus the class's ``factory_options``."""
    known, more = _keywords(entry.factory)
    cls = _model_class(entry, card) if more else None
    if cls is not None:
        known |= set(getattr(cls, "factory_options", ()))
        for base in cls.__mro__:
            if "__init__" in vars(base):
                names, more = _keywords(base.__init__)
                known |= names
                if not more:
                    break
    if more:  # options passed on to code that does not declare them: cannot tell
        return
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ZooError(
            f"model {card.name}: unknown option {unknown[0]!r} (--model-kwarg); its options: {', '.join(sorted(known))}"
        )


def list_models(pattern: str = "*") -> list[str]:
    """Sorted full names (``arch.tag``) matching an fnmatch ``pattern``."""
    cards, _ = _static_cards()
    return sorted(n for n in (*cards, *_discovered(tuple(cards))) if fnmatch.fnmatchcase(n, pattern))
