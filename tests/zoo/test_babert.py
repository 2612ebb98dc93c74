"""BABERT's pre-training: the model's heads, save / load, the babert loss and its targets, the tiny recipes, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from zoo.errors import ZooError
from zoo.families.babert import FAMILY, BABERTModel, BABERTScratchConfig
from zoo.registry import ModelCard
from zoo.train import train
from zoo.train.config import load_recipe
from zoo.train.losses import content_mask, create_loss
from zoo.train.tokenizer import train_wordpiece

WORDS = ["北京", "大学", "学生", "喜欢", "中国", "人民", "银行", "花呗", "还款", "怎么", "的", "了", "在", "是"]
CARD = ModelCard(name="babert-test", family="babert", revision="x", source="none")


def _sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(WORDS, size=int(rng.integers(3, 9)))) + ("ok2" if i % 7 == 0 else "") for i in range(n)]


def _tiny_config(**extra) -> BABERTScratchConfig:
    sizes = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "max_position": 64}
    return BABERTScratchConfig(**{**sizes, **extra})


@pytest.fixture
def tiny(tmp_path: Path) -> BABERTModel:
    tokenizer = train_wordpiece(_sentences(50), vocab_size=0)
    return BABERTModel.from_pretrained(FAMILY.scratch(tmp_path / "init", tokenizer, _tiny_config(), seed=0))


@pytest.fixture
def zh_data(tmp_path: Path) -> Path:
    """The recipes' files, tiny and synthetic, under their paths."""
    data = tmp_path / "data"
    texts = _sentences(80, seed=1)
    files = {
        "afqmc/train.jsonl": [
            {"sentence1": a, "sentence2": b, "score": 0.0} for a, b in zip(texts, texts[1:], strict=False)
        ],
        "tnews/train.jsonl": [{"text": t, "label": "news"} for t in texts[:30]],
        "ocnli-triplets/train.jsonl": [{"anchor": t, "positive": t[:3], "negative": t[-3:]} for t in texts[:30]],
        "lcqmc/dev.jsonl": [
            {"sentence1": a, "sentence2": b, "score": 1.0} for a, b in zip(texts[5:], texts[9:], strict=False)
        ],
    }
    for path, records in files.items():
        (data / path).parent.mkdir(parents=True, exist_ok=True)
        (data / path).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    for path in ("cluener/train.conll", "weibo-ner/train.conll"):
        (data / path).parent.mkdir(parents=True, exist_ok=True)
        (data / path).write_text("".join("".join(f"{c}\tO\n" for c in t) + "\n" for t in texts[40:]), encoding="utf-8")
    return data


# MODEL ===========================================================================================


def test_the_vocabulary_is_one_character_per_token(tiny: BABERTModel) -> None:
    tok = tiny.tokenizer
    assert tok.convert_ids_to_tokens(tok("北京ok2")["input_ids"]) == ["[CLS]", "北", "京", "o", "##k", "##2", "[SEP]"]
    with pytest.raises(ZooError, match="one character per token"):
        FAMILY.scratch(Path("/nonexistent"), train_wordpiece(["ab ab ab cd"], vocab_size=50), _tiny_config(), seed=0)


def test_heads_give_mlm_logits_and_boundary_features_of_the_middle_layer(tiny: BABERTModel) -> None:
    assert tiny.boundary_layer == 1 and tiny.boundary_features == 29  # 2 layers: the middle is 1; max_n 4: F 29
    assert tiny.mlm_decoder.weight is tiny.backbone.embeddings.word_embeddings.weight
    batch = tiny.tokenize(["北京大学", "学生"])
    select = torch.zeros_like(batch["input_ids"], dtype=torch.bool)
    select[0, 1] = select[1, 2] = True
    out = tiny.heads(**batch, outputs=("mlm", "boundary", "dense"), select=select)
    assert out["mlm"].shape == (2, len(tiny.tokenizer)) and out["boundary"].shape == (2, 6, 29)
    states = tiny.backbone(**batch, output_hidden_states=True).hidden_states[1]
    assert torch.allclose(out["boundary"], tiny.boundary_head(states))
    with pytest.raises(ZooError, match="boundary_layer must be"):
        BABERTModel(tiny.backbone, tiny.tokenizer, boundary_layer=3)


def test_save_and_load_give_the_same_weights_and_token_states(tiny: BABERTModel, tmp_path: Path) -> None:
    with torch.no_grad():
        tiny.boundary_head.bias.add_(1.0)  # not the init: the loaded heads must be the saved ones
    folder = tiny.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in folder.glob("*.bin")) == []
    assert "mlm_decoder.weight" not in load_file(folder / "model.safetensors")  # tied: saved once
    back = BABERTModel.from_pretrained(folder)
    a, b = tiny.state_dict(), back.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sentences = [list("北京大学的学生"), ["e1", "花", "呗"]]
    x, y = (m.as_encoder(CARD, device="cpu").encode_tokens(sentences) for m in (tiny, back))
    assert [s.shape for s in x] == [(7, 32), (3, 32)] and all(np.array_equal(p, q) for p, q in zip(x, y, strict=True))
    (folder / "model.safetensors").write_bytes(b"")
    tiny.backbone.save_pretrained(folder)  # a plain BERT folder: no heads
    with pytest.raises(ZooError, match="not a BABERT folder"):
        BABERTModel.from_pretrained(folder)


# LOSS ============================================================================================


def _fitted(model: BABERTModel, texts: list[str], **args):
    loss = create_loss("babert", args)
    batch = model.tokenize(texts)
    corpus = [
        row[keep].tolist() for row, keep in zip(batch["input_ids"], content_mask(batch, model.tokenizer), strict=True)
    ]
    loss.fitted = loss.fit(model, corpus)
    return loss


def test_boundary_targets_sit_on_the_real_tokens_only(tiny: BABERTModel) -> None:
    texts = _sentences(40)
    loss = _fitted(tiny, texts)
    batch = tiny.tokenize(["北京大学", "学生喜欢北京ok2"])  # row 0 padded
    select = torch.zeros_like(batch["input_ids"], dtype=torch.bool)
    select[1, 3] = True
    out = loss.token_targets(batch, select, tiny)
    target, weight = out["boundary_target"], out["boundary_weight"]
    assert target.shape == (*batch["input_ids"].shape, 29)
    real = torch.tensor([[0] + [1] * 4 + [0] * 6, [0] + [1] * 9 + [0]], dtype=torch.bool)  # [CLS] ... [SEP] [PAD]
    assert torch.equal(weight > 0, real) and torch.allclose(weight[real], torch.tensor(1 / 13))  # M / C = 1 / 13
    assert not target[~real].any()
    ids = [str(i) for i in batch["input_ids"][1, 1:10].tolist()]
    assert torch.equal(target[1, 1:10], torch.from_numpy(loss.fitted.features(ids)))
    assert target[real].abs().sum() > 0


def test_weight_zero_is_plain_mlm_and_a_positive_weight_adds_the_mse(tiny: BABERTModel) -> None:
    texts = _sentences(8)
    batch = tiny.tokenize(texts)
    results = {}
    for name, args in (
        ("mlm", {"mask_rate": 0.3}),
        ("b0", {"mask_rate": 0.3, "weight": 0}),
        ("b1", {"mask_rate": 0.3}),
    ):
        loss = create_loss("babert" if name != "mlm" else "mlm", args)
        if name != "mlm":
            loss = _fitted(tiny, texts, **args)
        masked, select, labels = loss.token_inputs(batch, tiny, torch.Generator().manual_seed(0))
        out = tiny.heads(**masked, outputs=("mlm", "boundary"), select=select)
        extra = {} if name == "mlm" else {"boundary": out["boundary"], **loss.token_targets(batch, select, tiny)}
        results[name] = loss(logits=out["mlm"], labels=labels, **extra).sum() / select.sum()
        if name == "b1":
            real = content_mask(batch, tiny.tokenizer)
            mse = ((out["boundary"] - extra["boundary_target"]) ** 2).mean(-1)[real].mean()
    assert results["b0"] == results["mlm"]
    assert torch.allclose(results["b1"], results["mlm"] + mse)
    with pytest.raises(ZooError, match="weight"):
        create_loss("babert", {"weight": -1})


# RECIPES =========================================================================================

SMALL = [
    "stages.pretrain.steps=4",
    "stages.pretrain.batch_size=4",
    "model.scratch.hidden_size=32",
    "model.scratch.num_layers=2",
    "model.scratch.num_heads=2",
    "model.scratch.intermediate_size=64",
    "model.scratch.max_position=64",
    "model.scratch.boundary_layer=1",
]


@pytest.mark.parametrize("recipe", ["babert/tiny-bert", "babert/tiny-babert"])
def test_a_tiny_recipe_trains_saves_and_reloads(recipe: str, zh_data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ZOOBENCH_MODELS", str(tmp_path / "models"))
    folder = train(recipe, SMALL, out=tmp_path / "out", data_dir=zh_data, progress=False)
    record = json.loads((folder / "train.json").read_text())
    assert record["family"] == "babert" and record["steps"] == 4
    init = load_file(folder / "init" / "model.safetensors")
    done = load_file(folder / "model.safetensors")
    moved = {k for k in init if not torch.equal(init[k], done[k])}
    assert "encoder.layer.0.attention.self.query.weight" in moved
    assert ("boundary_head.weight" in moved) == (recipe == "babert/tiny-babert")  # MLM alone never trains it
    from zoo.registry import create_model

    sentences = [list("北京大学的学生"), list("花呗还款ok2")]
    loaded = create_model(record["name"], device="cpu").encode_tokens(sentences)
    again = BABERTModel.from_pretrained(folder).as_encoder(CARD, device="cpu").encode_tokens(sentences)
    assert all(np.array_equal(a, b) for a, b in zip(loaded, again, strict=True)) and loaded[0].shape == (7, 32)


def test_the_two_recipes_differ_only_in_the_loss() -> None:
    bert, babert = (load_recipe(f"babert/tiny-{n}") for n in ("bert", "babert"))
    assert bert.model == babert.model and bert.seed == babert.seed
    (a,), (b,) = bert.stages, babert.stages
    assert (a.loss, b.loss) == ("mlm", "babert") and a.loss_args["mask_rate"] == b.loss_args["mask_rate"]
    same = ("steps", "batch_size", "lr", "warmup_ratio", "schedule", "max_length", "sources")
    assert all(getattr(a, k) == getattr(b, k) for k in same)


class _Crash(Exception):
    pass


def _crash_at(step: int):
    def hook(s: int, _: dict) -> None:
        if s == step:
            raise _Crash(f"simulated crash after step {s}")

    return hook


def test_an_interrupted_babert_run_resumes_to_the_same_weights(zh_data: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ZOOBENCH_MODELS", str(tmp_path / "models"))
    overrides = [*SMALL, "stages.pretrain.steps=5", "checkpoint_every=2"]
    a = train("babert/tiny-babert", overrides, out=tmp_path / "a", data_dir=zh_data, progress=False)
    b = tmp_path / "b"
    with pytest.raises(_Crash):
        train("babert/tiny-babert", overrides, out=b, data_dir=zh_data, progress=False, on_step=_crash_at(3))
    assert [p.name for p in (b / "checkpoints").iterdir()] == ["step-0000002"]
    train("babert/tiny-babert", overrides, out=b, data_dir=zh_data, progress=False)
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    losses = [[json.loads(x)["loss"] for x in (f / "metrics.jsonl").read_text().splitlines()] for f in (a, b)]
    assert losses[0] == losses[1] and len(losses[0]) == 5
