"""Training losses: one small class per loss, each with its paper attached.

Every loss takes embeddings (the trainer embeds the text columns of a batch, gathers them across
ranks, and calls the loss with the columns as keyword arguments) and returns a scalar tensor. Each
declares which data formats it can train on (``formats``), so a recipe that pairs a loss with the
wrong data fails before training starts.

=================  ===========================  ================  ==========================================
name               batch columns                objective         data formats
=================  ===========================  ================  ==========================================
``gte``            query, positive, negatives?  embedding         pairs, triplets
``infonce``        query, positive, negatives?  embedding         pairs, triplets
``cosent``         sentence1, sentence2, score  embedding         scored
``mse-distill``    text, teacher                embedding         texts
``cosine-distill`` text, teacher                embedding         texts
``ibkd``           text (+ layer states),       embedding         texts
                   teacher
``score-kl``       query, positive, teacher     embedding         pairs
``mrl-infonce``    query, positive, negatives?  embedding         pairs, triplets
``mgte``           query, positive, negatives?  embedding         pairs, triplets (dense + sparse outputs)
``listwise-ce``    scores (rerank logits)       pair              triplets (rerank output)
``mlm``            logits, labels (masked)      token             texts (mlm output)
``babert``         logits, labels, boundary     token             texts (mlm + boundary outputs; boundary
                   (+ its targets)                                statistics fitted on the stage's texts)
``causal-lm``      logits, labels (target span) token             pairs (lm output, ``tokenize_pairs``)
``rankinggpt``     scores, logits, labels,      pair              triplets (rerank + lm outputs, frozen
                   candidate, reference                           teacher's log-probabilities)
=================  ===========================  ================  ==========================================

A loss names the objective that feeds it (``objective``, ``zoo.train.objectives``) and the model outputs it
needs (``outputs``, default ``("dense",)``). A dense-only loss gets one ``(n, D)`` tensor per text column; a
loss that also needs ``"sparse"`` gets an :class:`Encoded` per column (the dense embeddings and the
:class:`TokenWeights` of the same forward pass), which the objective asks of the model through its
``heads(**batch, outputs=...)``. A cross-encoder loss (objective ``pair``) gets ``scores`` ``(B, 1 + K)``, the
positive's logit first. A token loss (objective ``token``) prepares its inputs (``token_inputs``) and gets the
logits of the positions it selected (and its other outputs whole, e.g. ``boundary`` ``(b, T, F)``, with the per-row
targets its ``token_targets`` made of the global batch, sliced to this rank's rows); it returns one loss per position
(plus, for ``babert``, one summed term). A loss that ``fits`` learns a state from the stage's training texts before
the first step (``fit``: BABERT's boundary statistics), recomputed identically by a resumed run. A distillation loss
names its
``targets`` from the stage's teacher (``"embeddings:<column>"``, ``"scores:<a>,<b>"``, or ``"logprobs:lm"``: the
frozen model's per-token log-probabilities at the positions the loss scores, computed on the objective's batch).

Shapes: ``B`` examples, ``D`` dimensions, ``K`` hard negatives per example, ``N = B + B*K`` documents,
``T`` tokens per text (padded), ``U`` distinct token ids of a batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from zoo.errors import ZooError
from zoo.nn.causal import next_token_select

__all__ = [
    "Loss",
    "hsic",
    "rbf_kernel",
    "teacher_infonce",
    "GTEContrastiveLoss",
    "InfoNCELoss",
    "CoSENTLoss",
    "MSEDistillationLoss",
    "CosineDistillationLoss",
    "IBKDLoss",
    "MRLInfoNCELoss",
    "MGTEHybridLoss",
    "ListwiseCELoss",
    "ScoreKLDistillationLoss",
    "MaskedLMLoss",
    "BABERTLoss",
    "content_mask",
    "CausalLMLoss",
    "RankingGPTLoss",
    "TokenWeights",
    "Encoded",
    "lexical_score_matrix",
    "LOSSES",
    "create_loss",
]

_CITE_GTE = "Li et al. (2023), Towards General Text Embeddings with Multi-stage Contrastive Learning, arXiv:2308.03281."
_CITE_INFONCE = (
    "van den Oord et al. (2018), Representation Learning with Contrastive Predictive Coding, arXiv:1807.03748; "
    "Karpukhin et al. (2020), Dense Passage Retrieval for Open-Domain Question Answering, EMNLP."
)
_CITE_COSENT = "Su (2022), CoSENT: a more efficient sentence vector scheme than Sentence-BERT (kexue.fm/archives/8847)."
_CITE_DISTILL = (
    "Reimers & Gurevych (2020), Making Monolingual Sentence Embeddings Multilingual using Knowledge Distillation, "
    "EMNLP."
)
_CITE_MRL = "Kusupati et al. (2022), Matryoshka Representation Learning, NeurIPS, arXiv:2205.13147."
_CITE_MGTE = (
    "Zhang et al. (2024), mGTE: Generalized Long-Context Text Representation and Reranking Models for "
    "Multilingual Text Retrieval, EMNLP Industry Track, arXiv:2407.19669."
)
_CITE_RANKINGGPT = (
    "Zhang et al. (2023), RankingGPT: Empowering Large Language Models in Text Ranking with Progressive "
    "Enhancement, arXiv:2311.16720."
)
_CITE_LCE = (
    "Gao et al. (2021), Rethink Training of BERT Rerankers in Multi-Stage Retrieval Pipeline (localized "
    "contrastive estimation), ECIR, arXiv:2101.08751; Nogueira & Cho (2019), Passage Re-ranking with BERT, "
    "arXiv:1901.04085."
)


class Loss(torch.nn.Module):
    """A loss with named hyper-parameters (``defaults`` overridden by the recipe's ``loss_args``).

    Subclasses set ``name``, ``formats``, ``defaults`` and ``citation`` and implement ``forward``.
    """

    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]
    defaults: ClassVar[dict[str, Any]]
    citation: ClassVar[str]
    outputs: ClassVar[tuple[str, ...]] = ("dense",)  # model outputs per text column; beyond dense: Encoded
    objective: ClassVar[str] = "embedding"  # the zoo.train.objectives objective that feeds it
    targets: ClassVar[dict[str, str]] = {}  # loss argument -> teacher target ("embeddings:text", "scores:a,b")
    builds: ClassVar[bool] = False  # has trainable layers of its own, made by build() once the widths are known
    fits: ClassVar[bool] = False  # learns a state from the stage's texts before training (fit), e.g. BABERT's

    def __init__(self, hyperparams: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        hyperparams = dict(hyperparams or {})
        unknown = sorted(set(hyperparams) - set(self.defaults))
        if unknown:
            raise ZooError(f"loss {self.name!r}: unknown argument {unknown[0]!r} (known: {', '.join(self.defaults)})")
        self.hparams = {**self.defaults, **hyperparams}

    def build(self, student_dim: int, teacher_dim: int, seed: int) -> None:
        """Make the loss's own trainable layers (``builds``): the trainer calls it before the optimizer is made,
        with the student's and the teacher's embedding widths; the layers are trained with the model, kept in
        its checkpoints and dropped when training ends."""
        raise NotImplementedError

    def fit(self, model: Any, corpus: Sequence[Sequence[int]]) -> Any:
        """The state a ``fits`` loss learns from the stage's texts, as ``corpus``: each text's content token ids
        (specials and pads dropped), tokenized as the steps tokenize it. The stage calls it once per loss name and
        sets the result as ``fitted`` on every loss of that name; a pure function of the corpus and the model's
        tokenizer, so a resumed run gets the same state."""
        raise NotImplementedError

    def token_targets(
        self, batch: dict[str, torch.Tensor], select: torch.Tensor, model: Any
    ) -> dict[str, torch.Tensor]:
        """Per-row targets of a token loss for the global batch (``(B, ...)`` tensors the objective slices to this
        rank's rows), from the unmasked ``batch`` and the selected positions ``select`` ``(B, T)``; none by default."""
        return {}

    def get_config_dict(self) -> dict[str, Any]:
        """The loss name and its resolved hyper-parameters, for the training record."""
        return {"name": self.name, **self.hparams}


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity matrix: ``(M, D), (N, D) -> (M, N)``."""
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def _docs(positive: torch.Tensor, negatives: torch.Tensor | None) -> torch.Tensor:
    """All documents of a batch, positives first, then each example's negatives in order: ``(N, D)``."""
    if negatives is None:
        return positive
    return torch.cat([positive, negatives.reshape(-1, positive.shape[-1])])  # (B + B*K, D)


class GTEContrastiveLoss(Loss):
    """GTE's improved contrastive loss: InfoNCE whose denominator also holds same-type pairs.

    For example ``i`` with query ``q_i``, positive ``d_i`` and the batch's documents ``D`` (every
    positive and every hard negative), with cosine ``s`` and temperature ``t``::

        L_i = -log exp(s(q_i, d_i)/t) / Z_i
        Z_i =   sum_{d in D}          exp(s(q_i, d)/t)     query -> all documents
              + sum_{j != i}          exp(s(q_i, q_j)/t)   query -> other queries
              + sum_j                 exp(s(q_j, d_i)/t)   other queries -> this document
              + sum_{d in D \\ D_i}    exp(s(d, d_i)/t)     document -> other documents

    ``D_i`` is ``d_i`` and its own hard negatives (as in sentence-transformers' GTE variant of
    ``MultipleNegativesRankingLoss``). The loss is the mean over the batch.

    Hyper-parameters:
        temperature: 0.01, the value GTE uses (shared/FAMILIES.md, flagged there as unverified
            against the paper; sentence-transformers' GTE-style bidirectional loss defaults to it too).
        false_negative_margin: when set (Qwen3-Embedding uses 0.1), negative terms (in-batch or
            mined) whose cosine exceeds the example's positive cosine by more than the margin are
            dropped from ``Z_i``: they are probably unlabelled positives.

    Example:
        >>> loss = GTEContrastiveLoss({"temperature": 0.02})
        >>> loss(query=torch.randn(4, 8), positive=torch.randn(4, 8)).shape
        torch.Size([])
    """

    name = "gte"
    formats = ("pairs", "triplets")
    defaults: ClassVar[dict[str, Any]] = {"temperature": 0.01, "false_negative_margin": None}
    citation = _CITE_GTE

    def forward(
        self, query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean loss of a batch: ``query (B, D), positive (B, D), negatives (B, K, D) | None -> ()``."""
        b = query.shape[0]
        k = 0 if negatives is None else negatives.shape[1]
        docs = _docs(positive, negatives)  # (N, D)
        rows = torch.arange(b, device=query.device)  # (B,)
        s_qd = _cos(query, docs)  # (B, N): q_i -> every document
        s_qq = _cos(query, query)  # (B, B): q_i -> q_j
        s_dq = _cos(positive, query)  # (B, B): row i holds s(q_j, d_i) for every j
        s_dd = _cos(positive, docs)  # (B, N): d_i -> every document
        pos = s_qd[rows, rows]  # (B,)
        s_qq = s_qq.masked_fill(torch.eye(b, dtype=torch.bool, device=query.device), -torch.inf)
        own = torch.zeros_like(s_dd, dtype=torch.bool)  # (B, N): d_i itself and its own negatives
        own[rows, rows] = True
        if k:
            neg_cols = b + rows[:, None] * k + torch.arange(k, device=query.device)  # (B, K)
            own[rows[:, None], neg_cols] = True
        s_dd = s_dd.masked_fill(own, -torch.inf)
        margin = self.hparams["false_negative_margin"]
        if margin is not None:
            s_qd, s_qq, s_dq, s_dd = _mask_false_negatives((s_qd, s_qq, s_dq, s_dd), pos, margin)
        logits = torch.cat([s_qd, s_qq, s_dq, s_dd], dim=1) / self.hparams["temperature"]  # (B, 2N + 2B)
        return (torch.logsumexp(logits, dim=1) - pos / self.hparams["temperature"]).mean()


def _mask_false_negatives(sims: tuple[torch.Tensor, ...], pos: torch.Tensor, margin: float) -> tuple[torch.Tensor, ...]:
    """Set to -inf every term above ``pos + margin``, except the positive's own entries (the diagonals)."""
    b = pos.shape[0]
    keep = torch.eye(b, dtype=torch.bool, device=pos.device)  # (B, B): the positive pair q_i, d_i
    out = []
    for s in sims:
        diag = torch.zeros_like(s, dtype=torch.bool)  # (B, cols)
        diag[:, :b] = keep
        out.append(s.masked_fill((s > pos[:, None] + margin) & ~diag, -torch.inf))
    # s_qq's diagonal is q_i -> q_i (already -inf) and s_dd's is d_i -> d_i (already -inf): unaffected.
    return tuple(out)


class InfoNCELoss(Loss):
    """Plain InfoNCE: each query against every document of the batch (in-batch and hard negatives).

    ``L_i = -log exp(s(q_i, d_i)/t) / sum_{d in D} exp(s(q_i, d)/t)`` with cosine ``s``; the mean over
    the batch. This is sentence-transformers' ``MultipleNegativesRankingLoss`` (scale = 1/t = 20).
    """

    name = "infonce"
    formats = ("pairs", "triplets")
    defaults: ClassVar[dict[str, Any]] = {"temperature": 0.05}
    citation = _CITE_INFONCE

    def forward(
        self, query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean loss: ``query (B, D), positive (B, D), negatives (B, K, D) | None -> ()``."""
        logits = _cos(query, _docs(positive, negatives)) / self.hparams["temperature"]  # (B, N)
        return F.cross_entropy(logits, torch.arange(query.shape[0], device=query.device))


class CoSENTLoss(Loss):
    """CoSENT for scored pairs: every pair that is scored higher must have the higher cosine.

    ``L = log(1 + sum_{(i, j): y_i > y_j} exp((cos_j - cos_i) / t))`` over all ordered pairs of the
    batch; only the order of the gold scores matters, so any score scale works (STS 0-5, labels 0/1).
    """

    name = "cosent"
    formats = ("scored",)
    defaults: ClassVar[dict[str, Any]] = {"temperature": 0.05}
    citation = _CITE_COSENT

    def forward(self, sentence1: torch.Tensor, sentence2: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """The batch loss: ``sentence1 (B, D), sentence2 (B, D), score (B,) -> ()``."""
        cos = F.cosine_similarity(sentence1, sentence2, dim=-1) / self.hparams["temperature"]  # (B,)
        diff = cos[None, :] - cos[:, None]  # (B, B): entry (i, j) = cos_j - cos_i
        ordered = score[:, None] > score[None, :]  # (B, B): pair i should score above pair j
        terms = diff[ordered]  # (P,)
        return torch.logsumexp(torch.cat([terms.new_zeros(1), terms]), dim=0)  # the leading 0 is the "1 +"


class MSEDistillationLoss(Loss):
    """Embedding distillation: mean squared error between student and teacher vectors."""

    name = "mse-distill"
    formats = ("texts",)
    defaults: ClassVar[dict[str, Any]] = {}
    targets: ClassVar[dict[str, str]] = {"teacher": "embeddings:text"}
    citation = _CITE_DISTILL

    def forward(self, text: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """``text`` is the student's embedding of the texts: ``(B, D), (B, D) -> ()``."""
        _same_width(text, teacher, self.name)
        return F.mse_loss(text, teacher.to(text.dtype))


class CosineDistillationLoss(Loss):
    """Embedding distillation on directions only: mean of ``1 - cos(student, teacher)``."""

    name = "cosine-distill"
    formats = ("texts",)
    defaults: ClassVar[dict[str, Any]] = {}
    targets: ClassVar[dict[str, str]] = {"teacher": "embeddings:text"}
    citation = _CITE_DISTILL

    def forward(self, text: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """``text`` is the student's embedding of the texts: ``(B, D), (B, D) -> ()``."""
        _same_width(text, teacher, self.name)
        return (1 - F.cosine_similarity(text, teacher.to(text.dtype), dim=-1)).mean()


def rbf_kernel(z: torch.Tensor, gamma: float) -> torch.Tensor:
    """``K_ij = exp(-gamma * ||z_i - z_j||^2)``: ``(n, D) -> (n, n)``, float32."""
    z = z.float()
    sq = (z * z).sum(-1)
    return torch.exp(-gamma * (sq[:, None] + sq[None, :] - 2 * z @ z.T).clamp(min=0))


def hsic(x: torch.Tensor, y: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """The biased HSIC estimate between two batches of representations with RBF kernels (IBKD, arXiv:2311.05472):
    ``tr(K_x H K_y H) / (n - 1)^2`` with ``H = I - 11^T / n``, computed as IBKD's code does,
    ``[tr(K_x K_y)/n^2 + mean(K_x) mean(K_y) - 2 mean(K_x K_y)/n] * n^2 / (n - 1)^2``: ``(n, D1), (n, D2) -> ()``."""
    n = x.shape[0]
    if n < 2 or y.shape[0] != n:
        raise ZooError(f"hsic: needs two batches of the same size >= 2, got {n} and {y.shape[0]}")
    kx, ky = rbf_kernel(x, gamma), rbf_kernel(y, gamma)
    kxy = kx @ ky.T
    return (torch.trace(kxy) / n**2 + kx.mean() * ky.mean() - 2 * kxy.mean() / n) * n**2 / (n - 1) ** 2


def teacher_infonce(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """IBKD's lower bound on I(Z_S; Z_T): cross-entropy over ``cos(student_i, teacher_j) / temperature`` with row
    ``i``'s target its own teacher vector ``j = i`` (the student already projected to the teacher's width):
    ``(B, D), (B, D) -> ()``."""
    _same_width(student, teacher, "ibkd")
    return _infonce_logits_loss(_cos(student.float(), teacher.float()) / temperature)


class IBKDLoss(Loss):
    """IBKD's stage-1 distillation: keep what the student knows of the teacher, forget the rest of the input.

    ``L = InfoNCE(W z_s, z_t) + lambda * HSIC(h, z_s)``: ``z_s`` the student's embedding of the texts, ``W`` a
    linear projection to the teacher's width (trained with the student, dropped afterwards), ``z_t`` the teacher's
    embedding of the same texts (``teacher_infonce``: in-batch cross-entropy over cosines / temperature), and
    ``h`` the mean-pooled hidden state of the student's layer ``layer`` (0: the embedding layer), the "shallow
    representation of the input" whose dependence on ``z_s`` HSIC (RBF kernels, biased estimator) penalises.

    Both HSIC inputs are L2-normalised before the kernel (a departure from IBKD's code, which passes the raw
    pooled states): all-MiniLM-L6-v2's layer-0 pooled states of three unrelated sentences have norms near 4 and
    squared distances 17 to 25, so with gamma = 1 every off-diagonal ``exp(-gamma * ||h_i - h_j||^2)`` is below
    1e-7, ``K_h`` is the identity and HSIC gives no gradient; on unit vectors gamma means the same at every layer
    and width.

    Hyper-parameters (IBKD's run_unsup.sh): temperature 1.0; weight (lambda) 0.2; gamma 1.0; layer 0.
    """

    name = "ibkd"
    formats = ("texts",)
    defaults: ClassVar[dict[str, Any]] = {"temperature": 1.0, "weight": 0.2, "gamma": 1.0, "layer": 0}
    targets: ClassVar[dict[str, str]] = {"teacher": "embeddings:text"}
    builds = True
    citation = (
        "Zhang et al. (2023), Text Representation Distillation via Information Bottleneck Principle, arXiv:2311.05472."
    )

    def __init__(self, hyperparams: Mapping[str, Any] | None = None) -> None:
        super().__init__(hyperparams)
        layer = self.hparams["layer"]
        if not isinstance(layer, int) or isinstance(layer, bool) or layer < 0:
            raise ZooError(f"loss {self.name!r}: layer must be an integer >= 0 (0: the embedding layer), got {layer!r}")
        self.projection: torch.nn.Linear | None = None

    @property
    def outputs(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("dense", f"layer:{self.hparams['layer']}")

    def build(self, student_dim: int, teacher_dim: int, seed: int) -> None:
        """The projection ``W``: ``Linear(student_dim, teacher_dim)``, torch's default init from ``seed``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.projection = torch.nn.Linear(student_dim, teacher_dim)

    def forward(self, text: Encoded, teacher: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """``text``: the student's embeddings ``(B, D_s)`` and layer states ``(B, H)``; ``teacher`` ``(B, D_t)``."""
        if self.projection is None:
            raise ZooError(f"loss {self.name!r}: build() was not called (the projection to the teacher's width)")
        z = text.dense.float()
        info = teacher_infonce(self.projection(z), teacher, self.hparams["temperature"])
        shallow = F.normalize(text.shallow.float(), dim=-1)
        return info + self.hparams["weight"] * hsic(shallow, F.normalize(z, dim=-1), self.hparams["gamma"])


def _same_width(student: torch.Tensor, teacher: torch.Tensor, name: str) -> None:
    if student.shape != teacher.shape:
        raise ZooError(f"loss {name!r}: student embeddings {tuple(student.shape)} != teacher {tuple(teacher.shape)}")


# MULTI-OUTPUT EMBEDDINGS =========================================================================


@dataclasses.dataclass(frozen=True)
class TokenWeights:
    """Lexical token weights of a batch of texts (a sparse embedding per text, kept token-aligned).

    ``ids`` and ``weights`` have the same shape ``(..., T)``: a text's token ids and their weights, 0 at
    tokens that do not count (pads, special tokens). A text's bag of words is ``{id: max weight}``.
    """

    ids: torch.Tensor  # (..., T) int64
    weights: torch.Tensor  # (..., T) float32, >= 0

    @classmethod
    def from_heads(cls, ids: torch.Tensor, weights: torch.Tensor, special_ids: Sequence[int]) -> TokenWeights:
        """A model's per-token weights with the special tokens dropped: ``(n, T), (n, T) -> TokenWeights``."""
        special = torch.as_tensor(list(special_ids), dtype=ids.dtype, device=ids.device)  # (S,)
        return cls(ids, weights.masked_fill(torch.isin(ids, special), 0.0))

    def flat(self) -> TokenWeights:
        """Every text on one axis: ``(..., T) -> (n, T)``."""
        t = self.ids.shape[-1]
        return TokenWeights(self.ids.reshape(-1, t), self.weights.reshape(-1, t))

    def padded(self, width: int) -> TokenWeights:
        """Zero-weight tokens (id 0) appended up to ``width``: ``(n, T) -> (n, width)``."""
        extra = width - self.ids.shape[-1]
        return TokenWeights(F.pad(self.ids, (0, extra)), F.pad(self.weights, (0, extra))) if extra else self

    @staticmethod
    def cat(parts: Sequence[TokenWeights]) -> TokenWeights:
        """The texts of all parts in order, padded to the widest: ``[(n_i, T_i)] -> (sum n_i, max T_i)``."""
        width = max(p.ids.shape[-1] for p in parts)
        padded = [p.padded(width) for p in parts]
        return TokenWeights(torch.cat([p.ids for p in padded]), torch.cat([p.weights for p in padded]))


@dataclasses.dataclass(frozen=True)
class Encoded:
    """One text column's outputs of one forward pass: dense embeddings and (optionally) token weights."""

    dense: torch.Tensor  # (..., D)
    sparse: TokenWeights | None = None  # (..., T)
    shallow: torch.Tensor | None = None  # (..., H): a ``layer:<i>`` output, the mean-pooled states of layer i


def lexical_score_matrix(queries: TokenWeights, docs: TokenWeights) -> torch.Tensor:
    """BGE-M3 / mGTE lexical scores ``s(q, d) = sum_{t in q & d} w_q(t) * w_d(t)``: ``(M, T1), (N, T2) -> (M, N)``.

    Each text's bag keeps the largest weight of a repeated token id. The bags live on a batch-local
    vocabulary, the ``U`` distinct ids of both sides, so the cost is ``(M + N) * U`` whatever the
    tokenizer's vocabulary size. Differentiable with respect to both weight tensors.
    """
    q, d = queries.flat(), docs.flat()
    vocab, inverse = torch.unique(torch.cat([q.ids.reshape(-1), d.ids.reshape(-1)]), return_inverse=True)  # (U,)
    split = q.ids.numel()
    q_bags = _bags(inverse[:split].view_as(q.ids), q.weights, len(vocab))  # (M, U)
    d_bags = _bags(inverse[split:].view_as(d.ids), d.weights, len(vocab))  # (N, U)
    return q_bags @ d_bags.T  # (M, N)


def _bags(index: torch.Tensor, weights: torch.Tensor, size: int) -> torch.Tensor:
    """Max-pool token weights per id: ``index (n, T)`` into ``[0, size)``, ``weights (n, T) -> (n, size)``."""
    base = weights.new_zeros(weights.shape[0], size)  # weights are >= 0: including the zero base changes nothing
    return base.scatter_reduce(1, index, weights, reduce="amax", include_self=True)


# MATRYOSHKA AND mGTE =============================================================================


def _infonce_logits_loss(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``(B, N)`` logits whose target for row ``i`` is column ``i`` (its positive)."""
    return F.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device))


def _mrl_widths(dims: Sequence[int], width: int) -> list[int]:
    """``dims`` clipped to the embedding width, duplicates dropped, in increasing order."""
    if not dims or any(int(d) <= 0 for d in dims):
        raise ZooError(f"dims {list(dims)!r}: expected a non-empty list of positive widths")
    return sorted({min(int(d), width) for d in dims})


class MRLInfoNCELoss(Loss):
    """Matryoshka InfoNCE: the InfoNCE of ``infonce`` on the first ``d`` features, for every ``d`` in ``dims``.

    For each width ``d`` the embeddings are cut to their first ``d`` features and re-normalised; each
    query is scored against every document of the batch (in-batch and hard negatives) with cosine / t::

        L = sum_{d in dims} mean_i -log softmax_j(cos(q_i[:d], doc_j[:d]) / t)[i]

    Hyper-parameters:
        temperature: 0.05 (as ``infonce``; mGTE's exact value: [paper?], not verified).
        dims: ``[32, 64, 128, 256, 512, 768]``, the Matryoshka widths; each is clipped to the embedding
            width (duplicates dropped), so a 64-d model trains at 32 and 64.
        reduction: ``"sum"`` (default; Matryoshka's objective with equal weights c_m = 1, and mGTE's
            "summed over dims" as FAMILIES.md reads it) or ``"mean"`` (loss scale independent of the number
            of widths).

    Example:
        >>> loss = MRLInfoNCELoss({"dims": [2, 4]})
        >>> loss(query=torch.randn(3, 8), positive=torch.randn(3, 8)).shape
        torch.Size([])
    """

    name = "mrl-infonce"
    formats = ("pairs", "triplets")
    defaults: ClassVar[dict[str, Any]] = {
        "temperature": 0.05,
        "dims": [32, 64, 128, 256, 512, 768],
        "reduction": "sum",
    }
    citation = f"{_CITE_MRL} {_CITE_INFONCE}"

    def __init__(self, hyperparams: Mapping[str, Any] | None = None) -> None:
        super().__init__(hyperparams)
        if self.hparams["reduction"] not in ("sum", "mean"):
            raise ZooError(f"loss {self.name!r}: reduction {self.hparams['reduction']!r} is not 'sum' or 'mean'")
        _mrl_widths(self.hparams["dims"], 1)  # validates the list

    def forward(
        self, query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``query (B, D), positive (B, D), negatives (B, K, D) | None -> ()``."""
        docs = _docs(positive, negatives)  # (N, D)
        widths = _mrl_widths(self.hparams["dims"], query.shape[-1])
        t = self.hparams["temperature"]
        losses = [_infonce_logits_loss(_cos(query[:, :d], docs[:, :d]) / t) for d in widths]  # each ()
        total = torch.stack(losses).sum()
        return total / len(widths) if self.hparams["reduction"] == "mean" else total


class MGTEHybridLoss(MRLInfoNCELoss):
    """mGTE's TRM objective: Matryoshka dense InfoNCE + ``sparse_weight`` x InfoNCE over lexical scores.

    From one forward pass per text, the dense embeddings train as :class:`MRLInfoNCELoss`, and the token
    weights train with InfoNCE over the lexical scores of :func:`lexical_score_matrix` (each query against
    every document of the batch, hard negatives included)::

        L = L_dense(MRL) + lambda * L_sparse,  L_sparse = mean_i -log softmax_j(s_lex(q_i, doc_j) / t_sparse)[i]

    Hyper-parameters (those of ``mrl-infonce``, plus):
        sparse_weight: lambda, 0.1 ([paper?]: not verified; 0.1 is also upstream's default sparse weight of
            the hybrid score at inference).
        sparse_temperature: 1.0. Lexical scores are unnormalised dot products of ReLU weights, so a
            temperature only sets the scale the weights settle at (scaling the head by c scales scores by
            c^2); at t = 1 the scores land about 1/0.05 = 20x the scale of cosines trained at t = 0.05, the
            regime in which upstream's inference mix ``1.0 * cos + 0.1 * s_lex`` weighs both alike.

    Example:
        >>> tw = TokenWeights(torch.tensor([[5, 6], [6, 7]]), torch.rand(2, 2))
        >>> MGTEHybridLoss()(query=Encoded(torch.randn(2, 8), tw), positive=Encoded(torch.randn(2, 8), tw)).shape
        torch.Size([])
    """

    name = "mgte"
    outputs = ("dense", "sparse")
    defaults: ClassVar[dict[str, Any]] = {
        **MRLInfoNCELoss.defaults,
        "sparse_weight": 0.1,
        "sparse_temperature": 1.0,
    }
    citation = f"{_CITE_MGTE} {_CITE_MRL}"

    def forward(  # type: ignore[override]
        self, query: Encoded, positive: Encoded, negatives: Encoded | None = None
    ) -> torch.Tensor:
        """Mean loss: ``query``, ``positive`` dense ``(B, D)`` + sparse ``(B, T)``; ``negatives`` ``(B, K, D | T)``."""
        for col, value in (("query", query), ("positive", positive), ("negatives", negatives)):
            if value is not None and (not isinstance(value, Encoded) or value.sparse is None):
                raise ZooError(f"loss {self.name!r}: column {col!r} lacks token weights (a model with a sparse head?)")
        dense = super().forward(query.dense, positive.dense, None if negatives is None else negatives.dense)
        docs = positive.sparse if negatives is None else TokenWeights.cat([positive.sparse, negatives.sparse.flat()])
        logits = lexical_score_matrix(query.sparse, docs) / self.hparams["sparse_temperature"]  # (B, N)
        return dense + self.hparams["sparse_weight"] * _infonce_logits_loss(logits)


class ListwiseCELoss(Loss):
    """Listwise cross-entropy of a cross-encoder (mGTE's reranker loss; LCE of Gao et al.).

    Each example's candidates are its positive and its ``K`` hard negatives, scored by the reranker's
    logit on the pair ``[CLS] query [SEP] doc [SEP]``; the loss is the cross-entropy of the positive::

        L = mean_i -log softmax(scores_i / t)[0]

    There are no in-batch negatives: a cross-encoder scores pairs, not texts, so every candidate costs
    one forward pass. It needs hard negatives (``triplets``: a triplets source, or a pairs source with
    ``negatives`` mined).

    Hyper-parameters:
        temperature: t, 1.0 (logits are unbounded, so the head learns its own scale).

    Example:
        >>> ListwiseCELoss()(scores=torch.tensor([[2.0, 0.0, 0.0]])).item()  # -log(e^2 / (e^2 + 2))
        0.2395...
    """

    name = "listwise-ce"
    formats = ("triplets",)
    outputs = ("rerank",)
    objective = "pair"
    defaults: ClassVar[dict[str, Any]] = {"temperature": 1.0}
    citation = f"{_CITE_MGTE} {_CITE_LCE}"

    def forward(self, scores: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Mean loss over ``scores`` ``(B, 1 + K)``, the positive's logit at index 0."""
        if scores.ndim != 2 or scores.shape[1] < 2:
            raise ZooError(f"loss {self.name!r}: expected scores (B, 1 + K) with K >= 1, got {tuple(scores.shape)}")
        target = torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)  # (B,) the positive
        return F.cross_entropy(scores.float() / self.hparams["temperature"], target)


class ScoreKLDistillationLoss(Loss):
    """In-batch score distillation: the student's distribution over the batch's documents follows the teacher's.

    For query ``i`` the teacher's cosine scores of every positive of the batch, ``S^t (B, B)``, and the student's,
    ``S^s``, give ``L = mean_i KL(softmax(S^t_i / t_teacher) || softmax(S^s_i / t))`` (RocketQAv2's listwise
    distillation over in-batch candidates; the in-batch score matrix is also what IBKD's teacher provides).

    Hyper-parameters:
        temperature: t of the student's scores, 0.05.
        teacher_temperature: of the teacher's scores, 0.05.
    """

    name = "score-kl"
    formats = ("pairs",)
    defaults: ClassVar[dict[str, Any]] = {"temperature": 0.05, "teacher_temperature": 0.05}
    targets: ClassVar[dict[str, str]] = {"teacher": "scores:query,positive"}
    citation = (
        "Ren et al. (2021), RocketQAv2: A Joint Training Method for Dense Passage Retrieval and Passage "
        "Re-ranking, EMNLP, arXiv:2110.07367."
    )

    def forward(  # type: ignore[override]
        self, query: torch.Tensor, positive: torch.Tensor, teacher: torch.Tensor
    ) -> torch.Tensor:
        """``query (B, D), positive (B, D), teacher (B, B) -> ()``."""
        student = F.log_softmax(_cos(query, positive) / self.hparams["temperature"], dim=-1)  # (B, B)
        target = F.log_softmax(teacher.to(student.dtype) / self.hparams["teacher_temperature"], dim=-1)  # (B, B)
        return F.kl_div(student, target, reduction="batchmean", log_target=True)


# TOKEN LOSSES ====================================================================================


class MaskedLMLoss(Loss):
    """Masked language modelling (BERT; mGTE's pre-training at mask rate 0.3): predict the masked tokens.

    ``token_inputs`` picks each non-special token with probability ``mask_rate``; of those, 80% become the mask
    token, 10% a random token and 10% stay (BERT's recipe); the loss is the cross-entropy of the original token
    at every picked position, one value per position (the objective takes the mean over the global batch).

    Hyper-parameters:
        mask_rate: 0.3 (mGTE; BERT used 0.15).
    """

    name = "mlm"
    formats = ("texts",)
    outputs = ("mlm",)
    objective = "token"
    column = "text"  # the text column it reads
    defaults: ClassVar[dict[str, Any]] = {"mask_rate": 0.3}
    citation = (
        "Devlin et al. (2019), BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding, "
        f"NAACL; {_CITE_MGTE}"
    )

    def __init__(self, hyperparams: Mapping[str, Any] | None = None) -> None:
        super().__init__(hyperparams)
        rate = self.hparams["mask_rate"]
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < 1:
            raise ZooError(f"loss {self.name!r}: mask_rate {rate!r} is not between 0 and 1")

    def token_inputs(
        self, batch: dict[str, torch.Tensor], model: Any, generator: torch.Generator
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """Masked ``batch``, the picked positions ``(B, T)`` and their original ids ``(M,)`` (row-major order)."""
        tok = model.tokenizer
        if tok.mask_token_id is None:
            raise ZooError(f"loss {self.name!r}: the tokenizer has no mask token")
        ids = batch["input_ids"]  # (B, T)
        candidates = content_mask(batch, tok)  # (B, T)
        draws = torch.rand(ids.shape, generator=generator)  # (B, T), one draw per position whatever the rank
        select = candidates & (draws < self.hparams["mask_rate"])
        kind = torch.rand(ids.shape, generator=generator)  # (B, T): < 0.8 mask, < 0.9 random, else keep
        random_ids = torch.randint(len(tok), ids.shape, generator=generator, dtype=ids.dtype)
        masked = torch.where(select & (kind < 0.8), torch.full_like(ids, tok.mask_token_id), ids)
        masked = torch.where(select & (kind >= 0.8) & (kind < 0.9), random_ids, masked)
        return {**batch, "input_ids": masked}, select, ids[select]

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Per-position cross-entropy: ``logits (M, V), labels (M,) -> (M,)``."""
        return F.cross_entropy(logits.float(), labels, reduction="none")


def content_mask(batch: Mapping[str, torch.Tensor], tokenizer: Any) -> torch.Tensor:
    """``(B, T)`` bool: the real tokens of a tokenized batch (attended, not a special token such as [CLS] or [PAD])."""
    ids = batch["input_ids"]  # (B, T)
    special = torch.as_tensor(sorted(set(tokenizer.all_special_ids)), dtype=ids.dtype)
    return batch["attention_mask"].bool() & ~torch.isin(ids, special)


class BABERTLoss(MaskedLMLoss):
    """BABERT's boundary-aware pre-training: MLM plus a regression of the boundary head on the boundary features.

    Over the global batch, with ``M`` masked positions and ``C`` real (non-special, non-pad) tokens::

        L = (1/M) sum_masked CE  +  weight * (1/C) sum_real (1/F) || boundary(h^(l)_t) - f_t ||^2

    where ``boundary(h^(l)_t)`` is the model's ``boundary`` output (its boundary head on layer ``l``'s state of token
    t, the *masked* input's) and ``f_t`` ``(F,)`` the z-scored boundary features of the *original* token in its
    sentence (``zoo.families.babert``): the statistics are fitted (``fit``) on the stage's training texts as token ids,
    so every real token has a target. ``token_inputs`` is :class:`MaskedLMLoss`'s. ``forward`` returns the ``M``
    per-position cross-entropies and, last, the regression term of this rank's rows multiplied by ``M / C`` (through
    ``boundary_weight``), so the token objective's sum over ranks divided by ``M`` is ``L``; with ``weight = 0``
    it is the ``mlm`` loss exactly.

    Hyper-parameters:
        mask_rate: 0.15 (BERT's, which BABERT continues).
        weight: 1.0, the regression's weight [paper? for the paper's value].
    """

    name = "babert"
    outputs = ("mlm", "boundary")
    fits = True
    defaults: ClassVar[dict[str, Any]] = {"mask_rate": 0.15, "weight": 1.0}
    citation = (
        "Jiang, Long, Zhang, Xie, Zhang & Zhang (2022), Unsupervised Boundary-Aware Language Model Pretraining for "
        "Chinese Sequence Labeling, Findings of EMNLP 2022, arXiv:2210.15231."
    )

    def __init__(self, hyperparams: Mapping[str, Any] | None = None) -> None:
        super().__init__(hyperparams)
        w = self.hparams["weight"]
        if isinstance(w, bool) or not isinstance(w, int | float) or w < 0:
            raise ZooError(f"loss {self.name!r}: weight {w!r} is not a number >= 0")
        self.fitted: Any = None  # the boundary statistics (zoo.families.babert.BoundaryStats), set by the stage

    def fit(self, model: Any, corpus: Sequence[Sequence[int]]) -> Any:
        """The model's boundary statistics of the corpus, its token ids as symbols."""
        if not callable(getattr(model, "boundary_statistics", None)):
            raise ZooError(f"loss {self.name!r}: {type(model).__name__} has no boundary_statistics (a babert model)")
        return model.boundary_statistics([[str(i) for i in ids] for ids in corpus])

    def token_targets(
        self, batch: dict[str, torch.Tensor], select: torch.Tensor, model: Any
    ) -> dict[str, torch.Tensor]:
        """``boundary_target`` ``(B, T, F)`` (0 off the real tokens) and ``boundary_weight`` ``(B, T)``: ``M / C`` at
        the real tokens, 0 elsewhere."""
        if self.fitted is None:
            raise ZooError(f"loss {self.name!r}: no boundary statistics (the stage fits them before the first step)")
        real = content_mask(batch, model.tokenizer)  # (B, T)
        ids = batch["input_ids"]
        rows = [[str(i) for i in ids[b][real[b]].tolist()] for b in range(ids.shape[0])]
        features = np.concatenate(self.fitted.features_many(rows))  # (C, F), row-major order of real
        target = torch.zeros(*ids.shape, features.shape[1])  # (B, T, F)
        target[real] = torch.from_numpy(features)
        weight = real.float() * (max(1, int(select.sum())) / max(1, int(real.sum())))  # (B, T)
        return {"boundary_target": target, "boundary_weight": weight}

    def forward(  # type: ignore[override]
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        boundary: torch.Tensor,
        boundary_target: torch.Tensor,
        boundary_weight: torch.Tensor,
    ) -> torch.Tensor:
        """``logits (M, V), labels (M,), boundary (b, T, F), boundary_target (b, T, F), boundary_weight (b, T)
        -> (M + 1,)``: the cross-entropies, then the weighted regression term."""
        ce = F.cross_entropy(logits.float(), labels, reduction="none")  # (M,)
        mse = ((boundary.float() - boundary_target) ** 2).mean(-1)  # (b, T)
        term = self.hparams["weight"] * (mse * boundary_weight).sum()  # ()
        return torch.cat([ce, term[None]])


class CausalLMLoss(Loss):
    """Causal language modelling on a target span (RankingGPT's stage 1, weakly supervised relevance pre-training).

    Each (query, positive) pair is the model's pair encoding (``tokenize_pairs``: for the LLM ranker
    ``Document: {positive} Query: {query}``) whose ``labels`` mark the target (the query); the loss is the
    cross-entropy of every target token given what precedes it, one value per token (the token objective takes the
    mean over the global batch's target tokens). The prompt's tokens carry no loss (RankingGPT's ``mask_input``).

    Example:
        >>> CausalLMLoss()(logits=torch.zeros(2, 5), labels=torch.tensor([1, 2])).tolist()  # log 5 each
        [1.609..., 1.609...]
    """

    name = "causal-lm"
    formats = ("pairs", "triplets")
    outputs = ("lm",)
    objective = "token"
    column = ("query", "positive")  # (target, context): the model's tokenize_pairs labels the target
    defaults: ClassVar[dict[str, Any]] = {}
    citation = _CITE_RANKINGGPT

    def token_inputs(
        self, batch: dict[str, torch.Tensor], model: Any, generator: torch.Generator
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The batch without labels, the positions predicting a target token ``(B, T)`` and those tokens ``(M,)``."""
        select, labels = next_token_select(batch["labels"])
        return {k: v for k, v in batch.items() if k != "labels"}, select, labels

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Per-token cross-entropy: ``logits (M, V), labels (M,) -> (M,)``."""
        return F.cross_entropy(logits.float(), labels, reduction="none")


class RankingGPTLoss(Loss):
    """RankingGPT's stage 2 (supervised fine-tuning): listwise ranking + generation + KL to the stage-1 model.

    Each example has a positive and ``K`` negatives; ``scores`` ``(B, 1 + K)`` are their query likelihoods (the mean
    log-probability of the query's tokens, the ``rerank`` output); ``logits`` ``(M, V)`` are the model's at every
    position that predicts a query token of any candidate, ``labels`` ``(M,)`` those tokens, ``candidate`` ``(M,)``
    the candidate each position belongs to (0: the positive), ``reference`` ``(M, V)`` the frozen stage-1 model's
    log-probabilities at the same positions (teacher ``"frozen"``)::

        L = CE(exp(scores) / T, 0)                                 listwise, over the 1 + K candidates
          + generation_weight * mean_{positive's query tokens} CE(logits, labels)
          + kl_weight * mean_{query tokens} KL(p_reference || p_model)

    The KL is over the vocabulary at the query positions of every candidate (upstream's ``sft.py`` takes it at every
    position of the sequence; the query positions are the ones the scores are read from, and the LM head runs there
    only).

    Hyper-parameters:
        temperature: T, 0.001 (RankingGPT's ``sft.sh``).
        generation_weight: 1.0; kl_weight: 1.0 (upstream sums the three terms).

    Example:
        >>> loss = RankingGPTLoss({"temperature": 1.0})
        >>> z = torch.zeros(2, 3)
        >>> round(loss(scores=torch.zeros(1, 2), logits=z, labels=torch.tensor([0, 0]),
        ...            candidate=torch.tensor([0, 1]), reference=z.log_softmax(-1)).item(), 4)  # log 2 + log 3
        1.7918
    """

    name = "rankinggpt"
    formats = ("triplets",)
    outputs = ("rerank", "lm")
    objective = "pair"
    targets: ClassVar[dict[str, str]] = {"reference": "logprobs:lm"}
    defaults: ClassVar[dict[str, Any]] = {"temperature": 0.001, "generation_weight": 1.0, "kl_weight": 1.0}
    citation = _CITE_RANKINGGPT

    def forward(  # type: ignore[override]
        self,
        scores: torch.Tensor,
        logits: torch.Tensor,
        labels: torch.Tensor,
        candidate: torch.Tensor,
        reference: torch.Tensor,
    ) -> torch.Tensor:
        """``scores (B, 1 + K), logits (M, V), labels (M,), candidate (M,), reference (M, V) -> ()``."""
        terms = self.terms(scores, logits, labels, candidate, reference)
        return sum(w * term for w, term in zip(self.weights(), terms, strict=True))

    def weights(self) -> tuple[float, float, float]:
        """The weights of :meth:`terms`."""
        return 1.0, self.hparams["generation_weight"], self.hparams["kl_weight"]

    def terms(
        self,
        scores: torch.Tensor,
        logits: torch.Tensor,
        labels: torch.Tensor,
        candidate: torch.Tensor,
        reference: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The listwise, generation and KL terms, unweighted, each ``()``."""
        if scores.ndim != 2 or scores.shape[1] < 2:
            raise ZooError(f"loss {self.name!r}: expected scores (B, 1 + K) with K >= 1, got {tuple(scores.shape)}")
        target = torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)  # (B,) the positive
        listwise = F.cross_entropy(scores.float().exp() / self.hparams["temperature"], target)
        logprobs = logits.float().log_softmax(-1)  # (M, V)
        positive = candidate == 0  # (M,)
        generation = F.nll_loss(logprobs[positive], labels[positive])
        reference = reference.to(logprobs.dtype)
        kl = (reference.exp() * (reference - logprobs)).sum(-1).mean()
        return listwise, generation, kl


LOSSES: dict[str, type[Loss]] = {
    cls.name: cls
    for cls in (
        GTEContrastiveLoss,
        InfoNCELoss,
        CoSENTLoss,
        MSEDistillationLoss,
        CosineDistillationLoss,
        IBKDLoss,
        MRLInfoNCELoss,
        MGTEHybridLoss,
        ListwiseCELoss,
        ScoreKLDistillationLoss,
        MaskedLMLoss,
        BABERTLoss,
        CausalLMLoss,
        RankingGPTLoss,
    )
}


def create_loss(name: str, hyperparams: Mapping[str, Any] | None = None) -> Loss:
    """A loss by name (one of ``LOSSES``) with its hyper-parameters.

    Raises:
        ZooError: for an unknown name or argument.
    """
    try:
        cls = LOSSES[name]
    except KeyError:
        raise ZooError(f"unknown loss {name!r}; losses: {', '.join(sorted(LOSSES))}") from None
    return cls(hyperparams)
