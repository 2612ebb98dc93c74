"""Property-based fuzzing of every reader of harness.datasets.local on slices of the real shared data (issue 10).

A random byte-level corruption of one file of a small real task folder must give a ``ZooError`` (one line) or data
that passed validation, never another exception. Where the corruption must not change the data (a blank line added;
a line repeated, as it is or with another text, judgement or score, in a file of unique ids or judgements) the result
is the clean one or a ``ZooError``; data that differs from the clean data always comes with another folder checksum,
so a stored record is never served for it.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.datasets import local
from zoo.errors import ZooError

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies
pytestmark = pytest.mark.data

EXAMPLES = 500  # in the default suite, over all the readers


@dataclass(frozen=True)
class Case:
    """A small real task folder: its files, the file names whose lines are unique ids, and how to read it."""

    name: str
    files: dict[str, bytes]
    unique_lines: tuple[str, ...]  # a repeated line of these files is refused (or, for qrels, harmless)
    read: Callable[[Path], Any]


def _head(path: Path, n: int, step: int = 1) -> bytes:
    """``n`` lines of a file, every ``step``-th (files sorted by label need a step to hold several labels)."""
    return b"".join(path.read_bytes().splitlines(keepends=True)[: n * step : step])


def _read_trec(folder: Path) -> Any:
    data = local.load_split(folder, "trec", "test")
    return data.queries(), data.qrels(), data.run(), data.docs()


def _beir_slice(src: Path, n_judgements: int = 12) -> dict[str, bytes]:
    qrels = src.joinpath("qrels", "test.tsv").read_text(encoding="utf-8").splitlines(keepends=True)[: n_judgements + 1]
    pairs = [line.split("\t") for line in qrels[1:]]
    qids, dids = {p[0] for p in pairs}, {p[1] for p in pairs}

    def keep(file: str, ids: set[str], extra: int) -> bytes:
        out, others = [], 0
        for line in src.joinpath(file).read_bytes().splitlines(keepends=True):
            wanted = str(json.loads(line)["_id"]) in ids
            if wanted or others < extra:
                out.append(line)
                others += not wanted
        return b"".join(out)

    return {
        "qrels/test.tsv": "".join(qrels).encode(),
        "queries.jsonl": keep("queries.jsonl", qids, 3),
        "corpus.jsonl": keep("corpus.jsonl", dids, 5),
    }


def _trec_slice(src: Path, n_queries: int = 2, depth: int = 8) -> dict[str, bytes]:
    queries = src.joinpath("queries.tsv").read_bytes().splitlines(keepends=True)[:n_queries]
    qids = {line.split(b"\t")[0] for line in queries}
    qrels = [
        line for line in src.joinpath("qrels.txt").read_bytes().splitlines(keepends=True) if line.split()[0] in qids
    ]
    run, per_query = [], dict.fromkeys(qids, 0)
    for line in src.joinpath("bm25.top100.run").read_bytes().splitlines(keepends=True):
        qid = line.split()[0]
        if qid in qids and per_query[qid] < depth:
            run.append(line)
            per_query[qid] += 1
    dids = {line.split()[2] for line in qrels + run}
    docs = [
        line for line in src.joinpath("docs.tsv").read_bytes().splitlines(keepends=True) if line.split(b"\t")[0] in dids
    ]
    return {"queries.tsv": b"".join(queries), "qrels.txt": b"".join(qrels[:12]), "bm25.run": b"".join(run),
            "docs.tsv": b"".join(docs)}  # fmt: skip


@pytest.fixture(scope="module")
def cases(shared_data: Path) -> list[Case]:
    pytest.importorskip("ir_datasets")
    toml = b'type = "sts"\nmain_score = "cosine_pearson"\nsplits = ["test"]\nlanguages = ["en"]\n'
    return [
        Case("sts", {"test.jsonl": _head(shared_data / "stsb" / "test.jsonl", 30)}, (),
             lambda f: local.load_split(f, "sts", "test")),
        Case("pairs", {"test.jsonl": _head(shared_data / "mrpc" / "test.jsonl", 30)}, (),
             lambda f: local.load_split(f, "pair_classification", "test")),
        Case("classification", {"train.jsonl": _head(shared_data / "trec-qc" / "train.jsonl", 30, 50)}, (),
             lambda f: local.load_split(f, "classification", "train")),
        Case("clustering", {"test.jsonl": _head(shared_data / "csl-clustering" / "test.jsonl", 30, 59)}, (),
             lambda f: local.load_split(f, "clustering", "test")),
        Case("reranking", {"test.jsonl": _head(shared_data / "wikiqa-reranking" / "test.jsonl", 8)}, (),
             lambda f: local.load_split(f, "reranking", "test")),
        Case("retrieval", _beir_slice(shared_data / "scifact"), ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"),
             lambda f: local.load_split(f, "retrieval", "test")),
        Case("trec", _trec_slice(shared_data / "trec-dl-2019-passage"), ("queries.tsv", "docs.tsv", "qrels.txt",
             "bm25.run"), _read_trec),
        Case("task.toml", {"task.toml": toml, "test.jsonl": _head(shared_data / "stsb" / "test.jsonl", 5)}, (),
             lambda f: local.detect(f)),
    ]  # fmt: skip


def _write(folder: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        folder.joinpath(name).parent.mkdir(parents=True, exist_ok=True)
        folder.joinpath(name).write_bytes(content)


def _valid(data: Any) -> None:
    """What the readers promise of what they return: finite, varying gold; 0/1 pair labels; consistent qrels."""
    if isinstance(data, local.PairData):
        assert all(math.isfinite(g) for g in data.gold) and len(set(data.gold)) > 1
    elif isinstance(data, local.LabelledData):
        assert len(set(data.labels)) > 1 and all(t.strip() for t in data.texts)
    elif isinstance(data, local.RetrievalData):
        assert set(data.qrels) == set(data.queries)
        assert all(d in data.corpus for rels in data.qrels.values() for d in rels)


@st.composite
def corruptions(draw: Any, cases: list[Case]) -> tuple[Case, str, str, bytes]:
    case = draw(st.sampled_from(cases))
    file = draw(st.sampled_from(sorted(case.files)))
    content = case.files[file]
    op = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "repeat-line", "repeat-edited", "blank-line"]))
    at = draw(st.integers(0, len(content) - 1))
    if op == "flip":
        content = content[:at] + bytes([draw(st.integers(0, 255))]) + content[at + 1 :]
    elif op == "delete":
        content = content[:at] + content[at + draw(st.integers(1, 16)) :]
    elif op == "insert":
        content = content[:at] + draw(st.binary(min_size=1, max_size=8)) + content[at:]
    elif op == "truncate":
        content = content[:at]
    else:
        lines = content.splitlines(keepends=True)
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i] if op != "blank-line" else b"\n"
        body = line.rstrip(b"\r\n")
        # an edit of the last field (text, judgement, tag) or the last 40% of a JSON line (text), not of an id
        start = len(body) * 3 // 5 if body.startswith(b"{") else max(body.rfind(b" "), body.rfind(b"\t")) + 1
        if op == "repeat-edited" and 0 < start < len(body):
            j = draw(st.integers(start, len(body) - 1))
            line = line[:j] + draw(st.sampled_from([b"0", b"1", b"7", b"a", b"Z"])) + line[j + 1 :]
        lines.insert(i + 1, line)  # after the original: a reader where the later line wins takes the copy
        content = b"".join(lines)
    return case, file, op, content


def test_corrupted_real_files_give_clean_data_or_a_zoo_error(cases: list[Case]) -> None:
    clean = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            folder = Path(tmp) / case.name
            _write(folder, case.files)
            clean[case.name] = (case.read(folder), local.folder_checksum(folder))

    @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck))  # fmt: skip
    @hypothesis.given(corruptions(cases))
    def check(example: tuple[Case, str, str, bytes]) -> None:
        case, file, op, content = example
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / case.name
            _write(folder, {**case.files, file: content})
            try:
                data = case.read(folder)
            except ZooError as e:
                assert "\n" not in str(e)
                return
            expected, checksum = clean[case.name]
            _valid(data)
            if op == "blank-line" or (op.startswith("repeat") and file in case.unique_lines):
                assert data == expected, f"{case.name}/{file}: a {op} changed the data"
            if data != expected:
                assert local.folder_checksum(folder) != checksum

    check()
