"""BABERT's boundary statistics over ~1M characters of the shared Chinese text: zoobench's vectorised
``zoo.families.babert.boundary_statistics`` (numpy: integer n-gram keys, np.unique, bincount) against the same
statistics computed in plain Python with ``collections.Counter`` (the way new-word-discovery scripts do it),
same sentences, same process, one after the other.

    python benchmarks/boundary_stats.py [--chars 1000000] [--max-n 4] [--data-dir ../shared/data]

Text: the character CoNLL sets (pku-cws, msr-cws, msra-ner, weibo-ner, cluener; tokens read with the seqlabel
reader, tags ignored), then the Chinese jsonl sets (afqmc, ocnli-triplets, lcqmc, tnews) if more is needed,
sentence by sentence until ``--chars`` symbols (the last sentence cut). Prints each side's wall time, the ratio
Counter / zoobench, and the largest absolute difference between the two over every n-gram's count, PMI, left and
right entropy (they must agree to float rounding), plus the per-character features' shape and time.

Target (issue 14, acceptance 3): zoobench under 60 s for 1M characters on this CPU (2-core AMD EPYC).

Measured on the 2-core AMD EPYC while a CI job ran beside it (load average 1.3), OMP_NUM_THREADS=1, 1,000,000
characters (22,011 sentences), max_n 4: zoobench 0.76 s (4,860 + 214,586 + 552,900 + 736,012 n-gram types),
Counter 21.8 s, 28.6x faster, max abs difference 1.6e-13; the features of all 1M characters (29 columns) 3.1 s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.tasks.seqlabel import read_conll  # noqa: E402
from zoo.families.babert import BOUNDARY, boundary_statistics  # noqa: E402

CONLL = ["pku-cws/test", "msr-cws/test", "msra-ner/test", "weibo-ner/train", "weibo-ner/dev", "weibo-ner/test",
         "cluener/train", "cluener/test"]  # fmt: skip
JSONL = {"afqmc/train": ("sentence1", "sentence2"), "ocnli-triplets/train": ("anchor", "positive", "negative"),
         "lcqmc/test": ("sentence1", "sentence2"), "tnews/train": ("text",)}  # fmt: skip


def load_sentences(data_dir: Path, chars: int) -> list[list[str]]:
    """Sentences (lists of symbols) of the shared Chinese text, ``chars`` symbols in all (fewer if it runs out)."""
    out: list[list[str]] = []
    left = chars

    def take(sentence: list[str]) -> bool:
        nonlocal left
        if sentence:
            out.append(sentence[:left])
            left -= len(out[-1])
        return left > 0

    for name in CONLL:
        for tokens in read_conll(data_dir / f"{name}.conll")[0]:
            if not take(tokens):
                return out
    for name, fields in JSONL.items():
        path = data_dir / f"{name}.jsonl"
        if not path.exists():
            continue
        for line in path.open(encoding="utf-8"):
            row = json.loads(line)
            for field in fields:
                if not take(list(str(row.get(field, "")))):
                    return out
    return out


def counter_statistics(sentences: Sequence[Sequence[str]], max_n: int) -> dict[tuple[str, ...], tuple]:
    """The same statistics in plain Python: ``{ngram: (count, pmi, left entropy, right entropy)}`` (nats)."""
    counts: Counter[tuple[str, ...]] = Counter()
    lefts: Counter[tuple[tuple[str, ...], str]] = Counter()
    rights: Counter[tuple[tuple[str, ...], str]] = Counter()
    totals = Counter()
    for sentence in sentences:
        s = tuple(sentence)
        for n in range(1, max_n + 1):
            for i in range(len(s) - n + 1):
                g = s[i : i + n]
                counts[g] += 1
                lefts[g, s[i - 1] if i > 0 else BOUNDARY] += 1
                rights[g, s[i + n] if i + n < len(s) else BOUNDARY] += 1
            totals[n] += max(len(s) - n + 1, 0)
    left_h: Counter[tuple[str, ...]] = Counter()
    right_h: Counter[tuple[str, ...]] = Counter()
    for pairs, h in ((lefts, left_h), (rights, right_h)):
        for (g, _), c in pairs.items():
            p = c / counts[g]
            h[g] -= p * math.log(p)

    def log_p(g: tuple[str, ...]) -> float:
        return math.log(counts[g] / totals[len(g)])

    out = {}
    for g, c in counts.items():
        pmi = min((log_p(g) - log_p(g[:m]) - log_p(g[m:]) for m in range(1, len(g))), default=math.nan)
        out[g] = (c, pmi, left_h[g], right_h[g])
    return out


def max_difference(stats, reference: dict[tuple[str, ...], tuple]) -> float:
    """Largest |zoobench - Counter| over every n-gram's four numbers (inf if the n-gram sets differ)."""
    n_types = sum(len(c) for c in stats.counts.values())
    if n_types != len(reference):
        return math.inf
    worst = 0.0
    for n in range(1, stats.max_n + 1):
        ours = np.stack([stats.counts[n], stats.pmi[n], stats.left_entropy[n], stats.right_entropy[n]], axis=1)
        grams = [tuple(stats.symbols[i] for i in row) for row in stats.ngram_ids(n).tolist()]
        if any(g not in reference for g in grams):
            return math.inf
        theirs = np.array([reference[g] for g in grams], dtype=np.float64).reshape(-1, 4)
        both = ~(np.isnan(ours) & np.isnan(theirs))  # unigram PMI is NaN on both sides
        worst = max(worst, float(np.abs(ours - theirs)[both].max(initial=0.0)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chars", type=int, default=1_000_000, help="symbols of text (default: 1,000,000)")
    parser.add_argument("--max-n", type=int, default=4, help="longest n-gram (default: 4)")
    default_data = os.environ.get("ZOOBENCH_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--data-dir", default=default_data, help="the shared data (default: $ZOOBENCH_DATA, "
                        "else ../shared/data beside the repository)")  # fmt: skip
    args = parser.parse_args()

    if not (Path(args.data_dir) / "MANIFEST.md").exists():
        raise SystemExit(f"shared data not found at {args.data_dir} (give --data-dir)")
    print(f"loading up to {args.chars:,} characters from {args.data_dir} ...", flush=True)
    sentences = load_sentences(Path(args.data_dir), args.chars)
    n_chars = sum(len(s) for s in sentences)
    print(f"{len(sentences):,} sentences, {n_chars:,} characters, n-grams up to {args.max_n}", flush=True)

    print("zoobench (numpy) ...", flush=True)
    t0 = time.perf_counter()
    stats = boundary_statistics(sentences, max_n=args.max_n)
    ours = time.perf_counter() - t0
    types = " + ".join(f"{len(stats.counts[n]):,}" for n in range(1, args.max_n + 1))
    print(f"  zoobench: {ours:7.2f} s  ({types} n-gram types, {len(stats.symbols) - 1:,} symbols)", flush=True)

    print("Counter (plain Python) ...", flush=True)
    t0 = time.perf_counter()
    reference = counter_statistics(sentences, args.max_n)
    theirs = time.perf_counter() - t0
    print(f"   Counter: {theirs:7.2f} s", flush=True)

    t0 = time.perf_counter()
    features = stats.features_many(sentences)
    feat_s = time.perf_counter() - t0
    print(f"features of every character: {sum(len(f) for f in features):,} x {features[0].shape[1]} in {feat_s:.2f} s")

    diff = max_difference(stats, reference)
    print(f"zoobench vs Counter: {theirs / ours:.1f}x faster; max abs difference {diff:.3g} "
          f"(counts, PMI, left and right entropy of every n-gram)")  # fmt: skip
    goal = ours < 60 and n_chars >= min(args.chars, 1_000_000) and diff < 1e-9
    print(f"goal (< 60 s for {args.chars:,} characters, same numbers): {'met' if goal else 'NOT met'}")


if __name__ == "__main__":
    main()
