"""Papers' central claims as data, checked from the stored records alone (``zoobench claims``; no model runs).

A claims file, ``claims/<paper>.toml``, names one paper and lists what it claims, each claim as a comparison of
two models on some tasks::

    paper = "Towards General Text Embeddings with Multi-stage Contrastive Learning"
    cite = "Li et al. (2023), arXiv:2308.03281"

    [[claims]]
    id = "gte-two-stage-in-domain"
    says = "Contrastive fine-tuning on the target domain's labelled pairs improves retrieval there."
    a = "minilm-l6.st"                 # the reference; model specs as `zoobench compare` takes them:
    b = "gte-minilm-l6.two-stage"      # name, name@revision, name+options (e.g. mgte-tiny.mlm+mode-sparse)
    tasks = ["local/scifact"]
    expect = "better"                  # B better than A; or "not-worse" with a margin in points (x100)
    make = ["zoobench train --recipe gte/minilm-two-stage"]   # optional: what makes B before it runs
                                       # (a `zoobench run --model X ...` here replaces the generated one for X)

Verdicts, per task split and then per claim (``alpha`` 0.05 unless the claim sets it):

- ``better``: *held* when B is significantly better after Holm's correction across the claim's tasks
  (``harness.significance.compare``: paired t-test over queries for ranked lists, paired bootstrap for items);
  *not held* when A is significantly better; else *inconclusive*.
- ``not-worse``: *held* when the whole confidence interval of B - A (oriented so that positive means B is
  better; level 1 - alpha/k over k task splits, Bonferroni) lies above -margin; *not held* when it lies below
  -margin; else *inconclusive*.
- A claim is *not held* when any task is, *held* when every task is, else *inconclusive*; *missing* when a record
  is absent (the commands that make it are given), *untestable* when the records cannot be compared (the reason).

``zoobench claims`` stores the verdicts at ``<results>/_claims/claims.json`` (:func:`save_claims`), which the
leaderboard's Claims tab shows: checking every claim runs thousands of resamples, too slow for a page view.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import os
import tomllib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.results import CLAIMS_DIR, atomic_write
from harness.significance import compare, find_records
from zoo.errors import ZooError

__all__ = [
    "Claim",
    "TaskVerdict",
    "ClaimResult",
    "load_claims",
    "check_claims",
    "save_claims",
    "claims_path",
    "to_markdown",
    "to_json",
    "VERDICTS",
]

VERDICTS = ("held", "not held", "inconclusive", "missing", "untestable")
_EXPECT = ("better", "not-worse")
_KEYS = {"id", "says", "a", "b", "tasks", "expect", "margin", "metric", "alpha", "make"}


@dataclass(frozen=True)
class Claim:
    """One claim of a paper (the keys of a ``[[claims]]`` table; see the module docstring)."""

    file: str
    paper: str
    cite: str
    id: str
    says: str
    a: str
    b: str
    tasks: tuple[str, ...]
    expect: str = "better"
    margin: float = 0.0
    metric: str | None = None
    alpha: float = 0.05
    make: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskVerdict:
    """A claim on one task split: the scores (x1 as stored), B - A with its interval, the adjusted p."""

    task: str
    split: str
    metric: str
    score_a: float
    score_b: float
    delta: float
    ci_low: float
    ci_high: float
    p_adjusted: float
    verdict: str


@dataclass(frozen=True)
class ClaimResult:
    """A claim's verdict with its per-task rows, or why it has none (``reason``, ``commands``)."""

    claim: Claim
    verdict: str
    tasks: tuple[TaskVerdict, ...] = ()
    reason: str = ""
    commands: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        d = asdict(self)
        d["claim"]["tasks"] = list(self.claim.tasks)
        d["claim"]["make"] = list(self.claim.make)
        d["tasks"] = [asdict(t) for t in self.tasks]
        d["commands"] = list(self.commands)
        return d


# LOADING ==========================================================================================


def _fail(path: Path, where: str, problem: str) -> ZooError:
    return ZooError(f"{path}: {where}: {problem}")


def _claim(path: Path, paper: str, cite: str, i: int, t: Any) -> Claim:
    where = f"claims[{i}]"
    if not isinstance(t, dict):
        raise _fail(path, where, "expected a table")
    unknown = sorted(set(t) - _KEYS)
    if unknown:
        raise _fail(path, where, f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    for key in ("id", "says", "a", "b"):
        if not isinstance(t.get(key), str) or not t[key].strip():
            raise _fail(path, where, f"{key!r} must be a non-empty string")
    where = f"claim {t['id']!r}"
    tasks, make = t.get("tasks"), t.get("make", [])
    if not (isinstance(tasks, list) and tasks and all(isinstance(x, str) and x for x in tasks)):
        raise _fail(path, where, "'tasks' must be a non-empty list of task ids")
    if not (isinstance(make, list) and all(isinstance(x, str) for x in make)):
        raise _fail(path, where, "'make' must be a list of commands")
    expect = t.get("expect", "better")
    if expect not in _EXPECT:
        raise _fail(path, where, f"'expect' must be one of {', '.join(_EXPECT)}, not {expect!r}")
    margin, alpha = t.get("margin", 0.0), t.get("alpha", 0.05)
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0 <= margin < 100:
        raise _fail(path, where, f"'margin' must be a number of points in [0, 100), not {margin!r}")
    if expect == "not-worse" and margin == 0:
        raise _fail(path, where, "a 'not-worse' claim needs a margin > 0 (in points, x100)")
    if isinstance(alpha, bool) or not isinstance(alpha, float) or not 0 < alpha < 1:
        raise _fail(path, where, f"'alpha' must be a number in (0, 1), not {alpha!r}")
    metric = t.get("metric")
    if metric is not None and not isinstance(metric, str):
        raise _fail(path, where, "'metric' must be a metric name")
    return Claim(
        str(path), paper, cite, t["id"], " ".join(t["says"].split()), t["a"], t["b"], tuple(tasks), expect,
        float(margin), metric, float(alpha), tuple(make),
    )  # fmt: skip


def load_claims(path: str | Path = "claims", pattern: str = "*") -> list[Claim]:
    """The claims of every ``*.toml`` file in a folder (or of one file) whose id matches ``pattern``.

    Raises:
        ZooError: a missing folder, a malformed file, an unknown key or a wrong type (naming the file and claim),
            or one claim id used twice.
    """
    root = Path(path)
    files = sorted(root.glob("*.toml")) if root.is_dir() else [root]
    if not root.exists() or not files:
        raise ZooError(f"{root}: no claims files (*.toml) there")
    claims: list[Claim] = []
    for f in files:
        try:
            data = tomllib.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise ZooError(f"{f}: unreadable claims file: {e}") from None
        unknown = sorted(set(data) - {"paper", "cite", "claims"})
        if unknown:
            raise _fail(f, "top level", f"unknown key {unknown[0]!r} (known: cite, claims, paper)")
        if not isinstance(data.get("paper"), str) or not isinstance(data.get("claims"), list):
            raise _fail(f, "top level", "needs 'paper' (a string) and [[claims]] tables")
        cite = data.get("cite", "")
        claims += [_claim(f, data["paper"], str(cite), i, t) for i, t in enumerate(data["claims"])]
    ids = [c.id for c in claims]
    dup = next((i for n, i in enumerate(ids) if i in ids[:n]), None)
    if dup:
        raise ZooError(f"claim id {dup!r} is used twice")
    return [c for c in claims if fnmatch.fnmatchcase(c.id, pattern)]


# CHECKING =========================================================================================


def _run_command(spec: str, tasks: Sequence[str]) -> str:
    """The ``zoobench run`` that makes a spec's records (``name+k-v`` -> ``--model-kwarg k=v``)."""
    name, _, options = spec.partition("@")[0].partition("+")
    kwargs = "".join(f" --model-kwarg {o.replace('-', '=', 1)}" for o in options.split("+") if o)
    return f"zoobench run --model {name} --tasks {','.join(tasks)}{kwargs}"


def _task_verdict(claim: Claim, row: Any) -> str:
    if claim.expect == "better":
        if not row.significant:
            return "inconclusive"
        return "held" if row.winner == row.model_b else "not held"
    sign = 1.0 if row.higher_is_better else -1.0
    low, high = sorted((sign * row.ci_low, sign * row.ci_high))
    margin = claim.margin / 100
    return "held" if low > -margin else "not held" if high < -margin else "inconclusive"


def _combine(verdicts: Sequence[str]) -> str:
    if "not held" in verdicts:
        return "not held"
    return "held" if all(v == "held" for v in verdicts) else "inconclusive"


def check_claim(claim: Claim, results_dir: str | Path = "results") -> ClaimResult:
    """One claim's verdict from the records in ``results_dir`` (see the module docstring)."""
    root = Path(results_dir)
    missing = []
    for spec in (claim.a, claim.b):
        try:
            find_records(spec, claim.tasks, root)
        except ZooError:
            missing.append(spec)
    if missing:
        given = [m.split() for m in claim.make if m.startswith("zoobench run ")]
        named = {w[i + 1] for w in given for i in range(len(w) - 1) if w[i] in ("--model", "-m")}
        runs = [_run_command(s, claim.tasks) for s in missing if s.partition("@")[0].partition("+")[0] not in named]
        commands = [*claim.make, *runs]  # a claim's own `zoobench run` of a model (task options, say) wins
        reason = f"no records of {' and '.join(missing)} on every task in {root}"
        return ClaimResult(claim, "missing", reason=reason, commands=tuple(commands))
    k = 1 if claim.expect == "better" else len(claim.tasks)  # Bonferroni for the intervals of not-worse claims
    try:
        report = compare(
            [claim.a, claim.b], claim.tasks, results_dir=root, metric=claim.metric, alpha=claim.alpha / k, save=False
        )
    except ZooError as e:
        return ClaimResult(claim, "untestable", reason=str(e))
    rows = tuple(
        TaskVerdict(r.task_id, r.split, r.metric, r.score_a, r.score_b, r.delta, r.ci_low, r.ci_high,
                    r.p_adjusted, _task_verdict(claim, r))
        for r in report.rows
    )  # fmt: skip
    return ClaimResult(claim, _combine([r.verdict for r in rows]), rows)


def check_claims(claims: Sequence[Claim], results_dir: str | Path = "results") -> list[ClaimResult]:
    """Every claim's verdict (:func:`check_claim`), in the given order."""
    return [check_claim(c, results_dir) for c in claims]


# OUTPUT ===========================================================================================


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.0e}"


def _task_label(t: TaskVerdict) -> str:
    return t.task if t.split == "test" else f"{t.task} [{t.split}]"


def summary(result: ClaimResult) -> str:
    """One line on the task rows: Δ [CI], p for one task, counts of verdicts for several."""
    if not result.tasks:
        return result.reason
    if len(result.tasks) == 1:
        t = result.tasks[0]
        return f"{_pts(t.delta)} [{_pts(t.ci_low)}, {_pts(t.ci_high)}], p = {_p(t.p_adjusted)}"
    counts = {v: sum(t.verdict == v for t in result.tasks) for v in VERDICTS}
    return f"{len(result.tasks)} tasks: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n)


def to_markdown(results: Sequence[ClaimResult]) -> str:
    """A Markdown table: one row per claim and task (a claim over more than three tasks: one summary row)."""
    lines = [
        "| paper | claim | A | B | task | A | B | Δ (B − A) [CI] | p (adj.) | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    for r in results:
        c = r.claim
        head = [cell(c.cite or c.paper), cell(f"{c.says} ({c.expect}{f', margin {c.margin:g}' if c.margin else ''})"),
                f"`{cell(c.a)}`", f"`{cell(c.b)}`"]  # fmt: skip
        if r.tasks and len(r.tasks) <= 3:
            for i, t in enumerate(r.tasks):
                ci = f"{_pts(t.delta)} [{_pts(t.ci_low)}, {_pts(t.ci_high)}]"
                row = [*(head if i == 0 else [""] * 4), cell(f"{_task_label(t)} {t.metric}"),
                       f"{100 * t.score_a:.2f}", f"{100 * t.score_b:.2f}", ci, _p(t.p_adjusted),
                       f"**{r.verdict}**" if i == 0 else t.verdict]  # fmt: skip
                lines.append("| " + " | ".join(row) + " |")
        else:
            tasks = ", ".join(c.tasks) if len(c.tasks) <= 3 else f"{len(c.tasks)} tasks"
            row = [*head, cell(tasks), "", "", cell(summary(r)), "", f"**{r.verdict}**"]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def to_json(results: Sequence[ClaimResult]) -> str:
    """The results as a JSON list (:meth:`ClaimResult.to_dict`)."""
    return json.dumps([r.to_dict() for r in results], indent=2, ensure_ascii=False, allow_nan=False)


def claims_path(results_dir: str | os.PathLike[str]) -> Path:
    """Where :func:`save_claims` stores the verdicts of a results folder."""
    return Path(results_dir) / CLAIMS_DIR / "claims.json"


def save_claims(results: Sequence[ClaimResult], results_dir: str | os.PathLike[str]) -> Path:
    """Store the verdicts (atomically) as ``{"schema_version": 1, "kind": "zoobench.claims", "code_revision",
    "date", "claims": [ClaimResult.to_dict(), ...]}``; returns the path."""
    from zoo.provenance import code_revision

    doc = {
        "schema_version": 1,
        "kind": "zoobench.claims",
        "code_revision": code_revision(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "claims": [r.to_dict() for r in results],
    }
    path = claims_path(results_dir)
    atomic_write(path, json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False).encode() + b"\n")
    return path
