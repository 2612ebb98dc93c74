"""Clustering: V-measure of MiniBatchKMeans on embeddings, MTEB's (v2) protocol.

All texts are embedded; ten bootstrap samples of 16,384 texts, drawn with replacement by
``random.Random(42).choices`` as mteb does, are clustered with
``MiniBatchKMeans(k = number of labels, batch_size=512, n_init=1, random_state=42)``; the score is
the mean V-measure.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from harness.datasets.local import LabelledData
from harness.tasks.base import EvalContext, SplitOutput, Task, encode_texts, task_type

__all__ = ["Clustering"]

SEED = 42
N_BOOTSTRAP = 10
BOOTSTRAP_SIZE = 16_384
KMEANS_BATCH = 512


@task_type
class Clustering(Task):
    """Text clustering against gold labels."""

    type = "clustering"
    main_score = "v_measure"
    instruction = "Identify the topic or theme of the given text"
    metrics = ("v_measure", "v_measure_std")

    def _evaluate_split(self, model: Any, data: LabelledData, ctx: EvalContext) -> SplitOutput:
        from sklearn.cluster import MiniBatchKMeans
        from sklearn.metrics.cluster import v_measure_score

        emb = encode_texts(model, data.texts, "query", ctx)
        labels = np.asarray(data.labels)
        rng = random.Random(SEED)
        kmeans = MiniBatchKMeans(
            n_clusters=len(set(data.labels)), batch_size=KMEANS_BATCH, init="k-means++", n_init=1, random_state=SEED
        )
        v = []
        for _ in range(N_BOOTSTRAP):
            idx = rng.choices(range(len(labels)), k=BOOTSTRAP_SIZE)
            v.append(float(v_measure_score(labels[idx], kmeans.fit_predict(emb[idx]))))
        scores = {"v_measure": float(np.mean(v)), "v_measure_std": float(np.std(v))}
        return SplitOutput(scores, n_items=len(labels), items={"v_measures": v})
