"""zoo.train.losses against brute-force loops over the formulas and against sentence-transformers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.errors import ZooError
from zoo.train.losses import (
    LOSSES,
    CoSENTLoss,
    CosineDistillationLoss,
    GTEContrastiveLoss,
    InfoNCELoss,
    MSEDistillationLoss,
    create_loss,
)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a, b, dim=0))


def _gte_brute(q: torch.Tensor, d: torch.Tensor, neg: torch.Tensor | None, t: float, margin: float | None) -> float:
    """GTE's Z_i term by term, in float64 Python arithmetic (documents: positives, then each row's negatives)."""
    b = q.shape[0]
    k = 0 if neg is None else neg.shape[1]
    docs = [d[j] for j in range(b)] + [neg[j, m] for j in range(b) for m in range(k)]
    owner = list(range(b)) + [j for j in range(b) for _ in range(k)]  # the example each document belongs to
    total = 0.0
    for i in range(b):
        pos = _cos(q[i], d[i])
        terms = []  # (cosine, is the positive pair itself)
        terms += [(_cos(q[i], doc), n == i) for n, doc in enumerate(docs)]
        terms += [(_cos(q[i], q[j]), False) for j in range(b) if j != i]
        terms += [(_cos(q[j], d[i]), j == i) for j in range(b)]
        terms += [(_cos(doc, d[i]), False) for n, doc in enumerate(docs) if owner[n] != i]
        if margin is not None:
            terms = [(s, p) for s, p in terms if p or s <= pos + margin]
        z = sum(math.exp(s / t) for s, _ in terms)
        total += -math.log(math.exp(pos / t) / z)
    return total / b


@pytest.mark.parametrize("k", [0, 1, 3])
@pytest.mark.parametrize("t", [0.01, 0.05, 1.0])
def test_gte_loss_matches_the_formula_term_by_term(k: int, t: float) -> None:
    g = torch.Generator().manual_seed(k * 10 + int(100 * t))
    q, d = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    neg = torch.randn(5, k, 8, generator=g) if k else None
    loss = GTEContrastiveLoss({"temperature": t})(query=q, positive=d, negatives=neg)
    assert float(loss) == pytest.approx(_gte_brute(q, d, neg, t, None), rel=1e-5)


def test_gte_loss_by_hand_on_two_orthogonal_pairs() -> None:
    # q1 = d1 = e1, q2 = d2 = e2: s(q_i, d_i) = 1, every cross term 0. At t = 1:
    # Z_i = (e + 1) [q->d] + 1 [q->q] + (e + 1) [q_j->d_i] + 1 [d->d] = 2e + 4, L = -log(e / (2e + 4)).
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    q = torch.stack([e1, e2])
    loss = GTEContrastiveLoss({"temperature": 1.0})(query=q, positive=q.clone())
    assert float(loss) == pytest.approx(-math.log(math.e / (2 * math.e + 4)), rel=1e-6)


def test_gte_loss_equals_sentence_transformers_gte_variant() -> None:
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    g = torch.Generator().manual_seed(3)
    q, d, n1, n2 = (torch.randn(6, 16, generator=g) for _ in range(4))
    st = MultipleNegativesRankingLoss(
        model=None,
        scale=1 / 0.01,
        directions=("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"),
        partition_mode="joint",
    )
    expected = float(st.compute_loss_from_embeddings([q, d, n1, n2], labels=None))
    ours = GTEContrastiveLoss()(query=q, positive=d, negatives=torch.stack([n1, n2], dim=1))
    assert float(ours) == pytest.approx(expected, rel=1e-5)
    assert GTEContrastiveLoss.defaults["temperature"] == 0.01


def test_gte_false_negative_mask_drops_terms_above_the_positive() -> None:
    g = torch.Generator().manual_seed(7)
    q, d = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    d[1] = q[0] + 0.01 * torch.randn(8, generator=g)  # an unlabelled positive of q0 in the batch
    neg = torch.randn(4, 2, 8, generator=g)
    masked = GTEContrastiveLoss({"temperature": 0.05, "false_negative_margin": 0.1})(q, d, neg)
    plain = GTEContrastiveLoss({"temperature": 0.05})(q, d, neg)
    assert float(masked) == pytest.approx(_gte_brute(q, d, neg, 0.05, 0.1), rel=1e-5)
    assert float(masked) < float(plain)  # the false negative no longer counts against q0
    huge = GTEContrastiveLoss({"temperature": 0.05, "false_negative_margin": 10.0})(q, d, neg)
    assert float(huge) == pytest.approx(float(plain), rel=1e-6)  # nothing is that far above


def test_infonce_matches_cross_entropy_and_sentence_transformers() -> None:
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    g = torch.Generator().manual_seed(1)
    q, d, n = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g), torch.randn(5, 1, 8, generator=g)
    ours = float(InfoNCELoss()(query=q, positive=d, negatives=n))
    docs = torch.cat([d, n[:, 0]])
    brute = 0.0
    for i in range(5):
        logits = [_cos(q[i], x) / 0.05 for x in docs]
        brute += -logits[i] + math.log(sum(math.exp(v) for v in logits))
    assert ours == pytest.approx(brute / 5, rel=1e-5)
    st = MultipleNegativesRankingLoss(model=None, scale=20.0).compute_loss_from_embeddings([q, d, n[:, 0]], None)
    assert ours == pytest.approx(float(st), rel=1e-5)


def _cosent_brute(a: torch.Tensor, b: torch.Tensor, y: list[float], t: float) -> float:
    cos = [_cos(a[i], b[i]) / t for i in range(len(y))]
    total = 1.0 + sum(math.exp(cos[j] - cos[i]) for i in range(len(y)) for j in range(len(y)) if y[i] > y[j])
    return math.log(total)


def test_cosent_matches_the_formula_and_ignores_the_score_scale() -> None:
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    y = [0.0, 5.0, 2.5, 2.5, 1.0, 4.0]
    loss = CoSENTLoss()
    assert float(loss(a, b, torch.tensor(y))) == pytest.approx(_cosent_brute(a, b, y, 0.05), rel=1e-5)
    rescaled = torch.tensor([v / 5 for v in y]) ** 2  # any increasing map keeps the loss
    assert float(loss(a, b, rescaled)) == pytest.approx(float(loss(a, b, torch.tensor(y))), rel=1e-6)
    assert float(loss(a, b, torch.full((6,), 3.0))) == pytest.approx(0.0, abs=1e-7)  # no ordered pair: log(1)


def test_distillation_losses_by_hand() -> None:
    student = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    teacher = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    # squared errors: (1 + 1) and (0 + 1) over 4 entries
    assert float(MSEDistillationLoss()(text=student, teacher=teacher)) == pytest.approx(3 / 4)
    # 1 - cos: 1 (orthogonal) and 0 (same direction)
    assert float(CosineDistillationLoss()(text=student, teacher=teacher)) == pytest.approx(0.5)
    with pytest.raises(ZooError, match="student embeddings"):
        MSEDistillationLoss()(text=student, teacher=torch.zeros(2, 3))


def test_gradients_flow_to_every_input() -> None:
    q, d, n = (torch.randn(3, 4, requires_grad=True), torch.randn(3, 4, requires_grad=True), torch.randn(3, 2, 4))
    n.requires_grad_()
    GTEContrastiveLoss()(q, d, n).backward()
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in (q, d, n))


def test_loss_config_citation_and_errors() -> None:
    assert set(LOSSES) == {
        "gte",
        "infonce",
        "cosent",
        "mse-distill",
        "cosine-distill",
        "ibkd",
        "mrl-infonce",
        "mgte",
        "listwise-ce",
        "score-kl",
        "mlm",
        "babert",
        "causal-lm",
        "rankinggpt",
    }
    from zoo.train.objectives import OBJECTIVES

    assert all(cls.objective in OBJECTIVES for cls in LOSSES.values())
    loss = create_loss("gte", {"temperature": 0.02})
    assert loss.get_config_dict() == {"name": "gte", "temperature": 0.02, "false_negative_margin": None}
    assert "2308.03281" in loss.citation
    assert all(cls.citation and cls.formats for cls in LOSSES.values())
    with pytest.raises(ZooError, match="unknown argument 'tau'"):
        create_loss("gte", {"tau": 0.1})
    with pytest.raises(ZooError, match="unknown loss 'triplet'"):
        create_loss("triplet")


def test_hsic_equals_the_centred_trace_and_a_hand_computed_value() -> None:
    """IBKD's biased HSIC: tr(K_x H K_y H) / (n-1)^2, and on 3 points with hand-made kernels."""

    from zoo.train.losses import hsic, rbf_kernel

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(6, 4, generator=g), torch.randn(6, 3, generator=g)
    n = 6
    h = torch.eye(n) - torch.ones(n, n) / n
    kx, ky = rbf_kernel(x, 0.5), rbf_kernel(y, 0.5)
    assert torch.allclose(hsic(x, y, 0.5), torch.trace(kx @ h @ ky @ h) / (n - 1) ** 2, atol=1e-6)
    # 1-d points 0, 1, 3 with gamma = 1 for x and the same points for y: K = [[1, e^-1, e^-9], ...]
    p = torch.tensor([[0.0], [1.0], [3.0]])
    k = [[1.0, math.exp(-1), math.exp(-9)], [math.exp(-1), 1.0, math.exp(-4)], [math.exp(-9), math.exp(-4), 1.0]]
    kk = [[sum(k[i][m] * k[m][j] for m in range(3)) for j in range(3)] for i in range(3)]
    mean_k = sum(map(sum, k)) / 9
    by_hand = (sum(kk[i][i] for i in range(3)) / 9 + mean_k**2 - 2 * (sum(map(sum, kk)) / 9) / 3) * 9 / 4
    assert abs(float(hsic(p, p, 1.0)) - by_hand) < 1e-6 and by_hand > 0
    assert float(hsic(p, torch.zeros(3, 2), 1.0)) == pytest.approx(0.0, abs=1e-6)  # a constant shares nothing


def test_teacher_infonce_by_hand() -> None:

    from zoo.train.losses import teacher_infonce

    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    # cosines: row 0: [1, 1/sqrt2], row 1: [0, 1/sqrt2]; temperature 0.5
    c = 1 / math.sqrt(2)
    row0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(2 * c)))
    row1 = -math.log(math.exp(2 * c) / (math.exp(0) + math.exp(2 * c)))
    assert float(teacher_infonce(s, t, 0.5)) == pytest.approx((row0 + row1) / 2, abs=1e-6)
