"""Merging two BERT-base-size checkpoints (12 layers x 768, random weights): wall time and peak memory of
``zoo.merge.merge_files`` (streams the safetensors files a tensor at a time) against the naive merge that loads every
state dict whole (``safetensors.torch.load_file``, as mergekit-free scripts do), same files, same method, same process
kind (each in a fresh subprocess, so its peak RSS is its own).

    python benchmarks/merge.py [--method ties] [--density 0.5] [--models 2] [--dir DIR]

Prints per merger: seconds, peak RSS and peak RSS over one model's size (goal: < 30 s and < 3x); and checks the two
outputs are equal. mergekit is not used as the peer: it pins its own torch/transformers versions (it would replace
the CPU torch of this environment); the naive all-in-memory merge is what the issue names instead.

Measured on the 2-core AMD EPYC, otherwise idle (TIES, density 0.5, 3 files of 415 MiB): zoobench 3.3 s, peak RSS
1,211 MiB = 2.91x one model; naive 2.7 s, 2,093 MiB = 5.04x; outputs equal. The peak is the Python/torch process
itself plus the float32 temporaries of the largest tensor (the 30,522 x 768 word embeddings); under a heavy load
from other jobs the same merge took 106-138 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import torch
sys.path.insert(0, {repo!r})
from zoo.merge import MergeConfig, merge_files, merge_states
cfg = MergeConfig(base="base", models=["m"] * {n}, method={method!r}, density={density}, alpha=1.0)
files = {files!r}
t0 = time.perf_counter()
if {kind!r} == "zoobench":
    merge_files(files[0], files[1:], {out!r}, cfg)
else:
    from safetensors.torch import load_file, save_file
    states = [load_file(f) for f in files]
    merged = merge_states(states[0], states[1:], cfg)
    save_file(merged, {out!r})
seconds = time.perf_counter() - t0
print(json.dumps({{"seconds": seconds, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
"""


def _bert_shapes(layers: int = 12, d: int = 768, ff: int = 3072, vocab: int = 30522) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (vocab, d),
        "embeddings.position_embeddings.weight": (512, d),
        "embeddings.token_type_embeddings.weight": (2, d),
        "embeddings.LayerNorm.weight": (d,),
        "embeddings.LayerNorm.bias": (d,),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            shapes[p + name + ".weight"], shapes[p + name + ".bias"] = (d, d), (d,)
        shapes[p + "attention.output.LayerNorm.weight"] = shapes[p + "attention.output.LayerNorm.bias"] = (d,)
        shapes[p + "intermediate.dense.weight"], shapes[p + "intermediate.dense.bias"] = (ff, d), (ff,)
        shapes[p + "output.dense.weight"], shapes[p + "output.dense.bias"] = (d, ff), (d,)
        shapes[p + "output.LayerNorm.weight"] = shapes[p + "output.LayerNorm.bias"] = (d,)
    return shapes


def _write(folder: Path, n: int) -> tuple[list[str], int]:
    import torch
    from safetensors.torch import save_file

    shapes = _bert_shapes()
    files = []
    g = torch.Generator().manual_seed(0)
    base = {k: torch.randn(s, generator=g) * 0.02 for k, s in shapes.items()}
    size = sum(t.numel() * t.element_size() for t in base.values())
    for i in range(n + 1):
        state = base if i == 0 else {k: v + 0.001 * torch.randn(v.shape, generator=g) for k, v in base.items()}
        path = folder / f"model{i}.safetensors"
        save_file(state, str(path))
        files.append(str(path))
        del state
    return files, size


def _run(kind: str, files: list[str], out: str, args: argparse.Namespace) -> dict:
    repo = str(Path(__file__).resolve().parent.parent)
    code = CHILD.format(repo=repo, n=len(files) - 1, method=args.method, density=args.density, files=files,
                        kind=kind, out=out)  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{kind} merge failed: {proc.stderr.strip().splitlines()[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="ties", help="merge method (default: ties)")
    parser.add_argument("--density", type=float, default=0.5, help="TIES/DARE density (default: 0.5)")
    parser.add_argument("--models", type=int, default=2, help="task models (default: 2)")
    parser.add_argument("--dir", help="where to write the checkpoints (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zoobench-merge-", dir=args.dir) as tmp:
        files, size = _write(Path(tmp), args.models)
        print(
            f"{args.models + 1} checkpoints of 12 x 768 (BERT-base shape): {size / 2**20:.0f} MiB each, {args.method}"
        )
        results = {}
        for kind in ("zoobench", "naive"):
            out = os.path.join(tmp, f"{kind}.safetensors")
            results[kind] = r = _run(kind, files, out, args)
            print(f"{kind:>9}: {r['seconds']:6.1f} s, peak RSS {r['peak_rss'] / 2**20:6.0f} MiB = "
                  f"{r['peak_rss'] / size:.2f}x one model")  # fmt: skip
        from safetensors.torch import load_file

        a, b = load_file(os.path.join(tmp, "zoobench.safetensors")), load_file(os.path.join(tmp, "naive.safetensors"))
        equal = a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)
        z, n = results["zoobench"], results["naive"]
        speed, memory = n["seconds"] / z["seconds"], n["peak_rss"] / z["peak_rss"]
        print(f"zoobench vs naive: {speed:.2f}x faster, {memory:.2f}x less memory; outputs equal: {equal}")
        goal = z["seconds"] < 30 and z["peak_rss"] < 3 * size
        print(f"goal (< 30 s and < 3x one model): {'met' if goal else 'NOT met'}")


if __name__ == "__main__":
    main()
