"""Look-alike model folders (issue 10, class 5): weights load from safetensors only, and a trained folder
without them is not listed (a warning says why) instead of listed and crashing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from zoo.errors import ZooError
from zoo.families.baselines import BertMeanEncoder
from zoo.registry import create_model, get_card, list_models


@pytest.fixture(scope="module")
def saved_gte(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """test-gte saved as a folder (config, model.safetensors, tokenizer)."""
    return create_model("test-gte").model.save_pretrained(tmp_path_factory.mktemp("gte") / "m")


def _pickle_only(folder: Path, out: Path) -> Path:
    """A copy of ``folder`` whose weights are ``pytorch_model.bin`` (a pickle) instead of safetensors."""
    out.mkdir(parents=True)
    for path in folder.iterdir():
        if path.name != "model.safetensors":
            (out / path.name).write_bytes(path.read_bytes())
    torch.save(load_file(folder / "model.safetensors"), out / "pytorch_model.bin")
    return out


def _trained(folder: Path, name: str) -> None:
    record = {"name": name, "family": "gte", "weights_sha256": "sha256:" + "0" * 64}
    (folder / "train.json").write_text(json.dumps(record), encoding="utf-8")


def test_a_bert_folder_with_only_a_pickle_is_refused(saved_gte: Path, tmp_path: Path) -> None:
    folder = _pickle_only(saved_gte, tmp_path / "bert")
    with pytest.raises(ZooError, match="no model.safetensors"):
        BertMeanEncoder(get_card("me5-small.torch"), folder)


def test_trained_look_alikes_are_not_listed(
    saved_gte: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    models = tmp_path / "models"
    monkeypatch.setenv("ZOOBENCH_MODELS", str(models))
    _trained(_pickle_only(saved_gte, models / "pickled"), "test-gte.pickled")
    lora = models / "lora"  # an adapter folder whose adapter is a pickle
    lora.mkdir()
    (lora / "adapter_config.json").write_text("{}", encoding="utf-8")
    (lora / "adapter_model.bin").write_bytes(b"not safetensors")
    (lora / "adapter_base.json").write_text(json.dumps({"source": f"local:{saved_gte}"}), encoding="utf-8")
    _trained(lora, "test-gte.lora-pickled")
    capsys.readouterr()
    assert list_models("test-gte.*") == []
    err = capsys.readouterr().err
    assert f"skipped trained model {models / 'lora'}: " in err and "no adapter_model.safetensors" in err
    assert f"skipped trained model {models / 'pickled'}: " in err and "no model.safetensors" in err
    with pytest.raises(ZooError, match="unknown model 'test-gte.lora-pickled'"):
        create_model("test-gte.lora-pickled")
