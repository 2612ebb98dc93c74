"""zoo.merge: the merge methods' identities on tensors and tiny GTE folders, Self Positioning's gradients, streaming
files, bad input, and merges as recipes ([model.merge]) through the trainer."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from zoo import merge
from zoo.errors import ZooError
from zoo.merge import MergeConfig, merge_files, merge_states, merge_tensor
from zoo.registry import create_model, get_card, get_family
from zoo.train import train
from zoo.train.config import load_recipe

TEXTS = ["river and mountain", "a piano near the ocean", "lemon", "pilot and baker"]


def _state(seed: int, scale: float = 1.0, shapes: dict | None = None) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = shapes or {"a.weight": (4, 6), "a.bias": (4,), "layers.0.w": (3, 3), "layers.1.w": (3, 3)}
    out = {k: torch.randn(s, generator=g) * scale for k, s in shapes.items()}
    out["position_ids"] = torch.arange(5)
    return out


def _cfg(method: str, n: int = 2, **kw) -> MergeConfig:
    return MergeConfig(base="base", models=[f"m{i}" for i in range(n)], method=method, **kw)


def _close(a: dict, b: dict, atol: float = 1e-6) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k].float(), b[k].float(), atol=atol) for k in a)


BASE = _state(0)
TASKS = [{k: v + 0.1 * d[k] if v.is_floating_point() else v for k, v in BASE.items()} for d in (_state(1), _state(2))]


@pytest.mark.parametrize("method", ["average", "task-arithmetic", "ties", "dare"])
def test_a_merge_of_a_model_with_itself_is_itself(method: str) -> None:
    out = merge_states(BASE, [BASE, BASE], _cfg(method, density=0.5))
    assert _close(out, BASE, atol=0) and out["position_ids"].dtype == torch.int64


def test_task_arithmetic_with_alpha_zero_is_the_base_and_with_one_adds_every_task_vector() -> None:
    assert _close(merge_states(BASE, TASKS, _cfg("task-arithmetic", alpha=0.0)), BASE, atol=0)
    out = merge_states(BASE, TASKS, _cfg("task-arithmetic", alpha=[0.5, 2.0]))
    k = "a.weight"
    assert torch.allclose(out[k], BASE[k] + 0.5 * (TASKS[0][k] - BASE[k]) + 2.0 * (TASKS[1][k] - BASE[k]), atol=1e-6)


@pytest.mark.parametrize("method", ["ties", "dare"])
def test_ties_and_dare_at_density_one_without_sign_election_are_task_arithmetic(method: str) -> None:
    plain = merge_states(BASE, TASKS, _cfg("task-arithmetic", alpha=0.7))
    assert _close(merge_states(BASE, TASKS, _cfg(method, alpha=0.7, density=1.0, sign_election=False)), plain)
    assert not _close(merge_states(BASE, TASKS, _cfg(method, alpha=0.7, density=1.0)), plain)  # election differs


def test_ties_by_hand() -> None:
    """Trim to the top half by magnitude, elect the sign of the sum, average the agreeing entries."""
    base = torch.zeros(4)
    t1, t2 = torch.tensor([3.0, -1.0, 0.5, 2.0]), torch.tensor([-1.0, -4.0, 0.1, 1.0])
    got = merge_tensor("w", base, [t1, t2], _cfg("ties", density=0.5), [1.0, 1.0])
    # trimmed: t1 -> [3, 0, 0, 2], t2 -> [0, -4, 0, 1]; signs of the sum [3, -4, 0, 3]: +, -, 0, +
    assert torch.equal(got, torch.tensor([3.0, -4.0, 0.0, 1.5]))


def test_dare_drops_with_a_seeded_mask_and_rescales() -> None:
    base, tau = torch.zeros(10_000), torch.ones(10_000)
    cfg = _cfg("dare", n=1, density=0.25, sign_election=False)
    got = merge_tensor("w", base, [tau], cfg, [1.0])
    assert set(got.unique().tolist()) == {0.0, 4.0} and abs(float((got > 0).float().mean()) - 0.25) < 0.02
    assert torch.equal(got, merge_tensor("w", base, [tau], cfg, [1.0]))  # the same mask for the same name and seed
    assert not torch.equal(got, merge_tensor("v", base, [tau], cfg, [1.0]))


def test_bad_input_is_one_line_naming_the_models_and_the_first_tensor() -> None:
    other = _state(3, shapes={"a.weight": (4, 6), "a.bias": (5,), "layers.0.w": (3, 3), "layers.1.w": (3, 3)})
    with pytest.raises(ZooError, match=r"^merge: base and m1 differ at tensor 'a.bias': shape \(4,\) vs \(5,\)$"):
        merge_states(BASE, [TASKS[0], other], _cfg("average"))
    fewer = {k: v for k, v in TASKS[1].items() if k != "layers.1.w"}
    with pytest.raises(ZooError, match="base and m1 have different architectures: tensor 'layers.1.w' is only in base"):
        merge_states(BASE, [TASKS[0], fewer], _cfg("average"))
    with pytest.raises(ZooError, match="unknown method 'soup'"):
        merge_states(BASE, TASKS, _cfg("soup"))
    with pytest.raises(ZooError, match="3 alphas for 2 task models"):
        merge_states(BASE, TASKS, _cfg("task-arithmetic", alpha=[1.0, 1.0, 1.0]))
    with pytest.raises(ZooError, match="density must be in"):
        merge_states(BASE, TASKS, _cfg("ties", density=0.0))


def test_files_merge_tensor_by_tensor_as_states_do(tmp_path: Path) -> None:
    paths = []
    for i, s in enumerate([BASE, *TASKS]):
        paths.append(tmp_path / f"{i}.safetensors")
        save_file(s, str(paths[-1]))
    cfg = _cfg("ties", density=0.5)
    out = merge_files(paths[0], paths[1:], tmp_path / "out.safetensors", cfg)
    assert _close(load_file(str(out)), merge_states(BASE, TASKS, cfg), atol=0)
    assert not list(tmp_path.glob("*.tmp"))
    wrong = tmp_path / "wrong.safetensors"
    save_file({**TASKS[1], "a.weight": torch.zeros(6, 4)}, str(wrong))
    with pytest.raises(ZooError, match=r"differ at tensor 'a.weight': shape \(4, 6\) vs \(6, 4\)"):
        merge_files(paths[0], [paths[1], wrong], tmp_path / "x.safetensors", cfg)
    assert not (tmp_path / "x.safetensors").exists()


# TINY GTE FOLDERS ================================================================================


def _task_folder(init: Path, out: Path, seed: int) -> Path:
    """A copy of ``init`` with every float weight moved a little: a stand-in for a fine-tuned task model."""
    shutil.copytree(init, out)
    weights = out / "model.safetensors"
    state = load_file(str(weights))
    g = torch.Generator().manual_seed(seed)
    moved = {k: v + 0.05 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v for k, v in state.items()}
    save_file(moved, str(weights))
    return out


@pytest.fixture
def tasks(tiny_init: Path, tmp_path: Path) -> list[Path]:
    return [_task_folder(tiny_init, tmp_path / f"task{i}", seed=i) for i in (1, 2)]


def test_self_positioning_trains_only_the_alphas_and_bakes_to_task_arithmetic(
    tiny_init: Path, tasks: list[Path]
) -> None:
    family = get_family("gte")
    cfg = MergeConfig(base=f"local:{tiny_init}", models=[f"local:{t}" for t in tasks], method="self-positioning",
                      alpha=[0.3, 0.6], granularity="layer")  # fmt: skip
    model, positioning = merge.build(family, cfg)
    assert positioning.slots == ["layer.0", "layer.1", "other"] and tuple(model.merge_alphas.shape) == (2, 3)
    batch = model.tokenize(TEXTS, 16)
    emb = model.heads(**batch)["dense"]
    emb.pow(2).sum().backward()
    moving = {n for n, p in model.named_parameters() if p.requires_grad}
    assert moving == {"merge_alphas"} and model.merge_alphas.grad is not None
    assert model.merge_alphas.grad.abs().min() > 0  # every slot reaches the loss
    assert all(p.grad is None for n, p in model.named_parameters() if n != "merge_alphas")
    merge.bake(model)
    fixed = MergeConfig(base=cfg.base, models=cfg.models, method="task-arithmetic", alpha=[0.3, 0.6])
    expected, _ = merge.build(family, fixed)
    ours = {k: v for k, v in model.state_dict().items()}
    assert "merge_alphas" not in ours and _close(ours, expected.state_dict(), atol=1e-6)


def _merge_recipe(init: Path, tasks: list[Path], method: str, **merge_kw) -> dict:
    recipe = {
        "name": f"gte-test.{method}",
        "seed": 0,
        "threads": 1,
        "model": {
            "family": "gte",
            "overrides": {"max_tokens": 32},
            "merge": {"base": f"local:{init}", "models": [f"local:{t}" for t in tasks], "method": method, **merge_kw},
        },
    }
    if method == "self-positioning":
        recipe["stages"] = [
            {
                "name": "probe",
                "steps": 3,
                "batch_size": 8,
                "lr": 0.05,
                "max_length": 24,
                "sources": [{"name": "pairs", "reader": "jsonl-pairs", "path": "pairs/train.jsonl"}],
            }
        ]
    return recipe


def test_a_fixed_merge_is_a_recipe_without_stages(tiny_init: Path, tasks: list[Path], train_data: Path) -> None:
    folder = train(_merge_recipe(tiny_init, tasks, "ties", density=0.5), data_dir=train_data, progress=False)
    record = json.loads((folder / "train.json").read_text())
    assert record["merge"]["method"] == "ties" and record["steps"] == 0 and record["trained_params"] == 0
    card = get_card("gte-test.ties")
    assert card.upstream.startswith("trained by zoobench (dict) from a ties merge of local:")
    cfg = MergeConfig(**{k: v for k, v in record["merge"].items()})
    expected, _ = merge.build(get_family("gte"), cfg)
    torch.testing.assert_close(
        torch.from_numpy(create_model("gte-test.ties", device="cpu").encode(TEXTS)),
        torch.nn.functional.normalize(expected.heads(**expected.tokenize(TEXTS, 32))["dense"].detach(), dim=-1),
        atol=1e-5,
        rtol=0,
    )


def test_self_positioning_recipe_learns_and_records_its_alphas(
    tiny_init: Path, tasks: list[Path], train_data: Path
) -> None:
    folder = train(_merge_recipe(tiny_init, tasks, "self-positioning", alpha=0.5), data_dir=train_data, progress=False)
    record = json.loads((folder / "train.json").read_text())
    alphas = record["merge"]["alphas"]
    assert set(alphas) == {f"local:{t}" for t in tasks} and all(set(a) == {"all"} for a in alphas.values())
    assert any(abs(a["all"] - 0.5) > 1e-3 for a in alphas.values())  # they moved from the start
    assert record["trained_params"] == 2
    assert "merge_alphas" not in load_file(str(folder / "model.safetensors"))
    assert "learned alphas" in get_card("gte-test.self-positioning").upstream
    assert create_model("gte-test.self-positioning", device="cpu").encode(TEXTS).shape == (4, 64)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "soup"}, "model.merge: unknown method 'soup'"),
        ({"alpha": [1.0]}, "model.merge: 1 alphas for 2 task models"),
        ({"method": "self-positioning"}, "self-positioning learns its alphas: it needs [[stages]]"),
    ],
)
def test_bad_merge_recipes_fail_before_anything_runs(
    change: dict, message: str, tiny_init: Path, tasks: list[Path]
) -> None:
    recipe = _merge_recipe(tiny_init, tasks, "task-arithmetic")
    recipe["model"]["merge"].update(change)
    with pytest.raises(ZooError, match=message.replace("[", r"\[")):
        load_recipe(recipe)


def test_merging_different_architectures_names_both(tiny_init: Path, tasks: list[Path], tmp_path: Path) -> None:
    wide = tmp_path / "wide"
    shutil.copytree(tiny_init, wide)
    config = json.loads((wide / "config.json").read_text())
    (wide / "config.json").write_text(json.dumps(config | {"intermediate_size": 96}))
    state = load_file(str(wide / "model.safetensors"))
    for k, v in state.items():  # the feed-forward's inner width: 128 -> 96
        if "intermediate.dense" in k:
            state[k] = v[:96].contiguous()
        elif re.search(r"layer\.\d+\.output\.dense\.weight", k):
            state[k] = v[:, :96].contiguous()
    save_file(state, str(wide / "model.safetensors"))
    cfg = MergeConfig(base=f"local:{tiny_init}", models=[f"local:{tasks[0]}", f"local:{wide}"], method="average")
    with pytest.raises(ZooError, match=rf"local:{tiny_init} and local:{wide} differ at tensor '.*intermediate"):
        merge.build(get_family("gte"), cfg)


def test_the_self_positioning_experiment_recipes_share_one_start_and_budget() -> None:
    tasks = [load_recipe(f"merge/minilm-task-{t}") for t in ("retrieval", "sts", "classification", "nli")]
    joint = load_recipe("merge/minilm-joint")
    assert {t.model.init for t in tasks} == {joint.model.init} and {t.total_steps for t in tasks} == {60}
    assert joint.total_steps == 4 * 60 and {t.stages[0].batch_size for t in [*tasks, joint]} == {32}
    assert sorted(s.name for s in joint.stages[0].sources) == sorted(s.name for t in tasks for s in t.stages[0].sources)
    names = [f"trained:{t.name}" for t in tasks]
    for method in ("average", "task-arithmetic", "ties", "dare", "self-positioning"):
        merged = load_recipe(f"merge/minilm-{method}")
        assert merged.model.merge.method == method and merged.model.merge.models == names
        assert merged.model.merge.base == joint.model.init
    probe = load_recipe("merge/minilm-self-positioning").stages[0]
    assert probe.alpha == 0.0 and {s.max_examples for s in probe.sources} == {64}  # balanced, small
