"""A synthetic results folder of real records for the leaderboard tests.

Six models x six tasks of five types, written with harness.results (records, runs, qrels, per-item
files) so every score is what the harness would compute from the stored files; one stored comparison
made by harness.significance.compare; an older revision; a model whose name and card are hostile
Markdown/HTML; a malformed record, a record of an unknown schema version and a malformed comparison.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.metrics import evaluate_run
from harness.results import TaskResult, items_path, qrels_path, run_path, write_qrels, write_run

EVIL = "**evil**<img src=x onerror=alert(1)>[click](https://e.x/)"
DATE = "2025-06-01T00:00:00+00:00"
OLD_DATE = "2025-01-01T00:00:00+00:00"

# name -> card facts, noise level per task (lower = better; absent = no result), throughput (texts/s)
MODELS: dict[str, dict[str, Any]] = {
    "alpha-base": dict(
        family="gte",
        params=110_000_000,
        embed_dim=768,
        max_tokens=512,
        languages=["en", "zh"],
        source="hf:org/alpha-base",
        upstream="org/alpha-base",
        pooling="mean",
        prompts={"query": "query: ", "document": "passage: "},
        training_data=["msmarco", "nq"],
        noise={"sts-a": 0.8, "sts-zh": 1.0, "clf": 0.85, "pairs": 1.2, "clu": 0.7, "ret": 1.5},
        tps=800.0,
    ),
    "beta-small": dict(
        family="gte",
        params=33_000_000,
        embed_dim=384,
        max_tokens=512,
        noise={"sts-a": 0.82, "clf": 0.6, "pairs": 1.0, "clu": 0.55, "ret": 1.0},
        tps=2500.0,
    ),
    "gamma-static": dict(
        family="static",
        params=8_000_000,
        embed_dim=256,
        noise={"sts-a": 3.0, "sts-zh": 3.0, "clf": 0.4, "pairs": 0.6, "clu": 0.4, "ret": 0.3},
        tps=40000.0,
    ),
    "delta-zh": dict(
        family="mgte",
        params=300_000_000,
        embed_dim=1024,
        max_tokens=8192,
        noise={"sts-zh": 0.5, "ret": 0.8},
        tps=300.0,
    ),
    "bm25-like": dict(family="lexical", noise={"ret": 2.0}),
    EVIL: dict(
        family="<b>fam</b>",
        params=50_000_000,
        embed_dim=512,
        prompts={"query": "<script>alert(1)</script>"},
        training_data=["[data](javascript:alert(1))"],
        noise={"sts-a": 1.5},
        tps=1000.0,
    ),
}
TASKS = {  # short name -> (task id, type, languages)
    "sts-a": ("local/sts-a", "sts", ["en"]),
    "sts-zh": ("local/sts-zh", "sts", ["zh"]),
    "clf": ("local/clf", "classification", ["en"]),
    "pairs": ("local/pairs", "pair_classification", ["en"]),
    "clu": ("local/clu", "clustering", ["en"]),
    "ret": ("local/ret", "retrieval", ["en"]),
}
COMPARED = ["alpha-base", "beta-small", "gamma-static"]
COMPARED_TASKS = ["local/sts-a", "local/clf", "local/ret"]
BROKEN = "broken-model/r1/local/sts-a.json"
FUTURE = "future-model/r1/local/sts-a.json"
BAD_COMPARISON = "_comparisons/bad__000000000000.json"


def _card(name: str, spec: dict[str, Any], revision: str) -> dict[str, Any]:
    return {
        "name": name,
        "family": spec["family"],
        "revision": revision,
        "source": spec.get("source", "none (synthetic)"),
        "upstream": spec.get("upstream"),
        "params": spec.get("params"),
        "embed_dim": spec.get("embed_dim"),
        "max_tokens": spec.get("max_tokens"),
        "languages": spec.get("languages", ["en"]),
        "license": "apache-2.0",
        "similarity": "cosine",
        "pooling": spec.get("pooling", "cls"),
        "prompts": spec.get("prompts", {}),
        "training_data": spec.get("training_data", []),
        "citation": None,
    }


def _gold(task: str) -> dict[str, Any]:
    """The task's gold data, the same for every model (seeded by the task)."""
    rng = np.random.default_rng(sum(map(ord, task)))
    if task in ("sts-a", "sts-zh"):
        return {"gold": np.round(rng.uniform(0, 5, 300), 1)}  # rounded: many tied gold scores
    if task == "pairs":
        return {"gold": (rng.random(300) < 0.4).astype(int)}
    if task == "ret":
        qrels = {f"q{i}": {f"d{j}": int(rng.integers(1, 3)) for j in range(3)} for i in range(40)}
        for q in qrels:
            qrels[q]["d9"] = 0  # a judged non-relevant document
        return {"qrels": qrels}
    return {}


def _outputs(task: str, noise: float, rng: np.random.Generator) -> tuple[str, float, dict[str, Any]]:
    """(metric, score, stored files) of a model with this noise level on this task."""
    from scipy.stats import spearmanr
    from sklearn.metrics import average_precision_score

    gold = _gold(task)
    if task in ("sts-a", "sts-zh"):
        g = gold["gold"]
        pred = np.round(g + rng.normal(0, noise, len(g)), 6)
        return "cosine_spearman", float(spearmanr(g, pred).statistic), {"items": {"pred": pred.tolist(), "gold": g}}
    if task == "pairs":
        g = gold["gold"]
        pred = np.round(g + rng.normal(0, noise, len(g)), 6)
        return "cosine_ap", float(average_precision_score(g, pred)), {"items": {"pred": pred.tolist(), "gold": g}}
    if task == "clf":
        correct = rng.binomial(10, noise, 200) / 10  # noise = probability of a correct answer here
        return "accuracy", float(correct.mean()), {"items": {"correct": correct.tolist()}}
    if task == "clu":
        v = np.round(rng.uniform(noise - 0.05, noise + 0.05, 10), 6)
        return "v_measure", float(np.mean(v)), {"items": {"v_measures": v.tolist()}}
    qrels = gold["qrels"]
    run = {}
    for q, rels in qrels.items():
        docs = {f"d{j}": float(rng.normal(0, 1)) for j in range(12)}
        for d, r in rels.items():
            docs[d] += r / max(noise, 1e-3)
        run[q] = {d: round(s, 6) for d, s in docs.items()}
    run.pop("q7")  # a query the system returned nothing for still counts (as 0)
    return "ndcg@10", evaluate_run(qrels, run, ["ndcg@10"])["ndcg@10"], {"run": run, "qrels": qrels}


def write_record(root: Path, model: str, revision: str, task: str, noise: float, date: str, tps: float | None) -> None:
    spec = MODELS[model]
    task_id, task_type, languages = TASKS[task]
    rng = np.random.default_rng(sum(map(ord, model + revision + task)))
    metric, score, files = _outputs(task, noise, rng)
    if "items" in files:
        items = {k: np.asarray(v).tolist() for k, v in files["items"].items()}
        path = items_path(root, model, revision, task_id, "test")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(json.dumps(items).encode(), mtime=0))
    else:
        write_run(run_path(root, model, revision, task_id, "test"), files["run"], tag=model)
        write_qrels(qrels_path(root, model, revision, task_id, "test"), files["qrels"])
    # a dev split (listed first) on models left out of the comparison, which needs items of every split
    dev = {"dev": {metric: score / 2, "main_score": score / 2}} if model not in COMPARED else {}
    n_texts = 1000 + 10 * len(task)
    runtime = {"load_s": 0.1, "evaluate_s": 0.5, "total_s": 2.0}
    if tps:
        runtime.update(texts_cached=5, texts_encoded=n_texts, encode_s=round(n_texts / tps, 6))
    TaskResult(
        model=model,
        revision=revision,
        task_id=task_id,
        task_type=task_type,
        main_score=metric,
        scores={**dev, "test": {metric: score, "main_score": score}},  # the leaderboard shows the test split
        n_items={"dev": 10, "test": 300} if dev else {"test": 300},
        data_checksum=f"sha256:{task}",
        code_revision="test",
        command="pytest",
        runtime=runtime,
        hardware={"cpu": "test cpu", "cores": 2},
        date=date,
        languages=languages,
        model_card=_card(model, spec, revision),
    ).save(root)


def build_results(root: Path) -> Path:
    """Write the whole folder; returns ``root``."""
    from harness.significance import compare

    for model, spec in MODELS.items():
        for task, noise in spec["noise"].items():
            write_record(root, model, "v1", task, noise, DATE, spec.get("tps"))
    write_record(root, "alpha-base", "v0", "sts-a", 2.5, OLD_DATE, 100.0)  # an older revision: not shown
    compare(COMPARED, COMPARED_TASKS, results_dir=root, n_resamples=2000)
    for rel, text in (
        (BROKEN, '{"schema_version": 1, "model": '),
        (FUTURE, json.dumps({"schema_version": 99, "model": "future-model"})),
        (BAD_COMPARISON, json.dumps({"kind": "something else"})),
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def results_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic results folder (built once per session)."""
    return build_results(tmp_path_factory.mktemp("leaderboard") / "results")
