"""zoo.families.babert: boundary statistics (min-split PMI, branching entropy) and per-character boundary features."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest

from zoo.errors import ZooError
from zoo.families.babert import BoundaryStats, boundary_statistics

# 北 3x, 京 3x, 市 2x, 人 1x: T_1 = 9; bigrams 北京 3x, 京人, 京市, 市北: T_2 = 6; three trigrams once: T_3 = 3
CORPUS = ["北京人", "北京市", "市北京"]
ln = math.log


@pytest.fixture(scope="module")
def tiny() -> BoundaryStats:
    return boundary_statistics(CORPUS, max_n=3)


def test_counts_and_min_split_pmi_by_hand(tiny: BoundaryStats) -> None:
    assert tiny.totals == {1: 9, 2: 6, 3: 3}
    assert tiny.lookup("北京").count == 3 and tiny.lookup("市").count == 2
    # PMI(ab) = log (c(ab)/T_2) / ((c(a)/T_1) (c(b)/T_1))
    assert tiny.lookup("北京").pmi == pytest.approx(ln((3 / 6) / ((3 / 9) * (3 / 9))), abs=1e-12)  # log 4.5
    assert tiny.lookup("京人").pmi == pytest.approx(ln((1 / 6) / ((3 / 9) * (1 / 9))), abs=1e-12)  # log 4.5
    assert tiny.lookup("京市").pmi == pytest.approx(ln((1 / 6) / ((3 / 9) * (2 / 9))), abs=1e-12)  # log 2.25
    # trigrams: the weaker of the two splits. 北京人: 北|京人 = 北京|人 = log 6
    assert tiny.lookup("北京人").pmi == pytest.approx(ln(6), abs=1e-12)
    # 北京市: 北|京市 = log((1/3) / (3/9 * 1/6)) = log 6, 北京|市 = log((1/3) / (3/6 * 2/9)) = log 3 -> log 3
    assert tiny.lookup("北京市").pmi == pytest.approx(ln(3), abs=1e-12)
    # 市北京: 市|北京 = log 3 (the min), 市北|京 = log 6
    assert tiny.lookup("市北京").pmi == pytest.approx(ln(3), abs=1e-12)
    assert math.isnan(tiny.lookup("北").pmi)
    assert tiny.lookup("京北") is None and tiny.lookup("X") is None


def test_branching_entropy_by_hand_with_the_edge_one_symbol(tiny: BoundaryStats) -> None:
    # 北京 is preceded by <s>, <s>, 市: the two sentence starts are ONE outcome -> H(2/3, 1/3)
    h_2_1 = -(2 / 3) * ln(2 / 3) - (1 / 3) * ln(1 / 3)
    assert tiny.lookup("北京").left_entropy == pytest.approx(h_2_1, abs=1e-12)
    assert tiny.lookup("北").left_entropy == pytest.approx(h_2_1, abs=1e-12)
    # followed by 人, 市, </s>: three outcomes
    assert tiny.lookup("北京").right_entropy == pytest.approx(ln(3), abs=1e-12)
    assert tiny.lookup("京").right_entropy == pytest.approx(ln(3), abs=1e-12)
    assert tiny.lookup("京").left_entropy == 0.0  # always after 北
    assert tiny.lookup("北").right_entropy == 0.0
    # 市: after 京 and <s>, before </s> and 北
    assert tiny.lookup("市").left_entropy == pytest.approx(ln(2), abs=1e-12)
    assert tiny.lookup("市").right_entropy == pytest.approx(ln(2), abs=1e-12)
    assert tiny.lookup("北京人").left_entropy == tiny.lookup("北京人").right_entropy == 0.0


def test_feature_layout_by_hand(tiny: BoundaryStats) -> None:
    layout = tiny.layout
    assert len(layout) == 2 + 3 * (2 + 3) == 17
    assert layout[:5] == [(1, 0, "le"), (1, 0, "re"), (2, 0, "pmi"), (2, 0, "le"), (2, 0, "re")]
    assert layout[-1] == (3, 2, "re")
    raw = tiny.features("北京人", normalize=False)
    assert raw.shape == (3, 17) and raw.dtype == np.float32
    col = {slot: i for i, slot in enumerate(layout)}
    bj, jr, bjr = tiny.lookup("北京"), tiny.lookup("京人"), tiny.lookup("北京人")
    expected = {  # (character, slot) -> value; every other slot is NaN (its n-gram would cross the edge)
        (0, (1, 0, "le")): tiny.lookup("北").left_entropy,
        (0, (1, 0, "re")): 0.0,
        (0, (2, 0, "pmi")): bj.pmi, (0, (2, 0, "le")): bj.left_entropy, (0, (2, 0, "re")): bj.right_entropy,
        (0, (3, 0, "pmi")): bjr.pmi, (0, (3, 0, "le")): 0.0, (0, (3, 0, "re")): 0.0,
        (1, (1, 0, "le")): 0.0,
        (1, (1, 0, "re")): ln(3),
        (1, (2, 0, "pmi")): jr.pmi, (1, (2, 0, "le")): 0.0, (1, (2, 0, "re")): 0.0,  # 京 starts 京人
        (1, (2, 1, "pmi")): bj.pmi, (1, (2, 1, "le")): bj.left_entropy, (1, (2, 1, "re")): ln(3),  # ends 北京
        (1, (3, 1, "pmi")): bjr.pmi, (1, (3, 1, "le")): 0.0, (1, (3, 1, "re")): 0.0,
        (2, (1, 0, "le")): 0.0,
        (2, (1, 0, "re")): 0.0,
        (2, (2, 1, "pmi")): jr.pmi, (2, (2, 1, "le")): 0.0, (2, (2, 1, "re")): 0.0,
        (2, (3, 2, "pmi")): bjr.pmi, (2, (3, 2, "le")): 0.0, (2, (3, 2, "re")): 0.0,
    }  # fmt: skip
    want = np.full((3, 17), np.nan)
    for (i, slot), value in expected.items():
        want[i, col[slot]] = value
    np.testing.assert_allclose(raw, want, rtol=1e-6, equal_nan=True)


def test_unseen_ngrams_and_unknown_characters_are_missing(tiny: BoundaryStats) -> None:
    raw = tiny.features("京北X", normalize=False)
    assert raw.shape == (3, 17)
    assert raw[0, 1] == pytest.approx(ln(3))  # 京 itself is known: its right entropy
    assert np.isnan(raw[:, 2:]).all()  # 京北, 北X, 京北X never occur
    assert np.isnan(raw[2]).all()  # X is not in the corpus
    assert (tiny.features("京北X")[:, 2:] == 0).all()  # normalised: missing is the mean, 0


def test_normalisation_is_a_token_weighted_z_score(tiny: BoundaryStats) -> None:
    bigram_pmis = [ln(4.5)] * 3 + [ln(4.5), ln(2.25), ln(2.25)]  # one value per bigram occurrence
    mean, std = np.mean(bigram_pmis), np.std(bigram_pmis)
    z = tiny.features("北京人")
    assert z[0, 2] == pytest.approx((ln(4.5) - mean) / std, rel=1e-6)  # (2, 0, pmi) of 北京
    assert z[2, 5] == pytest.approx((ln(4.5) - mean) / std, rel=1e-6)  # (2, 1, pmi) of 京人
    # over the corpus's own characters each filled column has mean 0 and variance 1
    everything = np.concatenate(tiny.features_many(CORPUS))
    raw = np.concatenate(tiny.features_many(CORPUS, normalize=False))
    for col in range(everything.shape[1]):
        filled = everything[~np.isnan(raw[:, col]), col]
        assert filled.mean() == pytest.approx(0.0, abs=1e-6)
        assert filled.var() == pytest.approx(1.0 if np.ptp(raw[~np.isnan(raw[:, col]), col]) else 0.0, abs=1e-5)


def _reference(sentences: list[str], max_n: int) -> dict[str, tuple[int, float, float, float]]:
    """The definitions, spelled out with Counters: {ngram: (count, pmi, left entropy, right entropy)}."""
    counts: Counter[str] = Counter()
    left: dict[str, Counter[str]] = {}
    right: dict[str, Counter[str]] = {}
    for s in sentences:
        padded = "^" + s + "$"  # the edges, one symbol each side
        for n in range(1, max_n + 1):
            for i in range(1, len(s) - n + 2):
                g = padded[i : i + n]
                counts[g] += 1
                left.setdefault(g, Counter())[padded[i - 1]] += 1
                right.setdefault(g, Counter())[padded[i + n]] += 1
    total = {n: sum(c for g, c in counts.items() if len(g) == n) for n in range(1, max_n + 1)}

    def p(g: str) -> float:
        return counts[g] / total[len(g)]

    def entropy(neighbours: Counter[str]) -> float:
        size = sum(neighbours.values())
        return -sum(c / size * ln(c / size) for c in neighbours.values())

    return {
        g: (c, min((ln(p(g) / (p(g[:m]) * p(g[m:]))) for m in range(1, len(g))), default=math.nan),
            entropy(left[g]), entropy(right[g]))
        for g, c in counts.items()
    }  # fmt: skip


def test_vectorised_equals_plain_python_on_a_random_corpus() -> None:
    rng = random.Random(7)
    corpus = ["".join(rng.choice("甲乙丙丁戊") for _ in range(rng.randint(0, 14))) for _ in range(60)]
    stats = boundary_statistics(corpus, max_n=4)
    want = _reference(corpus, 4)
    got = {}
    for n in range(1, 5):
        for row, ids in enumerate(stats.ngram_ids(n).tolist()):
            gram = "".join(stats.symbols[i] for i in ids)
            got[gram] = (
                stats.counts[n][row],
                stats.pmi[n][row],
                stats.left_entropy[n][row],
                stats.right_entropy[n][row],
            )
    assert got.keys() == want.keys() and len(got) > 100
    for gram, values in want.items():
        np.testing.assert_allclose(got[gram], values, rtol=0, atol=1e-12, equal_nan=True, err_msg=gram)
        assert stats.lookup(gram) == pytest.approx(values, nan_ok=True)
    # and every character's raw features are its n-grams' reference values, slot by slot
    which = {"pmi": 1, "le": 2, "re": 3}
    for sentence in corpus[:10] + ["戊甲乙丙"]:  # 戊 is unseen
        want_features = np.full((len(sentence), len(stats.layout)), np.nan)
        for i in range(len(sentence)):
            for col, (n, k, stat) in enumerate(stats.layout):
                gram = sentence[i - k : i - k + n] if i - k >= 0 else ""
                if len(gram) == n and gram in want:
                    want_features[i, col] = want[gram][which[stat]]
        np.testing.assert_allclose(stats.features(sentence, normalize=False), want_features, rtol=1e-6, equal_nan=True)


def test_features_of_many_sentences_equal_one_at_a_time() -> None:
    rng = random.Random(3)
    corpus = ["".join(rng.choice("甲乙丙丁") for _ in range(rng.randint(1, 9))) for _ in range(40)]
    stats = boundary_statistics(corpus, max_n=4)
    batch = stats.features_many([*corpus[:5], "", "戊甲"])
    assert [f.shape for f in batch] == [(len(s), 29) for s in corpus[:5]] + [(0, 29), (2, 29)]
    for sentence, features in zip(corpus[:5], batch[:5], strict=True):
        np.testing.assert_array_equal(features, stats.features(sentence))
    # symbols may be multi-character tokens (weibo-ner's "e1"), given as a list
    tokens = boundary_statistics([["e1", "北", "京"], ["北", "京"]], max_n=2)
    assert tokens.lookup(["e1", "北"]).count == 1 and tokens.lookup(["北", "京"]).count == 2


@pytest.mark.parametrize(
    ("sentences", "max_n", "message"),
    [
        ([], 4, "need a non-empty corpus, got 0 sentences"),
        (["", ""], 4, "need a non-empty corpus, got 2 sentences"),
        (["北京"], 1, "need max_n >= 2"),
        (["北京"], 0, "need max_n >= 2"),
    ],
)
def test_bad_input_is_a_one_line_error(sentences: list[str], max_n: int, message: str) -> None:
    with pytest.raises(ZooError, match=message) as info:
        boundary_statistics(sentences, max_n=max_n)
    assert "\n" not in str(info.value)


def test_lookup_of_a_too_long_ngram_is_a_one_line_error(tiny: BoundaryStats) -> None:
    with pytest.raises(ZooError, match=r"n-gram length must be 1\.\.3, got 4"):
        tiny.lookup("北京人市")
