"""Named suites: tuples of task ids, or rules over what the data dir holds.

- ``local-quick``: small, mixed-type, CI-sized (a few minutes for a MiniLM-class model on 2 cores).
- ``local-en`` / ``local-zh``: every supported local task in that language.
- ``local-all``: every supported local task.
- ``zh-seqlabel``: Chinese word segmentation (pku-cws, msr-cws) and NER (weibo-ner, msra-ner, cluener), scored by
  span (``harness/tasks/seqlabel.py``); run by a ``Tagger``.
- ``trec-dl``: TREC DL 2019 and 2020 passage re-ranking (ir_datasets); ``beir-small``: five small BEIR sets.
- ``longembed-synthetic``: LongEmbed's passkey and needle retrieval built from the data dir, at 256 .. 8192
  tokens (``harness/datasets/synthetic.py``); ``mteb:LongEmbed`` is LongEmbed's published data.

Suites of another tool are named ``<prefix>:<its name>``: ``mteb:MTEB(eng, v2)`` is the tasks of that
MTEB benchmark as ``mteb/<TaskName>`` ids (``PREFIXES`` maps a prefix to its resolver).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable

from harness.datasets.synthetic import KINDS, LENGTHS
from harness.tasks import list_tasks
from zoo.errors import ZooError

__all__ = ["SUITES", "PREFIXES", "get_suite", "list_suites"]

LOCAL_QUICK = (
    "local/stsb",
    "local/sts13",
    "local/mrpc",
    "local/trec-qc",
    "local/wikiqa-reranking",
    "local/cranfield",
    "local/afqmc",
)


ZH_SEQLABEL = ("local/pku-cws", "local/msr-cws", "local/weibo-ner", "local/msra-ner", "local/cluener")


def _by_language(lang: str | None) -> Callable[[str | os.PathLike[str] | None], tuple[str, ...]]:
    def rule(data_dir: str | os.PathLike[str] | None) -> tuple[str, ...]:
        specs = list_tasks(data_dir, supported_only=True)
        return tuple(s.id for s in specs if s.source == "local" and (lang is None or lang in s.languages))

    return rule


SUITES: dict[str, tuple[str, ...] | Callable[[str | os.PathLike[str] | None], tuple[str, ...]]] = {
    "local-quick": LOCAL_QUICK,
    "local-en": _by_language("en"),
    "local-zh": _by_language("zh"),
    "local-all": _by_language(None),
    # Public suites; they need the network the first time (ir_datasets / beir downloads), except
    # beir/scifact, which the shared data dir holds.
    "trec-dl": ("trec-dl/2019", "trec-dl/2020"),
    "beir-small": ("beir/scifact", "beir/nfcorpus", "beir/arguana", "beir/scidocs", "beir/fiqa"),
    "zh-seqlabel": ZH_SEQLABEL,
    "longembed-synthetic": tuple(f"synthetic/{kind}-{n}" for kind in KINDS for n in LENGTHS),
}


def _mteb_benchmark(name: str) -> tuple[str, ...]:
    from harness.datasets.mteb import benchmark

    return benchmark(name)


def _mteb_benchmarks() -> list[str]:
    from harness.datasets.mteb import benchmarks

    return benchmarks()


# prefix -> (resolver of the name after "<prefix>:", lister of the names `zoobench ls suites` shows)
PREFIXES: dict[str, tuple[Callable[[str], tuple[str, ...]], Callable[[], list[str]]]] = {
    "mteb": (_mteb_benchmark, _mteb_benchmarks),
}


def list_suites() -> list[str]:
    """Names of the suites."""
    return sorted(SUITES)


def get_suite(name: str, data_dir: str | os.PathLike[str] | None = None) -> tuple[str, ...]:
    """The task ids of a suite.

    Raises:
        ZooError: for an unknown suite name.
    """
    prefix, sep, rest = name.partition(":")
    if sep and prefix in PREFIXES:
        return PREFIXES[prefix][0](rest)
    try:
        suite = SUITES[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(SUITES), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; suites: {', '.join(sorted(SUITES))}"
        raise ZooError(f"unknown suite {name!r}{hint}") from None
    return suite if isinstance(suite, tuple) else suite(data_dir)
