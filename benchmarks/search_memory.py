"""Peak memory and time of exact dense search over a 1M x 384 corpus with 10k queries.

zoobench's StreamingTopK sees the corpus one shard at a time (as the retrieval task feeds it);
the named peer is faiss ``IndexFlatIP`` (exact inner-product search), which needs the whole corpus
in memory. Each runs in its own subprocess so ``ru_maxrss`` is its own peak.

    python benchmarks/search_memory.py [--docs 1000000] [--queries 10000] [--dim 384] [--k 100]

Target (issue 3): zoobench's peak under 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

SHARD = 50_000


def _shards(n_docs: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for start in range(0, n_docs, SHARD):
        x = rng.standard_normal((min(SHARD, n_docs - start), dim), dtype=np.float32)
        yield x / np.linalg.norm(x, axis=1, keepdims=True)


def _queries(n: int, dim: int) -> np.ndarray:
    q = np.random.default_rng(1).standard_normal((n, dim), dtype=np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def run_zoobench(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    from zoo.search import StreamingTopK

    acc = StreamingTopK(_queries(args.queries, args.dim), args.k)
    for shard in _shards(args.docs, args.dim):
        acc.add(shard)
    return acc.result()


def run_faiss(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    index = faiss.IndexFlatIP(args.dim)
    for shard in _shards(args.docs, args.dim):
        index.add(shard)
    return index.search(_queries(args.queries, args.dim), args.k)


RUNNERS = {"zoobench": run_zoobench, "faiss": run_faiss}


def child(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    scores, idx = RUNNERS[args.child](args)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    print(json.dumps({"seconds": seconds, "peak_bytes": peak, "top1": idx[:50, 0].tolist(), "s1": float(scores[0, 0])}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--child", choices=sorted(RUNNERS))
    args = parser.parse_args()
    if args.child:
        return child(args)
    out = {}
    for name in RUNNERS:
        cmd = [sys.executable, __file__, "--child", name, *sys.argv[1:]]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(
                f"{name}: failed ({proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode})"
            )
            continue
        out[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        gib = out[name]["peak_bytes"] / 2**30
        print(f"{name:9s} peak {gib:.2f} GiB   {out[name]['seconds']:.1f} s")
    if len(out) == 2:
        same = out["zoobench"]["top1"] == out["faiss"]["top1"]
        z, f = out["zoobench"], out["faiss"]
        print(
            f"memory ratio zoobench/faiss: {z['peak_bytes'] / f['peak_bytes']:.2f}   "
            f"time ratio: {z['seconds'] / f['seconds']:.2f}   same top-1 on 50 queries: {same}"
        )
    if "zoobench" in out:
        ok = out["zoobench"]["peak_bytes"] < 2 * 2**30
        print(f"target zoobench peak < 2 GiB: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
