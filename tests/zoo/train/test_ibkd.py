"""IBKD (arXiv:2311.05472): its loss composed of the hand-checked InfoNCE and HSIC, the layer states it reads, a
student cut from its teacher, and a run that trains the projection with the student, resumes to the same
weights and reads the teacher's embeddings from the embedding cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from tests.zoo.train.test_trainer import _Crash, _crash_at, _losses, _recipe, _weights
from zoo.errors import ZooError
from zoo.families.gte import GTEModel
from zoo.train import train
from zoo.train.losses import Encoded, create_loss, hsic, teacher_infonce


def test_ibkd_loss_is_infonce_to_the_teacher_plus_weighted_hsic_of_unit_vectors() -> None:
    g = torch.Generator().manual_seed(0)
    z, h, t = torch.randn(5, 3, generator=g), 4 * torch.randn(5, 6, generator=g), torch.randn(5, 2, generator=g)
    loss = create_loss("ibkd", {"temperature": 0.5, "weight": 0.3, "gamma": 2.0, "layer": 1})
    assert loss.outputs == ("dense", "layer:1") and loss.builds
    with pytest.raises(ZooError, match="build\\(\\) was not called"):
        loss(Encoded(z, None, h), t)
    loss.build(3, 2, seed=7)
    w = loss.projection
    want = teacher_infonce(z @ w.weight.T + w.bias, t, 0.5) + 0.3 * hsic(
        F.normalize(h, dim=-1), F.normalize(z, dim=-1), 2.0
    )
    got = loss(Encoded(z, None, h), t)
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-6)
    got.backward()
    assert w.weight.grad is not None and w.weight.grad.abs().sum() > 0
    again = create_loss("ibkd")
    again.build(3, 2, seed=7)
    assert torch.equal(again.projection.weight, w.weight)  # seeded: every rank and a resumed run start alike
    assert again.hparams == {"temperature": 1.0, "weight": 0.2, "gamma": 1.0, "layer": 0}  # IBKD's run_unsup.sh
    for bad in (-1, 1.5, True):
        with pytest.raises(ZooError, match="layer must be an integer >= 0"):
            create_loss("ibkd", {"layer": bad})


def test_layer_outputs_and_a_student_cut_from_its_teacher(tiny_init: Path) -> None:
    full = GTEModel.from_pretrained(tiny_init)
    batch = full.tokenize(["a short text", "another, somewhat longer text here"])
    assert full.head_outputs[:4] == ("dense", "layer:0", "layer:1", "layer:2")
    with torch.no_grad():
        out = full.heads(**batch, outputs=("layer:1", "dense", "layer:0"))
        states = full.backbone(**batch, output_hidden_states=True).hidden_states
    assert list(out) == ["layer:1", "dense", "layer:0"]
    m = batch["attention_mask"].unsqueeze(-1).float()
    for i in (0, 1):
        torch.testing.assert_close(out[f"layer:{i}"], (states[i] * m).sum(1) / m.sum(1))
    with pytest.raises(ZooError, match="this model has layers 0 to 2"):
        full.heads(**batch, outputs=("layer:3",))

    cut = GTEModel.from_pretrained(tiny_init, layers=1)
    assert len(cut.backbone.encoder.layer) == 1 and cut.head_outputs[-1] == "layer:1"
    with torch.no_grad():
        mine = cut.heads(**batch, outputs=("dense",))["dense"]
    torch.testing.assert_close(mine, F.normalize(out["layer:1"], dim=-1))  # the teacher's layer 1, pooled
    for bad in (0, 3):
        with pytest.raises(ZooError, match="layers must be an integer from 1 to 2"):
            GTEModel.from_pretrained(tiny_init, layers=bad)


def _ibkd_recipe(init: Path, **top) -> dict:
    recipe = _recipe(init, steps=(4, 0), **top)
    stage = recipe["stages"][0]
    stage.update(loss="ibkd", loss_args={"layer": 1, "temperature": 0.1}, teacher="test-random")
    stage["sources"] = [{"name": "distill", "reader": "jsonl-texts", "path": "texts/train.jsonl"}]
    recipe["stages"] = [stage]
    return recipe


def test_ibkd_run_trains_the_projection_resumes_and_reads_the_teacher_from_its_cache(
    tmp_path: Path, train_data: Path, tiny_init_dropout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("ZOOBENCH_CACHE", str(cache))
    recipe = _ibkd_recipe(tiny_init_dropout, checkpoint_every=2)
    a = train(recipe, out=tmp_path / "a", data_dir=train_data, progress=False)
    losses = [loss for _, _, loss in _losses(a)]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert not any("projection" in k for k in _weights(a))  # the projection trains with the student, then goes
    (folder,) = [p for p in cache.iterdir() if p.name.startswith("test-random-")]
    rows = sum(np.load(f).shape[0] for f in folder.glob("*.npy"))
    assert rows > 0  # the teacher's embeddings went to its embedding cache

    b = tmp_path / "b"
    with pytest.raises(_Crash):
        train(recipe, out=b, data_dir=train_data, progress=False, on_step=_crash_at(3))
    (ckpt,) = (b / "checkpoints").glob("step-*")
    saved = load_file(ckpt / "losses.safetensors")
    assert set(saved) == {"0.projection.weight", "0.projection.bias"} and saved["0.projection.weight"].shape == (64, 64)

    def refuse(*args, **kwargs):
        raise AssertionError("the teacher encoded a text its cache holds")

    from zoo.families.baselines import HashingEncoder

    monkeypatch.setattr(HashingEncoder, "encode", refuse)  # every text of the rerun is in the cache by now
    train(recipe, out=b, data_dir=train_data, progress=False)
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # the projection was restored with the optimizer
    assert _losses(a) == _losses(b)
    record = json.loads((a / "train.json").read_text())
    assert record["config"]["stages"][0]["loss"] == "ibkd"
