"""zoo.weights (one file or shards, identity, loading) and the layering rules between packages."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from zoo.errors import ZooError
from zoo.registry import create_model
from zoo.weights import INDEX, WEIGHTS, load_weights, weight_files, weight_names, weights_sha256

ROOT = Path(__file__).resolve().parents[2]


def _shard(folder: Path, parts: int = 2) -> None:
    """Split a folder's model.safetensors into ``parts`` shards with transformers' index file."""
    state = load_file(folder / WEIGHTS)
    names = sorted(state)
    weight_map = {}
    for i in range(parts):
        shard = f"model-{i + 1:05d}-of-{parts:05d}.safetensors"
        keys = names[i::parts]
        save_file({k: state[k] for k in keys}, str(folder / shard), metadata={"format": "pt"})
        weight_map.update({k: shard for k in keys})
    (folder / WEIGHTS).unlink()
    (folder / INDEX).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def test_sharded_mgte_loads_and_hashes_like_one_file(tmp_path: Path) -> None:
    from zoo.families.mgte import MGTEModel

    model = create_model("test-mgte").model
    folder = model.save_pretrained(tmp_path / "one")
    single = weights_sha256(folder)
    state = load_weights(folder)
    _shard(folder)
    assert [p.name for p in weight_files(folder)] == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    assert sorted(weight_names(folder)) == sorted(state)
    sharded = weights_sha256(folder)
    assert sharded.startswith("sha256:") and sharded != single and weights_sha256(folder) == sharded
    loaded = MGTEModel.from_pretrained(folder)
    batch = model.tokenize(["a sharded checkpoint"])
    torch.testing.assert_close(loaded(**batch), model.eval()(**batch))
    assert MGTEModel.runner_class(folder).__name__ == "MGTEEncoder"

    shard = folder / "model-00002-of-00002.safetensors"
    part = load_file(shard)
    key = next(iter(part))
    part[key] = part[key] + 1
    save_file(part, str(shard), metadata={"format": "pt"})
    assert weights_sha256(folder) != sharded
    shard.unlink()
    with pytest.raises(ZooError, match="lists 'model-00002-of-00002.safetensors', which is not in"):
        weights_sha256(folder)
    with pytest.raises(ZooError, match="no model.safetensors or model.safetensors.index.json"):
        weight_files(tmp_path)


def test_sharded_bert_folder_loads_through_transformers(tmp_path: Path) -> None:
    from zoo.families.gte import GTEModel, weights_revision

    model = create_model("test-gte").model
    folder = model.save_pretrained(tmp_path / "gte")
    _shard(folder, 3)
    loaded = GTEModel.from_pretrained(folder)
    batch = model.tokenize(["three shards"])
    torch.testing.assert_close(loaded(**batch), model.eval()(**batch))
    assert weights_revision(folder) == f"sha256-{weights_sha256(folder)[7:19]}"


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, [alias.name for alias in node.names]))
    return out


def test_zoo_never_imports_harness_or_the_leaderboard() -> None:
    found = [
        (str(path.relative_to(ROOT)), module)
        for path in sorted((ROOT / "zoo").rglob("*.py"))
        for module, _ in _imports(path)
        if module.split(".")[0] in ("harness", "leaderboard")
    ]
    assert not found


def test_a_family_never_imports_another_familys_private_names() -> None:
    found = [
        (path.name, module, name)
        for path in sorted((ROOT / "zoo" / "families").glob("*.py"))
        for module, names in _imports(path)
        if module.startswith("zoo.families.") and module != f"zoo.families.{path.stem}"
        for name in names
        if name.startswith("_")
    ]
    assert not found


def test_a_changed_result_record_or_doc_does_not_make_the_code_dirty(tmp_path: Path) -> None:
    from zoo.provenance import git_revision

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    for name in ("zoo/a.py", "results/m/r/t.json", "README.md", "docs/x.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    head = git_revision(tmp_path)
    assert head is not None and len(head) == 40
    for name in ("results/m/r/t.json", "README.md", "docs/x.txt"):
        (tmp_path / name).write_text("2\n")
    assert git_revision(tmp_path) == head
    (tmp_path / "zoo/a.py").write_text("2\n")
    assert git_revision(tmp_path) == head + "+dirty"
    assert git_revision(tmp_path / "results").endswith("+dirty")  # a subfolder still checks the whole tree
