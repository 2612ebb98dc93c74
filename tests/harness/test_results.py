"""harness.results: the record, its paths, atomic writes, run files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from harness import results as results_mod
from harness.results import (
    SCHEMA_VERSION,
    TaskResult,
    atomic_write,
    items_path,
    load_results,
    read_run,
    result_path,
    run_path,
    write_run,
)
from zoo.errors import ZooError


def _record(**overrides) -> TaskResult:
    fields = dict(
        model="test-random",
        revision="seed-0",
        task_id="local/stsb",
        task_type="sts",
        main_score="cosine_spearman",
        scores={
            "test": {"cosine_spearman": 0.4612345678901234, "cosine_pearson": 0.5, "main_score": 0.4612345678901234}
        },
        n_items={"test": 1379},
        data_checksum="sha256:" + "0" * 64,
        code_revision="abc123+dirty",
        command="zoobench run -m test-random -t local/stsb",
        runtime={"load_s": 0.1, "encode_s": 0.2, "evaluate_s": 0.3, "total_s": 0.6},
        hardware={"cpu": "x", "cores": 2},
        date="2025-01-01T00:00:00+00:00",
        languages=["en"],
        model_card={"name": "test-random", "languages": [], "prompts": {}},
    )
    fields.update(overrides)
    return TaskResult(**fields)


def test_roundtrip(tmp_path: Path) -> None:
    rec = _record()
    path = rec.save(tmp_path)
    assert path == tmp_path / "test-random" / "seed-0" / "local" / "stsb.json"
    assert path == result_path(tmp_path, "test-random", "seed-0", "local/stsb")
    back = TaskResult.load(path)
    assert back == rec
    assert back.get_score() == 0.4612345678901234
    assert back.get_score("test", "cosine_pearson") == 0.5
    d = json.loads(path.read_text(encoding="utf-8"))
    assert d["schema_version"] == SCHEMA_VERSION == 1
    assert [p.name for p in path.parent.iterdir()] == ["stsb.json"]  # no temp file left


def test_paths() -> None:
    assert result_path("/r", "org/model", "rev/1", "local/x") == Path("/r/org__model/rev__1/local/x.json")
    assert run_path("/r", "m", "v", "local/scifact", "test") == Path("/r/m/v/runs/local/scifact.test.trec.gz")
    assert items_path("/r", "m", "v", "local/scifact", "dev") == Path("/r/m/v/runs/local/scifact.dev.items.json.gz")
    for bad in ["local/..", "local/", "local/a\\b"]:
        with pytest.raises(ZooError, match="invalid name for a results path"):
            result_path("/r", "m", "v", bad)
    with pytest.raises(ZooError, match="invalid name"):
        result_path("/r", "..", "v", "local/x")


def test_result_path_keeps_dotted_task_names() -> None:
    a = result_path("/r", "m", "v", "local/sts.v1")
    b = result_path("/r", "m", "v", "local/sts.v2")
    assert a == Path("/r/m/v/local/sts.v1.json") and a != b


def test_from_dict_validation(tmp_path: Path) -> None:
    d = _record().to_dict()
    assert TaskResult.from_dict({**d, "extra_key": 1}) == _record()  # unknown keys are ignored
    with pytest.raises(ZooError, match=r"<dict>: unknown result schema version 2"):
        TaskResult.from_dict({**d, "schema_version": 2})
    with pytest.raises(ZooError, match=r"src\.json: result record lacks date, scores"):
        TaskResult.from_dict({k: v for k, v in d.items() if k not in ("scores", "date")}, source="src.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "unknown result schema version 99"),
        ("{not json", "unreadable result record"),
        ("[1, 2]", "result record is not a JSON object"),
        (b"\xff\xfe{}", "unreadable result record"),
    ],
    ids=["schema", "json", "list", "bytes"],
)
def test_load_errors_name_the_file(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "bad.json"
    if content is None:
        content = json.dumps({**_record().to_dict(), "schema_version": 99})
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ZooError, match=message) as exc:
        TaskResult.load(path)
    assert str(exc.value).startswith(f"{path}: ")
    assert "\n" not in str(exc.value)


def test_load_results_skips_bad_files(tmp_path: Path) -> None:
    good = _record().save(tmp_path)
    other = _record(task_id="local/sts12").save(tmp_path)
    bad_json = good.parent / "broken.json"
    bad_json.write_text("{", encoding="utf-8")
    bad_schema = tmp_path / "x" / "old.json"
    bad_schema.parent.mkdir()
    bad_schema.write_text(json.dumps({**_record().to_dict(), "schema_version": 0}), encoding="utf-8")
    write_run(run_path(tmp_path, "test-random", "seed-0", "local/stsb", "test"), {"q": {"d": 1.0}}, "t")
    records, warnings = load_results(tmp_path)
    by_task = {r.task_id: r for r in records}
    assert sorted(by_task) == ["local/sts12", "local/stsb"] and len(records) == 2
    assert by_task["local/sts12"] == TaskResult.load(other) == _record(task_id="local/sts12")
    assert len(warnings) == 2
    assert any(w.startswith(str(bad_json)) for w in warnings)
    assert any(w.startswith(str(bad_schema)) and "schema version 0" in w for w in warnings)


def test_load_results_of_missing_dir(tmp_path: Path) -> None:
    assert load_results(tmp_path / "nothing") == ([], [])


def test_atomic_write_replaces(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "f.bin"
    atomic_write(path, b"one")
    atomic_write(path, b"two")
    assert path.read_bytes() == b"two"
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.bin"]


def test_atomic_write_leaves_no_temp_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.json"
    path.write_bytes(b"old")

    def boom(src, dst):  # noqa: ANN001
        assert Path(src).exists() and Path(src).parent == Path(dst).parent  # the temp file is beside the target
        raise OSError("disk full")

    monkeypatch.setattr(results_mod.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, b"new")
    with pytest.raises(OSError, match="disk full"):
        _record().save(tmp_path)
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()] == ["f.json"]


def test_atomic_write_cleans_up_on_interrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(fd):  # noqa: ANN001
        raise KeyboardInterrupt

    monkeypatch.setattr(results_mod.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "f", b"data")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_write_run_read_run_roundtrip(tmp_path: Path) -> None:
    run = {"q1": {"d1": 0.25, "d2": 0.75, "d3": -1.5}, "q2": {"d9": 3.0}}
    path = tmp_path / "runs" / "x.test.trec.gz"
    write_run(path, run, tag="my-model")
    assert read_run(path) == run
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    assert lines == [
        "q1 Q0 d2 1 0.75 my-model",
        "q1 Q0 d1 2 0.25 my-model",
        "q1 Q0 d3 3 -1.5 my-model",
        "q2 Q0 d9 1 3.0 my-model",
    ]
    first = path.read_bytes()
    write_run(path, run, tag="my-model")
    assert path.read_bytes() == first  # mtime=0: byte-identical reruns


def test_near_equal_scores_survive_the_run_file(tmp_path: Path) -> None:
    """Scores 1e-9 apart (a near-constant model) keep their order: with 6 decimals they tied, trec_eval broke the
    ties by document id, and the nDCG recomputed from the file differed from the record's."""
    from harness.metrics import evaluate_run

    run = {"q": {f"d{i}": 0.5 + i * 1e-9 for i in range(30)}}
    qrels = {"q": {"d29": 1, "d28": 1}}
    path = tmp_path / "x.test.trec.gz"
    write_run(path, run, tag="m")
    assert read_run(path) == run
    assert evaluate_run(qrels, read_run(path), ["ndcg@10"]) == evaluate_run(qrels, run, ["ndcg@10"])
    assert evaluate_run(qrels, run, ["ndcg@10"])["ndcg@10"] == pytest.approx(1.0)


def test_read_run_rejects_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.trec.gz"
    path.write_bytes(gzip.compress(b"q1 Q0 d1 1 0.5 tag\nq1 d2 2 0.4 tag\n"))
    with pytest.raises(ZooError, match=r"r\.trec\.gz:2: expected 6 fields"):
        read_run(path)


def test_empty_run_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "empty.trec.gz"
    write_run(path, {"q1": {}}, tag="bm25")
    assert read_run(path) == {}


def test_no_tmp_files_after_save(tmp_path: Path) -> None:
    for i in range(3):
        _record(task_id=f"local/t{i}").save(tmp_path)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == [f"test-random/seed-0/local/t{i}.json" for i in range(3)]


def test_qrels_roundtrip(tmp_path) -> None:
    from harness.results import read_qrels, write_qrels

    qrels = {"q1": {"d1": 2, "d2": 0}, "q2": {"d9": 1}}
    path = tmp_path / "x.qrels.gz"
    write_qrels(path, qrels)
    assert read_qrels(path) == qrels
