"""Corpus encoding speed: zoobench's GTE encode path vs sentence-transformers' ``encode``, same weights.

Peer: sentence-transformers ``encode`` (fp32, batch 32, its own length sorting) on all-MiniLM-L6-v2 as
the baseline ``minilm-l6.st`` runs it, against the same weights through ``gte-minilm-l6.st`` in bf16
autocast (and fp32), all in one process, on the SciFact corpus (title + " " + text, 256 tokens). The
encoders take turns on blocks of 512 documents, so load from other processes falls on all alike.
Each encoder's document vectors then go through the harness's own retrieval evaluation (queries
encoded by the same encoder), so the nDCG@10 printed is what ``zoobench run --tasks local/scifact``
reports. Throughput is also given as achieved GFLOP/s (matmul FLOPs of the real, unpadded tokens)
over the best plain 2048x2048 matmul of the same dtype measured in the same run.

    python benchmarks/encode.py [--limit N] [--batch-size 32] [--threads N] [--no-fp32]

Targets (issue "GTE family and the training engine"): docs/s ratio zoobench bf16 / sentence-transformers
>= 2.0; nDCG@10 change < 0.005.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

BLOCK = 512  # documents per encode call, as harness.tasks.base.encode_texts sends them at batch size 32


def matmul_peak(dtype: torch.dtype, max_threads: int, n: int = 2048, reps: int = 5) -> float:
    """Best GFLOP/s of an ``n x n`` matmul over 1..max_threads threads (the machine's rate right now)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    before, best = torch.get_num_threads(), 0.0
    try:
        for threads in range(1, max_threads + 1):
            torch.set_num_threads(threads)
            a @ b  # warm-up
            for _ in range(reps):
                t0 = time.perf_counter()
                a @ b
                best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    finally:
        torch.set_num_threads(before)
    return best


def encoder_flops(token_counts: Sequence[int], config: Any) -> float:
    """Matmul FLOPs of a BERT forward over sequences of these lengths (linear layers + attention scores/values)."""
    d, ff, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    t = np.asarray(token_counts, dtype=np.float64)
    per_layer = 2 * t * (4 * d * d + 2 * d * ff) + 4 * t * t * d  # QKV+O, FFN; QK^T and AV
    return float(layers * per_layer.sum())


class Precomputed:
    """An Encoder whose document vectors were computed already (timed elsewhere); queries are encoded live."""

    def __init__(self, model: Any, docs: Sequence[str], vectors: np.ndarray) -> None:
        self.card, self._model = model.card, model
        self._rows = {t: i for i, t in enumerate(docs)}
        self._vectors = vectors

    def encode(self, texts: Sequence[str], *, kind: str = "document", batch_size: int = 32) -> np.ndarray:
        """Stored rows for documents, the wrapped model for queries."""
        if kind == "document":
            return self._vectors[[self._rows[t] for t in texts]]
        return self._model.encode(texts, kind=kind, batch_size=batch_size)


def ndcg10(model: Any, data: Any, docs: dict[str, str], vectors: np.ndarray, batch_size: int) -> float:
    """nDCG@10 of the harness's dense retrieval over ``docs`` with precomputed document vectors."""
    from harness.metrics import evaluate_run
    from harness.tasks.base import EvalContext
    from harness.tasks.retrieval import dense_run

    ctx = EvalContext("local/scifact", batch_size=batch_size, progress=False)
    run = dense_run(Precomputed(model, list(docs.values()), vectors), data.queries, docs, ctx)
    return evaluate_run(data.qrels, run, ["ndcg@10"])["ndcg@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, help="encode only the first N documents (quick runs)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, help="torch threads for every encoder (default: each its own)")
    parser.add_argument("--no-fp32", action="store_true", help="skip zoobench's fp32 run")
    parser.add_argument("--data-dir")
    args = parser.parse_args()

    import zoo
    from harness.tasks import get_task
    from zoo.families.gte import cpu_has_bf16, free_cores

    data = get_task("local/scifact", args.data_dir).load("test")
    doc_items = list(data.corpus.items())[: args.limit]
    docs = dict(doc_items)
    texts = list(docs.values())
    if args.threads:
        torch.set_num_threads(args.threads)
    max_threads = torch.get_num_threads()
    print(f"SciFact: {len(texts)} documents, {len(data.queries)} queries; batch size {args.batch_size}")
    print(
        f"torch {torch.__version__}, {max_threads} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"native bf16 {cpu_has_bf16()}, cores free now {free_cores()}, load {os.getloadavg()[0]:.1f}"
    )

    peaks = {"float32": matmul_peak(torch.float32, max_threads), "bfloat16": matmul_peak(torch.bfloat16, max_threads)}
    print(
        f"plain 2048^2 matmul, best over 1..{max_threads} threads: "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items())
    )

    runs = [("sentence-transformers fp32", "minilm-l6.st", {}, "float32")]
    runs.append(("zoobench bf16", "gte-minilm-l6.st", {"dtype": "bfloat16", "threads": args.threads}, "bfloat16"))
    if not args.no_fp32:
        runs.append(("zoobench fp32", "gte-minilm-l6.st", {"dtype": "float32", "threads": args.threads}, "float32"))

    gte = zoo.create_model("gte-minilm-l6.st")
    tokens = [len(x) for x in gte.model.tokenizer(texts, truncation=True, max_length=gte.model.max_tokens)["input_ids"]]
    flops = encoder_flops(tokens, gte.model.backbone.config)
    print(f"{sum(tokens)} tokens (mean {np.mean(tokens):.0f}), {flops / 1e12:.2f} TFLOP of matmuls to encode them\n")

    # The encoders take turns on blocks of 512 documents (the harness's encode block), in rotating
    # order, so that a change in the machine's load (it is shared) falls on all of them alike.
    models = {
        label: zoo.create_model(name, **{k: v for k, v in kw.items() if v is not None}) for label, name, kw, _ in runs
    }
    for model in models.values():
        model.encode(texts[:16], batch_size=args.batch_size)  # warm-up
    seconds = dict.fromkeys(models, 0.0)
    parts: dict[str, list[np.ndarray]] = {label: [] for label in models}
    for i, start in enumerate(range(0, len(texts), BLOCK)):
        labels = list(models)[i % len(models) :] + list(models)[: i % len(models)]
        for label in labels:
            t0 = time.perf_counter()
            parts[label].append(models[label].encode(texts[start : start + BLOCK], batch_size=args.batch_size))
            seconds[label] += time.perf_counter() - t0
    results = {}
    for label, _, _, dtype in runs:
        vectors = np.concatenate(parts[label])
        score = ndcg10(models[label], data, docs, vectors, args.batch_size)
        gflops = flops / seconds[label] / 1e9
        results[label] = (len(texts) / seconds[label], score, vectors)
        print(
            f"{label:28s} {len(texts) / seconds[label]:7.1f} docs/s  ({seconds[label]:6.1f} s)  nDCG@10 {score:.4f}  "
            f"{gflops:6.0f} GFLOP/s = {gflops / peaks[dtype]:.0%} of a plain {dtype} matmul"
        )

    st_rate, st_ndcg, st_vec = results["sentence-transformers fp32"]
    bf_rate, bf_ndcg, bf_vec = results["zoobench bf16"]
    print(f"\nspeed-up zoobench bf16 / sentence-transformers: {bf_rate / st_rate:.2f}x   target >= 2.0")
    print(f"nDCG@10 change bf16 vs sentence-transformers: {bf_ndcg - st_ndcg:+.4f}   target |change| < 0.005")
    print(f"min cosine of document vectors, bf16 vs sentence-transformers: {(bf_vec * st_vec).sum(1).min():.5f}")
    if "zoobench fp32" in results:
        fp_rate, fp_ndcg, fp_vec = results["zoobench fp32"]
        print(f"speed-up zoobench fp32 / sentence-transformers: {fp_rate / st_rate:.2f}x")
        print(f"nDCG@10 change bf16 vs zoobench fp32: {bf_ndcg - fp_ndcg:+.4f}   target |change| < 0.005")
        cos = (fp_vec * st_vec).sum(1).min()
        print(f"min cosine of document vectors, zoobench fp32 vs sentence-transformers: {cos:.6f}")


if __name__ == "__main__":
    main()
