"""The seqlabel task's first fine-tuning protocol: a linear probe over an encoder's frozen per-character states.

A model that is a ``zoo.protocols.TokenEncoder`` but not a ``Tagger`` runs a sequence-labelling task through this
protocol (``protocol = "linear-probe"``, the only one so far; a task option could later select full fine-tuning):

1. **Training data.** The task's train split (``spec.train_split``, else ``train.conll`` beside the evaluated split)
   when it has one; else a seeded half of each evaluated split: ``numpy.random.default_rng(seed).permutation(n)``,
   the first ``n // 2`` sentences (in file order) train the head and the other ``n - n // 2`` are scored. The split,
   its seed and its sizes go into the record's ``task_options["probe"]``.
2. **Features.** ``encode_tokens``: one frozen last-layer state per character (``zoo.nn.tokens`` aligns subword
   tokens to characters), computed once per split through the harness's progress bar, standardised with the
   training characters' mean and standard deviation.
3. **Head.** ``Linear(H, K)`` + softmax over the K tags of the training gold, trained in torch on the CPU (one
   thread, so the sums are the same on every run): mean cross-entropy over the training characters + ``l2 / 2 *
   ||W||^2``, no class weights, from zero weights, full-batch L-BFGS (strong Wolfe line search) for at most
   ``max_iter`` iterations. The objective is convex and the start fixed, so a model and a seed give one head.
4. **Decoding.** Constrained Viterbi over the head's log-probabilities: the best tag sequence among the legal
   ones of the set's scheme. BMES: a word starts with ``B``/``S``, ``B``/``M`` are followed by ``M``/``E``, the
   sentence ends after ``E``/``S``; BIO (strict): ``I-X`` only after ``B-X`` or ``I-X``; BIOES: ``B-X``/``I-X`` are
   followed by ``I-X``/``E-X``, everything else by ``O``/``B-*``/``S-*``, no sentence ends inside an entity. The
   tags are the training gold's own strings (msra-ner's ``M-X`` stays ``M-X``).

The probe is a :class:`ProbeTagger`, so ``harness.tasks.seqlabel.score_tagger`` scores it like any Tagger.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.tasks.base import EvalContext
from harness.tasks.seqlabel import SeqLabelData, _illegal, _parse
from zoo.errors import ZooError
from zoo.protocols import TagKind, TokenEncoder

__all__ = [
    "ProbeSettings",
    "PROBE",
    "ProbeTagger",
    "encode_states",
    "split_half",
    "subset",
    "fit_probe",
    "legal_moves",
    "viterbi",
]

_BLOCK = 256  # sentences per encode_tokens call (progress granularity)


@dataclass(frozen=True)
class ProbeSettings:
    """How the linear probe is made (recorded with every result; see the module docstring)."""

    protocol: str = "linear-probe"
    head: str = "linear softmax over the training gold's tags"
    features: str = "encode_tokens: last hidden layer per character, frozen, standardised on the training characters"
    optimizer: str = "L-BFGS (strong Wolfe), full batch, zero init, torch CPU, 1 thread"
    max_iter: int = 100
    l2: float = 1e-4
    class_weights: str | None = None
    decoding: str = "constrained Viterbi over the head's log-probabilities (the scheme's legal transitions)"
    seed: int = 0  # the seeded half split, where there is no train split

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return dataclasses.asdict(self)


PROBE = ProbeSettings()


# DATA ============================================================================================


def split_half(n: int, seed: int) -> tuple[list[int], list[int]]:
    """``(train, scored)`` sentence indices in file order: a seeded permutation's first ``n // 2``, and the rest."""
    order = np.random.default_rng(seed).permutation(n)
    return sorted(order[: n // 2].tolist()), sorted(order[n // 2 :].tolist())


def subset(data: SeqLabelData, indices: Sequence[int]) -> SeqLabelData:
    """The sentences ``indices`` of a split (their numbers in the file kept in ``index`` for messages)."""
    base = data.index or list(range(len(data.tokens)))
    pick = list(indices)
    return dataclasses.replace(
        data,
        tokens=[data.tokens[i] for i in pick],
        tags=[data.tags[i] for i in pick],
        spans=[data.spans[i] for i in pick],
        index=[base[i] for i in pick],
    )


def encode_states(
    model: TokenEncoder, sentences: Sequence[Sequence[str]], ctx: EvalContext, what: str
) -> list[np.ndarray]:
    """``encode_tokens`` in blocks of ``_BLOCK`` sentences with a progress bar, checked row by row."""
    from tqdm.auto import tqdm

    out: list[np.ndarray] = []
    t0 = time.perf_counter()
    with tqdm(
        total=len(sentences), desc=f"{ctx.task_id} {what}", unit="sentence", disable=not ctx.progress, leave=False
    ) as bar:
        for start in range(0, len(sentences), _BLOCK):
            block = sentences[start : start + _BLOCK]
            states = model.encode_tokens(block, batch_size=ctx.batch_size)
            for i, (sentence, x) in enumerate(zip(block, states, strict=True)):
                if x.ndim != 2 or x.shape[0] != len(sentence):
                    raise ZooError(
                        f"model {model.card.name} gave states of shape {x.shape} for the {len(sentence)} characters "
                        f"of sentence {start + i + 1} ({''.join(sentence)[:40]!r})"
                    )
            out.extend(np.asarray(x, dtype=np.float32) for x in states)
            bar.update(len(block))
    ctx.add_time("encode_s", time.perf_counter() - t0)
    return out


# HEAD ============================================================================================


def _fit_head(x: np.ndarray, y: np.ndarray, n_labels: int, settings: ProbeSettings) -> tuple[np.ndarray, np.ndarray]:
    """``(W (H, K), b (K,))`` of the softmax regression of ``y (N,)`` on standardised ``x (N, H)``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
        w = torch.zeros(x.shape[1], n_labels, requires_grad=True)  # (H, K)
        b = torch.zeros(n_labels, requires_grad=True)  # (K,)
        opt = torch.optim.LBFGS([w, b], max_iter=settings.max_iter, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(xt @ w + b, yt) + settings.l2 / 2 * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return w.detach().numpy().copy(), b.detach().numpy().copy()
    finally:
        torch.set_num_threads(before)


def legal_moves(labels: Sequence[str], scheme: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(allowed (K, K) [prev, cur], may_start (K,), may_end (K,))`` for tags ``labels`` in ``scheme``."""
    parsed = [_parse(t) for t in labels]
    if any(p is None for p in parsed):
        raise ZooError(f"cannot decode tags {list(labels)} in {scheme}")

    def ok(prev: tuple[str, str] | None, cur: tuple[str, str]) -> bool:
        if scheme == "BIO":  # strict: I-X continues B-X or I-X
            return cur[0] != "I" or (prev is not None and prev[0] in "BI" and prev[1] == cur[1])
        return not _illegal(prev, cur, scheme)

    allowed = np.array([[ok(p, c) for c in parsed] for p in parsed], dtype=bool)
    may_start = np.array([ok(None, c) for c in parsed], dtype=bool)
    may_end = np.array([scheme == "BIO" or c[0] not in "BI" for c in parsed], dtype=bool)
    return allowed, may_start, may_end


def viterbi(logp: np.ndarray, allowed: np.ndarray, may_start: np.ndarray, may_end: np.ndarray) -> list[int] | None:
    """The legal label sequence of highest total log-probability over ``logp (T, K)``; None when none is legal."""
    n, k = logp.shape
    if n == 0:
        return []
    trans = np.where(allowed, 0.0, -np.inf)  # (K, K) prev -> cur
    score = logp[0] + np.where(may_start, 0.0, -np.inf)  # (K,)
    back = np.zeros((n, k), dtype=np.int64)
    for t in range(1, n):
        cand = score[:, None] + trans  # (K prev, K cur)
        back[t] = cand.argmax(axis=0)
        score = cand[back[t], np.arange(k)] + logp[t]
    score = score + np.where(may_end, 0.0, -np.inf)
    if not np.isfinite(score.max()):
        return None
    path = [int(score.argmax())]
    for t in range(n - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return path[::-1]


# THE PROBE =======================================================================================


class ProbeTagger:
    """A ``Tagger`` made of a ``TokenEncoder`` and a trained linear head, decoded by constrained Viterbi.

    Args:
        encoder: the frozen encoder.
        labels: the head's tags, ``(K,)``.
        scheme: ``"BMES"``, ``"BIO"`` or ``"BIOES"`` (the legal transitions).
        kind: ``"cws"`` or ``"ner"``.
        mean, std: ``(H,)`` feature standardisation.
        weight, bias: ``(H, K)`` and ``(K,)``.
    """

    def __init__(
        self,
        encoder: TokenEncoder,
        labels: Sequence[str],
        scheme: str,
        kind: TagKind,
        mean: np.ndarray,
        std: np.ndarray,
        weight: np.ndarray,
        bias: np.ndarray,
    ) -> None:
        self.card, self.encoder, self.labels, self.kinds = encoder.card, encoder, list(labels), (kind,)
        self.mean, self.std, self.weight, self.bias = mean, std, weight, bias
        self.moves = legal_moves(self.labels, scheme)

    def log_probs(self, states: np.ndarray) -> np.ndarray:
        """``(T, K)`` log-probabilities of the tags from ``(T, H)`` states."""
        logits = ((states - self.mean) / self.std) @ self.weight + self.bias  # (T, K)
        logits = logits - logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    def tag_states(self, states: Sequence[np.ndarray], sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        """Decode precomputed ``(T, H)`` states of ``sentences`` (see ``zoo.protocols.Tagger.tag``)."""
        out = []
        for x, sentence in zip(states, sentences, strict=True):
            path = viterbi(self.log_probs(x), *self.moves)
            if path is None:
                raise ZooError(
                    f"probe of {self.card.name}: no legal tag sequence of {self.labels} for {''.join(sentence)[:40]!r}"
                )
            out.append([self.labels[i] for i in path])
        return out

    def tag(
        self, sentences: Sequence[Sequence[str]], *, kind: TagKind, types: Sequence[str] = (), batch_size: int = 32
    ) -> list[list[str]]:
        """See ``zoo.protocols.Tagger``: the encoder's states, the head, constrained Viterbi."""
        if kind not in self.kinds:
            raise ZooError(f"probe of {self.card.name} was trained for {self.kinds[0]!r}, not {kind!r}")
        return self.tag_states(self.encoder.encode_tokens(sentences, batch_size=batch_size), sentences)


def fit_probe(
    encoder: TokenEncoder, train: SeqLabelData, ctx: EvalContext, settings: ProbeSettings = PROBE
) -> ProbeTagger:
    """Train the linear probe on ``train`` (see the module docstring).

    Args:
        encoder: the model.
        train: the training sentences (a train split or a seeded half of the evaluated one).
        ctx: progress, batch size and timers (``encode_s``, ``probe_fit_s``).
        settings: the probe's settings.

    Returns:
        The probe, a ``Tagger`` of ``train.kind``.
    """
    states = encode_states(encoder, train.tokens, ctx, "encode train")
    t0 = time.perf_counter()
    labels = sorted({t for sentence in train.tags for t in sentence})
    code = {t: i for i, t in enumerate(labels)}
    x = np.concatenate(states).astype(np.float32)  # (N, H) every training character
    y = np.array([code[t] for sentence in train.tags for t in sentence], dtype=np.int64)  # (N,)
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-6  # (H,) a constant feature stays finite
    weight, bias = _fit_head((x - mean) / std, y, len(labels), settings)
    ctx.add_time("probe_fit_s", time.perf_counter() - t0)
    return ProbeTagger(encoder, labels, train.scheme, train.kind, mean, std, weight, bias)  # type: ignore[arg-type]
