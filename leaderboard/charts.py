"""The leaderboard's figures: pure builders of Altair (Vega-Lite) charts from the tables of ``data.py``.

Every builder takes a table and returns a chart; ``app.py`` shows it with ``st.altair_chart``. Text from
the records (model names, families) only reaches Vega-Lite as data, which it renders as text.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from leaderboard.data import VERDICTS

__all__ = ["score_vs_params", "score_vs_throughput", "task_bars", "unit_scatter"]

_HEIGHT = 360


def _score_scatter(table: pd.DataFrame, x: str, x_title: str) -> alt.Chart:
    """Mean score against a positive quantity on a log axis, one point per model, coloured by family."""
    points = table.loc[table["mean"].notna() & (table[x] > 0), ["model", "family", "mean", x]]
    return (
        alt.Chart(points, height=_HEIGHT)
        .mark_circle(size=90, opacity=0.85)
        .encode(
            x=alt.X(f"{x}:Q", title=x_title, scale=alt.Scale(type="log")),
            y=alt.Y("mean:Q", title="mean score (x100)", scale=alt.Scale(zero=False)),
            color=alt.Color("family:N", title="family"),
            tooltip=[
                alt.Tooltip("model:N"),
                alt.Tooltip("family:N"),
                alt.Tooltip("mean:Q", format=".2f"),
                alt.Tooltip(f"{x}:Q", title=x_title, format=",.3~f"),
            ],
        )
    )


def score_vs_params(overview: pd.DataFrame) -> alt.Chart:
    """Mean score vs parameters (millions, log scale) of the models with every shown task and a known size."""
    return _score_scatter(overview, "params_m", "parameters (millions)")


def score_vs_throughput(overview: pd.DataFrame) -> alt.Chart:
    """Mean score vs encoding throughput (texts per second, log scale) of the models with every shown task."""
    return _score_scatter(overview, "texts_per_s", "texts encoded per second")


def task_bars(significance: pd.DataFrame) -> alt.Chart:
    """One task's scores as bars, best first, coloured by the significance verdict against the best model.

    Args:
        significance: the rows of one task from :func:`leaderboard.data.task_significance`.
    """
    bars = significance.assign(significance=significance["verdict"].map(VERDICTS))
    order = list(bars.sort_values("score", ascending=False)["model"])
    return (
        alt.Chart(bars[["model", "score", "significance", "p_adjusted"]], height=max(120, 26 * len(bars)))
        .mark_bar()
        .encode(
            y=alt.Y("model:N", sort=order, title=None),
            x=alt.X("score:Q", title="score (x100)"),
            color=alt.Color(
                "significance:N",
                scale=alt.Scale(domain=list(VERDICTS.values()), range=["#1f77b4", "#6baed6", "#d62728", "#bdbdbd"]),
                title="vs the best",
            ),
            tooltip=[
                alt.Tooltip("model:N"),
                alt.Tooltip("score:Q", format=".2f"),
                alt.Tooltip("significance:N"),
                alt.Tooltip("p_adjusted:Q", title="adjusted p", format=".2g"),
            ],
        )
    )


def unit_scatter(paired: pd.DataFrame, unit: str, label_a: str, label_b: str) -> alt.LayerChart:
    """Per-unit values of model B against model A, with the diagonal where they tie.

    Args:
        paired: ``id, a, b`` from :func:`leaderboard.units.paired_units`.
        unit: what a point is ("query", "item", ...), for the tooltip.
        label_a: model A's name, for the axis title.
        label_b: model B's name, for the axis title.
    """
    points = paired.assign(better=(paired["b"] - paired["a"]).map(lambda d: "B" if d > 0 else "A" if d < 0 else "tie"))
    lo, hi = float(min(points["a"].min(), points["b"].min())), float(max(points["a"].max(), points["b"].max()))
    scatter = (
        alt.Chart(points, height=_HEIGHT)
        .mark_circle(size=30, opacity=0.6)
        .encode(
            x=alt.X("a:Q", title=f"A: {label_a}"),
            y=alt.Y("b:Q", title=f"B: {label_b}"),
            color=alt.Color(
                "better:N", scale=alt.Scale(domain=["A", "tie", "B"], range=["#d62728", "#969696", "#2ca02c"])
            ),
            tooltip=[
                alt.Tooltip("id:N", title=unit),
                alt.Tooltip("a:Q", title="A", format=".4f"),
                alt.Tooltip("b:Q", title="B", format=".4f"),
            ],
        )
    )
    ends = pd.DataFrame({"a": [lo, hi], "b": [lo, hi]})
    diagonal = alt.Chart(ends).mark_line(color="#636363").encode(x="a:Q", y="b:Q")
    return scatter + diagonal
