"""zoo.train.trainer: resume, GradCache, DDP under torchrun, the tiny recipe, the CLI verbs, registration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from harness.cli import main
from zoo.errors import ZooError
from zoo.registry import create_model, get_card, list_models
from zoo.train import train
from zoo.train.config import to_toml
from zoo.train.trainer import lr_factor

REPO = Path(__file__).resolve().parents[3]


def _recipe(init: Path, steps: tuple[int, int] = (3, 3), **top) -> dict:
    """Two stages over every data format: pairs + scored (CoSENT), then mined triplets + distillation."""
    return {
        "name": "gte-test.run",
        "seed": 0,
        "threads": 1,  # tiny ops: one thread is much faster on a busy machine
        "model": {"family": "gte", "init": f"local:{init}", "overrides": {"max_tokens": 32}},
        "stages": [
            {
                "name": "one",
                "steps": steps[0],
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
                "steps": steps[1],
                "batch_size": 8,
                "lr": 5e-4,
                "max_length": 24,
                "teacher": "test-random",
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
        **top,
    }


def _losses(folder: Path) -> list[tuple[int, str, float]]:
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [(m["step"], m["source"], m["loss"]) for m in map(json.loads, lines)]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


class _Crash(Exception):
    pass


def _crash_at(step: int):
    def hook(s: int, _: dict) -> None:
        if s == step:
            raise _Crash(f"simulated crash after step {s}")

    return hook


# RESUME ==========================================================================================


def test_an_interrupted_run_resumes_to_the_same_weights(
    tmp_path: Path, train_data: Path, tiny_init_dropout: Path
) -> None:
    recipe = _recipe(tiny_init_dropout, checkpoint_every=2)  # dropout 0.1: the result depends on the RNG
    a = train(recipe, out=tmp_path / "a", data_dir=train_data, progress=False)

    b = tmp_path / "b"
    with pytest.raises(_Crash):
        train(recipe, out=b, data_dir=train_data, progress=False, on_step=_crash_at(3))  # stage one, ckpt at 2
    assert [p.name for p in (b / "checkpoints").iterdir()] == ["step-0000002"]
    with pytest.raises(_Crash):
        train(recipe, out=b, data_dir=train_data, progress=False, on_step=_crash_at(5))  # stage two, ckpt at 4
    assert sorted(p.name for p in (b / "checkpoints").iterdir()) == ["step-0000002", "step-0000004"]
    train(recipe, out=b, data_dir=train_data, progress=False)

    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert _losses(a) == _losses(b) and len(_losses(a)) == 6
    ra, rb = (json.loads((f / "train.json").read_text()) for f in (a, b))
    assert ra["weights_sha256"] == rb["weights_sha256"] and ra["data"] == rb["data"]
    assert [d["name"] for d in rb["data"]] == ["pairs", "scored", "qrels", "distill"]  # stages before the resume too
    assert not (b / "checkpoints").exists()
    init = load_file(tiny_init_dropout / "model.safetensors")
    assert not torch.equal(
        init["encoder.layer.0.attention.self.query.weight"], wa["encoder.layer.0.attention.self.query.weight"]
    )

    # A finished folder is not retrained; another recipe may not reuse it or its checkpoints.
    assert train(recipe, out=a, data_dir=train_data, progress=False) == a
    with pytest.raises(ZooError, match="already holds a different trained model"):
        train(recipe, ["seed=1"], out=a, data_dir=train_data, progress=False)
    c = tmp_path / "c"
    with pytest.raises(_Crash):
        train(recipe, out=c, data_dir=train_data, progress=False, on_step=_crash_at(3))
    with pytest.raises(ZooError, match="written by a different recipe"):
        train(recipe, ["stages.one.lr=0.1"], out=c, data_dir=train_data, progress=False)


# GRADCACHE, CHECKPOINTING, BF16 ==================================================================


def _one_stage(init: Path, **stage) -> dict:
    recipe = _recipe(init, steps=(2, 0))
    recipe["stages"] = [{**recipe["stages"][1], "name": "only", "steps": 2, "teacher": None, **stage}]
    recipe["stages"][0]["sources"] = recipe["stages"][0]["sources"][:1]  # mined triplets
    return recipe


def test_grad_cache_gives_the_same_update(tmp_path: Path, train_data: Path, tiny_init: Path, tiny_init_dropout) -> None:
    plain = _weights(train(_one_stage(tiny_init), out=tmp_path / "plain", data_dir=train_data, progress=False))
    cached = train(
        _one_stage(tiny_init, grad_cache_chunk=3),
        ["gradient_checkpointing=true"],
        out=tmp_path / "cached",
        data_dir=train_data,
        progress=False,
    )
    for k, v in _weights(cached).items():
        torch.testing.assert_close(v, plain[k], atol=1e-5, rtol=1e-4)
    assert [x[2] for x in _losses(cached)] == pytest.approx([x[2] for x in _losses(tmp_path / "plain")], rel=1e-5)

    # With dropout, one chunk per column replays the forward pass's RNG: the same masks, the same update.
    drop = _weights(train(_one_stage(tiny_init_dropout), out=tmp_path / "drop", data_dir=train_data, progress=False))
    drop_cached = train(
        _one_stage(tiny_init_dropout, grad_cache_chunk=64), out=tmp_path / "dc", data_dir=train_data, progress=False
    )
    for k, v in _weights(drop_cached).items():
        torch.testing.assert_close(v, drop[k], atol=1e-5, rtol=1e-4)


def test_bf16_autocast_trains(tmp_path: Path, train_data: Path, tiny_init: Path) -> None:
    out = train(_one_stage(tiny_init), ["bf16=true"], out=tmp_path / "bf16", data_dir=train_data, progress=False)
    fp32 = train(_one_stage(tiny_init), out=tmp_path / "fp32", data_dir=train_data, progress=False)
    (_, _, l16), (_, _, l32) = _losses(out)[0], _losses(fp32)[0]
    assert np.isfinite(l16) and l16 != l32 and abs(l16 - l32) < 0.05 * l32  # bf16 rounding, same loss


def _seen_texts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from zoo.families.gte import GTEModel

    seen: list[str] = []
    tokenize = GTEModel.tokenize

    def spy(self, texts, max_length=None):
        seen.extend(texts)
        return tokenize(self, texts, max_length)

    monkeypatch.setattr(GTEModel, "tokenize", spy)
    return seen


@pytest.mark.parametrize("symmetric", [False, True])
def test_training_prepends_the_prompts_as_the_harness_does(
    tmp_path: Path, train_data: Path, tiny_init: Path, monkeypatch: pytest.MonkeyPatch, symmetric: bool
) -> None:
    seen = _seen_texts(monkeypatch)
    recipe = _recipe(tiny_init, steps=(4, 0))
    recipe["stages"] = recipe["stages"][:1]
    recipe["stages"][0]["sources"][0]["symmetric"] = symmetric
    recipe["model"]["overrides"]["prompts"] = {"query": "Q: ", "document": "D: "}
    out = train(recipe, out=tmp_path / "run", data_dir=train_data, progress=False)
    assert {src for _, src, _ in _losses(out)} == {"pairs", "scored"}
    assert all(t.startswith(("Q: ", "D: ")) for t in seen)
    documents = [t for t in seen if t.startswith("D: ")]
    # Documents: the positives of the (asymmetric) pairs; scored pairs and queries take the query prompt.
    assert all(t.endswith("are described here") for t in documents)
    assert len(documents) == (0 if symmetric else sum(t.startswith("Q: what about") for t in seen))
    assert json.loads((out / "zoobench.json").read_text())["prompts"] == {"query": "Q: ", "document": "D: "}


def test_frozen_parameters_do_not_move(tmp_path: Path, train_data: Path, tiny_init: Path) -> None:
    start = _weights(tiny_init)
    recipe = _one_stage(tiny_init)
    recipe["model"]["freeze"] = ["backbone.embeddings.word_embeddings", "backbone.encoder.layer.0."]
    after = _weights(train(recipe, out=tmp_path / "frozen", data_dir=train_data, progress=False))
    frozen = [k for k in after if k.startswith(("embeddings.word_embeddings", "encoder.layer.0."))]
    assert len(frozen) > 5
    for k in frozen:
        torch.testing.assert_close(after[k], start[k], rtol=0, atol=0)
    assert not torch.equal(after["encoder.layer.1.output.dense.weight"], start["encoder.layer.1.output.dense.weight"])
    recipe["model"]["freeze"] = ["backbone.nope"]
    with pytest.raises(ZooError, match="model.freeze: 'backbone.nope' matches no parameter"):
        train(recipe, out=tmp_path / "bad", data_dir=train_data, progress=False)


def test_lr_schedules() -> None:
    assert [lr_factor(s, 10, 0.2, "linear") for s in (0, 1, 2, 6, 9)] == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.125])
    assert lr_factor(2, 10, 0.2, "cosine") == 1.0 and lr_factor(6, 10, 0.2, "cosine") == pytest.approx(0.5)
    assert lr_factor(9, 10, 0.0, "constant") == 1.0


# DDP ==============================================================================================


def test_two_process_torchrun_reproduces_the_one_process_loss(
    tmp_path: Path, train_data: Path, tiny_init: Path
) -> None:
    recipe = _recipe(tiny_init, steps=(2, 2))
    recipe["stages"][1]["sources"] = recipe["stages"][1]["sources"][:1]  # mined triplets, GTE loss
    recipe["stages"][1]["teacher"] = None
    path = tmp_path / "ddp.toml"
    path.write_text(to_toml(recipe))
    one = train(path, out=tmp_path / "one", data_dir=train_data, progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "zoo.train"]
    cmd += ["--recipe", str(path), "--out", str(tmp_path / "two"), "--data-dir", str(train_data), "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    l1, l2 = _losses(one), _losses(tmp_path / "two")
    assert [(s, src) for s, src, _ in l1] == [(s, src) for s, src, _ in l2] and len(l1) == 4
    for (_, _, a), (_, _, b) in zip(l1, l2, strict=True):
        assert abs(a - b) < 1e-4
    assert json.loads((tmp_path / "two" / "train.json").read_text())["world_size"] == 2
    w1, w2 = _weights(one), _weights(tmp_path / "two")
    # The all-reduce sums gradients in another order. Adam divides by sqrt(v), so an element whose gradient is
    # float noise can move by up to lr (1e-3) per step either way: seen on an AMD EPYC (1 element of 4,096 off
    # by 1.4e-5, every run). All but one element in a thousand must agree to 1e-5.
    for k, v in w1.items():
        off = ~torch.isclose(w2[k], v, atol=1e-5, rtol=1e-4)
        assert int(off.sum()) <= max(1, v.numel() // 1000), (k, int(off.sum()))
        assert float((w2[k] - v).abs().max()) <= 4 * 1e-3, k


# THE TINY RECIPE, END TO END =====================================================================


def test_tiny_scratch_recipe_trains_from_nothing_and_its_loss_falls(tmp_path: Path, shared_data: Path) -> None:
    import harness

    folder = train("gte/tiny-scratch", out=tmp_path / "tiny", data_dir=shared_data, progress=False)
    losses = _losses(folder)
    for stage_steps, source in ((range(1, 61), "wikiqa"), (range(1, 61), "snli-pairs"), (range(61, 121), "snli")):
        ours = [loss for step, src, loss in losses if step in stage_steps and src == source]
        assert np.mean(ours[-5:]) < np.mean(ours[:5]) - 0.2, (source, ours)
    record = json.loads((folder / "train.json").read_text())
    assert record["init"] is None and record["scratch"]["vocab"] <= 2000 and record["params"] < 400_000
    assert set(record["scratch"]["tokenizer_corpora"]) == {"wikiqa-pairs/train.jsonl", "snli-triplets/train.jsonl"}

    name = record["name"]
    assert name in list_models() and get_card(name).embed_dim == 64
    trained_rec = harness.evaluate(
        name, ["local/stsb"], results_dir=tmp_path / "r", data_dir=shared_data, progress=False
    )
    from zoo.families.gte import GTEEncoder, GTEModel

    init = GTEEncoder(get_card(name), GTEModel.from_pretrained(folder / "init"))
    init_rec = harness.evaluate(init, ["local/stsb"], results_dir=tmp_path / "r0", data_dir=shared_data, progress=False)
    assert trained_rec[0].get_score() > init_rec[0].get_score() + 0.04  # 0.56 vs 0.50 (random init)


# CLI, REGISTRATION, EXPORT =======================================================================


def test_cli_train_ls_run_export(
    tmp_path: Path, train_data: Path, tiny_init: Path, tiny_data: Path, capsys: pytest.CaptureFixture
) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(to_toml(_recipe(tiny_init, steps=(2, 1))))
    out = tmp_path / "elsewhere" / "run"
    argv = ["train", "--recipe", str(recipe), "--out", str(out), "--data-dir", str(train_data), "--no-progress"]
    assert main([*argv, "--set", "stages.two.lr=1e-4"]) == 0
    assert "trained gte-test.run" in capsys.readouterr().out
    link = Path(os.environ["ZOOBENCH_MODELS"]) / "gte-test.run"
    assert link.is_symlink() and link.resolve() == out.resolve()  # registered although written elsewhere
    resolved = (out / "recipe.toml").read_text()
    assert (
        "lr = 0.0001" in resolved and json.loads((out / "train.json").read_text())["config"]["stages"][1]["lr"] == 1e-4
    )

    assert main(["ls", "models", "gte-test*"]) == 0
    assert "gte-test.run" in capsys.readouterr().out
    card = get_card("gte-test.run")
    sha = json.loads((out / "train.json").read_text())["weights_sha256"]
    assert card.revision == "sha256-" + sha.removeprefix("sha256:")[:12] and card.family == "gte"

    results = tmp_path / "results"
    run = ["run", "--model", "gte-test.run", "--tasks", "local/sts", "--data-dir", str(tiny_data)]
    assert main([*run, "--results", str(results), "--no-progress"]) == 0
    (record,) = results.rglob("sts.json")
    assert json.loads(record.read_text())["revision"] == card.revision

    st_dir = tmp_path / "st"
    assert main(["export", "--format", "sentence-transformers", "--model", "gte-test.run", "--out", str(st_dir)]) == 0
    from sentence_transformers import SentenceTransformer

    texts = ["the river is by the mountain", "a piano", "what about apple and banana " * 10]
    ours = create_model("gte-test.run").encode(texts)
    theirs = SentenceTransformer(str(st_dir), device="cpu").encode(texts)
    np.testing.assert_allclose(theirs, ours, atol=1e-5)

    assert main(["train", "--recipe", "gte/nope"]) == 2
    assert "no recipe 'gte/nope'" in capsys.readouterr().err
    assert main(["export", "--format", "sentence-transformers", "--model", "test-random", "--out", str(st_dir)]) == 2
    assert "not a trained folder" in capsys.readouterr().err


def test_python_m_zoo_train_reports_errors_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "zoo.train", "--recipe", "gte/tiny-scratch", "--set", "stages.weak.learning_rate=1"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "zoobench: error: "
        + str(REPO / "zoo/recipes/gte/tiny-scratch.toml")
        + ".stages.0: unknown key 'learning_rate' (known: name, steps, sources, batch_size, loss, loss_args, alpha, "
        "lr, weight_decay, warmup_ratio, schedule, max_length, query_max_length, grad_clip, grad_cache_chunk, "
        "length_buckets, teacher, "
        "model)"
    ]
