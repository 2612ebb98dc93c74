"""zoo.families.mgte and zoo.nn.{rope,attention}: NewModel layout, unpadding, RoPE, heads, folders, cards."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import harness
from harness.results import read_run, run_path
from zoo.errors import ZooError
from zoo.families import mgte
from zoo.families.mgte import MGTEConfig, MGTEEncoder, MGTEModel, hybrid_scores, lexical_scores
from zoo.nn.attention import keep_padding, unpad, unpadded_attention
from zoo.nn.rope import RotaryEmbedding, apply_rotary, inv_frequencies
from zoo.protocols import Encoder, Ranker, SparseEncoder
from zoo.registry import create_model, get_card, get_family, list_models

MGTE_CARDS = ["gte-multilingual-base.alibaba", "gte-multilingual-reranker-base.alibaba", "test-mgte"]
TEXTS = ["a cat", "the quick brown fox jumps over the lazy dog " * 6, "x", "cats and dogs and more cats"]
TINY = {**mgte._TEST_CONFIG, "vocab_size": 50, "hidden_size": 16, "intermediate_size": 24}


@pytest.fixture(scope="session")
def _tiny() -> MGTEEncoder:
    return create_model("test-mgte")


@pytest.fixture
def tiny(_tiny: MGTEEncoder) -> MGTEEncoder:
    """test-mgte, built once per session, a fresh copy per test."""
    return copy.deepcopy(_tiny)


def _new_model_keys(layers: int, *, pack_qkv: bool, pooler: bool) -> set[str]:
    """The state-dict keys of upstream ``NewModel`` (FAMILIES.md (b)) for a RoPE config with token types."""
    keys = {f"embeddings.{n}" for n in ("word_embeddings.weight", "token_type_embeddings.weight")}
    keys |= {"embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        projections = ["qkv_proj"] if pack_qkv else ["q_proj", "k_proj", "v_proj"]
        keys |= {f"{p}attention.{n}.{s}" for n in [*projections, "o_proj"] for s in ("weight", "bias")}
        keys |= {f"{p}mlp.up_gate_proj.weight", f"{p}mlp.down_proj.weight", f"{p}mlp.down_proj.bias"}
        keys |= {f"{p}{ln}.{s}" for ln in ("attn_ln", "mlp_ln") for s in ("weight", "bias")}
    return keys | ({"pooler.dense.weight", "pooler.dense.bias"} if pooler else set())


def _batch(model: MGTEModel, texts: list[str]) -> dict[str, torch.Tensor]:
    batch = model.tokenize(texts)
    assert (batch["attention_mask"] == 0).any()  # padding is exercised
    return batch


def _reference(model: MGTEModel, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """An independent eager NewModel forward from the state dict: padded, additive mask, complex-number RoPE."""
    sd, c = model.state_dict(), model.config
    hidden, heads, inter = c.hidden_size, c.num_attention_heads, c.intermediate_size
    d = hidden // heads

    def ln(x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, (hidden,), sd[f"{name}.weight"], sd[f"{name}.bias"], c.layer_norm_eps)

    def linear(x: torch.Tensor, name: str, bias: bool = True) -> torch.Tensor:
        return x @ sd[f"{name}.weight"].T + (sd[f"{name}.bias"] if bias else 0)

    T = input_ids.shape[1]
    angles = torch.arange(T)[:, None] * (1.0 / c.rope_theta ** (torch.arange(0, d, 2) / d))[None]  # (T, d/2)
    turn = torch.polar(torch.ones_like(angles), angles)  # (T, d/2) complex

    def rope(t: torch.Tensor) -> torch.Tensor:  # (B, heads, T, d): pairs (x_i, x_{i+d/2}) as complex numbers
        z = torch.complex(t[..., : d // 2], t[..., d // 2 :]) * turn
        return torch.cat([z.real, z.imag], dim=-1)

    x = sd["embeddings.word_embeddings.weight"][input_ids] + sd["embeddings.token_type_embeddings.weight"][0]
    x = ln(x, "embeddings.LayerNorm")  # (B, T, H)
    bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min  # (B, 1, 1, T)
    for i in range(c.num_hidden_layers):
        p = f"encoder.layer.{i}."
        q, k, v = (
            t.unflatten(-1, (heads, d)).transpose(1, 2) for t in linear(x, p + "attention.qkv_proj").split(hidden, -1)
        )
        probs = torch.softmax(rope(q) @ rope(k).transpose(-1, -2) / math.sqrt(d) + bias, dim=-1)  # (B, h, T, T)
        x = ln(x + linear((probs @ v).transpose(1, 2).flatten(2), p + "attention.o_proj"), p + "attn_ln")
        up_gate = linear(x, p + "mlp.up_gate_proj", bias=False)  # (B, T, 2I)
        x = ln(x + linear(F.gelu(up_gate[..., inter:]) * up_gate[..., :inter], p + "mlp.down_proj"), p + "mlp_ln")
    return x


# NewModel layout =================================================================================


@pytest.mark.parametrize("pack_qkv", [True, False])
@pytest.mark.parametrize("pooler", [True, False])
def test_parameter_names_are_new_models(pack_qkv: bool, pooler: bool) -> None:
    config = MGTEConfig.from_dict({**TINY, "pack_qkv": pack_qkv})
    model = MGTEModel(config, None, pooler=pooler)
    expected = _new_model_keys(2, pack_qkv=pack_qkv, pooler=pooler)
    assert {n for n, _ in model.named_parameters()} == expected == set(model.state_dict())
    heads = MGTEModel(config, None, sparse_head=True, rerank_head=True, pooler=pooler)
    assert set(heads.state_dict()) - expected == {
        f"{h}.{s}" for h in ("sparse_head", "rerank_head") for s in ("weight", "bias")
    }


def test_matches_an_independent_reference_forward(tiny: MGTEEncoder) -> None:
    model = tiny.model
    batch = _batch(model, TEXTS)
    with torch.inference_mode():
        ours = model.last_hidden_state(**batch)
    expected = _reference(model, batch["input_ids"], batch["attention_mask"])
    real = batch["attention_mask"].bool()
    assert (ours - expected)[real].abs().max() < 1e-5


def test_unpacked_qkv_computes_the_same(tiny: MGTEEncoder) -> None:
    packed = tiny.model
    config = MGTEConfig.from_dict({**packed.config.to_dict(), "pack_qkv": False})
    split = MGTEModel(config, packed.tokenizer, sparse_head=True, rerank_head=True).eval()
    state = {}
    for key, value in packed.state_dict().items():
        if "qkv_proj" in key:
            for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0), strict=True):
                state[key.replace("qkv_proj", name)] = part  # rows: q, then k, then v
        else:
            state[key] = value
    split.load_state_dict(state)
    batch = _batch(packed, TEXTS)
    with torch.inference_mode():
        assert torch.allclose(split(**batch), packed(**batch), atol=1e-6)


# Unpadding =======================================================================================


@pytest.mark.parametrize("texts", [TEXTS, TEXTS[1:2], ["x", "y " * 200]], ids=["mixed", "one", "very-different"])
def test_unpadded_equals_padded(tiny: MGTEEncoder, texts: list[str]) -> None:
    model = tiny.model
    batch = model.tokenize(texts)
    real = batch["attention_mask"].bool()
    outputs = ("dense", "sparse", "rerank")
    with torch.inference_mode():
        model.unpad = True
        h1, o1 = model.last_hidden_state(**batch), model.heads(**batch, outputs=outputs)
        model.unpad = False
        h2, o2 = model.last_hidden_state(**batch), model.heads(**batch, outputs=outputs)
    assert (h1 - h2)[real].abs().max() < 1e-5
    assert (h1[~real] == 0).all()  # the unpadded path never computes pads
    for name in outputs:
        assert (o1[name] - o2[name]).abs().max() < 1e-5, name


@pytest.mark.parametrize("unpadded", [True, False])
def test_padding_never_changes_real_tokens(tiny: MGTEEncoder, unpadded: bool) -> None:
    model = tiny.model
    model.unpad = unpadded
    alone = model.tokenize(["the cat sat on the mat"])
    ids, mask = alone["input_ids"], alone["attention_mask"]
    junk = torch.randint(5, 1000, (1, 7))  # arbitrary ids behind a zero mask
    padded_ids, padded_mask = torch.cat([ids, junk], 1), torch.cat([mask, torch.zeros_like(junk)], 1)
    with torch.inference_mode():
        a = model.last_hidden_state(ids, mask)
        b = model.last_hidden_state(padded_ids, padded_mask)[:, : ids.shape[1]]
    assert (a - b).abs().max() < 1e-5


def test_unpad_helpers() -> None:
    x = torch.arange(2 * 4 * 3.0).view(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 0]])  # the second row is left-padded too
    packed, idx = unpad(x, mask)
    assert packed.shape == (5, 3) and idx.lengths.tolist() == [3, 2]
    assert idx.positions().tolist() == [0, 1, 2, 0, 1]
    assert torch.equal(idx.pad(packed), x * mask[..., None])
    full = keep_padding(mask)
    assert torch.equal(full.unpad(x), x.view(8, 3)) and torch.equal(full.pad(full.unpad(x)), x)
    q = torch.randn(5, 2, 4)
    out = unpadded_attention(q, q, q, idx)  # each sequence attends within itself only
    alone = unpadded_attention(q[3:], q[3:], q[3:], unpad(torch.zeros(1, 2), torch.ones(1, 2))[1])
    assert torch.allclose(out[3:], alone, atol=1e-6)


@pytest.mark.parametrize("full", [False, True], ids=["unpadded", "padded"])
def test_inference_attention_stays_on_the_fused_cpu_kernel(full: bool) -> None:
    """SDPA's flash CPU kernel never materialises the attention scores (3 GiB at 12 x 8192 x 8192), which keeps
    an 8,192-token encode of a base-size mGTE under 3 GiB (benchmarks/mgte_long.py); pinning the kernel raises
    "No available kernel" if inference attention (packed: per sequence; padded: masked) ever falls back to math."""
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 0]])
    idx = keep_padding(mask) if full else unpad(torch.zeros(2, 4), mask)[1]
    q, k, v = torch.randn(3, len(idx.indices), 2, 8).unbind(0)  # (N, heads, d) each
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        fused = unpadded_attention(q, k, v, idx)
    with sdpa_kernel(SDPBackend.MATH):
        reference = unpadded_attention(q, k, v, idx)
    assert (fused - reference).abs().max() < 1e-5


# RoPE ============================================================================================


def test_rotate_half_is_a_complex_rotation_of_pairs_i_and_i_plus_half() -> None:
    dim, pos = 8, torch.tensor([0, 1, 5, 1000])
    x = torch.randn(4, dim)
    rope = RotaryEmbedding(dim, base=160000.0)
    cos, sin = rope(pos)  # (4, dim)
    ours = apply_rotary(x, cos, sin)
    angle = pos[:, None].double() * (1.0 / 160000.0 ** (torch.arange(0, dim, 2).double() / dim))  # (4, dim/2)
    z = torch.complex(x[:, : dim // 2].double(), x[:, dim // 2 :].double()) * torch.exp(1j * angle)
    assert torch.allclose(ours.double(), torch.cat([z.real, z.imag], -1), atol=1e-5)
    assert cos.dtype == torch.float32 and torch.equal(rope(pos[:1])[0], cos[:1])


def test_rope_scores_depend_only_on_relative_position() -> None:
    rope = RotaryEmbedding(16, base=10000.0)
    q, k = torch.randn(16), torch.randn(16)

    def score(m: int, n: int) -> float:
        (cm, sm), (cn, sn) = rope(torch.tensor(m)), rope(torch.tensor(n))
        return float(apply_rotary(q, cm, sm) @ apply_rotary(k, cn, sn))

    assert score(7, 3) == pytest.approx(score(4, 0), abs=1e-4) == pytest.approx(score(104, 100), abs=1e-4)
    assert score(3, 7) == pytest.approx(score(0, 4), abs=1e-4)
    assert abs(score(7, 3) - score(3, 7)) > 1e-3


def test_ntk_scaled_frequencies() -> None:
    dim, base, f = 8, 10000.0, 4.0
    plain = [base ** (-i / dim) for i in (0, 2, 4, 6)]
    assert inv_frequencies(dim, base).tolist() == pytest.approx(plain, rel=1e-6)
    ntk = [(base * f) ** (-i / dim) / f ** (2 / dim) for i in (0, 2, 4, 6)]
    assert inv_frequencies(dim, base, {"type": "ntk", "factor": f}).tolist() == pytest.approx(ntk, rel=1e-6)
    b = 0.5  # mixed: lambda_k = exp(ln(f) / (dim/2)^b * k^b), base unchanged
    lam = [math.exp(math.log(f) / (dim / 2) ** b * k**b) for k in (1, 2, 3, 4)]
    mixed = inv_frequencies(dim, base, {"type": "ntk", "factor": f, "mixed_b": b}).tolist()
    assert mixed == pytest.approx([p / m for p, m in zip(plain, lam, strict=True)], rel=1e-6)
    assert inv_frequencies(dim, base, {"type": "ntk", "factor": 1.0}).tolist() == pytest.approx(plain, rel=1e-6)
    with pytest.raises(ValueError, match="unsupported rope_scaling type 'yarn'"):
        inv_frequencies(dim, base, {"type": "yarn", "factor": 2.0})
    rope = RotaryEmbedding(dim, base, {"type": "ntk", "factor": f}).bfloat16()  # frequencies stay float32
    assert rope.inv_freq.dtype == torch.float32 and rope.inv_freq.tolist() == pytest.approx(ntk, rel=1e-6)


# Blocks ==========================================================================================


def test_geglu_takes_up_first_and_gate_second() -> None:
    config = MGTEConfig.from_dict(TINY)
    mlp = mgte._GeGLU(config).eval()
    inter = config.intermediate_size
    with torch.no_grad():
        mlp.up_gate_proj.weight[inter:] = 0  # gate half zero: gelu(0) * up = 0
    x = torch.randn(3, config.hidden_size)
    assert torch.allclose(mlp(x), mlp.down_proj.bias.expand(3, -1))
    with torch.no_grad():
        mlp.up_gate_proj.weight[:inter], mlp.up_gate_proj.weight[inter:] = -1.0, 1.0
    u, g = -x.sum(-1, keepdim=True).expand(3, inter), x.sum(-1, keepdim=True).expand(3, inter)
    assert torch.allclose(mlp(x), mlp.down_proj(F.gelu(g) * u), atol=1e-5)
    assert not torch.allclose(mlp(x), mlp.down_proj(F.gelu(u) * g), atol=1e-3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": "bert"}, "model_type is 'bert', not 'new'"),
        ({"hidden_act": "mish"}, "unsupported hidden_act 'mish'"),
        ({"rope_scaling": {"type": "linear", "factor": 2}}, "unsupported rope_scaling"),
        ({"logn_attention_scale": True}, "unsupported logn_attention_scale True"),
        ({"position_embedding_type": "alibi"}, "unsupported position_embedding_type"),
        ({"hidden_size": "wide"}, "hidden_size 'wide' is not of type int"),
    ],
)
def test_unsupported_config_values_name_the_file_and_key(tmp_path: Path, change: dict, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**TINY, **change}))
    with pytest.raises(ZooError, match=message) as err:
        MGTEConfig.from_file(path)
    assert str(err.value).startswith(str(path))


def test_absolute_positions_and_rms_norm_build_and_run(tiny: MGTEEncoder) -> None:
    config = {**TINY, "vocab_size": 30522, "position_embedding_type": "absolute", "layer_norm_type": "rms_norm"}
    model = MGTEModel.from_config(config, tiny.model.tokenizer)
    assert "embeddings.position_embeddings.weight" in model.state_dict()
    assert "embeddings.LayerNorm.bias" not in model.state_dict()
    batch = model.tokenize(TEXTS)
    with torch.inference_mode():
        a = model(**batch)
        model.unpad = False
        assert (a - model(**batch)).abs().max() < 1e-5


# Folders =========================================================================================


def _encode(model: MGTEModel) -> torch.Tensor:
    with torch.inference_mode():
        out = model.heads(**model.tokenize(TEXTS), outputs=[o for o in ("dense", "sparse", "rerank") if _has(model, o)])
    return torch.cat([v.flatten() for v in out.values()])


def _has(model: MGTEModel, output: str) -> bool:
    return {"dense": True, "sparse": model.sparse_head is not None, "rerank": model.rerank_head is not None}[output]


def test_save_load_roundtrip(tiny: MGTEEncoder, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    folder = tiny.model.save_pretrained(tmp_path / "both")
    assert {"config.json", "model.safetensors", "zoobench.json", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    keys = set(load_file(folder / "model.safetensors"))
    assert (
        "new.encoder.layer.0.attention.qkv_proj.weight" in keys and {"classifier.weight", "sparse_head.weight"} <= keys
    )
    back = MGTEModel.from_pretrained(f"local:{folder}")
    assert torch.equal(_encode(back), _encode(tiny.model))
    assert back.max_tokens == tiny.model.max_tokens and back.dim is None and back.unpad


@pytest.mark.parametrize(("heads", "arch"), [({}, "NewModel"), ({"sparse_head": True}, "NewForTokenClassification")])
def test_upstream_layouts_bare_and_prefixed(tiny: MGTEEncoder, tmp_path: Path, heads: dict, arch: str) -> None:
    from safetensors.torch import load_file

    model = MGTEModel(tiny.model.config, tiny.model.tokenizer, **heads).eval()
    model.load_state_dict(tiny.model.state_dict(), strict=False)
    folder = model.save_pretrained(tmp_path / "m")
    keys = set(load_file(folder / "model.safetensors"))
    assert json.loads((folder / "config.json").read_text())["architectures"] == [arch]
    if heads:  # NewForTokenClassification: new.<backbone> + classifier
        assert keys == {f"new.{k}" for k in _new_model_keys(2, pack_qkv=True, pooler=False)} | {
            "classifier.weight",
            "classifier.bias",
        }
    else:  # NewModel: bare keys
        assert keys == _new_model_keys(2, pack_qkv=True, pooler=False)
    back = MGTEModel.from_pretrained(folder)
    assert (back.sparse_head is None) == (not heads) and back.rerank_head is None and back.pooler is None
    assert torch.equal(_encode(back), _encode(model))


def test_missing_weight_and_foreign_config_are_errors(tiny: MGTEEncoder, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    folder = tiny.model.save_pretrained(tmp_path / "m")
    state = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in state.items() if k != "new.encoder.layer.1.mlp_ln.bias"}, folder / "model.safetensors")
    with pytest.raises(ZooError, match=r"lacks 1 weights \(encoder\.layer\.1\.mlp_ln\.bias"):
        MGTEModel.from_pretrained(folder)
    save_file({**state, "new.encoder.layer.9.extra": torch.zeros(1)}, folder / "model.safetensors")
    with pytest.raises(ZooError, match=r"unexpected weights encoder\.layer\.9\.extra"):
        MGTEModel.from_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(ZooError, match=f"^{folder / 'config.json'}: model_type is 'bert'"):
        MGTEModel.from_pretrained(folder)
    (folder / "model.safetensors").unlink()
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ZooError, match="no model.safetensors"):
        MGTEModel.from_pretrained(folder)


# Encoders ========================================================================================


def test_dense_encode_normalised_matryoshka_and_bf16(tiny: MGTEEncoder) -> None:
    full = tiny.encode(TEXTS)
    assert full.shape == (4, 64) and full.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(full, axis=1), 1.0, rtol=1e-5)
    with torch.inference_mode():
        cls = tiny.model.last_hidden_state(**tiny.model.tokenize(TEXTS))[:, 0]  # (B, H)
    np.testing.assert_allclose(full, F.normalize(cls, dim=-1).numpy(), atol=1e-5)
    short = MGTEEncoder(tiny.card, tiny.model, dim=16).encode(TEXTS)
    np.testing.assert_allclose(short, F.normalize(cls[:, :16], dim=-1).numpy(), atol=1e-5)
    assert tiny.model.dim is None and tiny.encode([]).shape == (0, 64)
    bf16 = MGTEEncoder(tiny.card, tiny.model, dtype="bfloat16").encode(TEXTS)
    assert (full * bf16).sum(1).min() > 0.99
    for batch_size, max_batch_tokens in ((1, 2048), (32, 16)):  # batching never changes the result
        np.testing.assert_allclose(
            MGTEEncoder(tiny.card, tiny.model, max_batch_tokens=max_batch_tokens).encode(TEXTS, batch_size=batch_size),
            full,
            atol=1e-5,
        )


def test_encode_sparse_drops_specials_and_keeps_the_max(tiny: MGTEEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    # One thread count for every call: by default each call takes the cores free at that moment, and sums
    # in another order change the weights in the 8th digit, which the exact comparison below would see.
    monkeypatch.setattr(tiny, "threads", 1)
    tok = tiny.model.tokenizer
    text = "cat dog cat bird cat"
    [weights] = tiny.encode_sparse([text])
    assert set(weights) <= {"cat", "dog", "bird"} and weights  # no [CLS] / [SEP]
    assert all(w > 0 for w in weights.values())
    batch = tiny.model.tokenize([text])
    with torch.inference_mode():
        by_token = tiny.model.heads(**batch, outputs=["sparse"])["sparse"][0]  # (T,)
    ids = batch["input_ids"][0].tolist()
    cat = max(float(w) for i, w in zip(ids, by_token, strict=True) if i == tok.convert_tokens_to_ids("cat"))
    assert weights.get("cat", 0.0) == pytest.approx(cat, abs=1e-6)
    [unk] = tiny.encode_sparse(["\ue000 cat"])  # a private-use character: [UNK]
    assert "[UNK]" not in unk
    dense, sparse = tiny.encode_hybrid([text, "a b"])
    np.testing.assert_allclose(dense, tiny.encode([text, "a b"]), atol=1e-6)
    assert sparse == tiny.encode_sparse([text, "a b"])


def test_reranker_score_is_the_head_logit(tiny: MGTEEncoder) -> None:
    model = tiny.model
    ranker = model.as_ranker(tiny.card)
    assert isinstance(ranker, Ranker) and not isinstance(ranker, Encoder)
    docs = ["a cat sat", "dogs bark loudly at night " * 5, "x"]
    scores = ranker.score("where is the cat", docs)
    assert scores.shape == (3,) and scores.dtype == np.float32 and ranker.score("q", []).shape == (0,)
    for doc, score in zip(docs, scores, strict=True):
        enc = model.tokenizer("where is the cat", doc, return_tensors="pt")  # [CLS] q [SEP] d [SEP]
        with torch.inference_mode():
            h = model.last_hidden_state(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
            logit = model.rerank_head(torch.tanh(model.pooler.dense(h[:, 0])))
        assert float(logit) == pytest.approx(float(score), abs=1e-5)
    with pytest.raises(ZooError, match="no rerank head"):
        MGTEModel(model.config, model.tokenizer).as_ranker(tiny.card)


def test_hybrid_scores_by_hand() -> None:
    q = [{"cat": 2.0, "mat": 1.0}]
    d = [{"cat": 0.5}, {"dog": 3.0}, {"mat": 1.0, "cat": 1.0}]
    np.testing.assert_allclose(lexical_scores(q, d), [[1.0, 0.0, 3.0]])
    qd, dd = np.array([[1.0, 0.0]]), np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    cos = np.array([[1.0, 0.0, 1 / math.sqrt(2)]])
    np.testing.assert_allclose(hybrid_scores(qd, dd, q, d), cos + 0.1 * np.array([[1.0, 0.0, 3.0]]), rtol=1e-6)
    np.testing.assert_allclose(hybrid_scores(qd, dd, q, d, dense_weight=0.0, sparse_weight=1.0), [[1.0, 0.0, 3.0]])


def test_training_interface(tiny: MGTEEncoder, tmp_path: Path) -> None:
    cls = get_family("mgte").model
    assert cls is MGTEModel
    model = tiny.model.train()
    assert model.prompts == {} and model.max_tokens == 512 and model.embed_dim == 64
    batch = model.tokenize(["a cat", "a longer dog sentence"], 16)
    torch.manual_seed(0)  # dropout masks
    emb = model(**batch)  # (2, D); a LayerNorm'd, normalised vector sums to ~0 whatever the input: use a product
    (emb[0] @ emb[1]).backward()
    grad = model.embeddings.word_embeddings.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    model.gradient_checkpointing_enable()  # what zoo.train calls: same loss, same gradients
    torch.manual_seed(0)
    emb = model(**batch)
    (emb[0] @ emb[1]).backward()
    again = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(again) == len(grads) and all(torch.allclose(a, b, atol=1e-6) for a, b in zip(again, grads, strict=True))
    folder = model.save_pretrained(tmp_path / "trained")
    assert isinstance(cls.from_pretrained(folder).as_encoder(tiny.card), Encoder)


# Registry and cards ==============================================================================


def test_mgte_cards_are_registered() -> None:
    assert list_models("*multilingual*") + list_models("test-mgte") == MGTE_CARDS[:2] + ["test-mgte"]
    for name in MGTE_CARDS:
        card = get_card(name)
        assert card.family == "mgte" and card.prompts == {} and card.license in (None, "apache-2.0")
    base = get_card("gte-multilingual-base")
    assert base.source == f"hf:Alibaba-NLP/gte-multilingual-base@{base.revision}" and base.max_tokens == 8192
    assert base.pooling == "cls" and base.embed_dim == 768 and "2407.19669" in base.citation


@pytest.mark.parametrize("name", MGTE_CARDS[:2])
def test_hub_models_fail_offline_with_one_line(name: str) -> None:
    with pytest.raises(ZooError) as err:
        create_model(name)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"hf:{get_card(name).upstream}") and "local:<dir>" in msg


@pytest.mark.parametrize("name", MGTE_CARDS[:2])
def test_published_cards_match_the_architecture(name: str) -> None:
    config = MGTEConfig.from_dict(
        {"model_type": "new", "vocab_size": 250048, "max_position_embeddings": 8192, "rope_theta": 160000}
    )
    reranker = "reranker" in name
    with torch.device("meta"):
        model = MGTEModel(config, None, sparse_head=not reranker, rerank_head=reranker)
    assert get_card(name).params == sum(p.numel() for p in model.parameters())


def test_test_mgte_card_matches_its_model_and_is_seeded(tiny: MGTEEncoder) -> None:
    card = get_card("test-mgte")
    assert isinstance(tiny, Encoder) and isinstance(tiny, SparseEncoder) and not isinstance(tiny, Ranker)
    assert card.params == sum(p.numel() for p in tiny.model.parameters())
    assert card.embed_dim == tiny.encode(["x"]).shape[1] and card.max_tokens == tiny.model.max_tokens
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    again = create_model("test-mgte")
    assert torch.equal(torch.rand(3), expected)  # the global RNG is untouched
    np.testing.assert_array_equal(again.encode(TEXTS), tiny.encode(TEXTS))
    with pytest.raises(ZooError, match="unknown dtype 'float16'"):
        create_model("test-mgte", dtype="float16")


def test_runs_in_the_harness(tiny_data: Path, tmp_path: Path) -> None:
    records = harness.evaluate(
        "test-mgte", ["local/sts", "local/retrieval"], results_dir=tmp_path / "r", data_dir=tiny_data, progress=False
    )
    assert all(np.isfinite(r.get_score()) and r.model_card["family"] == "mgte" for r in records)


def test_retrieval_modes_run_in_the_harness(tiny_data: Path, tmp_path: Path) -> None:
    kw = dict(results_dir=tmp_path / "r", data_dir=tiny_data, progress=False, cache_dir=tmp_path / "c")
    records = {
        mode: harness.evaluate("test-mgte", ["local/retrieval"], model_kwargs={"mode": mode}, **kw)[0]
        for mode in ("dense", "sparse", "hybrid")
    }
    assert [r.revision for r in records.values()] == ["seed-0+mode-dense", "seed-0+mode-sparse", "seed-0+mode-hybrid"]
    assert all(0 <= r.get_score() <= 1 for r in records.values())
    assert all(
        r.task_options == records["dense"].task_options for r in records.values()
    )  # the mode is not a task option
    assert {p.parent.name for p in (tmp_path / "r" / "test-mgte").glob("*/local")} == {
        f"seed-0+mode-{m}" for m in records
    }
    dense, sparse, hybrid = (records[m].runtime for m in ("dense", "sparse", "hybrid"))
    assert sparse["texts_encoded"] == dense["texts_encoded"] > 0  # each mode caches its side for the others
    assert hybrid["texts_encoded"] == 0 and hybrid["texts_cached"] == dense["texts_encoded"]


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[str, ...], int]]:
    """``(outputs, texts)`` of every forward pass of an MGTEModel during the test."""
    seen = []
    heads = MGTEModel.heads

    def counted(self, input_ids, attention_mask, token_type_ids=None, *, outputs=("dense",), dim=None):  # noqa: ANN001, ANN202
        seen.append((tuple(outputs), len(input_ids)))
        return heads(self, input_ids, attention_mask, token_type_ids, outputs=outputs, dim=dim)

    monkeypatch.setattr(MGTEModel, "heads", counted)
    return seen


def _hybrid_cache_run(tiny_data: Path, tmp_path: Path, **model_kwargs: Any) -> tuple[Any, dict]:
    """Evaluate test-mgte on local/retrieval (recomputing, through the cache ``tmp_path/c``): (record, run)."""
    kw = dict(results_dir=tmp_path / "r", data_dir=tiny_data, progress=False, cache_dir=tmp_path / "c")
    (record,) = harness.evaluate(
        "test-mgte", ["local/retrieval"], overwrite=True, model_kwargs=model_kwargs, log=lambda m: None, **kw
    )
    path = run_path(tmp_path / "r", "test-mgte", record.revision, "local/retrieval", "test")
    return record, read_run(path)


def _n_texts(tiny_data: Path) -> int:
    data = harness.get_task("local/retrieval", tiny_data).load("test")
    return len(set(data.queries.values())) + len(set(data.corpus.values()))


def test_hybrid_encodes_each_text_in_one_pass_and_reruns_from_the_cache(
    tiny_data: Path, tmp_path: Path, passes: list
) -> None:
    n = _n_texts(tiny_data)
    cold, cold_run = _hybrid_cache_run(tiny_data, tmp_path, mode="hybrid")
    assert {outputs for outputs, _ in passes} == {("dense", "sparse")} and sum(k for _, k in passes) == n
    assert cold.runtime["texts_encoded"] == n
    passes.clear()
    warm, warm_run = _hybrid_cache_run(tiny_data, tmp_path, mode="hybrid")
    assert passes == [] and warm.runtime["texts_encoded"] == 0 and warm.runtime["texts_cached"] == n
    assert warm.scores == cold.scores and warm_run == cold_run


def test_dense_and_hybrid_runs_share_the_dense_cache(tiny_data: Path, tmp_path: Path, passes: list) -> None:
    n = _n_texts(tiny_data)
    dense, _ = _hybrid_cache_run(tiny_data, tmp_path, mode="dense")
    passes.clear()
    hybrid, _ = _hybrid_cache_run(tiny_data, tmp_path, mode="hybrid")
    assert {outputs for outputs, _ in passes} == {("sparse",)} and sum(k for _, k in passes) == n  # dense: cached
    passes.clear()
    reweighted, _ = _hybrid_cache_run(tiny_data, tmp_path, mode="hybrid", sparse_weight=0.5)
    assert passes == [] and reweighted.runtime["texts_cached"] == n  # the weights only change the search
    assert len(list((tmp_path / "c").iterdir())) == 1  # one fingerprint
    revisions = [r.revision for r in (dense, hybrid, reweighted)]  # ... but every run keeps its own records
    assert revisions == ["seed-0+mode-dense", "seed-0+mode-hybrid", "seed-0+mode-hybrid+sparse_weight-0.5"]


def test_a_truncated_sparse_shard_is_recomputed_with_the_same_scores(
    tiny_data: Path, tmp_path: Path, passes: list
) -> None:
    cold, cold_run = _hybrid_cache_run(tiny_data, tmp_path, mode="hybrid")
    shards = sorted((tmp_path / "c").glob("*/sparse-*/*.npz"))
    shards[0].write_bytes(shards[0].read_bytes()[:-50])
    passes.clear()
    with pytest.warns(UserWarning, match="^sparse cache: dropped damaged shard .*; its texts are encoded again$"):
        again, again_run = _hybrid_cache_run(tiny_data, tmp_path, mode="hybrid")
    assert {outputs for outputs, _ in passes} == {("sparse",)}
    assert 0 < again.runtime["texts_encoded"] < again.runtime["texts_encoded"] + again.runtime["texts_cached"]
    assert again.scores == cold.scores and again_run == cold_run


def test_hybrid_mode_ranks_by_hybrid_scores(tiny_data: Path) -> None:
    enc = create_model("test-mgte", mode="hybrid", dense_weight=0.5, sparse_weight=0.3)
    assert (enc.retrieval_mode, enc.hybrid_weights) == ("hybrid", (0.5, 0.3))
    task = harness.get_task("local/retrieval", tiny_data)
    data, run = task.load("test"), task.evaluate(enc, progress=False).runs["test"]
    (qd, qs), (dd, ds) = (
        enc.encode_hybrid(list(data.queries.values()), kind="query"),
        enc.encode_hybrid(list(data.corpus.values())),
    )
    full = hybrid_scores(qd, dd, qs, ds, dense_weight=0.5, sparse_weight=0.3)  # (Q, N)
    for i, q in enumerate(data.queries):
        expected = {d: float(full[i, j]) for j, d in enumerate(data.corpus)}
        assert run[q] == pytest.approx(expected, abs=1e-5)


def test_mode_options_are_validated_and_known_before_loading(
    tiny: MGTEEncoder, tiny_data: Path, tmp_path: Path
) -> None:
    assert (tiny.retrieval_mode, tiny.hybrid_weights) == ("dense", (1.0, 0.1))
    lazy = create_model("test-mgte", lazy=True, mode="sparse", sparse_weight=1)
    assert not lazy.loaded and (lazy.retrieval_mode, lazy.hybrid_weights) == ("sparse", (0.1 * 10, 1.0))
    assert isinstance(lazy, SparseEncoder) and isinstance(lazy, Encoder)
    bad = [
        ({"mode": "bm25"}, "unknown mode 'bm25' (one of dense, sparse, hybrid)"),
        ({"sparse_weight": "x"}, "sparse_weight 'x' is not a finite number"),
        ({"dense_weight": float("nan")}, "dense_weight nan is not a finite number"),
    ]
    for kwargs, message in bad:
        for is_lazy in (False, True):
            with pytest.raises(ZooError) as err:
                create_model("test-mgte", lazy=is_lazy, **kwargs)
            assert str(err.value) == message
    with pytest.raises(ZooError, match="^unknown mode 'bm25'"):
        harness.evaluate(
            "test-mgte", ["local/retrieval"], results_dir=tmp_path, data_dir=tiny_data, model_kwargs={"mode": "bm25"}
        )
    no_head = MGTEModel(tiny.model.config, tiny.model.tokenizer)
    with pytest.raises(ZooError, match="^test-mgte: mode 'hybrid' needs a sparse head"):
        no_head.as_encoder(tiny.card, mode="hybrid")


def test_trains_through_the_engine(tiny: MGTEEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.zoo.train.conftest import make_data
    from zoo.train import train

    monkeypatch.setenv("ZOOBENCH_MODELS", str(tmp_path / "models"))
    init = tiny.model.save_pretrained(tmp_path / "init")
    stage = {"name": "one", "steps": 2, "batch_size": 8, "lr": 1e-3, "max_length": 24}
    recipe = {
        "name": "mgte-test.run",
        "threads": 1,
        "model": {"family": "mgte", "init": f"local:{init}", "overrides": {"max_tokens": 32}},
        "stages": [{**stage, "sources": [{"name": "pairs", "reader": "jsonl-pairs", "path": "pairs/train.jsonl"}]}],
    }
    out = train(recipe, data_dir=make_data(tmp_path / "data"), progress=False)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    trained = create_model("mgte-test.run")
    assert isinstance(trained, MGTEEncoder) and trained.card.family == "mgte" and trained.model.max_tokens == 32
    assert not np.allclose(trained.encode(["a river"]), tiny.encode(["a river"]))
    # The harness's lazy stand-in of a trained folder knows the family's protocols and option-set attributes.
    lazy = create_model("mgte-test.run", lazy=True, mode="hybrid")
    assert isinstance(lazy, SparseEncoder) and lazy.retrieval_mode == "hybrid" and not lazy.loaded
