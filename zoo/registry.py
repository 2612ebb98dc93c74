"""The model registry: a decorator, a frozen card per published weight set, and query functions.

A registry key is what users type. The part before the dot selects the factory (architecture and
size), the tag after it selects the weights: ``minilm-l6.st``. Names without a tag (``bm25``) have a
single card. Families register themselves when imported; the built-in ones are imported lazily from
``FAMILIES``, third-party ones from the ``zoobench.models`` entry-point group or a module path given
on the command line (``--plugin my_pkg.models``) or in ``$ZOOBENCH_PLUGINS`` (comma-separated).

Families (``zoo.family.Family``) are collected the same way: an imported module's ``FAMILY`` value is
registered (:func:`register_family`), and :func:`get_family` finds it by name for the trainer and for
trained folders.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import os
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from importlib.metadata import entry_points
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
    "register_family",
    "get_family",
    "FAMILIES",
]

FAMILIES: tuple[str, ...] = ("zoo.families.baselines", "zoo.families.gte", "zoo.families.mgte")
ENTRY_POINT_GROUP = "zoobench.models"
# Models found on disk at each lookup ("module:function" -> [(card, factory)]): trained folders, see zoo/trained.py.
DISCOVERY: tuple[str, ...] = ("zoo.trained:discover",)


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


def load_plugins(modules: Iterable[str] = ()) -> None:
    """Import the built-in families, entry-point plugins and the given module paths (once each); register the
    ``FAMILY`` each declares."""
    env = [m.strip() for m in os.environ.get("ZOOBENCH_PLUGINS", "").split(",") if m.strip()]
    for module in (*FAMILIES, *env, *modules):
        _import_once(module, module)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _import_once(ep.value.split(":")[0], f"entry point {ep.name!r}")


def _import_once(module: str, what: str) -> None:
    if module in _loaded_modules:
        return
    try:
        imported = importlib.import_module(module)
        family = getattr(imported, "FAMILY", None)
        if isinstance(family, Family):
            register_family(family)
    except Exception as e:  # a plugin's own failure (ImportError, a duplicate name, ...) is the user's input
        raise ZooError(f"cannot import model plugin {what}: {type(e).__name__}: {e}") from e
    _loaded_modules.add(module)


def _discovered() -> dict[str, tuple[_Entry, ModelCard]]:
    found = {}
    for ref in DISCOVERY:
        module, _, function = ref.partition(":")
        for card, factory in getattr(importlib.import_module(module), function)(taken=tuple(_CARDS)):
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
    """The card of a registered model, without loading it."""
    return _lookup(name)[1]


# Methods of the protocols in zoo.protocols: a lazy model forwards exactly those its class has.
_PROTOCOL_METHODS = ("encode", "encode_sparse", "encode_hybrid", "retrieve", "score", "tag")


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


def _model_class(entry: _Entry) -> type | None:
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
    _check_options(card.name, entry, kwargs)
    cls = _model_class(entry) if lazy else None
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


def _check_options(name: str, entry: _Entry, kwargs: Mapping[str, Any]) -> None:
    """Refuse a factory option that the model does not have, before anything loads (a lazy model would otherwise
    fail at its first call with a TypeError). Known: the factory's keywords, else those of the ``__init__`` of the
    class it returns along the class's bases, plus the class's ``factory_options``."""
    known, more = _keywords(entry.factory)
    cls = _model_class(entry) if more else None
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
            f"model {name}: unknown option {unknown[0]!r} (--model-kwarg); its options: {', '.join(sorted(known))}"
        )


def list_models(pattern: str = "*") -> list[str]:
    """Sorted full names (``arch.tag``) matching an fnmatch ``pattern``."""
    load_plugins()
    return sorted(n for n in (*_CARDS, *_discovered()) if fnmatch.fnmatchcase(n, pattern))
