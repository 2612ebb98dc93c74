"""Issue 10, classes 1, 4 and 9: no silent wrong score, no traceback on user input, messages that name the fault.

Every case here failed (a wrong score with exit 0, a traceback, or a misleading message) on main 0422f16.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.datasets import local
from harness.tasks import get_task
from tests import taskdata
from tests.harness.test_trec import DOCS, QRELS, QUERIES, RUN, trec_folder
from zoo.errors import ZooError

# Class 1: silent wrong scores: every loader validates =============================================


def _beir(folder: Path) -> Path:
    return taskdata.beir(folder, {"d1": "one", "d2": "two"}, {"q1": "first", "q2": "second"}, {"q1": {"d1": 1}})


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


@pytest.mark.parametrize(
    ("file", "line", "message"),
    [
        ("corpus.jsonl", '{"_id": "d1", "text": "x"}\n', r"corpus\.jsonl:3: duplicate _id 'd1' \(first on line 1\)"),
        ("queries.jsonl", '{"_id": "q1", "text": "x"}\n', r"queries\.jsonl:3: duplicate _id 'q1' \(first on line 1"),
        ("queries.jsonl", '{"_id": "q2", "text": "again"}\n', r"queries\.jsonl:3: duplicate _id 'q2'"),  # unjudged too
        ("qrels/test.tsv", "q1\td1\t2\n", r"test\.tsv:3: query .q1., document .d1. judged 2 here and 1 on line 2"),
    ],
    ids=["corpus", "query", "unjudged-query", "qrels-conflict"],
)
def test_beir_duplicates_are_errors(tmp_path: Path, file: str, line: str, message: str) -> None:
    folder = _beir(tmp_path / "b")
    _append(folder / file, line)
    with pytest.raises(ZooError, match=message):
        local.read_beir(folder, "test")


def test_beir_exact_duplicate_qrel_is_accepted(tmp_path: Path) -> None:
    folder = _beir(tmp_path / "b")
    _append(folder / "qrels" / "test.tsv", "q1\td1\t1\n")
    assert local.read_beir(folder, "test").qrels == {"q1": {"d1": 1}}


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_gold_score(tmp_path: Path, value: str) -> None:
    rows = [taskdata.pair_records([("a", "b", 1.0), ("c", "d", 2.0)], "score")]
    lines = [json.dumps(r) for r in rows[0]] + ['{"sentence1": "e", "sentence2": "f", "score": ' + value + "}"]
    (tmp_path / "test.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ZooError, match=r"test\.jsonl:3: score must be a finite number"):
        local.load_split(tmp_path, "sts", "test")


@pytest.mark.parametrize(
    ("task_type", "rows", "message"),
    [
        ("sts", [("a", "b", 2.0), ("c", "d", 2.0)], r"test\.jsonl: every score is 2\.0"),
        ("pair_classification", [("a", "b", 1), ("c", "d", 1)], r"test\.jsonl: every label is 1"),
    ],
)
def test_degenerate_gold(tmp_path: Path, task_type: str, rows: list, message: str) -> None:
    gold = "score" if task_type == "sts" else "label"
    taskdata.write_jsonl(tmp_path / "test.jsonl", taskdata.pair_records(rows, gold))
    with pytest.raises(ZooError, match=message):
        local.load_split(tmp_path, task_type, "test")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: _append(f / "queries.tsv", "q1\tdogs\n"), r"queries\.tsv: record 3: duplicate query id 'q1'"),
        (lambda f: _append(f / "docs.tsv", "c1\tother\n"), r"docs\.tsv: record 7: duplicate document id 'c1'"),
        (
            lambda f: _append(f / "qrels.txt", "q1 0 c1 0\n"),
            r"qrels\.txt: record 6: query 'q1', document 'c1' judged 0",
        ),
        (lambda f: _append(f / "qrels.txt", "q1 0 c1 3\n"), None),  # an exact duplicate is accepted
    ],
    ids=["query", "doc", "qrels-conflict", "qrels-exact"],
)
def test_trec_folder_duplicates(tmp_path: Path, mutate, message: str | None) -> None:
    folder = trec_folder(tmp_path / "t", QUERIES, QRELS, DOCS, RUN)
    mutate(folder)
    data = local.load_split(folder, "trec", "test")
    if message is None:
        assert data.qrels() == QRELS
        return
    with pytest.raises(ZooError, match=message):
        data.queries(), data.docs(), data.qrels()


# Class 9: messages that name the real fault ======================================================


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("q1 Q0 c2 5 0.5\n", r"bm25\.run:7: expected 6 fields \(qid Q0 docid rank score tag\), got 5"),
        ("q1 Q0 c9\n", r"bm25\.run:7: expected 6 fields .* got 3"),
        ("q1 Q0 c9 5 nan x\n", r"bm25\.run:7: score must be a finite number, got nan"),
    ],
    ids=["five", "three", "nan"],
)
def test_malformed_run_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    folder = trec_folder(tmp_path / "t", QUERIES, QRELS, DOCS, RUN)
    _append(folder / "bm25.run", line)
    with pytest.raises(ZooError, match=message) as err:
        local.load_split(folder, "trec", "test").run()
    assert "listed twice" not in str(err.value)


# task.toml: every value typed, unknown keys refused (class 4), the real fault named (class 9) ==========


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('splits = "test"', r"task\.toml: splits must be a list of strings, got 'test'"),
        ('languages = "en"', r"task\.toml: languages must be a list of strings, got 'en'"),
        ('options = "x"', r"task\.toml: options must be a table, got 'x'"),
        ("type = 3", r"task\.toml: type must be a string, got 3"),
        ("main_score = [1]", r"task\.toml: main_score must be a string"),
        ("splits = []", r"task\.toml: splits must be a non-empty list"),
        ("splits = [1]", r"task\.toml: splits must be a list of strings, got \[1\]"),
        ('spilts = ["test"]', r"task\.toml: unknown key 'spilts' \(known: type, main_score, splits"),
    ],
)
def test_task_toml_types_and_keys(tmp_path: Path, toml: str, message: str) -> None:
    folder = taskdata.sts_folder(tmp_path / "s")
    (folder / "task.toml").write_text(toml + "\n", encoding="utf-8")
    with pytest.raises(ZooError, match=message) as err:
        get_task("local/s", tmp_path)
    assert "t.jsonl" not in str(err.value)

