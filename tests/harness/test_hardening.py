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


# Class 4: user input gives one line and exit code 2, never a traceback or exit 0 ==================


def _run(data: Path, results: Path, tasks: str, *extra: str, model: str = "test-random") -> list[str]:
    return [
        "run",
        "-m",
        model,
        "-t",
        tasks,
        "--data-dir",
        str(data),
        "--results",
        str(results),
        "--no-progress",
        *extra,
    ]


def _one_line_error(capsys: pytest.CaptureFixture, rc: int, *parts: str) -> None:
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("zoobench: error: "), err
    for part in parts:
        assert part in err, (part, err)


@pytest.mark.parametrize(
    ("extra", "parts"),
    [
        (["--model-kwarg", "colour=red"], ["test-random", "unknown option 'colour'", "dim, seed"]),
        (["--batch-size", "0"], ["batch size must be at least 1, got 0", "--batch-size"]),
        (["--batch-size", "-3"], ["batch size must be at least 1, got -3"]),
    ],
    ids=["kwarg", "batch0", "batch-neg"],
)
def test_bad_run_options(tiny_data: Path, tmp_path: Path, capsys, extra: list[str], parts: list[str]) -> None:
    from harness.cli import main

    rc = main(_run(tiny_data, tmp_path / "results", "local/sts", *extra))
    _one_line_error(capsys, rc, *parts)
    assert not (tmp_path / "results").exists()


def test_dtype_of_the_wrong_type(tiny_data: Path, tmp_path: Path, capsys) -> None:
    from harness.cli import main

    rc = main(_run(tiny_data, tmp_path / "results", "local/sts", "--model-kwarg", "dtype=[1,2]", model="test-gte"))
    _one_line_error(capsys, rc, "unknown dtype [1, 2]", "float32")


@pytest.mark.parametrize("flag", ["--results", "--cache-dir"])
def test_results_or_cache_dir_is_a_file(tiny_data: Path, tmp_path: Path, capsys, flag: str) -> None:
    from harness.cli import main

    file = tmp_path / "file"
    file.write_text("x", encoding="utf-8")
    args = _run(tiny_data, tmp_path / "results", "local/sts")
    args = [*args[: args.index("--results")], *args[args.index("--results") + 2 :], flag, str(file)]
    rc = main(args)
    _one_line_error(capsys, rc, f"{file} is not a folder", flag)


@pytest.mark.parametrize("tasks", [",", " , ,"])
def test_no_task_ids(tiny_data: Path, tmp_path: Path, capsys, tasks: str) -> None:
    from harness.cli import main

    rc = main(_run(tiny_data, tmp_path / "results", tasks))
    _one_line_error(capsys, rc, "--tasks", "no task id")


def test_results_folder_missing(tmp_path: Path, capsys) -> None:
    from harness.cli import main

    rc = main(["results", "--results", str(tmp_path / "nope")])
    _one_line_error(capsys, rc, f"no results folder {str(tmp_path / 'nope')!r}")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("stages.*.lr=-1", "stage 'weak' needs a finite lr > 0, got -1.0"),
        ("stages.*.lr=nan", "stage 'weak' needs a finite lr > 0, got nan"),
        ("stages.*.lr=inf", "needs a finite lr > 0, got inf"),
        ("stages.*.weight_decay=nan", "needs a finite weight_decay >= 0, got nan"),
        ("stages.*.warmup_ratio=2", "needs a warmup_ratio between 0 and 1, got 2.0"),
        ("stages.*.grad_clip=-1", "needs a finite grad_clip >= 0, got -1.0"),
    ],
)
def test_recipe_numbers(setting: str, message: str) -> None:
    from zoo.train.config import load_recipe

    with pytest.raises(ZooError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_recipe("gte/minilm-two-stage", [setting])


def test_single_class_classification_train_split(tmp_path: Path, capsys) -> None:
    from harness.cli import main

    taskdata.labelled(
        tmp_path / "clf", {"train": [("good", "pos"), ("fine", "pos")], "test": [("x", "pos"), ("y", "neg")]}
    )
    rc = main(_run(tmp_path, tmp_path / "results", "local/clf"))
    _one_line_error(capsys, rc, "train.jsonl: every label is 'pos'")


@pytest.mark.parametrize("label", [2, -1, 0.5])
def test_pair_label_not_0_or_1(tmp_path: Path, label: float) -> None:
    taskdata.pairs(tmp_path, [("a", "b", 1), ("c", "d", label), ("e", "f", 0)])
    with pytest.raises(ZooError, match=rf"test\.jsonl:2: label must be 0 or 1, got {label}"):
        local.load_split(tmp_path, "pair_classification", "test")


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ({"test": {"main_score": "0.5", "cosine_spearman": "0.5"}}, "scores.test.main_score must be a finite number"),
        ({}, "scores is empty"),
        ({"test": {}}, "scores.test has no main_score"),
        ({"test": {"main_score": float("nan")}}, "scores.test.main_score must be a finite number, got nan"),
        ([0.5], "scores must be a table of splits"),
    ],
    ids=["string", "empty", "no-main", "nan", "list"],
)
def test_bad_record_scores(tiny_data: Path, tmp_path: Path, capsys, scores, message: str) -> None:
    from harness.cli import main
    from harness.results import TaskResult, load_results

    results = tmp_path / "results"
    assert main(_run(tiny_data, results, "local/sts")) == 0
    (path,) = results.rglob("sts.json")
    record = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**record, "scores": scores}), encoding="utf-8")
    with pytest.raises(ZooError, match=message):
        TaskResult.load(path)
    assert load_results(results)[0] == []
    capsys.readouterr()
    assert main(["results", "--results", str(results)]) == 0  # a bad record is skipped with a warning, as before
    assert message in capsys.readouterr().err


def test_non_finite_metric_names_the_task(tiny_data: Path, tmp_path: Path) -> None:
    from harness.runner import evaluate

    constant = taskdata.TableEncoder({t: [1.0, 0.0] for row in taskdata.STS_ROWS for t in row[:2]})
    with pytest.raises(ZooError, match=r"local/sts: scores\.test\.cosine_spearman must be a finite number, got nan"):
        evaluate(constant, ["local/sts"], results_dir=tmp_path / "results", data_dir=tiny_data, progress=False)
    assert list((tmp_path / "results").rglob("*.json")) == []


@pytest.mark.parametrize("cut", [0.5, 0.0])
def test_compare_a_truncated_run_file(tmp_path: Path, capsys, cut: float) -> None:
    from harness.cli import main
    from harness.results import run_path
    from tests.harness.test_significance import _store_ranked, _toy_ranked

    _store_ranked(tmp_path, "a", "local/ret", *_toy_ranked(1))
    _store_ranked(tmp_path, "b", "local/ret", *_toy_ranked(2))
    path = run_path(tmp_path, "b", "r1", "local/ret", "test")
    path.write_bytes(path.read_bytes()[: int(cut * path.stat().st_size)] or b"\x1f\x8b\x08garbage")
    rc = main(["compare", "a", "b", "-t", "local/ret", "--results", str(tmp_path)])
    _one_line_error(capsys, rc, str(path), "--overwrite")
