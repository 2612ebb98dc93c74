"""The embedding cache: content addressing, persistence, and a rerun that encodes nothing."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from harness.runner import evaluate
from zoo.cache import EmbeddingCache, SparseCache, fingerprint
from zoo.families.baselines import HashingEncoder
from zoo.registry import create_model, get_card


def test_put_get_roundtrip_persists_across_instances(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "fp")
    vecs = np.arange(6, dtype=np.float32).reshape(3, 2)
    cache.put(["a", "b", "c"], "query", vecs)
    again = EmbeddingCache(tmp_path, "fp")  # a new process would see the same
    missing, out = again.get(["c", "x", "a"], "query")
    assert missing == [1]
    np.testing.assert_array_equal(out[[0, 2]], vecs[[2, 0]])
    assert len(again) == 3
    # the kind is part of the key: a query embedding is not a document embedding
    assert again.get(["a"], "document") == ([0], None)


def test_a_torn_key_file_is_dropped(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "fp")
    cache.put(["a", "b"], "query", np.ones((2, 4), dtype=np.float32))
    (keys,) = list((tmp_path / "fp").glob("*.keys"))
    keys.write_bytes(keys.read_bytes()[:20])  # torn write
    with pytest.warns(UserWarning, match=r"\(truncated key file\)"):
        assert EmbeddingCache(tmp_path, "fp").get(["a", "b"], "query") == ([0, 1], None)


WEIGHTS = [{"x": 1.5, "\n": 2.0, "é": 0.25}, {}, {"x\x00": 3.0}]  # odd terms and an empty dict round-trip too


def test_sparse_put_get_roundtrip_persists_across_instances(tmp_path: Path) -> None:
    EmbeddingCache(tmp_path, "fp").sparse.put(["a", "b", "c"], "query", WEIGHTS)
    again = SparseCache(tmp_path, "fp")
    assert len(again) == 3
    assert again.get(["c", "zz", "a", "b"], "query") == ([1], [WEIGHTS[2], {}, WEIGHTS[0], {}])
    assert again.get(["a"], "document") == ([0], [{}])
    assert EmbeddingCache(tmp_path, "fp").get(["a"], "query") == ([0], None)  # dense rows are apart


def _flip_weights(shard: Path) -> None:
    raw = shard.read_bytes()
    at = raw.index(np.float32([1.5, 2.0, 0.25]).tobytes())
    shard.write_bytes(raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1 :])


@pytest.mark.parametrize(
    "damage",
    [lambda p: p.write_bytes(p.read_bytes()[:-100]), lambda p: p.write_bytes(b""), _flip_weights],
    ids=["truncated", "empty", "flipped-byte"],
)
def test_a_damaged_sparse_shard_is_dropped_with_a_warning(tmp_path: Path, damage) -> None:  # noqa: ANN001
    cache = SparseCache(tmp_path, "fp")
    cache.put(["a", "b", "c"], "query", WEIGHTS)
    cache.put(["d"], "query", [{"y": 1.0}])
    shard = next(p for p in cache.dir.glob("*.npz") if b"x\\u0000" in p.read_bytes())
    damage(shard)
    message = f"^sparse cache: dropped damaged shard {re.escape(str(shard))} .*encoded again$"
    with pytest.warns(UserWarning, match=message):
        again = SparseCache(tmp_path, "fp")
    assert again.get(["a", "d"], "query") == ([0], [{}, {"y": 1.0}])
    assert not shard.exists()


def test_fingerprint_changes_with_weights_prompts_and_kwargs() -> None:
    card = get_card("minilm-l6.st")
    base = fingerprint(card)
    assert fingerprint(card) == base
    assert fingerprint(dataclasses.replace(card, revision="other")) != base
    assert fingerprint(dataclasses.replace(card, prompts={"query": "q: "})) != base
    assert fingerprint(card, {"dtype": "bfloat16"}) != base


def test_lazy_model_builds_on_first_call(monkeypatch: pytest.MonkeyPatch) -> None:
    built = []
    real_init = HashingEncoder.__init__
    monkeypatch.setattr(HashingEncoder, "__init__", lambda self, *a, **k: built.append(1) or real_init(self, *a, **k))
    model = create_model("test-random", lazy=True)
    assert built == [] and not model.loaded
    assert model.encode(["hello world"], kind="query").shape == (1, 64)
    assert built == [1] and model.loaded


def test_second_run_encodes_nothing_and_never_loads_the_model(
    tiny_data: Path, results_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = ["local/sts", "local/retrieval", "local/pairs"]
    kw = dict(results_dir=results_dir, data_dir=tiny_data, progress=False, cache_dir=tmp_path / "c", log=lambda m: None)
    first = evaluate("test-random", tasks, **kw)
    assert sum(r.runtime["texts_encoded"] for r in first) > 0

    def refuse(*args, **kwargs):
        raise AssertionError("the model was built although every text is cached")

    monkeypatch.setattr(HashingEncoder, "__init__", refuse)
    second = evaluate("test-random", tasks, overwrite=True, **kw)
    for a, b in zip(first, second, strict=True):
        assert b.runtime["texts_encoded"] == 0
        assert b.runtime["texts_cached"] == a.runtime["texts_encoded"] + a.runtime["texts_cached"]
        assert b.scores == a.scores


def test_model_objects_are_not_cached_unless_asked(tiny_data: Path, results_dir: Path, tmp_path: Path) -> None:
    model = create_model("test-random")
    kw = dict(results_dir=results_dir, data_dir=tiny_data, progress=False, cache_dir=tmp_path / "c", log=lambda m: None)
    evaluate(model, ["local/sts"], **kw)
    assert not (tmp_path / "c").exists()
    evaluate(model, ["local/sts"], overwrite=True, cache=True, **kw)
    (again,) = evaluate(model, ["local/sts"], overwrite=True, cache=True, **kw)
    assert again.runtime["texts_encoded"] == 0
