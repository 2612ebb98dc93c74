"""leaderboard.data: loading, selection, Borda ranks and their intervals, significance lookups, text safety."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import results as harness_results
from harness import significance
from leaderboard import data
from tests.leaderboard.conftest import BROKEN, DATE, EVIL, FUTURE, OLD_DATE


def test_schema_constants_match_the_harness() -> None:
    fields = harness_results.TaskResult.__dataclass_fields__.values()
    required = {f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    assert data.REQUIRED_KEYS == required
    assert data.SCHEMA_VERSION == harness_results.SCHEMA_VERSION == significance.SCHEMA_VERSION
    assert data.COMPARISONS_DIR == harness_results.COMPARISONS_DIR


def test_load_marks_the_newest_revision_and_warns_per_bad_file(results_root: Path) -> None:
    res = data.load_results(results_root)
    assert [w.split(":")[0] for w in res.warnings] == [BROKEN, FUTURE, "_comparisons/bad__000000000000.json"]
    alpha = res.records[res.records["model"] == "alpha-base"]
    assert set(alpha.loc[alpha["current"], "revision"]) == {"v1"}
    assert set(alpha.loc[~alpha["current"], "date"]) == {OLD_DATE}
    assert set(alpha.loc[alpha["current"], "date"]) == {DATE}
    stored, _ = harness_results.load_results(results_root)
    assert len(res.records) == len(stored)
    by_key = res.records.set_index(["model", "revision", "task_id"])
    for r in stored:  # same records, same scores (test split), same card facts
        row = by_key.loc[(r.model, r.revision, r.task_id)]
        assert row["score"] == r.get_score("test") and row["split"] == "test"
        assert row["family"] == r.model_card["family"] and row["metric"] == r.main_score
    cmp = res.comparisons
    assert len(cmp) == 9 and set(cmp["model_a"]) | set(cmp["model_b"]) == {"alpha-base", "beta-small", "gamma-static"}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"schema_version": 1, "model": "m"}', "lacks code_revision, command, data_checksum"),
        ("[1, 2]", "not a JSON object"),
        ({"schema_version": "1"}, "unknown result schema version '1'"),
        ({"scores": {"test": {"main_score": "high"}}}, "split 'test' has no numeric main_score"),
        ({"scores": {}}, "scores is not a non-empty object"),
        ({"model": ""}, "model is not a non-empty string"),
    ],
)
def test_invalid_records_are_skipped(tmp_path: Path, content: dict | str, why: str) -> None:
    """``content``: the file's text, or keys that replace those of a valid record."""
    good = harness_results.TaskResult(
        model="m",
        revision="r",
        task_id="local/t",
        task_type="sts",
        main_score="cosine_spearman",
        scores={"test": {"main_score": 0.5}},
        n_items={"test": 3},
        data_checksum="x",
        code_revision="x",
        command="x",
        runtime={},
        hardware={},
        date=DATE,
    )
    good.save(tmp_path)
    bad = tmp_path / "m" / "r" / "local" / "bad.json"
    bad.write_text(content if isinstance(content, str) else json.dumps(good.to_dict() | content))
    res = data.load_results(tmp_path)
    assert len(res.records) == 1
    [warning] = res.warnings
    assert warning.startswith("m/r/local/bad.json: ") and why in warning and warning.endswith("; skipped")


def test_missing_or_empty_folder(tmp_path: Path) -> None:
    for root in (tmp_path / "nowhere", tmp_path):
        res = data.load_results(root)
        assert res.records.empty and res.comparisons.empty and res.warnings == ()
        assert data.overview(data.select(res.records, data.Selection())).empty
    assert data.signature(tmp_path / "nowhere") == "missing"


def test_signature_follows_records_not_run_files(tmp_path: Path, results_root: Path) -> None:
    root = shutil.copytree(results_root, tmp_path / "r")
    before = data.signature(root)
    (root / "alpha-base" / "v1" / "runs" / "local" / "extra.json").write_text("{}")
    assert data.signature(root) == before  # run folders are not records
    path = root / "beta-small" / "v1" / "local" / "clf.json"
    path.write_text(path.read_text().replace('"pytest"', '"pytest again"'))
    assert data.signature(root) != before


def test_results_dir_precedence() -> None:
    assert data.results_dir(["--results", "a", "-q", "--other"], {"ZOOBENCH_RESULTS": "b"}) == "a"
    assert data.results_dir(["-q", "--result", "x"], {"ZOOBENCH_RESULTS": "b"}) == "b"  # no abbreviations
    assert data.results_dir([], {}) == "results"


def test_selection(results_root: Path) -> None:
    records = data.load_results(results_root).records
    opts = data.filter_options(records)
    assert opts["task_types"] == ["classification", "clustering", "pair_classification", "retrieval", "sts"]
    assert opts["languages"] == ["en", "zh"]
    assert opts["families"] == sorted(["gte", "static", "mgte", "lexical", "<b>fam</b>"])
    everything = data.select(records, data.Selection())
    assert len(everything) == records["current"].sum() and everything["current"].all()
    zh_or_sts = data.select(records, data.Selection(task_types=("sts",), languages=("zh",)))
    assert set(zh_or_sts["task_id"]) == {"local/sts-zh"}
    known = data.select(records, data.Selection(unknown_size=False))
    assert "bm25-like" not in set(known["model"]) and known["params"].notna().all()
    small = data.select(records, data.Selection(params=(0, 40e6), unknown_size=False))
    assert set(small["model"]) == {"beta-small", "gamma-static"}
    records_copy = records.copy()
    data.select(records, data.Selection(families=("gte",)))
    pd.testing.assert_frame_equal(records, records_copy)  # inputs are not changed


def _mteb_borda_rank(matrix: pd.DataFrame) -> pd.Series:
    """mteb/leaderboard/table.py: _get_borda_rank."""
    counts = matrix.apply(lambda s: len(s) - s.rank(method="average", ascending=False), axis="index")
    return counts.sum(axis=1).rank(method="min", ascending=False).astype(int)


def test_borda_matches_mteb() -> None:
    rng = np.random.default_rng(3)
    matrix = pd.DataFrame(np.round(rng.uniform(0, 1, (12, 7)), 1), index=[f"m{i}" for i in range(12)])
    matrix[matrix > 0.85] = np.nan  # missing tasks; rounding makes ties
    b = data.borda(matrix)
    pd.testing.assert_series_equal(b["rank"], _mteb_borda_rank(matrix), check_names=False)
    m0 = matrix.loc["m0"]
    tasks = m0.dropna().index
    by_hand = sum(12 - (1 + (matrix[t] > m0[t]).sum() + ((matrix[t] == m0[t]).sum() - 1) / 2) for t in tasks)
    assert b.loc["m0", "points"] == pytest.approx(by_hand)


def test_rank_intervals_are_percentiles_of_bootstrapped_borda_ranks() -> None:
    rng = np.random.default_rng(5)
    matrix = pd.DataFrame(rng.uniform(0, 1, (6, 9)), index=list("abcdef"))
    matrix.loc["a"] += 1  # best everywhere
    got = data.rank_intervals(matrix, n_boot=200, seed=7)
    assert (got.loc["a"] == [1, 1]).all()
    # by hand: the same draws, each resample's Borda rank via mteb's formula over repeated task columns
    counts = np.random.default_rng(7).multinomial(9, np.full(9, 1 / 9), size=200)
    ranks = np.array([_mteb_borda_rank(matrix[np.repeat(np.arange(9), c)].T.reset_index(drop=True).T) for c in counts])
    assert list(got["rank_low"]) == list(np.quantile(ranks, 0.025, axis=0, method="lower"))
    assert list(got["rank_high"]) == list(np.quantile(ranks, 0.975, axis=0, method="higher"))
    pd.testing.assert_frame_equal(got, data.rank_intervals(matrix, n_boot=200, seed=7))  # seeded


def _significance(root: Path) -> pd.DataFrame:
    res = data.load_results(root)
    return data.task_significance(data.select(res.records, data.Selection()), res.comparisons).set_index(
        ["task_id", "model"]
    )


def test_stale_or_other_revision_comparisons_are_ignored(tmp_path: Path, results_root: Path) -> None:
    assert _significance(results_root).loc[("local/sts-a", "alpha-base"), "verdict"] == "tie"
    root = shutil.copytree(results_root, tmp_path / "r")
    [path] = [p for p in (root / "_comparisons").glob("alpha-base*.json")]
    report = json.loads(path.read_text())
    for row in report["rows"]:
        if row["task_id"] == "local/sts-a":
            row["score_a"] += 0.01  # the record was rerun since: stale
        if row["task_id"] == "local/clf" and "beta-small" in (row["model_a"], row["model_b"]):
            row["score_b" if row["model_b"] == "beta-small" else "score_a"] -= 0.01
    path.write_text(json.dumps(report))
    sig = _significance(root)
    assert sig.loc[("local/sts-a", "alpha-base"), "verdict"] == "untested"
    assert sig.loc[("local/sts-a", "gamma-static"), "verdict"] == "untested"
    assert sig.loc[("local/clf", "beta-small"), "verdict"] == "untested"
    assert sig.loc[("local/clf", "gamma-static"), "verdict"] == "worse"
    report["models"] = [{**m, "revision": "v0"} if m["name"] == "alpha-base" else m for m in report["models"]]
    path.write_text(json.dumps(report))
    assert _significance(root).loc[("local/ret", "alpha-base"), "verdict"] == "untested"


def test_csv_defuses_formulas() -> None:
    table = pd.DataFrame({"model": ["=HYPERLINK(1)", "+x", "-y", "@z", "ok"], "score": [-1.5, 2.0, 3.0, 4.0, 5.0]})
    back = pd.read_csv(pd.io.common.BytesIO(data.to_csv(table)))
    assert list(back["model"]) == ["'=HYPERLINK(1)", "'+x", "'-y", "'@z", "ok"]
    assert list(back["score"]) == [-1.5, 2.0, 3.0, 4.0, 5.0]
    assert table["model"].iloc[0] == "=HYPERLINK(1)"


def test_escape_markdown() -> None:
    assert data.escape_markdown("**a**[b](c)<d>:red[e]:$x$") == r"\*\*a\*\*\[b\]\(c\)\<d\>\:red\[e\]\:\$x\$"
    assert data.escape_markdown("two\nlines  here") == "two lines here"
    assert "\\<img" in data.escape_markdown(EVIL)


def test_model_detail_reads_every_split(results_root: Path) -> None:
    records = data.load_results(results_root).records
    paths = tuple(records.loc[records["model"] == "delta-zh", "path"])
    card, table = data.model_detail(results_root, paths)
    assert dict(zip(card["field"], card["value"], strict=True))["max_tokens"] == "8192"
    ret = harness_results.TaskResult.load(results_root / "delta-zh" / "v1" / "local" / "ret.json")
    row = table[(table["task_id"] == "local/ret") & (table["split"] == "test")].iloc[0]
    assert row["score"] == pytest.approx(100 * ret.get_score("test"))
    assert row["texts_per_s"] == pytest.approx(ret.runtime["texts_encoded"] / ret.runtime["encode_s"])
    assert row["metrics"] == f"ndcg@10 {100 * ret.scores['test']['ndcg@10']:.2f}"
    assert not math.isnan(row["n_items"])


def test_runs_with_factory_options_are_models_of_their_own(tiny_data: Path, tmp_path: Path) -> None:
    import harness

    root = tmp_path / "results"
    for kwargs in ({}, {"seed": 1}):
        harness.evaluate(
            "test-random",
            ["local/retrieval"],
            results_dir=root,
            data_dir=tiny_data,
            progress=False,
            model_kwargs=kwargs,
        )
    harness.compare(["test-random@seed-0", "test-random@seed-0+seed-1"], ["local/retrieval"], results_dir=root)
    res = data.load_results(root)
    assert sorted(zip(res.records["model"], res.records["revision"], res.records["current"], strict=True)) == [
        ("test-random", "seed-0", True),
        ("test-random+seed-1", "seed-0+seed-1", True),
    ]
    (row,) = res.comparisons.to_dict("records")
    assert (row["model_a"], row["model_b"]) == ("test-random", "test-random+seed-1")
