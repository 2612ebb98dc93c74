"""harness.runner.evaluate: records, run files, resume, skipping."""

from __future__ import annotations

import gzip
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

import harness
from harness import runner
from harness.datasets import SOURCES
from harness.results import TaskResult, read_run, result_path, run_path
from harness.runner import evaluate
from tests import taskdata
from zoo.errors import ZooError
from zoo.registry import get_card

TASKS = ["local/sts", "local/retrieval", "local/pairs"]


def _no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr(runner, "create_model", refuse)
    monkeypatch.setattr("zoo.registry.create_model", refuse)


def _count_loads(monkeypatch: pytest.MonkeyPatch, fail_once: str | None = None) -> list[str]:
    """Wrap the local source's loader: record (task id) per load; optionally raise once for one task."""
    real = SOURCES["local"].load
    calls: list[str] = []
    failed: list[str] = []

    def loader(spec, split):  # noqa: ANN001
        calls.append(spec.id)
        if spec.id == fail_once and not failed:
            failed.append(spec.id)
            raise RuntimeError(f"simulated crash in {spec.id}")
        return real(spec, split)

    monkeypatch.setattr(SOURCES["local"], "load", loader)
    return calls


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_evaluate_writes_records_and_run_files(tiny_data: Path, results_dir: Path) -> None:
    logs: list[str] = []
    records = evaluate(
        "test-random", TASKS, results_dir=results_dir, data_dir=tiny_data, progress=False, log=logs.append
    )
    assert [r.task_id for r in records] == TASKS
    assert _files(results_dir) == [
        "test-random/seed-0/local/pairs.json",
        "test-random/seed-0/local/retrieval.json",
        "test-random/seed-0/local/sts.json",
        "test-random/seed-0/runs/local/pairs.test.items.json.gz",
        "test-random/seed-0/runs/local/retrieval.test.qrels.gz",
        "test-random/seed-0/runs/local/retrieval.test.trec.gz",
        "test-random/seed-0/runs/local/sts.test.items.json.gz",
    ]
    sts, ret, pairs = records
    card = get_card("test-random")
    assert (sts.model, sts.revision, sts.task_type, sts.main_score) == (
        "test-random",
        "seed-0",
        "sts",
        "cosine_spearman",
    )
    assert ret.main_score == "ndcg@10" and ret.get_score() == pytest.approx(1.0)  # each query is its document
    assert pairs.main_score == "cosine_ap" and pairs.task_type == "pair_classification"
    assert sts.n_items == {"test": 6} and ret.n_items == {"test": 3}
    assert sts.scores["test"]["main_score"] == sts.scores["test"]["cosine_spearman"]
    assert sts.model_card["name"] == "test-random" and sts.model_card["embed_dim"] == card.embed_dim
    assert sts.data_checksum.startswith("sha256:") and sts.languages == ["en"]
    assert sts.command == "harness.evaluate('test-random', ['local/sts', 'local/retrieval', 'local/pairs'])"
    assert set(sts.runtime) >= {"load_s", "encode_s", "evaluate_s", "total_s"}
    assert sts.hardware["cores"] >= 1 and sts.code_revision
    for rec in records:
        assert TaskResult.load(result_path(results_dir, "test-random", "seed-0", rec.task_id)).scores == rec.scores
    run = read_run(run_path(results_dir, "test-random", "seed-0", "local/retrieval", "test"))
    assert set(run) == {"q1", "q2", "q3"} and max(run["q1"], key=run["q1"].get) == "d1"
    items = json.loads(
        gzip.decompress((results_dir / "test-random/seed-0/runs/local/sts.test.items.json.gz").read_bytes())
    )
    assert items["gold"] == [g for _, _, g in taskdata.STS_ROWS] and len(items["pred"]) == 6
    assert len(logs) == 3 and logs[0].startswith("test-random local/sts: cosine_spearman = ")


def test_rerun_returns_stored_records_without_loading_anything(
    tiny_data: Path, results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = evaluate(
        "test-random", TASKS, results_dir=results_dir, data_dir=tiny_data, progress=False, log=lambda m: None
    )
    before = {f: (results_dir / f).read_bytes() for f in _files(results_dir)}
    _no_model(monkeypatch)
    loads = _count_loads(monkeypatch)
    logs: list[str] = []
    t0 = time.perf_counter()
    second = evaluate(
        "test-random", TASKS, results_dir=results_dir, data_dir=tiny_data, progress=False, log=logs.append
    )
    assert time.perf_counter() - t0 < 2.0
    assert loads == [] and logs == []
    assert [r.task_id for r in second] == TASKS
    for a, b in zip(first, second, strict=True):
        assert (a.scores, a.n_items, a.runtime, a.date, a.command) == (
            b.scores,
            b.n_items,
            b.runtime,
            b.date,
            b.command,
        )
    assert {f: (results_dir / f).read_bytes() for f in _files(results_dir)} == before
    # and a subset, in another order
    assert [
        r.task_id for r in evaluate("test-random", TASKS[::-1][:2], results_dir=results_dir, data_dir=tiny_data)
    ] == [
        "local/pairs",
        "local/retrieval",
    ]


def test_rerun_records_equal_fresh_records(tiny_data: Path, results_dir: Path) -> None:
    first = evaluate(
        "test-random", ["local/sts"], results_dir=results_dir, data_dir=tiny_data, progress=False, log=lambda m: None
    )
    second = evaluate(
        "test-random", ["local/sts"], results_dir=results_dir, data_dir=tiny_data, progress=False, log=lambda m: None
    )
    assert first == second


def test_overwrite_recomputes(tiny_data: Path, results_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = evaluate(
        "test-random", ["local/sts"], results_dir=results_dir, data_dir=tiny_data, progress=False, log=lambda m: None
    )
    path = result_path(results_dir, "test-random", "seed-0", "local/sts")
    path.write_text(path.read_text().replace('"cosine_pearson"', '"cosine_pearson_old"'))
    created = []
    real_create = runner.create_model
    monkeypatch.setattr(runner, "create_model", lambda name, **kw: created.append(name) or real_create(name, **kw))
    loads = _count_loads(monkeypatch)
    again = evaluate(
        "test-random",
        ["local/sts"],
        results_dir=results_dir,
        data_dir=tiny_data,
        overwrite=True,
        progress=False,
        log=lambda m: None,
    )
    assert created == ["test-random"] and loads == ["local/sts"]
    assert again[0].scores == first[0].scores
    assert "cosine_pearson_old" not in path.read_text()
    assert TaskResult.load(path).scores == first[0].scores


def test_interrupted_suite_resumes(tiny_data: Path, results_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads = _count_loads(monkeypatch, fail_once="local/retrieval")
    with pytest.raises(RuntimeError, match="simulated crash in local/retrieval"):
        evaluate("test-random", TASKS, results_dir=results_dir, data_dir=tiny_data, progress=False, log=lambda m: None)
    assert loads == ["local/sts", "local/retrieval"]
    assert _files(results_dir) == [
        "test-random/seed-0/local/sts.json",
        "test-random/seed-0/runs/local/sts.test.items.json.gz",
    ]
    sts_bytes = (results_dir / "test-random/seed-0/local/sts.json").read_bytes()

    loads.clear()
    logs: list[str] = []
    records = evaluate(
        "test-random", TASKS, results_dir=results_dir, data_dir=tiny_data, progress=False, log=logs.append
    )
    assert loads == ["local/retrieval", "local/pairs"]  # only the missing tasks are computed
    assert [r.task_id for r in records] == TASKS
    assert [m.split(":")[0] for m in logs] == ["test-random local/retrieval", "test-random local/pairs"]
    assert (results_dir / "test-random/seed-0/local/sts.json").read_bytes() == sts_bytes
    assert len([f for f in _files(results_dir) if f.endswith(".json")]) == 3


def test_incompatible_task_is_skipped_with_a_log_line(tiny_data: Path, results_dir: Path) -> None:
    logs: list[str] = []
    records = evaluate(
        "bm25",
        ["local/sts", "local/retrieval"],
        results_dir=results_dir,
        data_dir=tiny_data,
        progress=False,
        log=logs.append,
    )
    assert [r.task_id for r in records] == ["local/retrieval"]
    assert records[0].revision == "lucene-k1-0.9-b-0.4" and records[0].get_score() == pytest.approx(1.0)
    assert logs[0] == "skip local/sts: bm25 cannot run sts tasks (needs Encoder)"
    assert logs[1].startswith("bm25 local/retrieval: ndcg@10 = 1.0000")
    assert not (results_dir / "bm25" / "lucene-k1-0.9-b-0.4" / "local" / "sts.json").exists()


def test_all_incompatible_raises(tiny_data: Path, results_dir: Path) -> None:
    logs: list[str] = []
    with pytest.raises(ZooError, match=r"model bm25 can run none of the tasks \(local/sts, local/pairs\)"):
        evaluate(
            "bm25",
            ["local/sts", "local/pairs"],
            results_dir=results_dir,
            data_dir=tiny_data,
            progress=False,
            log=logs.append,
        )
    assert len(logs) == 2 and all(m.startswith("skip ") for m in logs)
    assert not results_dir.exists() or _files(results_dir) == []


def test_unknown_model_or_task_fails_before_any_work(
    tiny_data: Path, results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = _count_loads(monkeypatch)
    with pytest.raises(ZooError, match="unknown model 'test-randon'"):
        evaluate("test-randon", ["local/sts"], results_dir=results_dir, data_dir=tiny_data)
    with pytest.raises(ZooError, match="unknown task 'local/nope'"):
        evaluate("test-random", ["local/sts", "local/nope"], results_dir=results_dir, data_dir=tiny_data)
    assert loads == [] and not results_dir.exists()


def test_evaluate_accepts_model_and_task_objects(tiny_data: Path, results_dir: Path) -> None:
    from harness.tasks import get_task

    enc = taskdata.TableEncoder({"a": [1.0, 0.0], "b": [0.6, 0.8], "c": [0.0, 1.0]})
    taskdata.sts(tiny_data / "abc", [("a", "b", 2.0), ("a", "c", 1.0), ("a", "a", 3.0)])
    task = get_task("local/abc", tiny_data)
    (record,) = evaluate(enc, [task], results_dir=results_dir, progress=False, log=lambda m: None, command="custom")
    assert record.model == "table" and record.command == "custom"
    assert record.get_score() == pytest.approx(1.0) and record.scores["test"]["cosine_pearson"] == pytest.approx(
        0.9933992677987828
    )
    assert result_path(results_dir, "table", "r0", "local/abc").exists()


def test_public_api() -> None:
    assert harness.evaluate is evaluate
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", runner.code_revision())  # this checkout is a git repo
    hw = runner.hardware()
    assert {"cpu", "cores", "platform", "python"} <= set(hw)


def test_rerun_recomputes_when_the_data_changed(tiny_data: Path, results_dir: Path) -> None:
    quiet = dict(results_dir=results_dir, data_dir=tiny_data, progress=False)
    (first,) = evaluate("test-random", ["local/sts"], log=lambda m: None, **quiet)
    path = tiny_data / "sts" / "test.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")  # drop one pair
    logs: list[str] = []
    (second,) = evaluate("test-random", ["local/sts"], log=logs.append, **quiet)
    assert any("data changed" in m for m in logs)
    assert second.data_checksum != first.data_checksum
    assert second.n_items["test"] == first.n_items["test"] - 1


class _OverlapRanker:
    """A ``Ranker``: the number of words a document shares with the query."""

    card = taskdata.ModelCard(name="overlap", family="tests", revision="r0", source="tests", similarity=None)

    def score(self, query: str, docs: list[str]) -> np.ndarray:
        words = set(query.lower().split())
        return np.array([len(words & set(d.lower().split())) for d in docs], dtype=np.float32)


def test_a_ranker_on_a_retrieval_task_records_its_depth(
    tiny_data: Path, results_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.significance import compare
    from harness.tasks import retrieval

    quiet = dict(results_dir=results_dir, data_dir=tiny_data, progress=False)
    (record,) = evaluate(_OverlapRanker(), ["local/retrieval"], log=lambda m: None, **quiet)
    assert record.task_options == {"ignore_identical_ids": False, "first_stage": "bm25", "rerank_depth": 100}
    run = read_run(run_path(results_dir, "overlap", "r0", "local/retrieval", "test"))
    assert {q for q, docs in run.items() if docs} == {"q1", "q2", "q3"} and record.get_score() == pytest.approx(1.0)
    evaluate("bm25", ["local/retrieval"], log=lambda m: None, **quiet)
    report = compare(["bm25", "overlap"], ["local/retrieval"], results_dir=results_dir)
    assert [row["n"] for row in report.to_dict()["rows"]] == [3]
    # A record of another depth is not reused: the task options differ
    monkeypatch.setattr(retrieval, "RERANK_DEPTH", 2)
    logs: list[str] = []
    (again,) = evaluate(_OverlapRanker(), ["local/retrieval"], log=logs.append, **quiet)
    assert "was run with other task options" in logs[0] and again.task_options["rerank_depth"] == 2
    evaluate("bm25", ["local/retrieval"], log=logs.append, **quiet)  # options unchanged: the stored record
    assert len(logs) == 2 and not any(m.startswith("bm25") for m in logs)
