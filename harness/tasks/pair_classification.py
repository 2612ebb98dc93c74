"""Pair classification: average precision of cosine similarity against 0/1 labels, as MTEB does."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.datasets.local import PairData
from harness.tasks.base import EvalContext, SplitOutput, Task, task_type
from harness.tasks.sts import pair_cosines

__all__ = ["PairClassification", "best_threshold_scores"]


def best_threshold_scores(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Best accuracy and best F1 over all thresholds on ``scores`` (higher = more similar)."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)  # predicting the first i+1 as positive
    fp = np.cumsum(1 - y)
    # only cut between distinct scores
    cut = np.r_[s[1:] != s[:-1], True]
    tp, fp = tp[cut], fp[cut]
    n_pos, n = y.sum(), len(y)
    tn = (n - n_pos) - fp
    acc = np.r_[(n - n_pos) / n, (tp + tn) / n].max()
    f1 = (2 * tp / np.maximum(tp + fp + n_pos, 1)).max()
    return float(acc), float(f1)


@task_type
class PairClassification(Task):
    """Binary pair classification (paraphrase, entailment)."""

    type = "pair_classification"
    main_score = "cosine_ap"
    instruction = "Retrieve text that is semantically similar to the given text"
    metrics = ("cosine_ap", "cosine_accuracy", "cosine_f1")

    def _evaluate_split(self, model: Any, data: PairData, ctx: EvalContext) -> SplitOutput:
        from sklearn.metrics import average_precision_score

        cos = pair_cosines(model, data, ctx)
        labels = np.asarray(data.gold, dtype=np.int64)
        acc, f1 = best_threshold_scores(cos, labels)
        scores = {"cosine_ap": float(average_precision_score(labels, cos)), "cosine_accuracy": acc, "cosine_f1": f1}
        return SplitOutput(scores, n_items=len(cos), items={"pred": cos.tolist(), "gold": labels.tolist()})
