"""The result store and the embedding cache under hostile conditions (issue 10): distinct options never share a
record, a damaged cache shard is dropped and recomputed, kills leave nothing behind, identical concurrent runs
compute once."""

from __future__ import annotations

import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import harness
from harness import results as results_module
from harness.cli import _key_values, build_parser
from harness.results import TaskResult, load_results, result_path
from harness.runner import evaluate, result_revision
from harness.suites import get_suite
from zoo.cache import EmbeddingCache, fingerprint
from zoo.registry import get_card

REPO_ROOT = Path(__file__).resolve().parents[2]
# Subprocesses import the same harness as this test (the checkout under test, not an installed copy).
CODE_ROOT = str(Path(harness.__file__).resolve().parents[1])
VOLATILE = ("date", "runtime", "hardware", "command", "code_revision")  # what differs between identical runs


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _zoobench(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([CODE_ROOT, str(REPO_ROOT)]), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return err


def _records(root: Path) -> dict[str, dict[str, Any]]:
    """Every record under ``root`` by path, without what differs between identical runs."""
    records, warnings = load_results(root)
    assert not warnings
    return {r.task_id: {k: v for k, v in r.to_dict().items() if k not in VOLATILE} for r in records}


# Class 2: the revision of factory options is one-to-one ===========================================

# Pairs that one folder served on 0422f16 (the second run got the first's record).
COLLIDING = [
    ({"seed": "a b"}, {"seed": "a_b"}),
    ({"seed": 1}, {"seed": "1"}),
    ({"flag": True}, {"flag": "True"}),
    ({"x": 1.0}, {"x": "1.0"}),
    ({"x": "a/b"}, {"x": "a_b"}),
    ({"x": [1, 2]}, {"x": "1_2_"}),
    ({"a-b": 1}, {"a_b": 1}),
    ({"a": "1+b-2"}, {"a": 1, "b": 2}),
]


@pytest.mark.parametrize(("first", "second"), COLLIDING, ids=[repr(a) for a, _ in COLLIDING])
def test_distinct_options_have_distinct_revisions(first: dict, second: dict) -> None:
    assert result_revision("rev", first) != result_revision("rev", second)
    assert result_revision("rev", first) == result_revision("rev", dict(reversed(list(first.items()))))


def test_plain_options_keep_their_readable_folder() -> None:
    assert result_revision("seed-0", {}) == "seed-0"
    assert result_revision("seed-0", {"seed": 1}) == "seed-0+seed-1"
    assert result_revision("r", {"mode": "hybrid", "dtype": "bfloat16"}) == "r+dtype-bfloat16+mode-hybrid"
    assert result_revision("r", {"lr": 1e-05, "fast": False}) == "r+fast-False+lr-1e-05"
    hashed = result_revision("r", {"seed": "a b"})
    assert hashed.startswith("r+options=") and len(hashed) == len("r+options=") + 12


def test_committed_records_keep_their_folders() -> None:
    """Every committed record run with --model-kwarg is still found where it is."""
    records, _ = load_results(REPO_ROOT / "results")
    optioned = [r for r in records if "+" in r.revision]
    assert optioned, "no committed record with factory options to check"
    for r in optioned:
        args = build_parser().parse_args(shlex.split(r.command)[1:])
        assert result_revision(r.model_card["revision"], _key_values(args.model_kwarg, "")) == r.revision


def test_runs_with_look_alike_options_get_their_own_records(tiny_data: Path, results_dir: Path) -> None:
    kw = dict(results_dir=results_dir, data_dir=tiny_data, progress=False, cache=False, log=lambda m: None)
    (spaced,) = evaluate("test-random", ["local/sts"], model_kwargs={"seed": "a b"}, **kw)
    (joined,) = evaluate("test-random", ["local/sts"], model_kwargs={"seed": "a_b"}, **kw)
    assert spaced.revision != joined.revision
    assert (spaced.model_kwargs, joined.model_kwargs) == ({"seed": "a b"}, {"seed": "a_b"})
    assert spaced.scores != joined.scores  # other random vectors: not the first run's record served again
    assert TaskResult.load(result_path(results_dir, "test-random", spaced.revision, "local/sts")).model_kwargs == {
        "seed": "a b"
    }


# Class 3: a damaged dense shard is dropped and recomputed ========================================


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


def _flip_last_byte(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))


@pytest.mark.parametrize(
    "damage",
    [_truncate, _flip_last_byte, lambda p: p.write_bytes(b""), lambda p: p.unlink()],
    ids=["truncated", "flipped-byte", "empty", "missing"],
)
def test_a_damaged_dense_shard_is_dropped_with_a_warning(tmp_path: Path, damage) -> None:  # noqa: ANN001
    cache = EmbeddingCache(tmp_path, "fp")
    cache.put(["a", "b"], "query", np.ones((2, 4), dtype=np.float32))
    cache.put(["c"], "query", np.full((1, 4), 2.0, dtype=np.float32))
    shard = next(p for p in cache.dir.glob("*.npy") if np.load(p).shape[0] == 2)
    damage(shard)
    with pytest.warns(
        UserWarning, match=r"^cache: dropped damaged shard .*\.keys \(.*\); its texts are encoded again$"
    ):
        again = EmbeddingCache(tmp_path, "fp")
    missing, out = again.get(["a", "b", "c"], "query")
    assert missing == [0, 1] and out[2].tolist() == [2.0] * 4
    assert not [p for p in cache.dir.iterdir() if p.stem == shard.stem]


def test_a_run_over_a_truncated_shard_recomputes_it(tiny_data: Path, results_dir: Path, tmp_path: Path) -> None:
    kw = dict(results_dir=results_dir, data_dir=tiny_data, progress=False, cache_dir=tmp_path / "c", log=lambda m: None)
    first = evaluate("test-random", ["local/sts", "local/retrieval"], **kw)
    for shard in (tmp_path / "c").rglob("*.npy"):
        _truncate(shard)
    with pytest.warns(UserWarning, match="dropped damaged shard"):
        again = evaluate("test-random", ["local/sts", "local/retrieval"], overwrite=True, **kw)
    assert [r.scores for r in again] == [r.scores for r in first]
    assert all(r.runtime["texts_encoded"] > 0 for r in again)


def test_a_shard_is_written_fsynced_published_then_its_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync-folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync")
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append(f"publish{Path(dst).suffix}")
        real_replace(src, dst)

    monkeypatch.setattr(results_module.os, "fsync", fsync)
    monkeypatch.setattr(results_module.os, "replace", replace)
    EmbeddingCache(tmp_path, "fp").put(["a"], "query", np.ones((1, 4), dtype=np.float32))
    assert events == ["fsync", "publish.npy", "fsync-folder", "fsync", "publish.keys", "fsync-folder"]


# Class 6: leftovers of a kill, and identical concurrent runs =====================================


def test_a_run_removes_what_a_killed_run_left(tiny_data: Path, results_dir: Path, tmp_path: Path) -> None:
    shard_dir = tmp_path / "c" / fingerprint(get_card("test-random"))
    planted = [
        shard_dir / ".0123.npy.abcd1234.tmp",  # a shard being written
        shard_dir / "0123.npy",  # a shard published without its keys
        shard_dir / "sparse-v1" / ".4567.npz.abcd1234.tmp",
        result_path(results_dir, "test-random", "seed-0", "local/sts").with_name(".sts.json.abcd1234.tmp"),
        results_dir / "test-random/seed-0/runs/local/.sts.test.items.json.gz.abcd1234.tmp",
    ]
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    kw = dict(results_dir=results_dir, data_dir=tiny_data, progress=False, cache_dir=tmp_path / "c", log=lambda m: None)
    evaluate("test-random", ["local/sts"], **kw)
    assert not [p for p in planted if p.exists()]
    assert not [p for p in _files(tmp_path) if p.endswith((".tmp", ".lock"))]


def test_leftovers_held_by_a_live_process_stay(tmp_path: Path) -> None:
    from harness.results import FileLock

    shard_dir = tmp_path / "fp"
    shard_dir.mkdir()
    (shard_dir / ".0123.npy.abcd1234.tmp").write_bytes(b"partial")
    (shard_dir / "0123.npy").write_bytes(b"published, keys not yet")
    other = FileLock(shard_dir / ".lock")  # another process using the fingerprint (a second open file: no sharing)
    assert other.acquire(shared=True)
    EmbeddingCache(tmp_path, "fp").close()
    assert sorted(p.name for p in shard_dir.iterdir()) == [".0123.npy.abcd1234.tmp", ".lock", "0123.npy"]
    other.release()
    EmbeddingCache(tmp_path, "fp").close()
    assert list(shard_dir.iterdir()) == []


def test_a_file_lock_excludes_and_is_removed_by_its_last_holder(tmp_path: Path) -> None:
    from harness.results import FileLock

    path = tmp_path / "x" / ".a.json.lock"
    first, second = FileLock(path), FileLock(path)
    assert first.acquire()
    assert not second.acquire(wait=False)
    assert not second.acquire(shared=True, wait=False)
    first.release()
    assert not path.exists()
    assert second.acquire(shared=True) and first.acquire(shared=True, wait=False)
    second.release()
    assert path.exists()  # still held
    first.release()
    assert not path.exists()


def test_identical_concurrent_runs_compute_once(tiny_data: Path, tmp_path: Path) -> None:
    """Acceptance 3: two processes, one model and task, one results folder and cache: one record, one set of
    shards, each text encoded once (by either)."""

    def run(root: Path) -> subprocess.Popen:
        args = ["--plugin", "tests.harness.slow_model", "run", "-m", "test-slow", "-t", "local/sts,local/retrieval"]
        args += ["--data-dir", str(tiny_data), "--results", f"{root}/r", "--cache-dir", f"{root}/c", "--no-progress"]
        return _zoobench(*args, env={"ZOOBENCH_TEST_ENCODE_LOG": f"{root}/encode.log"})

    both, alone = tmp_path / "both", tmp_path / "alone"
    errs = [_finish(p) for p in [run(both), run(both)]]
    _finish(run(alone))
    calls = [(root / "encode.log").read_text().splitlines() for root in (both, alone)]
    assert len(calls[0]) == len(calls[1]), errs  # each task encoded by one of them; the other took its record
    assert len(_files(both / "c")) == len(_files(alone / "c"))  # one set of shards
    assert _files(both / "r") == _files(alone / "r")  # one record per task, no lock or temporary left
    assert _records(both / "r") == _records(alone / "r")


# Acceptance 2: SIGKILL at random moments of a local-quick run, then a rerun ======================

QUICK = ["run", "-m", "test-random", "-s", "local-quick", "--no-progress"]


@pytest.fixture(scope="module")
def quick_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], float]:
    """The records of an uninterrupted local-quick run of test-random, and its wall time."""
    from tests.conftest import SHARED_DATA

    if not (SHARED_DATA / "MANIFEST.md").exists():
        pytest.skip(f"../shared/data not found at {SHARED_DATA}")
    root = tmp_path_factory.mktemp("reference")
    t0 = time.perf_counter()
    _finish(_zoobench(*QUICK, "--data-dir", str(SHARED_DATA), "--results", f"{root}/r", "--cache-dir", f"{root}/c"))
    assert len(_records(root / "r")) == len(get_suite("local-quick"))
    return _records(root / "r"), time.perf_counter() - t0


def _kill_and_rerun(root: Path, delay: float) -> None:
    from tests.conftest import SHARED_DATA

    where = ["--data-dir", str(SHARED_DATA), "--results", f"{root}/r", "--cache-dir", f"{root}/c"]
    proc = _zoobench(*QUICK, *where)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    _finish(_zoobench(*QUICK, *where))


def _check_trial(root: Path, reference: dict[str, Any]) -> None:
    assert _records(root / "r") == reference
    left = [p for p in _files(root) if p.endswith((".tmp", ".lock"))]
    assert not left, left
    shards = _files(root / "c")
    assert all(p.endswith((".npy", ".keys")) for p in shards)
    assert sorted(p.removesuffix(".npy") for p in shards if p.endswith(".npy")) == sorted(
        p.removesuffix(".keys") for p in shards if p.endswith(".keys")
    )


def test_a_killed_local_quick_run_resumes_to_the_same_records(
    quick_reference: tuple[dict[str, Any], float], tmp_path: Path
) -> None:
    reference, seconds = quick_reference
    _kill_and_rerun(tmp_path, delay=0.6 * seconds)
    _check_trial(tmp_path, reference)


@pytest.mark.slow
def test_killed_local_quick_runs_resume_to_the_same_records(
    quick_reference: tuple[dict[str, Any], float], tmp_path: Path
) -> None:
    reference, seconds = quick_reference
    rng = random.Random(10)
    for trial in range(10):
        _kill_and_rerun(tmp_path / str(trial), delay=rng.uniform(0.5, seconds))
        _check_trial(tmp_path / str(trial), reference)
