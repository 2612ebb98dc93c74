"""STS: Spearman correlation between cosine similarity and gold scores, as MTEB does."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.datasets.local import PairData
from harness.tasks.base import EvalContext, SplitOutput, Task, encode_texts, task_type

__all__ = ["STS", "pair_cosines"]


def pair_cosines(model: Any, data: PairData, ctx: EvalContext) -> np.ndarray:
    """Cosine similarity of each (sentence1, sentence2) pair; both sides encoded as ``query``."""
    a = encode_texts(model, data.sentence1, "query", ctx)
    b = encode_texts(model, data.sentence2, "query", ctx)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.where(norms == 0, 1, norms)


@task_type
class STS(Task):
    """Semantic textual similarity."""

    type = "sts"
    main_score = "cosine_spearman"
    instruction = "Retrieve semantically similar text."
    metrics = ("cosine_spearman", "cosine_pearson")

    def _evaluate_split(self, model: Any, data: PairData, ctx: EvalContext) -> SplitOutput:
        from scipy.stats import pearsonr, spearmanr

        cos = pair_cosines(model, data, ctx)
        scores = {
            "cosine_spearman": float(spearmanr(data.gold, cos).statistic),
            "cosine_pearson": float(pearsonr(data.gold, cos).statistic),
        }
        return SplitOutput(scores, n_items=len(cos), items={"pred": cos.tolist(), "gold": list(data.gold)})
