"""Whole-task wall time: ``zoobench run`` (``harness.evaluate``) vs ``mteb.evaluate`` on SciFact, same weights.

Peer: ``mteb.evaluate`` on all-MiniLM-L6-v2 as sentence-transformers loads it (the folder of ``minilm-l6.st``,
fp32), given an mteb retrieval task built in memory from the local SciFact folder
(``harness.datasets.mteb.to_mteb_task``: the same corpus, test queries and judgements; no hub). zoobench runs
the same weights as ``zoobench run --tasks local/scifact`` does, three ways: ``minilm-l6.st`` (the same
sentence-transformers ``encode``: only the harness differs), ``gte-minilm-l6.st`` in fp32 (zoobench's encode
path; its nDCG@10 must equal mteb's to 1e-4) and in bf16 autocast (zoobench's fast setting).

Every run is cold and whole, from a model name to a score: model load, data load, encoding, search, scoring;
zoobench with a fresh embedding cache folder (written, never read) and results folder, mteb with no result cache
(``cache=None``). The runs take turns in one process, in rotating order over ``--rounds`` rounds, so that a
change in the machine's load (it is shared) falls on all of them alike; a run's time is its median over rounds.

    python benchmarks/whole_task.py [--limit N] [--rounds 1] [--batch-size 32] [--threads N] [--data-dir D]

``--limit N`` keeps the first N documents plus every document judged for a test query (all 300 test queries
keep their judgements), in a temporary copy of the folder.

Targets (issue 11): wall time mteb / zoobench >= 5x; nDCG@10 equal to mteb's to 1e-4 in fp32.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TASK = "local/scifact"


def subset(data_dir: str | None, limit: int, out: Path) -> Path:
    """A data dir whose ``scifact`` holds the first ``limit`` documents and every document judged for a test query."""
    from harness.datasets.local import resolve_data_dir

    src, dst = resolve_data_dir(data_dir) / "scifact", out / "scifact"
    (dst / "qrels").mkdir(parents=True)
    qrels = (src / "qrels" / "test.tsv").read_text(encoding="utf-8")
    judged = {line.split("\t")[1] for line in qrels.splitlines()[1:] if line}
    lines = (src / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    kept = [ln for i, ln in enumerate(lines) if i < limit or json.loads(ln)["_id"] in judged]
    (dst / "corpus.jsonl").write_text("\n".join(kept) + "\n", encoding="utf-8")
    (dst / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    for name in ("queries.jsonl", "README.md"):
        shutil.copy(src / name, dst / name)
    return out


def zoobench_run(name: str, data_dir: str | None, batch_size: int, **model_kwargs: object) -> Callable[[], float]:
    """``zoobench run --model <name> --tasks local/scifact`` with a fresh cache and results folder; its nDCG@10."""

    def run() -> float:
        import harness

        with tempfile.TemporaryDirectory(prefix="whole-task-") as tmp:
            (record,) = harness.evaluate(
                name,
                [TASK],
                results_dir=f"{tmp}/results",
                data_dir=data_dir,
                batch_size=batch_size,
                progress=False,
                cache=True,
                cache_dir=f"{tmp}/cache",
                model_kwargs={k: v for k, v in model_kwargs.items() if v is not None},
                log=lambda msg: None,
            )
        return record.scores["test"]["ndcg@10"]

    return run


def mteb_run(data_dir: str | None, batch_size: int) -> Callable[[], float]:
    """``mteb.evaluate`` on the sentence-transformers model and the in-memory mteb task; its nDCG@10."""

    def run() -> float:
        import mteb
        from sentence_transformers import SentenceTransformer

        from harness.datasets.mteb import to_mteb_task
        from harness.tasks import get_task
        from zoo.checkpoints import resolve
        from zoo.registry import get_card

        model = SentenceTransformer(str(resolve(get_card("minilm-l6.st").source)), device="cpu")
        result = mteb.evaluate(
            model,
            [to_mteb_task(get_task(TASK, data_dir))],
            cache=None,
            encode_kwargs={"batch_size": batch_size, "show_progress_bar": False},
            show_progress_bar=False,
            co2_tracker=False,
        )
        (scores,) = result.task_results[0].scores["test"]
        return scores["ndcg_at_10"]

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, help="the first N documents (plus the judged ones) only")
    parser.add_argument("--rounds", type=int, default=1, help="times each run is repeated, in rotating order")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, help="torch threads for every run (default: each its own)")
    parser.add_argument("--data-dir")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="whole-task-data-") as tmp:
        data_dir = str(subset(args.data_dir, args.limit, Path(tmp))) if args.limit else args.data_dir
        from harness.tasks import get_task

        data = get_task(TASK, data_dir).load("test")
        print(f"SciFact: {len(data.corpus)} documents, {len(data.queries)} test queries; batch size {args.batch_size}")
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}\n")
        bs = args.batch_size
        runs = {
            "mteb.evaluate, sentence-transformers fp32": mteb_run(data_dir, bs),
            "zoobench run minilm-l6.st (s-t encode)": zoobench_run("minilm-l6.st", data_dir, bs),
            "zoobench run gte-minilm-l6.st fp32": zoobench_run(
                "gte-minilm-l6.st", data_dir, bs, dtype="float32", threads=args.threads
            ),
            "zoobench run gte-minilm-l6.st bf16": zoobench_run(
                "gte-minilm-l6.st", data_dir, bs, dtype="bfloat16", threads=args.threads
            ),
        }
        seconds: dict[str, list[float]] = {label: [] for label in runs}
        scores: dict[str, float] = {}
        for i in range(args.rounds):
            labels = list(runs)[i % len(runs) :] + list(runs)[: i % len(runs)]
            for label in labels:
                t0 = time.perf_counter()
                scores[label] = runs[label]()
                seconds[label].append(time.perf_counter() - t0)
    wall = {label: statistics.median(s) for label, s in seconds.items()}
    for label in runs:
        print(f"{label:44s} {wall[label]:7.1f} s  nDCG@10 {scores[label]:.5f}")

    peer, st, fp32, bf16 = runs
    print(f"\nwall time mteb / zoobench bf16: {wall[peer] / wall[bf16]:.2f}x   target >= 5x")
    print(f"wall time mteb / zoobench fp32: {wall[peer] / wall[fp32]:.2f}x")
    print(f"wall time mteb / zoobench with the same s-t encode: {wall[peer] / wall[st]:.2f}x")
    for label in (fp32, st, bf16):
        diff = scores[label] - scores[peer]
        verdict = "equal to 1e-4" if abs(diff) <= 1e-4 else "NOT equal to 1e-4"
        print(f"nDCG@10 {label.removeprefix('zoobench run ')} - mteb: {diff:+.5f} ({verdict}; mteb keeps 5 decimals)")


if __name__ == "__main__":
    main()
