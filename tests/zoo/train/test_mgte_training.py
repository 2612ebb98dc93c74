"""mGTE training: the MRL and hybrid losses by hand, lexical scores, GradCache and DDP with token weights,
the scratch writer, the tiny recipe end to end, and the checks that fail before training."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from zoo.errors import ZooError
from zoo.families.mgte import MGTEScratchConfig
from zoo.registry import get_card, get_family, list_models
from zoo.train import train
from zoo.train.config import to_toml
from zoo.train.losses import (
    Encoded,
    MGTEHybridLoss,
    MRLInfoNCELoss,
    TokenWeights,
    create_loss,
    lexical_score_matrix,
)

from .conftest import make_data

REPO = Path(__file__).resolve().parents[3]


# LOSSES ==========================================================================================


def _infonce_brute(q: torch.Tensor, docs: torch.Tensor, t: float) -> float:
    """Mean over queries of -log softmax(cos / t) at the query's own document, in Python floats."""
    total = 0.0
    for i in range(q.shape[0]):
        logits = [float(F.cosine_similarity(q[i], doc, dim=0)) / t for doc in docs]
        total += math.log(sum(math.exp(x) for x in logits)) - logits[i]
    return total / q.shape[0]


@pytest.mark.parametrize("k", [0, 2])
def test_mrl_loss_is_the_sum_of_infonce_on_the_prefixes(k: int) -> None:
    g = torch.Generator().manual_seed(k)
    q, d = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    neg = torch.randn(4, k, 6, generator=g) if k else None
    docs = d if neg is None else torch.cat([d, neg.reshape(-1, 6)])
    per_dim = [_infonce_brute(q[:, :w], docs[:, :w], 0.1) for w in (2, 4, 6)]
    # 99 is clipped to the width 6 and 6 is then a duplicate: the widths are 2, 4, 6
    loss = MRLInfoNCELoss({"temperature": 0.1, "dims": [4, 2, 99, 6]})
    assert float(loss(q, d, neg)) == pytest.approx(sum(per_dim), rel=1e-5)
    mean = MRLInfoNCELoss({"temperature": 0.1, "dims": [2, 4, 6], "reduction": "mean"})
    assert float(mean(q, d, neg)) == pytest.approx(sum(per_dim) / 3, rel=1e-5)
    # one width equal to the embedding's: plain InfoNCE
    plain = create_loss("infonce", {"temperature": 0.1})(q, d, neg)
    assert float(MRLInfoNCELoss({"temperature": 0.1, "dims": [6]})(q, d, neg)) == pytest.approx(float(plain))


def test_mrl_loss_by_hand_on_orthogonal_prefixes() -> None:
    # Full width: q_i = d_i = e_i (i = 0, 1), cos 1 on the diagonal and 0 off it: L = log(1 + e^{-1/t}).
    # First feature only: every vector is (1,) or (0,) -> q_1, d_1 normalise to 0, so cos(q_1, .) = 0 and
    # row 1 is log 2; row 0: cos(q_0, d_0) = 1, cos(q_0, d_1) = 0 -> log(1 + e^{-1/t}).
    q = torch.eye(2)
    t = 0.5
    full = math.log(1 + math.exp(-1 / t))
    first = (full + math.log(2)) / 2
    assert float(MRLInfoNCELoss({"temperature": t, "dims": [1, 2]})(q, q.clone())) == pytest.approx(full + first)


def _bag(ids: list[int], weights: list[float], special: set[int]) -> dict[int, float]:
    out: dict[int, float] = {}
    for i, w in zip(ids, weights, strict=True):
        if i not in special:
            out[i] = max(out.get(i, 0.0), w)
    return out


def test_lexical_score_matrix_equals_dict_dot_products() -> None:
    g = torch.Generator().manual_seed(0)
    special = (0, 1, 2)  # pad, cls, sep
    q_ids = torch.randint(0, 12, (3, 7), generator=g)  # a small id range: repeated and shared tokens
    d_ids = torch.randint(0, 12, (5, 9), generator=g)
    q_ids[:, 0] = d_ids[:, 0] = 1  # a special token everywhere: must not count
    q_w, d_w = torch.rand(3, 7, generator=g), torch.rand(5, 9, generator=g)
    q = TokenWeights.from_heads(q_ids, q_w, special)
    d = TokenWeights.from_heads(d_ids, d_w, special)
    scores = lexical_score_matrix(q, d)  # (3, 5)
    assert scores.shape == (3, 5)
    for i in range(3):
        qb = _bag(q_ids[i].tolist(), q_w[i].tolist(), set(special))
        for j in range(5):
            db = _bag(d_ids[j].tolist(), d_w[j].tolist(), set(special))
            expected = sum(w * db[t] for t, w in qb.items() if t in db)
            assert float(scores[i, j]) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # padding with zero-weight tokens and grouping (B, K, T) change nothing
    wide = lexical_score_matrix(q.padded(12), TokenWeights(d.ids.reshape(5, 1, 9), d.weights.reshape(5, 1, 9)))
    torch.testing.assert_close(wide, scores)


def _tiny_mgte(sparse_head: bool = True, dropout: float = 0.0):
    from zoo.families.mgte import MGTEConfig, MGTEModel
    from zoo.train.tokenizer import train_wordpiece

    texts = ["the river and the mountain", "a piano near the ocean", "apples and pears", "the doctor plays drums"]
    tok = train_wordpiece(texts * 5, vocab_size=120)
    config = MGTEConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        hidden_dropout_prob=dropout,
        max_position_embeddings=32,
        pad_token_id=tok.pad_token_id,
    )
    return MGTEModel.from_config(config, tok, seed=0, sparse_head=sparse_head), texts


def _encode(model, texts: list[str]) -> Encoded:
    batch = model.tokenize(texts)
    out = model.heads(**batch, outputs=("dense", "sparse"))
    return Encoded(out["dense"], TokenWeights.from_heads(batch["input_ids"], out["sparse"], model.special_token_ids))


def test_hybrid_loss_trains_the_sparse_head_and_the_dense_path() -> None:
    model, texts = _tiny_mgte()
    model.train()
    with torch.no_grad():
        model.sparse_head.bias.fill_(0.5)  # every token weight > 0: ReLU passes gradients
    q, d = _encode(model, texts[:2] + texts[2:3]), _encode(model, texts[1:4])
    neg = _encode(model, texts[:3])
    neg = Encoded(neg.dense[:, None], TokenWeights(neg.sparse.ids[:, None], neg.sparse.weights[:, None]))  # K = 1
    loss = MGTEHybridLoss({"dims": [8, 32], "sparse_weight": 0.5})(query=q, positive=d, negatives=neg)
    loss.backward()
    assert model.sparse_head.weight.grad.abs().sum() > 0 and model.sparse_head.bias.grad.abs().sum() > 0
    assert model.embeddings.word_embeddings.weight.grad.abs().sum() > 0

    # The total is dense MRL + lambda * sparse InfoNCE over lexical scores (t_sparse = 1 by default).
    with torch.no_grad():
        dense = MRLInfoNCELoss({"dims": [8, 32]})(q.dense, d.dense, neg.dense)
        docs = TokenWeights.cat([d.sparse, neg.sparse.flat()])
        sparse = F.cross_entropy(lexical_score_matrix(q.sparse, docs), torch.arange(3))
    assert float(loss.detach()) == pytest.approx(float(dense + 0.5 * sparse), rel=1e-5)

    # Without lambda, nothing reaches the sparse head; without its token weights the loss refuses.
    model.zero_grad()
    MGTEHybridLoss({"dims": [8], "sparse_weight": 0.0})(_encode(model, texts), _encode(model, texts)).backward()
    assert model.sparse_head.weight.grad is None or model.sparse_head.weight.grad.abs().sum() == 0
    with pytest.raises(ZooError, match="lacks token weights"):
        MGTEHybridLoss()(query=torch.randn(2, 4), positive=torch.randn(2, 4))


def test_special_token_ids_and_head_outputs() -> None:
    model, _ = _tiny_mgte()
    tok = model.tokenizer
    assert set(model.special_token_ids) == {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.unk_token_id}
    assert model.head_outputs == ("dense", "sparse")
    assert _tiny_mgte(sparse_head=False)[0].head_outputs == ("dense",)


# THE TRAINER WITH TOKEN WEIGHTS ==================================================================


@pytest.fixture(scope="module")
def mgte_init(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A synthetic data dir and a tiny random mGTE written by the family's scratch (no dropout), with a sparse head."""
    from zoo.train.tokenizer import corpus_texts, train_wordpiece

    root = tmp_path_factory.mktemp("mgte-init")
    data = make_data(root / "data")
    tok = train_wordpiece(corpus_texts(sorted(data.rglob("*.jsonl")), 5000), vocab_size=400)
    cfg = MGTEScratchConfig(
        hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_position=64, dropout=0.0
    )
    return data, get_family("mgte").scratch(root / "model", tok, cfg, seed=0)


def _mgte_recipe(init: Path, **stage) -> dict:
    return {
        "name": "mgte-test.run",
        "seed": 0,
        "threads": 1,
        "model": {"family": "mgte", "init": f"local:{init}"},
        "stages": [
            {
                "name": "only",
                "steps": 2,
                "batch_size": 8,
                "lr": 1e-3,
                "max_length": 24,
                "loss": "mgte",
                "loss_args": {"dims": [8, 32], "sparse_weight": 0.5},
                "sources": [{"name": "triplets", "reader": "jsonl-triplets", "path": "triplets/train.jsonl"}],
                **stage,
            }
        ],
    }


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def _losses(folder: Path) -> list[tuple[int, str, float]]:
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [(m["step"], m["source"], m["loss"]) for m in map(json.loads, lines)]


def test_scratch_mgte_folder_loads_with_its_sparse_head(mgte_init: tuple[Path, Path]) -> None:
    from zoo.families.mgte import MGTEModel

    _, folder = mgte_init
    model = MGTEModel.from_pretrained(folder)
    assert model.sparse_head is not None and model.config.rope_theta == 10000.0
    assert float(model.sparse_head.bias.detach()) == 1.0  # a live ReLU head from the start
    assert model.config.attention_probs_dropout_prob == 0.0 and model.max_tokens == 64


def test_grad_cache_and_two_processes_give_the_same_mgte_update(tmp_path: Path, mgte_init: tuple[Path, Path]) -> None:
    data, init = mgte_init
    plain = train(_mgte_recipe(init), out=tmp_path / "plain", data_dir=data, progress=False)
    cached = train(_mgte_recipe(init, grad_cache_chunk=3), out=tmp_path / "cached", data_dir=data, progress=False)
    start, w_plain = _weights(init), _weights(plain)
    assert not torch.equal(start["classifier.bias"], w_plain["classifier.bias"])  # the sparse head learns (no decay)
    for k, v in _weights(cached).items():
        torch.testing.assert_close(v, w_plain[k], atol=1e-5, rtol=1e-4)
    assert [x[2] for x in _losses(cached)] == pytest.approx([x[2] for x in _losses(plain)], rel=1e-5)

    # torchrun, 2 ranks: the ranks' token weights have different widths; gathered, they give the same loss.
    path = tmp_path / "ddp.toml"
    path.write_text(to_toml(_mgte_recipe(init)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "zoo.train"]
    cmd += ["--recipe", str(path), "--out", str(tmp_path / "two"), "--data-dir", str(data), "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for (_, _, a), (_, _, b) in zip(_losses(plain), _losses(tmp_path / "two"), strict=True):
        assert abs(a - b) < 1e-4
    for k, v in _weights(tmp_path / "two").items():
        torch.testing.assert_close(v, w_plain[k], atol=1e-5, rtol=1e-4)


def test_a_sparse_loss_without_a_sparse_output_fails_before_training(
    tmp_path: Path, mgte_init: tuple[Path, Path], tiny_init: Path
) -> None:
    data, _ = mgte_init
    model, _ = _tiny_mgte(sparse_head=False)
    dense_only = model.save_pretrained(tmp_path / "dense-only")
    steps: list[int] = []
    with pytest.raises(
        ZooError, match=r"^stage 'only', source 'triplets': loss 'mgte' needs the model's sparse output"
    ):
        train(
            _mgte_recipe(dense_only),
            out=tmp_path / "a",
            data_dir=data,
            progress=False,
            on_step=lambda s, _: steps.append(s),
        )
    gte = {**_mgte_recipe(tiny_init), "model": {"family": "gte", "init": f"local:{tiny_init}"}}
    with pytest.raises(ZooError, match="needs the model's sparse output, which this GTEModel lacks"):
        train(gte, out=tmp_path / "b", data_dir=data, progress=False, on_step=lambda s, _: steps.append(s))
    assert steps == []


# THE TINY RECIPE, END TO END =====================================================================


def test_mgte_tiny_scratch_recipe_trains_from_nothing_and_its_loss_falls(tmp_path: Path, shared_data: Path) -> None:
    import harness

    folder = train("mgte/tiny-scratch", out=tmp_path / "tiny", data_dir=shared_data, progress=False)
    losses = _losses(folder)
    for steps, source in ((range(1, 101), "wikiqa"), (range(1, 101), "snli-pairs"), (range(101, 201), "snli")):
        ours = [loss for step, src, loss in losses if step in steps and src == source]
        assert np.mean(ours[-5:]) < np.mean(ours[:5]) - 0.4, (source, ours)
    record = json.loads((folder / "train.json").read_text())
    assert record["init"] is None and record["family"] == "mgte" and record["params"] < 400_000
    assert "2407.19669" in record["citation"] and "2205.13147" in record["citation"]

    name = record["name"]
    assert name in list_models() and get_card(name).embed_dim == 64
    (rec,) = harness.evaluate(name, ["local/stsb"], results_dir=tmp_path / "r", data_dir=shared_data, progress=False)
    assert math.isfinite(rec.get_score())

    # The trained folder is a registered mGTE: its lazy stand-in has the sparse protocol and the retrieval mode,
    # and the sparse head learned lexical matching from nothing (SciFact nDCG@10: sparse 0.366, dense 0.003).
    scifact = {
        mode: harness.evaluate(
            name,
            ["local/scifact"],
            results_dir=tmp_path / "r",
            data_dir=shared_data,
            progress=False,
            model_kwargs={"mode": mode},
        )[0]
        for mode in ("dense", "sparse")
    }
    assert scifact["sparse"].revision.endswith("+mode-sparse")
    assert scifact["sparse"].get_score() > 0.25 > scifact["dense"].get_score()


# THE CROSS-ENCODER RERANKER (listwise-ce) ========================================================


def test_listwise_ce_by_hand() -> None:
    scores = torch.tensor([[2.0, 0.0, 1.0], [-1.0, 3.0, 0.5]])
    for t in (1.0, 0.5):
        expected = np.mean(
            [math.log(sum(math.exp(x / t) for x in row)) - row[0] / t for row in scores.tolist()]
        )  # -log softmax(row / t)[0], the positive first
        loss = create_loss("listwise-ce", {"temperature": t})
        assert float(loss(scores=scores)) == pytest.approx(expected, rel=1e-6)
    assert create_loss("listwise-ce").formats == ("triplets",) and "2407.19669" in create_loss("listwise-ce").citation
    with pytest.raises(ZooError, match="K >= 1"):
        create_loss("listwise-ce")(scores=torch.zeros(2, 1))


@pytest.fixture(scope="module")
def rerank_init(tmp_path_factory: pytest.TempPathFactory, mgte_init: tuple[Path, Path]) -> Path:
    """A tiny random mGTE with the rerank head only (the family's scratch, heads = ["rerank"], no dropout)."""
    from zoo.train.tokenizer import corpus_texts, train_wordpiece

    data, _ = mgte_init
    tok = train_wordpiece(corpus_texts(sorted(data.rglob("*.jsonl")), 5000), vocab_size=400)
    cfg = MGTEScratchConfig(
        hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_position=64, dropout=0.0, heads=["rerank"]
    )
    return get_family("mgte").scratch(tmp_path_factory.mktemp("rerank-init") / "model", tok, cfg, seed=0)


def test_the_trainer_rerank_forward_is_the_rankers_score(rerank_init: Path) -> None:
    from types import SimpleNamespace

    from zoo.families.mgte import MGTEModel, MGTERanker
    from zoo.train.dist import Dist
    from zoo.train.objectives import PairObjective

    model = MGTEModel.from_pretrained(rerank_init)
    assert model.head_outputs == ("dense", "rerank") and model.config.type_vocab_size == 2
    assert MGTEModel.runner_class(rerank_init) is MGTERanker
    ranker = model.as_encoder(get_card("test-mgte"))  # rerank head, no sparse head: a ranker
    assert isinstance(ranker, MGTERanker)
    rows = {
        "query": ["is the river near a mountain", "apples"],
        "positive": ["the river flows by the mountain " * 3, "apples and pears"],
        "negatives": [["a piano", "drums " * 30], ["the doctor", "x"]],
    }
    stage = SimpleNamespace(batch_size=2, max_length=model.max_tokens, grad_cache_chunk=None)
    seen = []

    def loss(scores: torch.Tensor) -> torch.Tensor:  # the pair objective's scores, (B, 1 + K)
        seen.append(scores.detach())
        return scores.sum()

    loss.outputs, loss.name = ("rerank",), "spy"
    PairObjective(model, loss, stage, SimpleNamespace(), Dist(), False, "test").step(rows, {}, torch.Generator())
    scores = seen[0]
    assert scores.shape == (2, 3)
    for i, q in enumerate(rows["query"]):
        expected = ranker.score(q, [rows["positive"][i], *rows["negatives"][i]])
        np.testing.assert_allclose(scores[i].numpy(), expected, atol=1e-5)


def test_a_rerank_loss_fails_before_training_without_the_head_or_negatives(
    tmp_path: Path, mgte_init: tuple[Path, Path], rerank_init: Path
) -> None:
    from zoo.families.mgte import MGTEEncoder, MGTEModel

    data, sparse_only = mgte_init
    assert MGTEModel.runner_class(sparse_only) is MGTEEncoder
    steps: list[int] = []

    def run(init: Path, out: str, **stage) -> None:
        recipe = _mgte_recipe(init, loss="listwise-ce", loss_args={}, **stage)
        train(recipe, out=tmp_path / out, data_dir=data, progress=False, on_step=lambda s, _: steps.append(s))

    needs = r"^stage 'only', source 'triplets': loss 'listwise-ce' needs the model's rerank output"
    with pytest.raises(ZooError, match=needs):
        run(sparse_only, "a")
    pairs = [{"name": "pairs", "reader": "jsonl-pairs", "path": "pairs/train.jsonl"}]
    with pytest.raises(ZooError, match="loss 'listwise-ce' trains on triplets, not pairs"):
        run(rerank_init, "b", sources=pairs)
    with pytest.raises(ZooError, match="grad_cache_chunk does not apply to the .listwise-ce. loss"):
        run(rerank_init, "c", grad_cache_chunk=4)
    assert steps == []
    # pairs with mined negatives are triplets: they train, and the loss runs over 1 + K = 3 candidates
    mined = [{**pairs[0], "negatives": {"miner": "bm25", "k": 2}}]
    folder = tmp_path / "d"
    run(rerank_init, "d", sources=mined)
    assert steps == [1, 2] and all(math.isfinite(x[2]) for x in _losses(folder))
    assert not torch.equal(_weights(rerank_init)["classifier.weight"], _weights(folder)["classifier.weight"])


def test_mgte_tiny_reranker_recipe_trains_from_nothing_and_reranks(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness
    from zoo.families.mgte import MGTEModel
    from zoo.protocols import Encoder, Ranker
    from zoo.registry import create_model

    monkeypatch.setenv("ZOOBENCH_MODELS", str(tmp_path / "models"))
    folder = train("mgte/tiny-reranker", out=tmp_path / "models" / "rr", data_dir=shared_data, progress=False)
    losses = _losses(folder)
    # The scratch tokenizer differs between runs (WordPiece ties), so the margins leave room: measured falls were
    # 0.07 to 0.18 (SciFact, long abstracts cut at 96 tokens) and 0.25 to 0.3 (WikiQA).
    for source, margin in (("scifact-train", 0.03), ("wikiqa", 0.1)):
        ours = [loss for _, src, loss in losses if src == source]
        assert ours[0] == pytest.approx(math.log(4), abs=0.05)  # 1 + 3 candidates, near-uniform at random init
        assert np.mean(ours[-5:]) < np.mean(ours[:5]) - margin, (source, ours)
    record = json.loads((folder / "train.json").read_text())
    assert record["init"] is None and record["params"] < 400_000 and "2407.19669" in record["citation"]

    name = record["name"]
    assert name in list_models()
    ranker = create_model(name)
    assert isinstance(ranker, Ranker) and not isinstance(ranker, Encoder)
    lazy = create_model(name, lazy=True)
    assert isinstance(lazy, Ranker) and not isinstance(lazy, Encoder)
    kw = {"data_dir": shared_data, "progress": False}
    (rec,) = harness.evaluate(name, ["local/wikiqa-reranking"], results_dir=tmp_path / "r", **kw)
    init = MGTEModel.from_pretrained(folder / "init").as_ranker(get_card(name))
    (rec0,) = harness.evaluate(init, ["local/wikiqa-reranking"], results_dir=tmp_path / "r0", **kw)
    print(f"wikiqa-reranking MAP: trained {rec.get_score():.4f}, random init {rec0.get_score():.4f}")
    assert math.isfinite(rec.get_score()) and math.isfinite(rec0.get_score())


# MLM PRE-TRAINING ================================================================================


def test_the_mlm_head_is_tied_saved_once_and_reloads(tmp_path: Path) -> None:
    from zoo.families.mgte import MGTEModel

    model, _ = _tiny_mgte(sparse_head=True)
    model = MGTEModel.from_config(model.config, model.tokenizer, seed=0, sparse_head=True, mlm_head=True)
    assert model.head_outputs == ("dense", "sparse", "mlm")
    assert model.lm_head.decoder.weight is model.embeddings.word_embeddings.weight
    batch = model.tokenize(["a river by the mountain", "apples"], 16)
    select = batch["attention_mask"].bool() & (
        torch.rand(batch["input_ids"].shape, generator=torch.Generator().manual_seed(0)) < 0.5
    )
    logits = model.heads(**batch, outputs=("mlm",), select=select)["mlm"]
    assert logits.shape == (int(select.sum()), model.config.vocab_size)
    padded = MGTEModel.from_config(model.config, model.tokenizer, seed=0, sparse_head=True, mlm_head=True, unpad=False)
    torch.testing.assert_close(
        padded.heads(**batch, outputs=("mlm",), select=select)["mlm"], logits, atol=1e-5, rtol=1e-4
    )
    folder = model.save_pretrained(tmp_path / "mlm")
    keys = set(load_file(folder / "model.safetensors"))
    assert "lm_head.dense.weight" in keys and "lm_head.decoder.bias" in keys and "lm_head.decoder.weight" not in keys
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["NewForTokenClassification"]
    again = MGTEModel.from_pretrained(folder)
    assert again.lm_head.decoder.weight is again.embeddings.word_embeddings.weight
    torch.testing.assert_close(again.heads(**batch, outputs=("mlm",), select=select)["mlm"], logits)
    with pytest.raises(ZooError, match="needs `select`"):
        model.heads(**batch, outputs=("mlm",))


def test_configure_raises_the_rope_base_and_the_length(tmp_path: Path) -> None:
    model, _ = _tiny_mgte(sparse_head=False)
    batch = model.tokenize(["a long enough sentence about rivers and mountains"], 32)
    before = model(**batch)
    model.configure(rope_theta=160000.0, max_tokens=2048)
    assert model.config.rope_theta == 160000.0 and model.max_tokens == 2048
    assert not torch.allclose(model(**batch), before)
    from zoo.families.mgte import MGTEModel

    again = MGTEModel.from_pretrained(model.save_pretrained(tmp_path / "m"))
    assert again.config.rope_theta == 160000.0 and again.max_tokens == 2048
    with pytest.raises(TypeError):
        model.configure(nope=1)


def test_mgte_tiny_mlm_recipe_runs_mlm_then_contrastive(tmp_path: Path, shared_data: Path) -> None:
    from zoo.families.mgte import MGTEEncoder, MGTEModel
    from zoo.registry import create_model

    cut = ["stages.mlm-short.steps=3", "stages.mlm-long.steps=2", "stages.weak.steps=2", "stages.supervised.steps=2"]
    cut += ["model.scratch.tokenizer_max_texts=2000", "model.scratch.vocab_size=800"]
    folder = train("mgte/tiny-mlm", cut, out=tmp_path / "models" / "m", data_dir=shared_data, progress=False)
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [m["stage"] for m in lines] == ["mlm-short"] * 3 + ["mlm-long"] * 2 + ["weak"] * 2 + ["supervised"] * 2
    assert lines[0]["loss"] == pytest.approx(math.log(800), rel=0.15)  # MLM from random: about log(vocab)
    model = MGTEModel.from_pretrained(folder)
    assert model.config.rope_theta == 160000.0 and model.lm_head is not None and model.sparse_head is not None
    encoder = create_model("mgte-tiny.mlm", mode="hybrid")
    assert isinstance(encoder, MGTEEncoder) and encoder.retrieval_mode == "hybrid"
    assert encoder.encode(["word " * 3000]).shape == (1, 128)  # RoPE: thousands of tokens
