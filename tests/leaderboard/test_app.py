"""The leaderboard page, driven by AppTest over the synthetic results folder: every tab, filter and the
compare view; each rendered number is checked against the records, read here with harness.results."""

from __future__ import annotations

import gzip
import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from harness.metrics import per_query
from harness.results import TaskResult, items_path, load_results, qrels_path, read_qrels, read_run, run_path
from leaderboard import data
from tests.leaderboard.conftest import BAD_COMPARISON, BROKEN, COMPARED_TASKS, EVIL, FUTURE, OLD_DATE

APP = str(Path(__file__).resolve().parents[2] / "leaderboard" / "app.py")
TABS = ["Overview", "Tasks", "Model", "Compare", "Plots", "Claims"]


# Expected values, from the records ================================================================


@pytest.fixture(scope="module")
def current(results_root: Path) -> dict[str, dict[str, TaskResult]]:
    """model -> task -> record of the model's newest revision (the fixture's v1)."""
    records, warnings = load_results(results_root)
    assert len(warnings) == 2  # the malformed record and the unknown schema version
    out: dict[str, dict[str, TaskResult]] = defaultdict(dict)
    for r in records:
        if r.date != OLD_DATE:
            out[r.model][r.task_id] = r
    return dict(out)


def _scores(current: dict[str, dict[str, TaskResult]], keep=lambda r: True) -> dict[str, dict[str, float]]:
    out = {m: {t: 100 * r.get_score("test") for t, r in recs.items() if keep(r)} for m, recs in current.items()}
    return {m: s for m, s in out.items() if s}


def _borda(scores: dict[str, dict[str, float]]) -> tuple[dict[str, float], dict[str, int]]:
    """MTEB's Borda count, by hand: N - (average rank) points per task, 0 without it; rank by total."""
    n = len(scores)
    points = dict.fromkeys(scores, 0.0)
    for task in {t for s in scores.values() for t in s}:
        have = {m: s[task] for m, s in scores.items() if task in s}
        for m, v in have.items():
            better = sum(x > v for x in have.values())
            tied = sum(x == v for x in have.values())
            points[m] += n - (better + (tied + 1) / 2)
    return points, {m: 1 + sum(q > p for q in points.values()) for m, p in points.items()}


def _comparison_rows(root: Path) -> list[dict[str, Any]]:
    [path] = [p for p in (root / "_comparisons").glob("*.json") if p.name != Path(BAD_COMPARISON).name]
    return json.loads(path.read_text())["rows"]


# The app ==========================================================================================


@pytest.fixture
def app(results_root: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("ZOOBENCH_RESULTS", str(results_root))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def _tab(at: AppTest, label: str):
    tabs = {t.label: t for t in at.tabs}
    assert list(tabs) == TABS
    return tabs[label]


def _frame(at: AppTest, label: str, index: int = 0) -> pd.DataFrame:
    return _tab(at, label).dataframe[index].value


def _chart_data(chart) -> pd.DataFrame:
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    return convert_arrow_bytes_to_pandas_df(chart.proto.datasets[0].data.data)


def _check_overview(table: pd.DataFrame, current: dict[str, dict[str, TaskResult]], keep=lambda r: True) -> None:
    scores = _scores(current, keep)
    points, ranks = _borda(scores)
    tasks = {t for s in scores.values() for t in s}
    assert set(table["model"]) == set(scores)
    assert list(table["rank"]) == sorted(table["rank"])
    for row in table.to_dict("records"):
        m, s = row["model"], scores[row["model"]]
        recs = [r for r in current[m].values() if keep(r)]
        assert row["tasks"] == len(s)
        assert row["borda"] == pytest.approx(points[m]) and row["rank"] == ranks[m]
        assert row["rank_low"] <= row["rank_high"]
        if set(s) == tasks:
            assert row["mean"] == pytest.approx(np.mean(list(s.values())))
        else:
            assert math.isnan(row["mean"])
        for task_type in {r.task_type for r in recs}:
            of_type = {
                r.task_id for rs in current.values() for r in rs.values() if keep(r) and r.task_type == task_type
            }
            mine = [100 * r.get_score() for r in recs if r.task_type == task_type]
            expected = np.mean(mine) if len(mine) == len(of_type) else math.nan
            assert row[f"mean {task_type}"] == pytest.approx(expected, nan_ok=True)
        card = next(iter(current[m].values())).model_card
        assert row["params_m"] == pytest.approx(card["params"] / 1e6 if card["params"] else math.nan, nan_ok=True)
        assert row["embed_dim"] == pytest.approx(card["embed_dim"] or math.nan, nan_ok=True)
        assert row["max_tokens"] == pytest.approx(card["max_tokens"] or math.nan, nan_ok=True)
        assert row["family"] == card["family"]
        timed = [r.runtime for r in recs if r.runtime.get("encode_s")]
        tps = sum(t["texts_encoded"] for t in timed) / sum(t["encode_s"] for t in timed) if timed else math.nan
        assert row["texts_per_s"] == pytest.approx(tps, nan_ok=True)


def test_overview_equals_the_records(app: AppTest, current: dict) -> None:
    assert app.title[0].value == "zoobench leaderboard"
    table = _frame(app, "Overview")
    _check_overview(table, current)
    alpha = table.set_index("model").loc["alpha-base"]
    assert alpha["mean sts"] == pytest.approx(  # the v1 records: the older v0 revision is not shown
        50 * (current["alpha-base"]["local/sts-a"].get_score() + current["alpha-base"]["local/sts-zh"].get_score())
    )
    assert table["model"].iloc[0] == "alpha-base" and table["tasks"].iloc[0] == 6
    [button] = _tab(app, "Overview").get("download_button")
    assert button.proto.label == "Download CSV"
    back = pd.read_csv(pd.io.common.BytesIO(data.to_csv(table)))
    pd.testing.assert_frame_equal(back[["rank", "tasks", "mean"]], table[["rank", "tasks", "mean"]], check_dtype=False)


def test_bad_files_are_skipped_with_a_warning_naming_them(app: AppTest) -> None:
    shown = [w.value for w in app.warning]
    assert len(shown) == 3
    for rel, why in ((BROKEN, "unreadable JSON"), (FUTURE, "unknown result schema version 99"), (BAD_COMPARISON, "")):
        assert any(data.escape_markdown(rel) in w and data.escape_markdown(why) in w for w in shown), rel
    assert len(_frame(app, "Overview")) == 6  # everything else renders


@pytest.mark.parametrize(
    ("widget", "value", "keep"),
    [
        ("types", ["sts"], lambda r: r.task_type == "sts"),
        ("types", ["retrieval", "classification"], lambda r: r.task_type in ("retrieval", "classification")),
        ("languages", ["zh"], lambda r: "zh" in r.languages),
        ("families", ["gte"], lambda r: r.model_card["family"] == "gte"),
    ],
)
def test_filters(app: AppTest, current: dict, widget: str, value: list[str], keep) -> None:
    app.multiselect(key=widget).set_value(value).run()
    assert not app.exception
    _check_overview(_frame(app, "Overview"), current, keep)
    shown_tasks = set(_frame(app, "Tasks").columns) - {"model"}
    assert shown_tasks == {r.task_id for recs in current.values() for r in recs.values() if keep(r)}


def test_size_filter(app: AppTest, current: dict) -> None:
    app.slider(key="size").set_range(20.0, 120.0).run()
    assert set(_frame(app, "Overview")["model"]) == {"alpha-base", "beta-small", EVIL, "bm25-like"}  # + unknown
    app.checkbox(key="unknown_size").uncheck().run()

    def sized(r: TaskResult) -> bool:
        return r.model_card["params"] is not None and 20e6 <= r.model_card["params"] <= 120e6

    _check_overview(_frame(app, "Overview"), current, sized)


def test_tasks_tab_scores_and_significance(app: AppTest, current: dict, results_root: Path) -> None:
    scores = _scores(current)
    matrix = _frame(app, "Tasks").set_index("model")
    assert list(matrix.index) == list(_frame(app, "Overview")["model"])  # in overview order
    for m, s in scores.items():
        for t in matrix.columns:
            assert matrix.loc[m, t] == pytest.approx(s.get(t, math.nan), nan_ok=True)

    app.radio(key="granularity").set_value("task type").run()
    by_type = _frame(app, "Tasks").set_index("model")
    assert by_type.loc["alpha-base", "classification"] == pytest.approx(scores["alpha-base"]["local/clf"])
    assert math.isnan(by_type.loc["beta-small", "sts"])  # beta-small lacks local/sts-zh

    # Expected verdicts straight from the comparison file: best vs every other model.
    rows = _comparison_rows(results_root)
    best_sets = _frame(app, "Tasks", 1).set_index("task_id")
    for task in sorted({t for s in scores.values() for t in s}):
        have = {m: s[task] for m, s in scores.items() if task in s}
        best = max(have, key=have.get)
        verdict = {}
        for m in have:
            row = next((r for r in rows if r["task_id"] == task and {r["model_a"], r["model_b"]} == {m, best}), None)
            if m != best:
                verdict[m] = "untested" if row is None else "worse" if row["significant"] else "tie"
        assert best_sets.loc[task, "best"] == best
        for key, column in (("tie", "not significantly worse"), ("worse", "significantly worse")):
            listed = set(filter(None, best_sets.loc[task, column].split(", ")))
            assert listed == {m for m, v in verdict.items() if v == key}, (task, key)
    # local/sts-a: beta-small is best, alpha-base not significantly worse, gamma-static significantly worse
    assert best_sets.loc["local/sts-a", "best"] == "beta-small"
    assert best_sets.loc["local/sts-a", "not significantly worse"] == "alpha-base"
    assert best_sets.loc["local/sts-a", "significantly worse"] == "gamma-static"

    app.selectbox(key="task").select("local/sts-a").run()
    detail = _frame(app, "Tasks", 2).set_index("model")
    row = next(
        r
        for r in rows
        if r["task_id"] == "local/sts-a" and {r["model_a"], r["model_b"]} == {"alpha-base", "beta-small"}
    )
    assert detail.loc["alpha-base", "verdict"] == data.VERDICTS["tie"]
    assert detail.loc["alpha-base", "p_adjusted"] == pytest.approx(row["p_adjusted"])
    sign = 1 if row["model_b"] == "beta-small" else -1  # stored as B - A; shown as alpha - best
    assert detail.loc["alpha-base", "delta"] == pytest.approx(-100 * sign * row["delta"])
    assert detail.loc[EVIL, "verdict"] == data.VERDICTS["untested"]
    assert detail.loc["beta-small", "verdict"] == data.VERDICTS["best"]
    [chart] = _tab(app, "Tasks").get("vega_lite_chart")
    bars = _chart_data(chart).set_index("model")["score"]
    assert bars.to_dict() == pytest.approx({m: s["local/sts-a"] for m, s in scores.items() if "local/sts-a" in s})


def test_model_tab_shows_the_card_and_every_result(app: AppTest, results_root: Path) -> None:
    app.selectbox(key="model").select("alpha-base").run()
    tab = _tab(app, "Model")
    assert tab.subheader[0].value == data.escape_markdown("alpha-base")
    card = tab.dataframe[0].value.set_index("field")["value"]
    assert card["family"] == "gte" and card["source"] == "hf:org/alpha-base" and card["upstream"] == "org/alpha-base"
    assert card["prompts"] == 'query: "query: "; document: "passage: "'
    assert card["pooling"] == "mean" and card["training_data"] == "msmarco, nq" and card["params"] == "110000000"
    results = tab.dataframe[1].value
    assert len(results) == 7  # six tasks at v1 + local/sts-a at v0
    old = TaskResult.load(results_root / "alpha-base" / "v0" / "local" / "sts-a.json")
    v0 = results[results["revision"] == "v0"].iloc[0]
    assert v0["score"] == pytest.approx(100 * old.get_score()) and v0["date"] == OLD_DATE
    assert results["revision"].iloc[0] == "v1"  # newest first

    app.selectbox(key="model").select("delta-zh").run()
    results = _tab(app, "Model").dataframe[1].value
    assert sorted(results["split"]) == ["dev", "dev", "test", "test"]  # every split of its two records
    rec = TaskResult.load(results_root / "delta-zh" / "v1" / "local" / "ret.json")
    dev = results[(results["task_id"] == "local/ret") & (results["split"] == "dev")].iloc[0]
    assert dev["score"] == pytest.approx(100 * rec.scores["dev"]["main_score"])


def _units(root: Path, rec: TaskResult) -> np.ndarray:
    """Per-unit values computed here independently: ranx per query, or straight from the items."""
    if run_path(root, rec.model, rec.revision, rec.task_id, "test").exists():
        qrels = read_qrels(qrels_path(root, rec.model, rec.revision, rec.task_id, "test"))
        run = read_run(run_path(root, rec.model, rec.revision, rec.task_id, "test"))
        values = per_query(qrels, run, rec.main_score)
        return np.array([values[q] for q in sorted(values)])
    items = json.loads(gzip.decompress(items_path(root, rec.model, rec.revision, rec.task_id, "test").read_bytes()))
    return np.asarray(items["correct"] if "correct" in items else items["v_measures"])


def test_compare_tab(app: AppTest, current: dict, results_root: Path) -> None:
    rows = _comparison_rows(results_root)
    for a, b in (("alpha-base", "gamma-static"), ("gamma-static", "alpha-base")):
        app.selectbox(key="model_a").select(a).run()
        app.selectbox(key="model_b").select(b).run()
        assert not app.exception
        table = _frame(app, "Compare").set_index("task_id")
        common = sorted(set(current[a]) & set(current[b]))
        assert list(table.index) == common
        for task in common:
            sa, sb = 100 * current[a][task].get_score(), 100 * current[b][task].get_score()
            got = table.loc[task]
            assert (got["score_a"], got["score_b"], got["delta"]) == pytest.approx((sa, sb, sb - sa))
            row = next((r for r in rows if r["task_id"] == task and {r["model_a"], r["model_b"]} == {a, b}), None)
            if row is None:
                assert task not in COMPARED_TASKS and math.isnan(got["p_value"]) and got["comparison"] == ""
                continue
            flip = row["model_a"] != a
            lo, hi = (-row["ci_high"], -row["ci_low"]) if flip else (row["ci_low"], row["ci_high"])
            assert (got["ci_low"], got["ci_high"]) == pytest.approx((100 * lo, 100 * hi))
            assert (got["p_value"], got["p_adjusted"]) == pytest.approx((row["p_value"], row["p_adjusted"]))
            assert got["winner"] == row["winner"]

    wins = _frame(app, "Compare", 1).set_index("task_id")  # A = gamma-static, B = alpha-base
    for task in ("local/clf", "local/clu", "local/ret"):
        ua = _units(results_root, current["gamma-static"][task])
        ub = _units(results_root, current["alpha-base"][task])
        got = wins.loc[task]
        assert (got["a_better"], got["ties"], got["b_better"]) == (
            int((ua > ub).sum()),
            int((ua == ub).sum()),
            int((ub > ua).sum()),
        ), task
        assert got["mean_a"] == pytest.approx(100 * current["gamma-static"][task].get_score())
    assert wins.loc["local/ret", "n"] == 40 and wins.loc["local/pairs", "unit"] == "positive pair"
    assert (wins["note"] == "").all()

    app.selectbox(key="scatter_task").select("local/ret").run()
    [chart] = _tab(app, "Compare").get("vega_lite_chart")
    points = _chart_data(chart)
    assert len(points) == 40
    assert points.sort_values("id")["a"].to_numpy() == pytest.approx(
        _units(results_root, current["gamma-static"]["local/ret"])
    )


def test_plots_tab(app: AppTest, current: dict) -> None:
    scores = _scores(current)
    tasks = {t for s in scores.values() for t in s}
    complete = {m: np.mean(list(s.values())) for m, s in scores.items() if set(s) == tasks}
    params, throughput = _tab(app, "Plots").get("vega_lite_chart")
    by_params = _chart_data(params).set_index("model")
    assert by_params["mean"].to_dict() == pytest.approx(complete)
    for m in complete:
        assert by_params.loc[m, "params_m"] == pytest.approx(current[m]["local/clf"].model_card["params"] / 1e6)
    assert set(_chart_data(throughput)["model"]) == set(complete)


def _markdown_protos(node) -> list:
    """Every element of the page whose proto can carry HTML (markdown, captions, alerts, headings)."""
    out = []
    proto = getattr(node, "proto", None)
    if proto is not None and any(f.name == "allow_html" for f in proto.DESCRIPTOR.fields):
        out.append(proto)
    for child in getattr(node, "children", {}).values():
        out.extend(_markdown_protos(child))
    return out


def test_untrusted_text_is_escaped(app: AppTest) -> None:
    app.selectbox(key="model").select(EVIL).run()
    tab = _tab(app, "Model")
    assert tab.subheader[0].value == data.escape_markdown(EVIL)
    assert "\\<img" in tab.subheader[0].value and "\\[click\\]" in tab.subheader[0].value
    card = tab.dataframe[0].value.set_index("field")["value"]  # a table cell: shown as plain text
    assert card["prompts"] == 'query: "<script>alert(1)</script>"' and card["family"] == "<b>fam</b>"
    protos = _markdown_protos(app._tree)
    assert protos and not any(p.allow_html for p in protos)
    for p in protos:
        body = getattr(p, "body", "")
        assert "<img" not in body.replace("\\<img", ""), body


def test_a_hostile_task_type_is_escaped_in_column_tooltips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Column tooltips (``help=``) render Markdown: a task type from a record reaches them escaped."""
    for model, score in (("a", 0.5), ("b", 0.6)):
        TaskResult(
            model=model,
            revision="r",
            task_id="local/x",
            task_type=EVIL,
            main_score="accuracy",
            scores={"test": {"accuracy": score, "main_score": score}},
            n_items={"test": 3},
            data_checksum="sha256:x",
            code_revision="test",
            command="pytest",
            runtime={"total_s": 1.0},
            hardware={},
            date=OLD_DATE,
            model_card={"name": model, "family": "f"},
        ).save(tmp_path)
    monkeypatch.setenv("ZOOBENCH_RESULTS", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    tooltips = [c["help"] for frame in at.dataframe for c in json.loads(frame.proto.columns).values() if "help" in c]
    assert f"mean {data.escape_markdown(EVIL)} tasks" in tooltips
    assert not [t for t in tooltips if re.search(r"(?<!\\)[<\[*]", t)], tooltips


# Claims ===========================================================================================


def test_claims_tab_shows_the_stored_verdicts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.claims import claims_path
    from harness.cli import main
    from tests.harness.test_claims import toy_claims, toy_results

    root = toy_results(tmp_path / "results")
    monkeypatch.setenv("ZOOBENCH_RESULTS", str(root))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any("No stored claim verdicts" in i.value for i in _tab(at, "Claims").info)
    assert main(["claims", "--claims", str(toy_claims(tmp_path)), "--results", str(root)]) == 0
    stored = json.loads(claims_path(root).read_text())["claims"]
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    shown = _tab(at, "Claims").dataframe[0].value.set_index("claim")
    assert shown.loc["toy/better", "verdict"] == "held" and shown.loc["toy/worse", "verdict"] == "not held"
    assert shown.loc["toy/tie", "verdict"] == "inconclusive" and shown.loc["toy/missing", "verdict"] == "missing"
    assert "zoobench run --model absent" in shown.loc["toy/missing", "note"]
    for r in stored:
        for t in r["tasks"]:
            row = shown.loc[r["claim"]["id"]]
            assert row["delta"] == pytest.approx(100 * t["delta"])
            assert row["p_adjusted"] == pytest.approx(t["p_adjusted"])
            assert row["score_b"] == pytest.approx(100 * t["score_b"]) and row["task_verdict"] == t["verdict"]
    assert len(load_results(root)[1]) == 0  # the stored verdicts are not read as records
