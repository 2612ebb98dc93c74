"""Leaderboard overview on 1,000 models x 60 tasks: load + table build, cached vs uncached vs a plain loader.

Writes a synthetic results folder of schema-1 records (as harness.results writes them: indented JSON with
the model card, runtime and hardware; about 5% of model x task pairs missing), then times what a page
run of ``leaderboard/app.py`` does before it draws the overview:

- **first load** (peer 1): ``data.signature`` + ``data.load_results``, every file read and validated;
- **cached**: ``data.signature`` (a stat of every file) + the ``st.cache_data``-wrapped ``load_results``
  (a hit) + ``data.select`` + ``data.overview`` built fresh (Borda ranks, 1,000-resample rank intervals),
  as after a filter change; the best of ``--repeat`` runs;
- **pandas.read_json per file** (peer 2): a plain loader, ``pd.read_json(path, typ="series")`` per record
  into one frame, timed on ``--peer-files`` files and scaled to all of them (the scaling is printed).

    python benchmarks/leaderboard_load.py [--models 1000] [--tasks 60] [--peer-files 6000]

Target (issue): the cached load + table build under 2 s.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

TYPES = ("retrieval", "sts", "classification", "clustering", "pair_classification", "reranking")
METRICS = {
    "retrieval": "ndcg@10",
    "sts": "cosine_spearman",
    "classification": "accuracy",
    "clustering": "v_measure",
    "pair_classification": "cosine_ap",
    "reranking": "map",
}


def write_folder(root: Path, n_models: int, n_tasks: int, seed: int = 0) -> list[Path]:
    """Write the synthetic records; returns their paths."""
    from harness.results import TaskResult, result_path

    rng = np.random.default_rng(seed)
    tasks = [(f"local/task-{i:02d}", TYPES[i % len(TYPES)], ["en"] if i % 3 else ["zh"]) for i in range(n_tasks)]
    paths = []
    for m in range(n_models):
        name, params = f"model-{m:04d}", int(rng.integers(5, 8000)) * 1_000_000
        card = {
            "name": name,
            "family": f"family-{m % 12}",
            "revision": "v1",
            "source": f"hf:org/{name}",
            "upstream": f"org/{name}",
            "params": params,
            "embed_dim": int(rng.choice([256, 384, 768, 1024])),
            "max_tokens": 512,
            "languages": ["en", "zh"],
            "license": "apache-2.0",
            "similarity": "cosine",
            "pooling": "mean",
            "prompts": {"query": "query: ", "document": "passage: "},
            "training_data": ["msmarco"],
            "citation": None,
        }
        skill = rng.uniform(0.2, 0.8)
        for task_id, task_type, languages in tasks:
            if rng.random() < 0.05:
                continue
            metric, score = METRICS[task_type], float(np.clip(skill + rng.normal(0, 0.1), 0, 1))
            encoded = int(rng.integers(1000, 20000))
            record = TaskResult(
                model=name,
                revision="v1",
                task_id=task_id,
                task_type=task_type,
                main_score=metric,
                scores={"test": {metric: score, "recall@100": score, "main_score": score}},
                n_items={"test": 500},
                data_checksum="sha256:" + "0" * 64,
                code_revision="0" * 40,
                command=f"zoobench run --model {name} --suite bench",
                runtime={"load_s": 1.0, "texts_encoded": encoded, "encode_s": encoded / 1e3, "total_s": 30.0},
                hardware={"cpu": "bench", "cores": 2, "platform": "linux", "python": "3.11"},
                date="2025-06-01T00:00:00+00:00",
                languages=languages,
                model_card=card,
            )
            path = result_path(root, name, "v1", task_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record.to_dict(), indent=2) + "\n", encoding="utf-8")
            paths.append(path)
    return paths


def pandas_per_file(paths: list[Path]):
    """The peer: one ``pandas.read_json`` per record, concatenated into a frame."""
    import pandas as pd

    return pd.DataFrame([pd.read_json(p, typ="series") for p in paths])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--peer-files", type=int, default=6000, help="records the pandas peer reads (then scaled)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import streamlit as st

    from leaderboard import data

    for name in [n for n in logging.root.manager.loggerDict if n.startswith("streamlit")]:
        logging.getLogger(name).setLevel(logging.ERROR)  # "no runtime found": st.cache_data keeps memory, as served
    load = st.cache_data(show_spinner=False)(data.load_results)
    with tempfile.TemporaryDirectory(prefix="zoobench-lb-bench-") as tmp:
        root = Path(tmp) / "results"
        t0 = time.perf_counter()
        paths = write_folder(root, args.models, args.tasks)
        t_write = time.perf_counter() - t0
        print(f"wrote {len(paths):,} records ({args.models:,} models x {args.tasks} tasks) in {t_write:.1f} s")

        t0 = time.perf_counter()
        first = load(root, data.signature(root))  # a cache miss: reads and validates every file
        t_first = time.perf_counter() - t0
        assert len(first.records) == len(paths) and not first.warnings

        steps = {"signature": [], "cached load": [], "select": [], "overview": []}
        for _ in range(args.repeat):
            t = [time.perf_counter()]
            sig = data.signature(root)
            t.append(time.perf_counter())
            res = load(root, sig)
            t.append(time.perf_counter())
            records = data.select(res.records, data.Selection())
            t.append(time.perf_counter())
            table = data.overview(records)
            t.append(time.perf_counter())
            for name, a, b in zip(steps, t, t[1:], strict=False):
                steps[name].append(b - a)
        assert len(table) == args.models and table["rank"].min() == 1
        runs = [sum(parts) for parts in zip(*steps.values(), strict=True)]
        t_cached = min(runs)
        best = runs.index(t_cached)

        n_peer = min(args.peer_files, len(paths))
        sample = [paths[i] for i in np.linspace(0, len(paths) - 1, n_peer).astype(int)]
        t0 = time.perf_counter()
        frame = pandas_per_file(sample)
        t_peer = (time.perf_counter() - t0) * len(paths) / n_peer
        assert len(frame) == n_peer

    detail = ", ".join(f"{k} {v[best]:.2f} s" for k, v in steps.items())
    print(f"first load (uncached, every file read): {t_first:.2f} s")
    print(f"cached load + overview table: {t_cached:.2f} s ({detail}); best of {args.repeat}; target < 2 s")
    print(f"pandas.read_json per file: {t_peer:.1f} s (measured on {n_peer:,} files, scaled to {len(paths):,})")
    print(f"cached page run vs first load: {t_first / t_cached:.1f}x faster")
    print(f"cached page run vs pandas.read_json per file: {t_peer / t_cached:.1f}x faster")
    print(f"first load vs pandas.read_json per file: {t_peer / t_first:.1f}x faster")
    print(f"cached load + table build under 2 s: {'yes' if t_cached < 2 else 'NO'} ({os.cpu_count()} cpus)")


if __name__ == "__main__":
    main()
