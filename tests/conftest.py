"""Shared fixtures: offline environment, the shared data dir, tiny synthetic task folders."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# Offline, quiet, and nothing written to the user's home: set before any package import.
_TMP = tempfile.mkdtemp(prefix="zoobench-tests-")
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("IR_DATASETS_HOME", os.path.join(_TMP, "ir_datasets"))
os.environ.setdefault("MPLCONFIGDIR", os.path.join(_TMP, "matplotlib"))
os.environ.setdefault("ZOOBENCH_CACHE", os.path.join(_TMP, "embeddings"))
os.environ.setdefault("ZOOBENCH_MODELS", os.path.join(_TMP, "models"))  # trained models of ./models stay out
os.environ.setdefault("ZOOBENCH_CARD_INDEX", os.path.join(_TMP, "cards.json"))
os.environ.setdefault("MTEB_CACHE", os.path.join(_TMP, "mteb"))  # mteb makes its cache dir on import

import pytest  # noqa: E402

from tests import taskdata  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` relative to the repository root, or skip."""
    if not (SHARED_DATA.is_dir() and (SHARED_DATA / "MANIFEST.md").exists()):
        pytest.skip(f"../shared/data not found: expected the shared data sets at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No user settings leak into a test."""
    monkeypatch.delenv("ZOOBENCH_DATA", raising=False)
    monkeypatch.delenv("ZOOBENCH_PLUGINS", raising=False)


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """A data dir with three tiny tasks: local/sts, local/retrieval, local/pairs."""
    data = tmp_path / "data"
    taskdata.sts_folder(data / "sts")
    taskdata.retrieval_folder(data / "retrieval")
    taskdata.pairs_folder(data / "pairs")
    return data


@pytest.fixture
def single_thread():
    """One OpenMP/BLAS thread. On a busy 2-core machine sklearn's MiniBatchKMeans with spinning OpenMP workers
    is up to 100x slower (a 12-text clustering task took 10 s instead of 0.1 s); its results do not depend on
    the thread count."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    return tmp_path / "results"
