"""harness.claims: papers' claims checked from stored records (held, not held, inconclusive, missing)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness.claims import check_claims, load_claims, to_markdown
from harness.cli import main
from harness.significance import compare
from tests.harness.test_significance import _store_ranked, _store_sts, _toy_ranked
from zoo.errors import ZooError

REPO = Path(__file__).resolve().parents[2]


def toy_results(root: Path) -> Path:
    """Toy records: on retrieval ``strong`` beats ``base`` and ``weak`` is another draw of it; on STS ``close`` is
    ``base`` with a little noise, ``bad`` with much, and ``strong`` (a run with options) equals ``base``."""
    base_run, qrels = _toy_ranked(0)
    strong_run, _ = _toy_ranked(0, shift=0.6)
    _store_ranked(root, "base", "toy/ret", base_run, qrels)
    _store_ranked(root, "strong", "toy/ret", strong_run, qrels)
    _store_ranked(root, "weak", "toy/ret", _toy_ranked(1)[0], qrels)  # another draw: a tie with base on average
    rng = np.random.default_rng(0)
    gold = rng.normal(size=400)
    pred = gold + rng.normal(scale=0.5, size=400)
    _store_sts(root, "base", "toy/sts", pred, gold)
    _store_sts(root, "close", "toy/sts", pred + rng.normal(scale=0.05, size=400), gold)
    _store_sts(root, "bad", "toy/sts", pred + rng.normal(scale=2.0, size=400), gold)
    _store_sts(root, "strong", "toy/sts", pred, gold, revision="r1+mode-x")  # a run with a factory option
    return root


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return toy_results(tmp_path / "results")


def toy_claims(tmp_path: Path) -> Path:
    """A claims folder with one claim of each verdict (:data:`CLAIMS`) over :func:`toy_results`."""
    return _claims(tmp_path, CLAIMS)


def _claims(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "claims" / "toy.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text('paper = "A toy paper"\ncite = "Toy (2026)"\n' + textwrap.dedent(body), encoding="utf-8")
    return path.parent


CLAIMS = """
[[claims]]
id = "toy/better"
says = "Strong beats base."
a = "base"
b = "strong"
tasks = ["toy/ret"]

[[claims]]
id = "toy/worse"
says = "Base beats strong."
a = "strong"
b = "base"
tasks = ["toy/ret"]

[[claims]]
id = "toy/tie"
says = "Weak beats base."
a = "base"
b = "weak"
tasks = ["toy/ret"]

[[claims]]
id = "toy/not-worse"
says = "Close loses at most a point."
a = "base"
b = "close"
tasks = ["toy/sts"]
expect = "not-worse"
margin = 1.0

[[claims]]
id = "toy/not-worse-fails"
says = "Bad loses at most a point."
a = "base"
b = "bad"
tasks = ["toy/sts"]
expect = "not-worse"
margin = 1.0

[[claims]]
id = "toy/missing"
says = "Absent beats base."
a = "base"
b = "absent+mode-y"
tasks = ["toy/ret"]
make = ["zoobench train --recipe toy/absent"]
"""


def test_each_verdict_from_toy_records(tmp_path: Path, results: Path) -> None:
    verdicts = {r.claim.id: r for r in check_claims(load_claims(_claims(tmp_path, CLAIMS)), results)}
    assert {k: v.verdict for k, v in verdicts.items()} == {
        "toy/better": "held",
        "toy/worse": "not held",
        "toy/tie": "inconclusive",
        "toy/not-worse": "held",
        "toy/not-worse-fails": "not held",
        "toy/missing": "missing",
    }
    (row,) = verdicts["toy/better"].tasks
    (same,) = compare(["base", "strong"], ["toy/ret"], results_dir=results, save=False).rows
    assert (row.delta, row.ci_low, row.ci_high, row.p_adjusted) == (same.delta, same.ci_low, same.ci_high, same.p_value)
    assert row.delta > 0.05 and row.p_adjusted < 1e-6
    close = verdicts["toy/not-worse"].tasks[0]
    assert -0.01 < close.ci_low and close.ci_high < 0.01  # the interval clears -1 point
    assert verdicts["toy/tie"].tasks[0].p_adjusted > 0.05
    missing = verdicts["toy/missing"]
    assert "absent" in missing.reason and missing.commands == (
        "zoobench train --recipe toy/absent",
        "zoobench run --model absent --tasks toy/ret --model-kwarg mode=y",
    )


def test_a_claim_over_several_tasks_needs_every_task(tmp_path: Path, results: Path) -> None:
    body = """
    [[claims]]
    id = "toy/both"
    says = "Strong beats base everywhere."
    a = "base"
    b = "strong"
    tasks = ["toy/ret", "toy/sts"]
    """
    (r,) = check_claims(load_claims(_claims(tmp_path, body)), results)
    assert r.verdict == "missing"  # strong's STS run is a run with options: the bare name means none
    body = body.replace('b = "strong"', 'b = "strong+mode-x"').replace('"toy/ret", ', "")
    (r,) = check_claims(load_claims(_claims(tmp_path, body)), results)
    assert r.verdict == "inconclusive" and r.tasks[0].delta == 0.0  # identical predictions: p = 1


def test_cli_prints_verdicts_markdown_and_json(tmp_path: Path, results: Path, capsys: pytest.CaptureFixture) -> None:
    folder = _claims(tmp_path, CLAIMS)
    assert main(["claims", "--claims", str(folder), "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "toy/better" in out and "not held" in out and "inconclusive" in out
    assert "zoobench run --model absent --tasks toy/ret --model-kwarg mode=y" in out
    assert main(["claims", "--claims", str(folder), "--results", str(results), "--json", "--id", "toy/b*"]) == 0
    (d,) = json.loads(capsys.readouterr().out)
    assert d["verdict"] == "held" and d["claim"]["tasks"] == ["toy/ret"] and d["tasks"][0]["p_adjusted"] < 1e-6
    assert main(["claims", "--claims", str(folder), "--results", str(results), "--markdown"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("| paper | claim |") and "**held**" in md and "**missing**" in md
    assert md == to_markdown(check_claims(load_claims(folder), results)) + "\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[claims]]\nid = "x"\nsays = "s"\na = "a"\nb = "b"\ntasks = "t"\n', "'tasks' must be a non-empty list"),
        ('[[claims]]\nid = "x"\nsays = "s"\na = "a"\nb = "b"\ntasks = ["t"]\nexpect = "worse"\n', "'expect' must"),
        ('[[claims]]\nid = "x"\nsays = "s"\na = "a"\nb = "b"\ntasks = ["t"]\nexpect = "not-worse"\n', "needs a margin"),
        ('[[claims]]\nid = "x"\nsays = "s"\na = "a"\nb = "b"\ntasks = ["t"]\nmodel = "m"\n', "unknown key 'model'"),
        ('[[claims]]\nid = "x"\nsays = "s"\nb = "b"\ntasks = ["t"]\n', "'a' must be a non-empty string"),
        ('[[claims]]\nid = "x"\nsays = "s"\na = "a"\nb = "b"\ntasks = ["t"]\nalpha = 2.0\n', "'alpha' must"),
    ],
)
def test_malformed_claims_are_one_line_errors(tmp_path: Path, body: str, message: str, capsys) -> None:
    folder = _claims(tmp_path, body)
    with pytest.raises(ZooError, match=message):
        load_claims(folder)
    assert main(["claims", "--claims", str(folder), "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "toy.toml" in err[0]


def test_the_repository_claims_load() -> None:
    claims = load_claims(REPO / "claims")
    ids = {c.id for c in claims}
    assert {"gte/two-stage-in-domain", "gte/improved-contrastive-loss", "mgte/hybrid-beats-sparse"} <= ids
    assert all(c.says and c.tasks and c.make for c in claims)


def test_a_claims_own_run_command_replaces_the_generated_one(tmp_path: Path, results: Path) -> None:
    body = """
    [[claims]]
    id = "toy/deep"
    says = "Absent re-ranks better."
    a = "absent+dtype-bfloat16"
    b = "gone"
    tasks = ["toy/ret"]
    make = ["zoobench run --model absent --tasks toy/ret --model-kwarg dtype=bfloat16 --task-option rerank_depth=10"]
    """
    (r,) = check_claims(load_claims(_claims(tmp_path, body)), results)
    assert r.verdict == "missing" and r.commands == (
        "zoobench run --model absent --tasks toy/ret --model-kwarg dtype=bfloat16 --task-option rerank_depth=10",
        "zoobench run --model gone --tasks toy/ret",
    )
