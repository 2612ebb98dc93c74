"""The zoobench leaderboard: a Streamlit page over a results folder. Layout only.

    zoobench leaderboard [--results DIR] [--port P]
    streamlit run leaderboard/app.py -- --results DIR        # or $ZOOBENCH_RESULTS, else ./results

The page reads result records and stored comparisons, nothing else: ``data.py`` and ``units.py`` shape
them, ``charts.py`` draws them, each cached here with ``st.cache_data``. Text from the records reaches
Markdown (captions, headings, alerts, column tooltips) only through ``data.escape_markdown``; tables, column
labels and charts show it as plain text.
"""

from __future__ import annotations

import math
import os
import sys

import pandas as pd
import streamlit as st

from leaderboard import charts, data, units

# Cached at the call site. Loaders take the folder's signature, so a changed file means a fresh read.
load_results = st.cache_data(show_spinner="Reading result records")(data.load_results)
build_overview = st.cache_data(show_spinner=False)(data.overview)
task_significance = st.cache_data(show_spinner=False)(data.task_significance)
model_detail = st.cache_data(show_spinner=False)(data.model_detail)
unit_comparison = st.cache_data(show_spinner="Reading run and item files")(units.unit_comparison)
paired_scores = st.cache_data(show_spinner=False)(units.paired_scores)

MAX_WARNINGS = 10  # skipped files shown one by one; the rest are listed in an expander
METHODS = (
    "Scores are main scores x100 on each task's test split; each model shows its newest revision. "
    "**Rank** is MTEB's Borda rank: on each task a model gets (number of models - its rank) points, "
    "0 without the task. **Rank interval**: 2.5th-97.5th percentile of the Borda rank over 1,000 bootstrap "
    "resamples of the shown tasks (seed 0). **Mean** (overall and per task type) only for models with all "
    "of those tasks. **Texts/s**: texts encoded per second of encoding, over the shown tasks."
)
SIGNIFICANCE = (
    "From stored comparisons (`zoobench compare`) of the best model with each other model, when their "
    "models, revisions and scores match the records; the verdict is the comparison's own (adjusted p "
    "against its alpha). The models not significantly worse than the best are the best and those marked "
    "≈. Nothing is computed here: run `zoobench compare` to test more pairs."
)
SCORE = st.column_config.NumberColumn(format="%.2f")


def _score_columns(columns: list[str]) -> dict[str, st.column_config.NumberColumn]:
    return {c: SCORE for c in columns}


def _height(table: pd.DataFrame) -> int:
    """Pixels that show every row (up to 20) without a vertical scrollbar."""
    return 35 * (min(len(table), 20) + 1) + 12


def warnings_ui(warnings: tuple[str, ...]) -> None:
    for w in warnings[:MAX_WARNINGS]:
        st.warning(data.escape_markdown(f"Skipped {w}"), icon="⚠️")
    if len(warnings) > MAX_WARNINGS:
        with st.expander(f"{len(warnings) - MAX_WARNINGS} more skipped files"):
            st.text("\n".join(warnings[MAX_WARNINGS:]))


def sidebar_ui(results: data.Results) -> data.Selection:
    """The filters; returns the selection."""
    options = data.filter_options(results.records)
    with st.sidebar:
        st.header("Filters")
        st.caption(f"Results: {data.escape_markdown(os.path.abspath(results.root))}")
        types = st.multiselect("Task types", options["task_types"], default=options["task_types"], key="types")
        languages = st.multiselect("Languages", options["languages"], default=options["languages"], key="languages")
        families = st.multiselect("Families", options["families"], default=options["families"], key="families")
        size = None
        if options["params"]:
            low = math.floor(options["params"][0] / 1e5) / 10
            high = math.ceil(options["params"][-1] / 1e5) / 10
            if low < high:
                picked = st.slider("Size (millions of parameters)", low, high, (low, high), step=0.1, key="size")
                size = (picked[0] * 1e6, picked[1] * 1e6)
        unknown = st.checkbox("Include models of unknown size", value=True, key="unknown_size")
    return data.Selection(tuple(types), tuple(languages), tuple(families), size, unknown)


def overview_ui(table: pd.DataFrame) -> None:
    st.caption(METHODS)
    config = {
        "rank": st.column_config.NumberColumn("rank", help="Borda rank (MTEB)"),
        "rank_low": st.column_config.NumberColumn("rank ≥", help="2.5th percentile of the bootstrap rank"),
        "rank_high": st.column_config.NumberColumn("rank ≤", help="97.5th percentile of the bootstrap rank"),
        "borda": st.column_config.NumberColumn("Borda points", format="%.1f"),
        "params_m": st.column_config.NumberColumn("params (M)", format="%.1f"),
        "embed_dim": st.column_config.NumberColumn("dim", format="%d"),
        "max_tokens": st.column_config.NumberColumn("max tokens", format="%d"),
        "texts_per_s": st.column_config.NumberColumn("texts/s", format="%.0f"),
        "mean": SCORE,
        **{
            c: st.column_config.NumberColumn(
                c.removeprefix(data.TYPE_PREFIX), format="%.2f", help=data.escape_markdown(f"{c} tasks")
            )
            for c in table.columns
            if c.startswith(data.TYPE_PREFIX)
        },
    }
    st.dataframe(table, hide_index=True, column_config=config, height=_height(table), key="overview_table")
    st.download_button("Download CSV", data.to_csv(table), "zoobench-leaderboard.csv", "text/csv", key="csv_overview")


def tasks_ui(records: pd.DataFrame, comparisons: pd.DataFrame, order: list[str]) -> None:
    by = st.radio("Scores by", ["task", "task type"], horizontal=True, key="granularity")
    matrix = data.score_matrix(records) if by == "task" else data.type_matrix(records)
    matrix = matrix.reindex(order).reset_index()
    st.dataframe(matrix, hide_index=True, column_config=_score_columns(list(matrix.columns[1:])), key="matrix")
    st.download_button("Download CSV", data.to_csv(matrix), f"zoobench-by-{by.replace(' ', '-')}.csv", key="csv_tasks")

    st.subheader("Significance per task")
    st.caption(SIGNIFICANCE)
    significance = task_significance(records, comparisons)
    st.dataframe(data.best_sets(significance), hide_index=True, key="best_sets")
    task = st.selectbox("Task", sorted(records["task_id"].unique()), key="task")
    one = significance[significance["task_id"] == task]
    shown = one.assign(verdict=one["verdict"].map(data.VERDICTS)).drop(columns=["task_id", "task_type"])
    config = _score_columns(["score", "delta", "ci_low", "ci_high"])
    config.update(
        verdict=st.column_config.TextColumn("vs the best"),
        delta=st.column_config.NumberColumn("Δ vs best", format="%+.2f"),
        p_value=st.column_config.NumberColumn("p", format="%.2g"),
        p_adjusted=st.column_config.NumberColumn("p adjusted", format="%.2g"),
    )
    st.dataframe(shown, hide_index=True, column_config=config, key="task_detail")
    st.altair_chart(charts.task_bars(one), width="stretch")


def model_ui(results: data.Results, order: list[str], signature: str) -> None:
    name = st.selectbox("Model", order, key="model")
    mine = results.records[results.records["model"] == name]
    mine = mine.sort_values(["current", "date", "task_id"], ascending=[False, False, True])
    card, table = model_detail(results.root, tuple(mine["path"]), signature)
    st.subheader(data.escape_markdown(name))
    st.dataframe(card, hide_index=True, key="card")
    st.caption("All its results (every revision and split):")
    config = _score_columns(["score"])
    config.update(texts_per_s=st.column_config.NumberColumn("texts/s", format="%.0f"))
    st.dataframe(table, hide_index=True, column_config=config, key="model_results")


def compare_ui(results: data.Results, records: pd.DataFrame, order: list[str], signature: str) -> None:
    if len(order) < 2:
        st.info("Comparing needs two models in the selection.")
        return
    left, right = st.columns(2)
    a = left.selectbox("Model A", order, index=0, key="model_a")
    b = right.selectbox("Model B", order, index=1, key="model_b")
    if a == b:
        st.info("Pick two different models.")
        return
    st.caption("Δ = B − A (x100). CI, p and winner come from stored comparisons (`zoobench compare`), if any.")
    table = data.compare_models(records, results.comparisons, a, b)
    config = _score_columns(["score_a", "score_b", "ci_low", "ci_high"])
    config.update(
        score_a=st.column_config.NumberColumn("A", format="%.2f"),
        score_b=st.column_config.NumberColumn("B", format="%.2f"),
        delta=st.column_config.NumberColumn("Δ (B−A)", format="%+.2f"),
        p_value=st.column_config.NumberColumn("p", format="%.2g"),
        p_adjusted=st.column_config.NumberColumn("p adjusted", format="%.2g"),
    )
    st.dataframe(table, hide_index=True, column_config=config, key="compare_table")

    st.subheader("Per query and per item")
    st.caption("Wins, ties and losses over the queries or items both models were scored on (stored runs and items).")
    wins = unit_comparison(results.root, records, a, b, signature)
    st.dataframe(wins, hide_index=True, column_config=_score_columns(["mean_a", "mean_b"]), key="wins")
    available = wins.loc[wins["n"] > 0, "task_id"].tolist()
    if not available:
        return
    task = st.selectbox("Scatter of task", available, key="scatter_task")
    pick = records[records["task_id"] == task].set_index("model")
    paired = paired_scores(results.root, pick.loc[a].to_dict(), pick.loc[b].to_dict(), signature)
    st.altair_chart(charts.unit_scatter(paired.frame, paired.unit, a, b), width="stretch")


CLAIMS = (
    "Each paper's central claims (`claims/*.toml`) as comparisons of two models, checked by `zoobench claims` from "
    "the stored records and shown here as it stored them: **held** when B beats A significantly (Holm across the "
    "claim's tasks), or for a not-worse claim when B - A's interval stays above -margin; **not held** when the "
    "opposite is significant; else **inconclusive**; **missing** when a record is absent (the note says how to make "
    "it). Scores x100."
)


def claims_ui(root: str) -> None:
    claims = data.load_claims(root)
    if claims.warning:
        st.warning(data.escape_markdown(claims.warning), icon="⚠️")
    if claims.table.empty:
        st.info("No stored claim verdicts: run `zoobench claims --results <this folder>`.")
        return
    st.caption(CLAIMS + f" Checked {data.escape_markdown(claims.checked)}.")
    config = _score_columns(["score_a", "score_b", "ci_low", "ci_high"])
    config.update(
        a=st.column_config.TextColumn("A"),
        b=st.column_config.TextColumn("B"),
        score_a=st.column_config.NumberColumn("A score", format="%.2f"),
        score_b=st.column_config.NumberColumn("B score", format="%.2f"),
        delta=st.column_config.NumberColumn("Δ (B−A)", format="%+.2f"),
        p_adjusted=st.column_config.NumberColumn("p adjusted", format="%.2g"),
        task_verdict=st.column_config.TextColumn("on this task"),
    )
    st.dataframe(claims.table, hide_index=True, column_config=config, key="claims_table")


def plots_ui(table: pd.DataFrame) -> None:
    st.caption("Models with every shown task (a mean score); sizes and throughputs on log axes.")
    st.subheader("Score vs size")
    st.altair_chart(charts.score_vs_params(table), width="stretch")
    st.subheader("Score vs throughput")
    st.altair_chart(charts.score_vs_throughput(table), width="stretch")


def main() -> None:
    st.set_page_config(page_title="zoobench leaderboard", layout="wide")
    st.title("zoobench leaderboard")
    root = data.results_dir(sys.argv[1:], os.environ)
    signature = data.signature(root)
    results = load_results(root, signature)
    warnings_ui(results.warnings)
    if results.records.empty:
        st.info(f"No result records in {data.escape_markdown(os.path.abspath(root))}.")
        return
    selection = sidebar_ui(results)
    records = data.select(results.records, selection)
    if records.empty:
        st.info("No results match the filters.")
        return
    table = build_overview(records)
    order = table["model"].tolist()

    tabs = st.tabs(["Overview", "Tasks", "Model", "Compare", "Plots", "Claims"])
    overview, tasks, model, compare, plots, claims = tabs
    with overview:
        overview_ui(table)
    with tasks:
        tasks_ui(records, results.comparisons, order)
    with model:
        model_ui(results, order, signature)
    with compare:
        compare_ui(results, records, order, signature)
    with plots:
        plots_ui(table)
    with claims:
        claims_ui(results.root)


if __name__ == "__main__":
    main()
