"""Wall time of a suite run with a cold embedding cache vs the same run again with it warm.

Peer: the cold run itself (everything encoded), measured in the same process. The warm run
re-evaluates every task (``overwrite=True``), so only the encoding is saved.

    python benchmarks/cache_rerun.py [--model minilm-l6.st] [--suite local-quick]

Target (issue 3): warm >= 10x faster than cold.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="minilm-l6.st")
    parser.add_argument("--suite", default="local-quick")
    parser.add_argument("--data-dir")
    args = parser.parse_args()

    import harness

    tasks = harness.get_suite(args.suite, args.data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        kw = dict(results_dir=f"{tmp}/results", data_dir=args.data_dir, cache_dir=f"{tmp}/cache", progress=False)
        t0 = time.perf_counter()
        cold = harness.evaluate(args.model, tasks, **kw)
        t_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        warm = harness.evaluate(args.model, tasks, overwrite=True, **kw)
        t_warm = time.perf_counter() - t0
    assert [r.scores for r in cold] == [r.scores for r in warm], "cached embeddings changed a score"
    encoded = sum(r.runtime.get("texts_encoded", 0) for r in warm)
    print(f"model {args.model}, suite {args.suite}: {len(cold)} tasks")
    print(f"cold cache: {t_cold:.1f} s   warm cache: {t_warm:.1f} s   texts encoded on the warm run: {encoded}")
    print(f"speed-up (cold / warm): {t_cold / t_warm:.1f}x   target >= 10x")


if __name__ == "__main__":
    main()
