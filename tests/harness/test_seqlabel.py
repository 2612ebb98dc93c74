"""harness.tasks.seqlabel: CoNLL reader, gold checks, span scores (SIGHAN words, seqeval entities), significance."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from harness.results import items_path
from harness.runner import evaluate
from harness.significance import compare, item_stats
from harness.suites import get_suite
from harness.tasks import get_task
from harness.tasks.base import EvalContext
from harness.tasks.seqlabel import chunks, prf, read_conll, read_split, score_tagger
from zoo.errors import ZooError
from zoo.registry import ModelCard

# A hand-checked segmentation example. Sentence 1, 我爱北京天安门: gold 我|爱|北京|天安门, predicted 我爱|北京|天安|门
# (one correct word of 4 predicted, 4 gold). Sentence 2, 他来了: gold 他|来了, predicted 他|来|了 (one correct of
# 3 predicted, 2 gold). Totals: 2 correct, 7 predicted, 6 gold: P = 2/7, R = 2/6, F1 = 2*2 / (7 + 6) = 4/13.
CWS_TEXT = "我\tS\n爱\tS\n北\tB\n京\tE\n天\tB\n安\tM\n门\tE\n\n他\tS\n来\tB\n了\tE\n"
CWS_GOLD_WORDS = [["我", "爱", "北京", "天安门"], ["他", "来了"]]
CWS_PRED_WORDS = [["我爱", "北京", "天安", "门"], ["他", "来", "了"]]
CWS_PRED_TAGS = [["B", "E", "B", "E", "B", "E", "S"], ["S", "S", "S"]]


class FixedTagger:
    """A Tagger that returns given tags (looked up by the sentence text)."""

    def __init__(self, name: str, tags: dict[str, list[str]], kinds: tuple[str, ...] = ("cws", "ner")) -> None:
        self.card = ModelCard(name=name, family="tests", revision="r1", source="tests", similarity=None)
        self.kinds, self._tags, self.calls = kinds, tags, []

    def tag(self, sentences: Sequence[Sequence[str]], *, kind: str, types: Sequence[str] = (), batch_size: int = 32):
        self.calls.append((kind, tuple(types)))
        return [list(self._tags["".join(s)]) for s in sentences]


class ListTagger(FixedTagger):
    """A Tagger that returns the given tag sequences in order, across calls."""

    def __init__(self, tags: list[list[str]]) -> None:
        super().__init__("listed", {})
        self._queue = iter(tags)

    def tag(self, sentences: Sequence[Sequence[str]], *, kind: str, types: Sequence[str] = (), batch_size: int = 32):
        return [next(self._queue) for _ in sentences]


def _folder(root: Path, name: str, text: str, split: str = "test") -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}.conll").write_text(text, encoding="utf-8")
    return folder


def _word_spans(words: Sequence[str]) -> set[tuple[int, int]]:
    """The SIGHAN definition, written independently: each word as its (start, end) character offsets."""
    spans, at = set(), 0
    for w in words:
        spans.add((at, at + len(w)))
        at += len(w)
    return spans


# Reading ==========================================================================================


def test_reader_accepts_tabs_spaces_blank_runs_crlf_and_multichar_tokens(tmp_path: Path) -> None:
    path = tmp_path / "x.conll"
    path.write_bytes("\ufeff张\tB-PER\r\n三  I-PER\r\n\r\n\r\ne1\tO \n在\tO\n\n\n".encode())
    tokens, tags, lines = read_conll(path)
    assert tokens == [["张", "三"], ["e1", "在"]]
    assert tags == [["B-PER", "I-PER"], ["O", "O"]]
    assert lines == [[1, 2], [5, 6]]


def test_read_split_infers_kind_scheme_types_and_spans(tmp_path: Path) -> None:
    cws = read_split(_folder(tmp_path, "cws", CWS_TEXT), "test")
    assert (cws.kind, cws.scheme, cws.types) == ("cws", "BMES", ())
    assert cws.spans == [{("", 0, 1), ("", 1, 2), ("", 2, 4), ("", 4, 7)}, {("", 0, 1), ("", 1, 3)}]
    bio = read_split(_folder(tmp_path, "bio", "张\tB-PER\n三\tI-PER\n在\tO\n京\tB-LOC\n"), "test")
    assert (bio.kind, bio.scheme, bio.types, bio.spans) == (
        "ner",
        "BIO",
        ("LOC", "PER"),
        [{("PER", 0, 2), ("LOC", 3, 4)}],
    )
    bioes = read_split(_folder(tmp_path, "bioes", "中\tB-ORG\n央\tM-ORG\n台\tE-ORG\n京\tS-LOC\n的\tO\n"), "test")
    assert (bioes.scheme, bioes.spans) == ("BIOES", [{("ORG", 0, 3), ("LOC", 3, 4)}])


def test_bio_gold_reads_i_after_o_as_an_entity_start(tmp_path: Path) -> None:
    data = read_split(_folder(tmp_path, "iob1", "的\tO\n老\tI-PER.NOM\n师\tI-PER.NOM\n\n张\tI-PER\n"), "test")
    assert data.spans == [{("PER.NOM", 1, 3)}, {("PER", 0, 1)}]


BAD_GOLD = [
    ("我\tS\n爱\n", 2, "expected '<token><TAB><tag>', got '爱'"),
    ("我\tS\tx\n", 1, "expected '<token><TAB><tag>'"),
    ("我\tE\n", 1, "illegal BMES sequence: 'E' at the start of a sentence"),  # E without B
    ("我\tS\n爱\tE\n", 2, "illegal BMES sequence: 'E' after 'S'"),
    ("我\tS\n爱\tM\n们\tE\n", 2, "illegal BMES sequence: 'M' after 'S'"),
    ("北\tB\n京\tS\n", 2, "illegal BMES sequence: 'S' after 'B'"),
    ("我\tS\n北\tB\n\n京\tE\n", 2, "the sentence ends inside a word (last tag 'B')"),
    ("我\tS\n爱\tO\n", 2, "tag 'O' is not a BMES tag (B, M, E or S)"),
    ("我\tS\n爱\tI\n", 2, "tag 'I' is not a BMES tag"),
    ("张\tB-PER\n三\tI-ORG\n", 2, "illegal BIO sequence: 'I-ORG' after 'B-PER'"),
    ("张\tB-PER\n三\tI-PER\n四\tI-LOC\n", 3, "illegal BIO sequence: 'I-LOC' after 'I-PER'"),
    ("张\tB-PER\n三\tI\n", 2, "tag 'I' is not a BIO tag (O or B/I-<type>)"),
    ("张\tX-PER\n", 1, "tag 'X-PER' is not a BIO tag"),
    ("张\tB-PER\n三\tE-LOC\n", 2, "illegal BIOES sequence: 'E-LOC' after 'B-PER'"),
    ("张\tS-PER\n三\tE-PER\n", 2, "illegal BIOES sequence: 'E-PER' after 'S-PER'"),
    ("的\tO\n三\tI-PER\n四\tE-PER\n", 2, "illegal BIOES sequence: 'I-PER' after 'O'"),
    ("张\tB-PER\n三\tM-PER\n", 2, "the sentence ends inside a entity (last tag 'M-PER')"),
]


@pytest.mark.parametrize(("text", "line", "problem"), BAD_GOLD, ids=[b[2][:40] for b in BAD_GOLD])
def test_bad_gold_is_one_line_naming_file_and_line(tmp_path: Path, text: str, line: int, problem: str) -> None:
    folder = _folder(tmp_path, "bad", text)
    with pytest.raises(ZooError) as e:
        read_split(folder, "test")
    message = str(e.value)
    assert message.startswith(f"{folder / 'test.conll'}:{line}: ") and problem in message and "\n" not in message


def test_empty_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(ZooError, match=r"test\.conll: no sentences$"):
        read_split(_folder(tmp_path, "empty", "\n\n"), "test")
    with pytest.raises(ZooError, match=r"dev\.conll: file not found$"):
        read_split(tmp_path / "empty", "dev")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "test.conll").write_bytes("我\tS\n".encode() + b"\xff\tS\n")
    with pytest.raises(ZooError, match=r"test\.conll:2: not UTF-8 text$"):
        read_split(tmp_path / "bin", "test")


# Scoring ==========================================================================================


def test_cws_scores_equal_the_hand_checked_example_and_the_sighan_definition(tmp_path: Path) -> None:
    data = read_split(_folder(tmp_path, "cws", CWS_TEXT), "test")
    tagger = FixedTagger("fixed", {"我爱北京天安门": CWS_PRED_TAGS[0], "他来了": CWS_PRED_TAGS[1]})
    out = score_tagger(tagger, data, EvalContext("local/cws", progress=False))
    assert out.scores == pytest.approx({"precision": 2 / 7, "recall": 2 / 6, "f1": 4 / 13}, abs=1e-15)
    assert out.items["correct"] == [1, 1] and out.items["pred"] == [4, 3] and out.items["gold"] == [4, 2]
    assert out.n_items == 2 and tagger.calls == [("cws", ())]
    # The same numbers from the word lists, counted as the SIGHAN scorer defines them.
    correct = sum(len(_word_spans(g) & _word_spans(p)) for g, p in zip(CWS_GOLD_WORDS, CWS_PRED_WORDS, strict=True))
    n_pred, n_gold = sum(map(len, CWS_PRED_WORDS)), sum(map(len, CWS_GOLD_WORDS))
    p, r = correct / n_pred, correct / n_gold
    assert out.scores["f1"] == pytest.approx(2 * p * r / (p + r), abs=1e-15)


def _random_bioes(rng: random.Random, n: int, types: Sequence[str]) -> list[str]:
    """A legal BIOES sequence of length n: random entities of random types and lengths."""
    tags, i = [], 0
    while i < n:
        length = min(rng.choice([0, 0, 1, 2, 3, 4]), n - i)
        t = rng.choice(types)
        if length == 0:
            tags.append("O")
            i += 1
        elif length == 1:
            tags.append(f"S-{t}")
            i += 1
        else:
            tags += [f"B-{t}", *[f"I-{t}"] * (length - 2), f"E-{t}"]
            i += length
    return tags


def _random_tag(rng: random.Random, prefixes: Sequence[str], types: Sequence[str]) -> str:
    prefix = rng.choice(prefixes)
    return prefix if prefix == "O" else f"{prefix}-{rng.choice(types)}"


def _to_bio(tags: Sequence[str]) -> list[str]:
    return [{"S": "B", "E": "I"}.get(t[0], t[0]) + t[1:] for t in tags]


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_ner_scores_equal_seqeval_on_legal_and_ill_formed_predictions(tmp_path: Path, scheme: str) -> None:
    seqeval = pytest.importorskip("seqeval.metrics", reason="seqeval is a dev dependency (pip install seqeval)")
    rng = random.Random(7)
    types = ["PER", "LOC", "ORG.NAM"]
    gold = [_random_bioes(rng, rng.randint(1, 25), types) for _ in range(300)]
    gold = [_to_bio(s) for s in gold] if scheme == "BIO" else gold
    prefixes = ["O", "B", "I", "E", "S"] if scheme == "BIOES" else ["O", "B", "I"]
    pred = [[t if rng.random() < 0.5 else _random_tag(rng, prefixes, types) for t in g] for g in gold]  # ill-formed
    text = "\n\n".join("\n".join(f"字\t{t}" for t in s) for s in gold) + "\n"
    data = read_split(_folder(tmp_path, "ner", text), "test")
    assert data.scheme == scheme
    tagger = ListTagger(pred)
    out = score_tagger(tagger, data, EvalContext("local/ner", progress=False))
    assert out.scores["f1"] == pytest.approx(seqeval.f1_score(gold, pred), abs=1e-12)
    assert out.scores["precision"] == pytest.approx(seqeval.precision_score(gold, pred), abs=1e-12)
    assert out.scores["recall"] == pytest.approx(seqeval.recall_score(gold, pred), abs=1e-12)
    assert 0.2 < out.scores["f1"] < 0.9  # neither trivial nor perfect


def test_chunks_follow_conlleval_on_ill_formed_tags() -> None:
    # seqeval's default mode, by hand: I after O starts a chunk, a type change splits, E closes, M reads as I.
    assert chunks(["I-PER", "I-PER", "O", "E-LOC", "I-LOC", "B-ORG", "I-PER"]) == {
        ("PER", 0, 2),
        ("LOC", 3, 4),
        ("LOC", 4, 5),
        ("ORG", 5, 6),
        ("PER", 6, 7),
    }
    assert chunks(["B-ORG", "M-ORG", "E-ORG", "S-LOC"]) == {("ORG", 0, 3), ("LOC", 3, 4)}
    with pytest.raises(ValueError, match="tag 'Q' is not O"):
        chunks(["Q"])


def test_prf_zero_division_is_zero() -> None:
    assert prf(0, 0, 0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert prf(0, 0, 3) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_a_tagger_giving_bad_output_is_refused(tmp_path: Path) -> None:
    data = read_split(_folder(tmp_path, "cws", CWS_TEXT), "test")
    ctx = EvalContext("local/cws", progress=False)
    short = FixedTagger("short", {"我爱北京天安门": ["S"], "他来了": ["S", "S", "S"]})
    with pytest.raises(ZooError, match=r"^model short gave 1 tags for the 7 tokens of sentence 1 of .*test\.conll$"):
        score_tagger(short, data, ctx)
    odd = FixedTagger("odd", {"我爱北京天安门": ["S"] * 7, "他来了": ["S", "X", "S"]})
    with pytest.raises(ZooError, match=r"^model odd: tag 'X' is not O or B/I/M/E/S\[-type\] \(sentence 2 of "):
        score_tagger(odd, data, ctx)


# The task type in the harness =====================================================================


def _two_taggers(tmp_path: Path) -> tuple[Path, FixedTagger, FixedTagger]:
    """40 CWS sentences; tagger A segments every sentence right, B splits each 2-character word in half."""
    rng = random.Random(3)
    lines, a_tags, b_tags = [], {}, {}
    for k in range(40):
        words = [chr(0x4E00 + 100 * k + j) * rng.choice([1, 2]) for j in range(rng.randint(2, 6))]
        words = [w[0] + chr(ord(w[0]) + 50) if len(w) == 2 else w for w in words]  # distinct characters
        gold = [t for w in words for t in (["S"] if len(w) == 1 else ["B", "E"])]
        text = "".join(words)
        lines.append("\n".join(f"{c}\t{t}" for c, t in zip(text, gold, strict=True)))
        a_tags[text] = gold
        b_tags[text] = ["S"] * len(gold) if k % 2 else gold
    data = tmp_path / "data"
    _folder(data, "cws", "\n\n".join(lines) + "\n")
    return data, FixedTagger("tagger-a", a_tags, ("cws",)), FixedTagger("tagger-b", b_tags, ("cws",))


def test_evaluate_writes_records_and_compare_bootstraps_over_sentences(tmp_path: Path) -> None:
    data, a, b = _two_taggers(tmp_path)
    results = tmp_path / "results"
    (rec_a,) = evaluate(a, ["local/cws"], results_dir=results, data_dir=data, progress=False)
    (rec_b,) = evaluate(b, ["local/cws"], results_dir=results, data_dir=data, progress=False)
    assert rec_a.task_type == "seqlabel" and rec_a.main_score == "f1" and rec_a.n_items == {"test": 40}
    assert rec_a.get_score() == 1.0 and 0.3 < rec_b.get_score() < 1.0
    items = json.loads(gzip.decompress(items_path(results, "tagger-b", "r1", "local/cws", "test").read_bytes()))
    assert prf(sum(items["correct"]), sum(items["pred"]), sum(items["gold"]))["f1"] == rec_b.get_score()
    (row,) = compare(["tagger-a", "tagger-b"], ["local/cws"], results_dir=results, n_resamples=2000, save=False).rows
    assert (row.test, row.n, row.metric, row.task_type) == ("bootstrap", 40, "f1", "seqlabel")
    assert row.score_a == 1.0 and row.score_b == pytest.approx(rec_b.get_score(), abs=1e-12)
    assert row.ci_low < row.delta < row.ci_high < 0 and row.winner == "tagger-a"


def test_item_statistic_equals_the_metric_on_materialised_resamples() -> None:
    rng = np.random.default_rng(0)
    n = 30
    items = {"correct": rng.integers(0, 4, n).tolist()}
    items["pred"] = [c + int(x) for c, x in zip(items["correct"], rng.integers(0, 3, n), strict=True)]
    items["gold"] = [c + int(x) for c, x in zip(items["correct"], rng.integers(0, 3, n), strict=True)]
    idx = rng.integers(0, n, size=(4, n))
    w = np.stack([np.bincount(row, minlength=n) for row in idx]).astype(float)
    for metric in ("f1", "precision", "recall"):  # bim: tests/harness/test_seqlabel_probe.py
        got = item_stats("seqlabel")[metric].fn(items, w)
        for k, row in enumerate(idx):
            want = prf(*(sum(items[key][i] for i in row) for key in ("correct", "pred", "gold")))[metric]
            assert got[k] == pytest.approx(want, abs=1e-12)


def test_runner_skips_a_tagger_of_the_other_kind(tmp_path: Path) -> None:
    data, a, _ = _two_taggers(tmp_path)
    _folder(data, "ner", "张\tB-PER\n三\tI-PER\n")
    logs: list[str] = []
    records = evaluate(a, ["local/cws", "local/ner"], results_dir=tmp_path / "r", data_dir=data, log=logs.append)
    assert [r.task_id for r in records] == ["local/cws"]
    assert "skip local/ner: tagger-a cannot run seqlabel tasks (needs a Tagger of kind 'ner' or a TokenEncoder)" in logs
    assert get_task("local/ner", data).supports(FixedTagger("both", {})) is True


# Real data ========================================================================================


@pytest.mark.data
def test_shared_seqlabel_sets(shared_data: Path) -> None:
    """The five sets read as their READMEs count them (sentences, words, entities)."""
    want = {  # (sentences, kind, scheme, gold spans): words from the READMEs; entities = B (+ S) tags + 4 IOB1 starts
        "pku-cws": (1944, "cws", "BMES", 104372),
        "msr-cws": (3985, "cws", "BMES", 106873),
        "weibo-ner": (270, "ner", "BIO", 418),
        "msra-ner": (4365, "ner", "BIOES", 6181),
        "cluener": (1343, "ner", "BIO", 3072),
    }
    assert get_suite("zh-seqlabel") == tuple(f"local/{name}" for name in want)
    for name, (n, kind, scheme, spans) in want.items():
        data = get_task(f"local/{name}", shared_data).load("test")
        assert (len(data.tokens), data.kind, data.scheme, sum(map(len, data.spans))) == (n, kind, scheme, spans), name


@pytest.mark.data
def test_jieba_on_pku_cws(shared_data: Path, tmp_path: Path) -> None:
    (record,) = evaluate("jieba", ["local/pku-cws"], results_dir=tmp_path, data_dir=shared_data, progress=False)
    scores = record.scores["test"]
    assert scores["f1"] == pytest.approx(0.8183, abs=5e-4)  # measured: P 0.8526, R 0.7866
    assert scores["precision"] > scores["recall"]  # jieba joins more than the PKU standard does
