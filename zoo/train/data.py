"""Training data: sources read from the shared data formats, mined hard negatives, multi-task batches.

A recipe lists sources; each is read by one of ``READERS`` into a :class:`TrainSource` of one of four
formats, the columns a loss consumes (``zoo.train.losses``):

==========  ==============================================  ==========================================
format      columns                                         readers
==========  ==============================================  ==========================================
pairs       query, positive                                 jsonl-pairs, beir-qrels, beir-titles,
                                                            jsonl-labelled
triplets    query, positive, negatives (K texts each)       jsonl-triplets; any pairs source with
                                                            ``negatives`` mined
scored      sentence1, sentence2, score                     jsonl-scored
texts       text                                            jsonl-texts, conll-texts (a CoNLL file's
                                                            sentences, characters joined; tags unread)
==========  ==============================================  ==========================================

``path`` is relative to the data dir (``zoo.datafiles.resolve_data_dir``): a ``.jsonl`` file,
or a BEIR folder for the ``beir-*`` readers. Every file read is recorded with its sha256. Bad input
stops with a one-line ``ZooError`` naming the file and line.

Hard negatives are mined once, before training, by BM25 (``miner = "bm25"``) or by a registered
encoder (``miner = "model:minilm-l6.st"``) from a pool: the BEIR corpus for ``beir-qrels``, else the
source's distinct positives. A query's own positives are never its negatives.

:class:`MultiTaskSampler` draws each batch from one source, the source with probability proportional
to ``weight * size ** alpha`` (GTE), and the examples of a batch without repeating a text; its state
is a small JSON-ready dict, so a resumed run continues with the very next batch.
"""

from __future__ import annotations

import json
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.datafiles import conll_texts, read_beir
from zoo.errors import ZooError
from zoo.weights import sha256_file

__all__ = [
    "NegativesConfig",
    "SourceConfig",
    "TrainSource",
    "READERS",
    "MINERS",
    "load_source",
    "mine_negatives",
    "MultiTaskSampler",
    "sha256_file",
]


# CONFIG ==========================================================================================


@dataclass
class NegativesConfig:
    """How to mine hard negatives for a pairs source."""

    miner: str = "bm25"  # "bm25" or "model:<registered encoder>"
    k: int = 1  # negatives per example
    depth: int = 30  # candidates considered: the top ``depth`` non-positives after ``skip``
    skip: int = 0  # top-ranked non-positives left out (often unlabelled positives)


@dataclass
class SourceConfig:
    """One training source of a stage (a ``[[stages.sources]]`` table of a recipe)."""

    name: str
    reader: str
    path: str
    fields: dict[str, str] = field(default_factory=dict)  # column -> JSON field, over the reader's defaults
    split: str = "train"  # beir-qrels: the qrels file to train on
    exclude_split: str | None = None  # beir-qrels: drop queries whose text is also a query of this split
    weight: float = 1.0  # multiplies size ** alpha in the source sampling probability
    max_examples: int | None = None  # a seeded subset, for quick runs
    loss: str | None = None  # this source's loss (default: the stage's)
    loss_args: dict[str, Any] = field(default_factory=dict)
    negatives: NegativesConfig | None = None
    symmetric: bool = False  # every text gets the model's query prompt (E5's convention for NLI / STS pairs)


@dataclass
class TrainSource:
    """Examples of one source, column-wise, with the files they came from."""

    name: str
    format: str
    columns: dict[str, list[Any]]
    files: dict[str, str]  # path relative to the data dir -> sha256
    notes: list[str] = field(default_factory=list)
    pool: list[str] | None = None  # documents to mine negatives from (default: the distinct positives)
    weight: float = 1.0

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def rows(self, idx: Sequence[int]) -> dict[str, list[Any]]:
        """The columns restricted to ``idx``, in that order."""
        return {k: [v[i] for i in idx] for k, v in self.columns.items()}

    def text_length(self, i: int) -> int:
        """Characters in example ``i``'s texts (all text columns, negatives included): what bucketing sorts by."""
        total = 0
        for value in (v[i] for v in self.columns.values()):
            for text in value if isinstance(value, list) else [value]:
                total += len(text) if isinstance(text, str) else 0
        return total

    def unique_keys(self, i: int) -> set[str]:
        """Texts of example ``i`` that no other example of the same batch may contain."""
        return {self.columns[c][i] for c in UNIQUE_COLUMNS[self.format]}

    def record(self) -> dict[str, Any]:
        """What the training record keeps about this source."""
        return {
            "name": self.name,
            "format": self.format,
            "examples": len(self),
            "files": self.files,
            "notes": self.notes,
        }


UNIQUE_COLUMNS: dict[str, tuple[str, ...]] = {
    "pairs": ("query", "positive"),
    "triplets": ("query", "positive"),
    "scored": (),
    "texts": ("text",),
}


# READERS =========================================================================================


def _records(path: Path, texts: Sequence[str], others: Sequence[str] = ()) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) of a JSON-lines file: ``texts`` fields are non-empty strings, ``others`` present."""
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise ZooError(f"{path}: file not found") from None
    out = []
    for lineno, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ZooError(f"{path}:{lineno}: not valid UTF-8 (byte 0x{line[e.start]:02x})") from None
        except json.JSONDecodeError as e:
            raise ZooError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(rec, dict):
            raise ZooError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
        for f in (*texts, *others):
            if f not in rec:
                raise ZooError(f"{path}:{lineno}: missing field {f!r} (expected {', '.join((*texts, *others))})")
        for f in texts:
            if not isinstance(rec[f], str) or not rec[f].strip():
                raise ZooError(f"{path}:{lineno}: field {f!r} must be a non-empty string, got {rec[f]!r}")
        out.append((lineno, rec))
    if not out:
        raise ZooError(f"{path}: no records")
    return out


def _fields(cfg: SourceConfig, defaults: dict[str, str]) -> dict[str, str]:
    unknown = sorted(set(cfg.fields) - set(defaults))
    if unknown:
        raise ZooError(f"source {cfg.name!r}: unknown column {unknown[0]!r} in fields (columns: {', '.join(defaults)})")
    return {**defaults, **cfg.fields}


def _file(data_dir: Path, cfg: SourceConfig) -> tuple[Path, dict[str, str]]:
    path = data_dir / cfg.path
    if not path.is_file():
        raise ZooError(f"source {cfg.name!r}: {path}: file not found")
    return path, {cfg.path: sha256_file(path)}


def _read_jsonl_pairs(data_dir: Path, cfg: SourceConfig) -> TrainSource:
    path, files = _file(data_dir, cfg)
    f = _fields(cfg, {"query": "sentence1", "positive": "sentence2"})
    recs = _records(path, list(f.values()))
    cols = {c: [r[f[c]] for _, r in recs] for c in ("query", "positive")}
    return TrainSource(cfg.name, "pairs", cols, files)


def _read_jsonl_triplets(data_dir: Path, cfg: SourceConfig) -> TrainSource:
    path, files = _file(data_dir, cfg)
    f = _fields(cfg, {"query": "anchor", "positive": "positive", "negative": "negative"})
    recs = _records(path, list(f.values()))
    cols: dict[str, list[Any]] = {c: [r[f[c]] for _, r in recs] for c in ("query", "positive")}
    cols["negatives"] = [[r[f["negative"]]] for _, r in recs]
    return TrainSource(cfg.name, "triplets", cols, files)


def _read_jsonl_scored(data_dir: Path, cfg: SourceConfig) -> TrainSource:
    path, files = _file(data_dir, cfg)
    f = _fields(cfg, {"sentence1": "sentence1", "sentence2": "sentence2", "score": "score"})
    recs = _records(path, [f["sentence1"], f["sentence2"]], [f["score"]])
    for lineno, r in recs:
        v = r[f["score"]]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ZooError(f"{path}:{lineno}: {f['score']} must be a number, got {v!r}")
    cols: dict[str, list[Any]] = {c: [r[f[c]] for _, r in recs] for c in ("sentence1", "sentence2")}
    cols["score"] = [float(r[f["score"]]) for _, r in recs]
    return TrainSource(cfg.name, "scored", cols, files)


def _read_jsonl_texts(data_dir: Path, cfg: SourceConfig) -> TrainSource:
    path, files = _file(data_dir, cfg)
    f = _fields(cfg, {"text": "text"})
    return TrainSource(cfg.name, "texts", {"text": [r[f["text"]] for _, r in _records(path, [f["text"]])]}, files)


def _read_conll_texts(data_dir: Path, cfg: SourceConfig) -> TrainSource:
    path, files = _file(data_dir, cfg)
    _fields(cfg, {})  # no columns to rename
    return TrainSource(cfg.name, "texts", {"text": conll_texts(path)}, files)


def _read_jsonl_labelled(data_dir: Path, cfg: SourceConfig, seed: int) -> TrainSource:
    """Pairs of two different texts with the same label: each text with a seeded partner from its label."""
    path, files = _file(data_dir, cfg)
    f = _fields(cfg, {"text": "text", "label": "label"})
    by_label: dict[str, list[str]] = {}
    for lineno, r in _records(path, [f["text"]], [f["label"]]):
        if isinstance(r[f["label"]], bool) or not isinstance(r[f["label"]], str | int):
            raise ZooError(f"{path}:{lineno}: {f['label']} must be a string or an integer, got {r[f['label']]!r}")
        by_label.setdefault(str(r[f["label"]]), []).append(r[f["text"]])
    rng = np.random.default_rng([seed, zlib.crc32(cfg.name.encode())])
    query, positive = [], []
    for label in sorted(by_label):
        texts = sorted(set(by_label[label]))
        if len(texts) < 2:
            continue
        order = rng.permutation(len(texts))
        for a, b in zip(order, np.roll(order, -1), strict=True):  # a cycle: every text is a query once
            query.append(texts[a])
            positive.append(texts[b])
    if not query:
        raise ZooError(f"{path}: no label has two different texts")
    return TrainSource(cfg.name, "pairs", {"query": query, "positive": positive}, files)


def _beir_folder(data_dir: Path, cfg: SourceConfig) -> Path:
    folder = data_dir / cfg.path
    if not (folder / "corpus.jsonl").is_file():
        raise ZooError(f"source {cfg.name!r}: {folder / 'corpus.jsonl'}: file not found (expected a BEIR folder)")
    return folder


def _read_beir_qrels(data_dir: Path, cfg: SourceConfig) -> TrainSource:
    """(query, relevant document) pairs of one qrels split; documents are ``title + " " + text``."""
    folder = _beir_folder(data_dir, cfg)
    data = read_beir(folder, cfg.split)
    used = ["corpus.jsonl", "queries.jsonl", f"qrels/{cfg.split}.tsv"]
    notes = []
    banned: set[str] = set()
    if cfg.exclude_split:
        banned = set(read_beir(folder, cfg.exclude_split).queries.values())
        used.append(f"qrels/{cfg.exclude_split}.tsv")
        dropped = sum(1 for q in data.queries.values() if q in banned)
        notes.append(f"dropped {dropped} {cfg.split} queries whose text is also a {cfg.exclude_split} query")
    query, positive = [], []
    for qid in sorted(data.qrels, key=_natural):
        if data.queries[qid] in banned:
            continue
        for did, rel in sorted(data.qrels[qid].items(), key=lambda kv: _natural(kv[0])):
            if rel > 0:
                query.append(data.queries[qid])
                positive.append(data.corpus[did])
    files = {f"{cfg.path}/{name}": sha256_file(folder / name) for name in used}
    pool = [data.corpus[d] for d in sorted(data.corpus, key=_natural)]
    return TrainSource(cfg.name, "pairs", {"query": query, "positive": positive}, files, notes, pool=pool)


def _read_beir_titles(data_dir: Path, cfg: SourceConfig) -> TrainSource:
    """(title, body) pairs of the corpus documents that have both: no queries or judgements are read."""
    folder = _beir_folder(data_dir, cfg)
    path = folder / "corpus.jsonl"
    query, positive = [], []
    for lineno, r in _records(path, [], ["_id", "text"]):
        if not isinstance(r["text"], str):
            raise ZooError(f"{path}:{lineno}: field 'text' must be a string, got {r['text']!r}")
        title = r.get("title")
        if isinstance(title, str) and title.strip() and r["text"].strip():
            query.append(title.strip())
            positive.append(r["text"].strip())
    if not query:
        raise ZooError(f"{path}: no document has both a title and a text")
    return TrainSource(
        cfg.name, "pairs", {"query": query, "positive": positive}, {f"{cfg.path}/corpus.jsonl": sha256_file(path)}
    )


def _natural(key: str) -> tuple[int, Any]:
    return (0, int(key)) if key.isdigit() else (1, key)


READERS: dict[str, Callable[..., TrainSource]] = {
    "jsonl-pairs": lambda data_dir, cfg, seed: _read_jsonl_pairs(data_dir, cfg),
    "jsonl-triplets": lambda data_dir, cfg, seed: _read_jsonl_triplets(data_dir, cfg),
    "jsonl-scored": lambda data_dir, cfg, seed: _read_jsonl_scored(data_dir, cfg),
    "jsonl-texts": lambda data_dir, cfg, seed: _read_jsonl_texts(data_dir, cfg),
    "conll-texts": lambda data_dir, cfg, seed: _read_conll_texts(data_dir, cfg),
    "jsonl-labelled": _read_jsonl_labelled,
    "beir-qrels": lambda data_dir, cfg, seed: _read_beir_qrels(data_dir, cfg),
    "beir-titles": lambda data_dir, cfg, seed: _read_beir_titles(data_dir, cfg),
}


def load_source(data_dir: Path, cfg: SourceConfig, *, seed: int) -> TrainSource:
    """Read a source, take its seeded ``max_examples`` subset, and mine its hard negatives.

    Args:
        data_dir: the data dir the source's ``path`` is relative to.
        cfg: the source's recipe table.
        seed: the run's seed (subsets, pairings and the choice among mined candidates depend on it).

    Returns:
        The source, in format ``triplets`` when negatives were mined.

    Raises:
        ZooError: unknown reader, missing or malformed files (naming file and line).
    """
    try:
        reader = READERS[cfg.reader]
    except KeyError:
        raise ZooError(f"source {cfg.name!r}: unknown reader {cfg.reader!r}; readers: {', '.join(READERS)}") from None
    src = reader(data_dir, cfg, seed)
    src.weight = cfg.weight
    if cfg.max_examples is not None and cfg.max_examples < len(src):
        rng = np.random.default_rng([seed, zlib.crc32(cfg.name.encode()), 1])
        keep = sorted(rng.permutation(len(src))[: cfg.max_examples].tolist())
        src.notes.append(f"kept a seeded subset of {cfg.max_examples} of {len(src)} examples")
        src.columns = src.rows(keep)
    if cfg.negatives is not None:
        src = mine_negatives(src, cfg.negatives, seed=seed)
    return src


# HARD NEGATIVES ==================================================================================


def _bm25_rank(queries: list[str], pool: list[str], depth: int, _: str) -> list[list[int]]:
    from zoo.registry import create_model

    run = create_model("bm25").retrieve(
        {str(i): q for i, q in enumerate(queries)}, {str(j): d for j, d in enumerate(pool)}, top_k=depth
    )
    return [
        [int(d) for d, _ in sorted(run[str(i)].items(), key=lambda kv: (-kv[1], int(kv[0])))]
        for i in range(len(queries))
    ]


def _model_rank(queries: list[str], pool: list[str], depth: int, name: str) -> list[list[int]]:
    from zoo.registry import create_model
    from zoo.search import dense_topk

    encoder = create_model(name)
    q = encoder.encode(queries, kind="query")
    d = encoder.encode(pool, kind="document")
    q /= np.linalg.norm(q, axis=1, keepdims=True).clip(1e-12)
    d /= np.linalg.norm(d, axis=1, keepdims=True).clip(1e-12)
    _, idx = dense_topk(q, d, min(depth, len(pool)))
    return [[int(j) for j in row if j >= 0] for row in idx]


# miner kind -> ranker(queries, pool, depth, argument): ranked pool indices per query, best first
MINERS: dict[str, Callable[[list[str], list[str], int, str], list[list[int]]]] = {
    "bm25": _bm25_rank,
    "model": _model_rank,
}


def mine_negatives(src: TrainSource, cfg: NegativesConfig, *, seed: int) -> TrainSource:
    """Add ``cfg.k`` hard negatives to every example of a pairs source.

    For each distinct query the miner ranks the pool; a query's own positives (every positive it has in
    the source) are removed, the first ``skip`` are left out, and ``k`` are drawn (seeded) from the next
    ``depth``. When fewer than ``k`` remain, random pool documents that are not positives fill in.

    Returns:
        A new source in format ``triplets``.
    """
    if src.format != "pairs":
        raise ZooError(f"source {src.name!r}: negatives can only be mined for pairs, not {src.format}")
    kind, _, arg = cfg.miner.partition(":")
    if kind not in MINERS:
        raise ZooError(f"source {src.name!r}: unknown miner {cfg.miner!r} (bm25 or model:<name>)")
    pool = src.pool if src.pool is not None else sorted(set(src.columns["positive"]))
    positives: dict[str, set[str]] = {}
    for q, p in zip(src.columns["query"], src.columns["positive"], strict=True):
        positives.setdefault(q, set()).add(p)
    queries = sorted(positives)
    widest = max(len(p) for p in positives.values())
    ranked = dict(zip(queries, MINERS[kind](queries, pool, cfg.skip + cfg.depth + widest, arg), strict=True))
    rng = np.random.default_rng([seed, zlib.crc32(src.name.encode()), 2])
    negatives, filled = [], 0
    for q in src.columns["query"]:
        cands = [j for j in ranked[q] if pool[j] not in positives[q]][cfg.skip : cfg.skip + cfg.depth]
        picked = [cands[i] for i in sorted(rng.choice(len(cands), min(cfg.k, len(cands)), replace=False))]
        while len(picked) < cfg.k:
            j = int(rng.integers(len(pool)))
            if pool[j] not in positives[q] and j not in picked:
                picked.append(j)
                filled += 1
        negatives.append([pool[j] for j in picked])
    notes = [*src.notes, f"mined {cfg.k} negative(s) per example with {cfg.miner} (depth {cfg.depth}, skip {cfg.skip})"]
    if filled:
        notes.append(f"{filled} negative(s) drawn at random: the miner found too few candidates")
    cols = {**src.columns, "negatives": negatives}
    return TrainSource(src.name, "triplets", cols, src.files, notes, pool=src.pool, weight=src.weight)


# MULTI-TASK SAMPLING =============================================================================


class MultiTaskSampler:
    """Batches of example indices, each batch from one source; seeded and resumable.

    The source of each batch is drawn with probability ``p_i ∝ weight_i * n_i ** alpha``. Within a
    source, examples come in a seeded permutation per epoch; an example that would repeat a text already
    in the batch (two answers to one question) is carried over to that source's next batch.

    With ``length_buckets = K`` (mGTE groups its training data by length) the permutation is cut into windows of
    ``K`` batches, each window is sorted by text length and cut into batches, and the batches are shuffled: a
    batch holds texts of similar lengths (little padding) while every example still comes once per epoch.

    Example:
        >>> sampler = MultiTaskSampler(sources, batch_size=32, alpha=0.5, seed=0)
        >>> source_index, rows = sampler.next_batch()
        >>> state = sampler.state_dict()  # JSON-ready; load_state_dict(state) continues from here
    """

    def __init__(
        self,
        sources: Sequence[TrainSource],
        batch_size: int,
        *,
        alpha: float = 0.5,
        seed: int = 0,
        length_buckets: int = 0,
    ) -> None:
        if not sources:
            raise ZooError("a stage needs at least one source")
        self.sources, self.batch_size, self.seed = list(sources), batch_size, seed
        self.length_buckets = length_buckets
        w = np.array([s.weight * len(s) ** alpha for s in self.sources], dtype=np.float64)
        self.probs = w / w.sum()
        self._rng = np.random.default_rng([seed, 0])
        self._pos = [{"epoch": 0, "cursor": 0, "carry": []} for _ in self.sources]
        self._perm: dict[int, tuple[int, np.ndarray]] = {}

    def _order(self, i: int, epoch: int) -> np.ndarray:
        if self._perm.get(i, (None,))[0] != epoch:
            rng = np.random.default_rng([self.seed, 1, i, epoch])
            order = rng.permutation(len(self.sources[i]))
            if self.length_buckets:
                order = self._bucketed(self.sources[i], order, rng)
            self._perm[i] = (epoch, order)
        return self._perm[i][1]

    def _bucketed(self, src: TrainSource, order: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``order`` with each window of ``length_buckets`` batches sorted by length, then the batches shuffled."""
        window, b = self.length_buckets * self.batch_size, self.batch_size
        batches = []
        for start in range(0, len(order), window):
            part = order[start : start + window]
            part = part[np.argsort([src.text_length(int(j)) for j in part], kind="stable")]
            batches.extend(part[k : k + b] for k in range(0, len(part), b))
        return np.concatenate([batches[k] for k in rng.permutation(len(batches))])

    def _stream(self, i: int):
        pos = self._pos[i]
        while True:
            order = self._order(i, pos["epoch"])
            if pos["cursor"] >= len(order):
                pos["epoch"], pos["cursor"] = pos["epoch"] + 1, 0
                continue
            pos["cursor"] += 1
            yield int(order[pos["cursor"] - 1])

    def next_batch(self) -> tuple[int, list[int]]:
        """The next batch: (source index, example indices)."""
        i = int(self._rng.choice(len(self.sources), p=self.probs))
        src, pos = self.sources[i], self._pos[i]
        pending, carry = deque(pos["carry"]), []
        stream = self._stream(i)
        batch: list[int] = []
        seen: set[str] = set()
        for _ in range(len(src) + len(pending) + self.batch_size):
            if len(batch) == self.batch_size:
                break
            idx = pending.popleft() if pending else next(stream)
            keys = src.unique_keys(idx)
            if keys & seen:
                carry.append(idx)
            else:
                batch.append(idx)
                seen |= keys
        if len(batch) < self.batch_size:
            raise ZooError(
                f"source {src.name!r}: cannot fill a batch of {self.batch_size} examples with distinct texts"
            )
        pos["carry"] = carry + list(pending)
        return i, batch

    def state_dict(self) -> dict[str, Any]:
        """The position in every source and the source-choice RNG (JSON-ready)."""
        return {"rng": self._rng.bit_generator.state, "sources": json.loads(json.dumps(self._pos))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`."""
        if len(state["sources"]) != len(self.sources):
            raise ZooError("sampler state has a different number of sources than this stage")
        self._rng.bit_generator.state = state["rng"]
        self._pos = json.loads(json.dumps(state["sources"]))
