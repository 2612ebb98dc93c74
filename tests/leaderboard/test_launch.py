"""Launching the leaderboard: the `zoobench leaderboard` verb, and an app that never imports torch or zoo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cli

REPO = Path(__file__).resolve().parents[2]


def test_verb_runs_streamlit_on_the_results_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(os, "execv", lambda path, argv: calls.append((path, argv)))
    assert cli.main(["leaderboard", "--results", str(tmp_path), "--port", "8765"]) == 0
    [(path, argv)] = calls
    assert path == sys.executable and argv[:3] == [sys.executable, "-m", "streamlit"]
    assert argv[3:] == [
        "run",
        str(REPO / "leaderboard" / "app.py"),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        "8765",
        "--browser.gatherUsageStats",
        "false",
        "--",
        "--results",
        str(tmp_path.resolve()),
    ]


def test_verb_refuses_a_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["leaderboard", "--results", str(tmp_path / "nowhere")]) == 2
    assert "no results folder" in capsys.readouterr().err


def test_the_app_never_imports_torch_zoo_or_harness(results_root: Path) -> None:
    """Import the app and render every tab in a fresh interpreter, then look at what was imported."""
    script = f"""
import json, sys
import leaderboard.app
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(REPO / "leaderboard" / "app.py")!r}, default_timeout=60).run()
assert not at.exception and len(at.tabs) == 6, at.exception
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "zoo", "harness", "transformers"))))
"""
    env = {**os.environ, "ZOOBENCH_RESULTS": str(results_root)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=99)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
