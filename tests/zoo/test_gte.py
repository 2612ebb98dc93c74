"""zoo.families.gte: cards vs built models, parity with transformers and sentence-transformers, the fast encode path."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import harness
from zoo.checkpoints import resolve
from zoo.errors import ZooError
from zoo.families import gte
from zoo.families.gte import GTEEncoder, GTEModel, GTERanker, folder_card, weights_revision
from zoo.protocols import Encoder, Ranker
from zoo.registry import create_model, get_card, list_models

GTE_CARDS = ["gte-base.thenlper", "gte-large.thenlper", "gte-minilm-l6.st", "gte-small.thenlper", "test-gte"]
OFFLINE = ["gte-minilm-l6.st", "test-gte"]  # the others need the hub


@pytest.fixture(scope="session")
def _tiny() -> GTEEncoder:
    return create_model("test-gte")


@pytest.fixture
def tiny(_tiny: GTEEncoder) -> GTEEncoder:
    """test-gte, loaded once per session, a fresh copy per test."""
    return copy.deepcopy(_tiny)


@pytest.fixture(scope="session")
def minilm() -> GTEEncoder:
    return create_model("gte-minilm-l6.st")


@pytest.fixture(scope="session")
def sentences(shared_data: Path) -> list[str]:
    """300 real texts: 292 STS-B sentences and 8 SciFact abstracts (over 256 tokens: truncation is exercised)."""
    rows = [json.loads(line) for line in (shared_data / "stsb" / "test.jsonl").read_text().splitlines()[:146]]
    short = [s for r in rows for s in (r["sentence1"], r["sentence2"])]
    docs = [json.loads(line) for line in (shared_data / "scifact" / "corpus.jsonl").read_text().splitlines()[:8]]
    return short + [f"{d['title']} {d['text']}".strip() for d in docs]


def _reference(backbone_state: dict[str, torch.Tensor], config: object) -> torch.nn.Module:
    """A plain transformers BertModel (eager attention) holding the same weights."""
    from transformers import BertConfig, BertModel

    cfg = BertConfig(**{**config.to_dict(), "attn_implementation": "eager"})
    ref = BertModel(cfg, add_pooling_layer=False).eval()
    ref.load_state_dict(backbone_state)
    return ref


def _mean_pool_normalized(ref: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        hidden = ref(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, D)
    m = attention_mask.unsqueeze(-1).float()  # (B, T, 1)
    pooled = (hidden * m).sum(1) / m.sum(1)  # (B, D)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


# Registry and cards ==============================================================================


def test_gte_cards_are_registered() -> None:
    assert [n for n in list_models("*gte*") if get_card(n).family == "gte"] == GTE_CARDS
    for name in GTE_CARDS:
        card = get_card(name)
        assert card.family == "gte" and card.pooling == "mean" and card.prompts == {} and card.similarity == "cosine"
    assert get_card("gte-small").name == "gte-small.thenlper"


@pytest.mark.parametrize("name", ["gte-small.thenlper", "gte-base.thenlper", "gte-large.thenlper"])
def test_published_weights_fail_offline_with_one_line(name: str) -> None:
    card = get_card(name)
    assert card.source == f"hf:{card.upstream}@{card.revision}"
    with pytest.raises(ZooError) as err:
        create_model(name)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"hf:{card.upstream}@") and "local:<dir>" in msg


@pytest.mark.parametrize("name", ["gte-small.thenlper", "gte-base.thenlper", "gte-large.thenlper"])
def test_published_cards_match_the_architecture(name: str) -> None:
    # The hub checkpoints are plain BERTs: small = 12 x 384 (MiniLM-L12), base = BERT-base, large = BERT-large.
    from transformers import BertConfig, BertModel

    shapes = {"gte-small": (384, 12, 12, 1536), "gte-base": (768, 12, 12, 3072), "gte-large": (1024, 24, 16, 4096)}
    card = get_card(name)
    hidden, layers, heads, ffn = shapes[card.arch]
    config = BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=ffn)
    with torch.device("meta"):
        params = sum(p.numel() for p in BertModel(config, add_pooling_layer=False).parameters())
    assert (card.params, card.embed_dim, card.max_tokens) == (params, hidden, config.max_position_embeddings)


@pytest.mark.parametrize("name", OFFLINE)
def test_card_matches_its_built_model(name: str, request: pytest.FixtureRequest) -> None:
    encoder = request.getfixturevalue({"test-gte": "tiny", "gte-minilm-l6.st": "minilm"}[name])
    card, model = get_card(name), encoder.model
    assert encoder.card == card and isinstance(encoder, Encoder)
    assert card.params == sum(p.numel() for p in model.parameters())
    assert card.embed_dim == model.embed_dim == encoder.encode(["a b c"]).shape[1]
    assert encoder.encode([]).shape == (0, card.embed_dim) and encoder.encode([""]).shape == (1, card.embed_dim)
    assert card.max_tokens == model.max_tokens and card.pooling == model.pooling and model.normalize


def test_minilm_folder_settings_are_the_cards() -> None:
    # Without the card's overrides the sentence-transformers files give the same settings.
    card = get_card("gte-minilm-l6.st")
    model = GTEModel.from_pretrained(card.source)
    assert (model.max_tokens, model.pooling, model.normalize, model.prompts) == (256, "mean", True, {})


def test_test_gte_is_seeded_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a, b = create_model("test-gte"), create_model("test-gte")
    assert torch.equal(torch.rand(3), expected)
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    texts = ["the cat sat on the mat", "dogs bark"]
    np.testing.assert_array_equal(a.encode(texts), b.encode(texts))


def test_unknown_dtype_is_refused() -> None:
    with pytest.raises(ZooError, match="unknown dtype 'float16'"):
        create_model("test-gte", dtype="float16")


# Parity ==========================================================================================


def test_parity_with_transformers_bert_and_mean_pooling(tiny: GTEEncoder) -> None:
    model = tiny.model
    ref = _reference(model.backbone.state_dict(), model.backbone.config)
    texts = ["a short one", "a somewhat longer sentence about proteins and cells " * 3, "x", "the end of it"]
    batch = model.tokenize(texts)
    assert (batch["attention_mask"] == 0).any()  # padding is exercised
    with torch.inference_mode():
        ours = model(**batch).numpy()
    expected = _mean_pool_normalized(ref, batch["input_ids"], batch["attention_mask"])
    assert np.abs(ours - expected).max() < 1e-5
    # The encode path (token-budget batches, its own padding) equals each text embedded alone.
    alone = np.concatenate([_mean_pool_normalized(ref, **model.tokenize([t])) for t in texts])
    for batch_size, max_batch_tokens in ((1, 2048), (2, 2048), (32, 2048), (32, 16)):
        tiny.max_batch_tokens = max_batch_tokens
        assert np.abs(tiny.encode(texts, batch_size=batch_size) - alone).max() < 1e-5


def test_parity_with_sentence_transformers(minilm: GTEEncoder, sentences: list[str]) -> None:
    st = create_model("minilm-l6.st")
    theirs = st.encode(sentences, batch_size=32)
    ours = minilm.encode(sentences, batch_size=32)
    cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cos.min() >= 0.99999
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)


def test_bf16_agrees_with_fp32(minilm: GTEEncoder, sentences: list[str]) -> None:
    bf16 = GTEEncoder(minilm.card, minilm.model, dtype="bfloat16")
    texts = sentences[:192] + sentences[-8:]  # 200: 192 sentences and the 8 abstracts
    a, b = minilm.encode(texts), bf16.encode(texts)
    cos = (a * b).sum(1)
    assert cos.min() >= 0.999
    assert next(minilm.model.parameters()).dtype == torch.float32  # autocast: the weights are untouched


# The encode path =================================================================================


def test_token_batches_respect_the_budget() -> None:
    from zoo.nn.batching import token_batches

    lengths = [128, 100, 60, 60, 20, 20, 20, 5, 1]
    parts = token_batches(lengths, 256, 32)
    assert [lengths[p] for p in parts] == [[128, 100], [60, 60, 20, 20], [20, 5, 1]]
    assert all(len(lengths[p]) * lengths[p][0] <= 256 for p in parts)
    assert [lengths[p] for p in token_batches(lengths, 256, 3)] == [[128, 100], [60, 60, 20], [20, 20, 5], [1]]
    assert token_batches([300, 10], 256, 32) == [slice(0, 1), slice(1, 2)]  # an over-long text goes alone
    assert token_batches([], 256, 32) == []


def test_encode_adds_the_cards_prompts(tiny: GTEEncoder) -> None:
    card = dataclasses.replace(tiny.card, prompts={"query": "query: "})
    prompted = GTEEncoder(card, tiny.model)
    q, d = prompted.encode(["cats"], kind="query"), prompted.encode(["cats"], kind="document")
    np.testing.assert_allclose(q, tiny.encode(["query: cats"]), atol=1e-6)
    np.testing.assert_allclose(d, tiny.encode(["cats"]), atol=1e-6)
    assert np.abs(q - d).max() > 1e-3


def test_threads_and_training_mode_are_restored(tiny: GTEEncoder) -> None:
    before = torch.get_num_threads()
    one = GTEEncoder(tiny.card, tiny.model, threads=1)
    np.testing.assert_allclose(one.encode(["a b", "c"]), tiny.encode(["a b", "c"]), atol=1e-6)
    assert torch.get_num_threads() == before
    tiny.model.train()  # a model evaluated between training steps: no dropout in encode, still training after
    np.testing.assert_allclose(tiny.encode(["a b", "c"]), one.encode(["a b", "c"]), atol=1e-6)
    assert tiny.model.training and tiny.model.backbone.training


def test_runs_in_the_harness(tiny: GTEEncoder, tiny_data: Path, tmp_path: Path) -> None:
    records = harness.evaluate(
        "test-gte", ["local/sts", "local/retrieval"], results_dir=tmp_path / "r", data_dir=tiny_data, progress=False
    )
    assert [r.task_id for r in records] == ["local/sts", "local/retrieval"]
    assert all(np.isfinite(r.get_score()) for r in records)
    assert all(r.revision == "seed-0" and r.model_card["family"] == "gte" for r in records)


# Folders: save, load, revision ===================================================================


def test_save_load_roundtrip_and_folder_card(tiny: GTEEncoder, tmp_path: Path) -> None:
    folder = tiny.model.save_pretrained(tmp_path / "m")
    assert {"config.json", "model.safetensors", "zoobench.json", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    assert not list(folder.glob("*.bin"))
    back = GTEModel.from_pretrained(f"local:{folder}")
    texts = ["one text", "and another, longer text"]
    with torch.inference_mode():
        np.testing.assert_array_equal(back(**back.tokenize(texts)).numpy(), tiny.model(**tiny.model.tokenize(texts)))
    card = folder_card(folder, name="gte-tiny.local")
    sha = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert card.revision == weights_revision(folder) == f"sha256-{sha[:12]}"
    assert (card.params, card.embed_dim, card.max_tokens) == (tiny.card.params, 64, 128)
    assert card.source == f"local:{folder.resolve()}" and card.family == "gte" and card.pooling == "mean"
    np.testing.assert_array_equal(gte._create_gte(card).encode(texts), tiny.encode(texts))


def test_changed_weights_change_the_revision(tiny: GTEEncoder, tmp_path: Path) -> None:
    folder = tiny.model.save_pretrained(tmp_path / "m")
    card = folder_card(folder, name="gte-tiny.local")
    with torch.no_grad():
        tiny.model.backbone.embeddings.word_embeddings.weight[5] += 1.0
    tiny.model.save_pretrained(folder)
    assert weights_revision(folder) != card.revision
    with pytest.raises(ZooError, match="are not the card's"):
        gte._create_gte(card)
    assert gte._create_gte(folder_card(folder, name="gte-tiny.local")).card.revision == weights_revision(folder)


def test_missing_weights_are_an_error_not_a_random_init(tiny: GTEEncoder, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    folder = tiny.model.save_pretrained(tmp_path / "m")
    state = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in state.items() if "layer.1." not in k}, folder / "model.safetensors")
    with pytest.raises(ZooError, match="lacks .* backbone weights"):
        GTEModel.from_pretrained(folder)
    with pytest.raises(ZooError, match="no model.safetensors"):
        weights_revision(tmp_path)


def test_free_cores_is_between_one_and_the_usable_cores() -> None:
    cores = len(os.sched_getaffinity(0))
    assert 1 <= gte.free_cores() <= cores
    assert gte.free_cores(samples=1) >= 1


def test_the_shared_encode_loop_pads_either_side_and_pools_the_last_token() -> None:
    from zoo.nn.batching import encode_ids
    from zoo.nn.pooling import last_token_pool

    ids = [[5, 6, 7], [8], [9, 10], [11, 12, 13, 14]]

    def forward(batch: dict) -> torch.Tensor:  # the last real token's id, as a 1-d vector
        return last_token_pool(batch["input_ids"][..., None].float(), batch["attention_mask"])

    for side in ("right", "left"):
        out = encode_ids(ids, forward, width=1, batch_size=2, max_batch_tokens=8, pad_id=0, padding_side=side)
        assert out[:, 0].tolist() == [7, 8, 10, 14]


# Cross-encoder: the rerank head =================================================================

PAIRS = (["where is the cat", "who plays the guitar"], ["a cat sat on the mat", "dogs bark at night " * 20])


@pytest.fixture(scope="session")
def _tiny_reranker() -> GTEModel:
    return GTEModel.from_config(gte._TEST_CONFIG, create_model("test-gte").model.tokenizer, seed=0, rerank_head=True)


@pytest.fixture
def reranker(_tiny_reranker: GTEModel) -> GTEModel:
    """A random-init 2 x 64 BERT with a rerank head and the MiniLM tokenizer, a fresh copy per test."""
    return copy.deepcopy(_tiny_reranker)


def test_heads_are_forward_and_the_bert_classifier(reranker: GTEModel) -> None:
    batch = reranker.tokenize_pairs(*PAIRS)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids"} and batch["token_type_ids"].max() == 1
    layers = ("layer:0", "layer:1", "layer:2")  # the embedding layer's and each layer's pooled states (IBKD)
    assert reranker.head_outputs == ("dense", *layers, "rerank")
    plain = create_model("test-gte").model
    assert plain.head_outputs == ("dense", *(f"layer:{i}" for i in range(plain.backbone.config.num_hidden_layers + 1)))
    with torch.inference_mode():
        out = reranker.heads(**batch, outputs=("dense", "rerank"))  # one backbone pass
        torch.testing.assert_close(out["dense"], reranker(**batch))
        h = reranker.backbone(**batch).last_hidden_state  # (B, T, H)
        logits = reranker.rerank_head(torch.tanh(reranker.pooler.dense(h[:, 0]))).squeeze(-1)
    torch.testing.assert_close(out["rerank"], logits)
    assert out["rerank"].shape == (2,) and out["rerank"].dtype == torch.float32
    with pytest.raises(ZooError, match="no rerank head"):
        create_model("test-gte").model.heads(**batch, outputs=("rerank",))


def test_ranker_scores_are_the_trainers_pair_logits(reranker: GTEModel) -> None:
    from types import SimpleNamespace

    from zoo.train.dist import Dist
    from zoo.train.objectives import PairObjective

    card = dataclasses.replace(get_card("test-gte"), similarity=None)
    ranker = reranker.as_encoder(card)  # a model with a rerank head is a Ranker
    assert isinstance(ranker, GTERanker) and isinstance(ranker, Ranker) and not isinstance(ranker, Encoder)
    rows = {"query": ["where is the cat"], "positive": [PAIRS[1][0]], "negatives": [[PAIRS[1][1], "x", ""]]}
    seen = []

    def loss(scores: torch.Tensor) -> torch.Tensor:  # the pair objective's scores, (B, 1 + K)
        seen.append(scores.detach())
        return scores.sum()

    loss.outputs, loss.name = ("rerank",), "spy"
    stage = SimpleNamespace(batch_size=1, max_length=reranker.max_tokens, grad_cache_chunk=None)
    PairObjective(reranker.eval(), loss, stage, SimpleNamespace(), Dist(), False, "test").step(rows, {}, None)
    reranker.zero_grad(set_to_none=True)
    logits = seen[0]  # (1, 4)
    scores = ranker.score("where is the cat", [PAIRS[1][0], *rows["negatives"][0]])
    assert scores.shape == (4,) and scores.dtype == np.float32 and ranker.score("q", []).shape == (0,)
    np.testing.assert_allclose(scores, logits[0].numpy(), atol=1e-5)
    one = GTERanker(card, reranker, batch_size=1, max_batch_tokens=16)  # one pair per pass: same scores
    np.testing.assert_allclose(one.score("where is the cat", [PAIRS[1][0], *rows["negatives"][0]]), scores, atol=1e-5)
    bf16 = GTERanker(card, reranker, dtype="bfloat16").score("where is the cat", rows["negatives"][0])
    np.testing.assert_allclose(bf16, scores[1:], atol=0.05)
    with pytest.raises(ZooError, match="no rerank head"):
        GTERanker(card, create_model("test-gte").model)


def test_saved_reranker_is_a_bert_for_sequence_classification(reranker: GTEModel, tmp_path: Path) -> None:
    from sentence_transformers import CrossEncoder
    from transformers import BertForSequenceClassification

    with torch.no_grad():
        reranker.rerank_head.bias.fill_(0.5)  # a head unlike a fresh one
    folder = reranker.save_pretrained(tmp_path / "rr")
    theirs, info = BertForSequenceClassification.from_pretrained(folder, output_loading_info=True)
    assert not any(info.values()) and theirs.config.num_labels == 1
    batch = reranker.tokenize_pairs(*PAIRS)
    with torch.inference_mode():
        ours = reranker.heads(**batch, outputs=("rerank",))["rerank"]
        np.testing.assert_allclose(theirs.eval()(**batch).logits.squeeze(-1).numpy(), ours.numpy(), atol=1e-5)
    cross = CrossEncoder(str(folder), device="cpu", max_length=reranker.max_tokens)
    predicted = cross.predict(list(zip(*PAIRS, strict=True)), activation_fn=torch.nn.Identity())
    np.testing.assert_allclose(predicted, ours.numpy(), atol=1e-5)
    # back in zoobench: the head loads strictly, and the folder is a Ranker before any weight loads
    back = GTEModel.from_pretrained(folder)
    assert GTEModel.runner_class(folder) is GTERanker and GTEModel.runner_class(_saved(tmp_path)) is GTEEncoder
    with torch.inference_mode():
        torch.testing.assert_close(back.heads(**batch, outputs=("rerank",))["rerank"], ours)
    card = folder_card(folder, name="gte-tiny.rr")
    assert card.params == sum(p.numel() for p in reranker.parameters()) and card.similarity is None
    assert isinstance(gte._create_gte(card), GTERanker)


def _saved(tmp_path: Path) -> Path:
    return create_model("test-gte").model.save_pretrained(tmp_path / "plain")


def test_a_broken_or_foreign_head_is_an_error(reranker: GTEModel, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    folder = reranker.save_pretrained(tmp_path / "rr")
    state = load_file(folder / "model.safetensors")
    save_file({k: v for k, v in state.items() if k != "classifier.bias"}, folder / "model.safetensors")
    with pytest.raises(ZooError, match="rerank head lacks rerank_head.bias"):
        GTEModel.from_pretrained(folder)
    two = {**state, "classifier.weight": torch.zeros(2, 64), "classifier.bias": torch.zeros(2)}
    save_file(two, folder / "model.safetensors")
    with pytest.raises(ZooError, match=r"rerank_head\.\w+ has shape \(2,.*one label"):
        GTEModel.from_pretrained(folder, rerank_head=True)


def test_a_fresh_head_is_seeded_and_keeps_the_checkpoints_pooler(tmp_path: Path) -> None:
    from safetensors import safe_open

    minilm = resolve(gte._MINILM)
    rng = torch.get_rng_state()
    a = GTEModel.from_pretrained(minilm, rerank_head=True, head_seed=1)
    assert torch.equal(torch.get_rng_state(), rng)
    b = GTEModel.from_pretrained(minilm, rerank_head=True, head_seed=1)
    c = GTEModel.from_pretrained(minilm, rerank_head=True, head_seed=2)
    assert torch.equal(a.rerank_head.weight, b.rerank_head.weight)
    assert not torch.equal(a.rerank_head.weight, c.rerank_head.weight) and not a.rerank_head.bias.any()
    with safe_open(str(minilm / "model.safetensors"), framework="pt") as f:
        assert torch.equal(a.pooler.dense.weight, f.get_tensor("pooler.dense.weight"))  # as transformers loads it
    assert GTEModel.from_pretrained(minilm).rerank_head is None  # the folder itself has no head
    plain = GTEModel.from_pretrained(_saved(tmp_path), rerank_head=True)  # no pooler in the folder: a seeded one
    assert float(plain.pooler.dense.weight.detach().std()) == pytest.approx(0.02, rel=0.2)


def test_a_ranker_reranks_bm25_on_a_retrieval_task(reranker: GTEModel, tiny_data: Path, tmp_path: Path) -> None:
    card = dataclasses.replace(get_card("test-gte"), name="gte-tiny.rr", similarity=None)
    (record,) = harness.evaluate(
        reranker.as_ranker(card), ["local/retrieval"], results_dir=tmp_path / "r", data_dir=tiny_data, progress=False
    )
    assert record.task_options["first_stage"] == "bm25" and record.task_options["rerank_depth"] == 100
    assert np.isfinite(record.get_score()) and record.runtime["pairs_scored"] > 0


def test_reranker_recipe_trains_to_a_registered_ranker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.zoo.train.conftest import make_data
    from zoo.train import train
    from zoo.train.config import load_recipe

    cfg = load_recipe("gte/minilm-reranker")
    assert cfg.model.overrides["rerank_head"] and [s.loss for s in cfg.stages] == ["listwise-ce"]
    assert cfg.stages[0].sources[0].exclude_split == "test" and cfg.stages[0].sources[0].negatives.k == 3
    assert [s.name for s in cfg.stages[0].sources] == ["scifact-train", "wikiqa"]
    monkeypatch.setenv("ZOOBENCH_MODELS", str(tmp_path / "models"))
    data = make_data(tmp_path / "data")  # its "beir" folder stands in for SciFact: train qrels + a test split
    cut = ["stages.rerank.sources.0.path=beir", "stages.rerank.sources.1.path=pairs/train.jsonl"]
    cut += ["stages.rerank.batch_size=2", "stages.rerank.max_length=32"]
    steps: list[float] = []
    train("gte/minilm-reranker", [*cut, "stages.rerank.steps=2"], data_dir=data, progress=False,
          on_step=lambda s, m: steps.append(m["loss"]))  # fmt: skip
    start = ["name=gte-minilm-l6.reranker-init", "stages.rerank.steps=0"]
    train("gte/minilm-reranker", [*cut, *start], data_dir=data, progress=False)
    assert len(steps) == 2 and steps[0] == pytest.approx(np.log(4), abs=0.1)  # 1 + 3 candidates, a fresh head
    trained, init = create_model("gte-minilm-l6.reranker"), create_model("gte-minilm-l6.reranker-init")
    lazy = create_model("gte-minilm-l6.reranker", lazy=True)  # registered as a Ranker before any weight loads
    assert isinstance(lazy, Ranker) and not isinstance(lazy, Encoder) and not lazy.loaded
    assert isinstance(trained, GTERanker) and isinstance(init, GTERanker)
    docs = ["cats purr in the sun", "the stock market fell"]
    fresh = GTEModel.from_pretrained(gte._MINILM, rerank_head=True, head_seed=42).as_ranker(init.card)
    np.testing.assert_allclose(init.score("what purrs?", docs), fresh.score("what purrs?", docs), atol=1e-6)
    assert not np.allclose(trained.score("what purrs?", docs), init.score("what purrs?", docs))
