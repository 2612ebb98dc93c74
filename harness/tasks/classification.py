"""Classification: logistic regression on embeddings, MTEB's protocol.

Ten experiments; each trains ``LogisticRegression(max_iter=100)`` on an undersampled train set
(``samples_per_label`` texts per label, drawn by MTEB's cumulative ``RandomState(42)`` shuffle) and
scores the full test split; metrics are the means over experiments.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.datasets.local import LabelledData
from harness.tasks.base import EvalContext, SplitOutput, Task, encode_texts, task_type

__all__ = ["Classification", "undersample"]

SEED = 42
N_EXPERIMENTS = 10
SAMPLES_PER_LABEL = 8


def undersample(labels: list[str], n_experiments: int, per_label: int, seed: int = SEED) -> list[list[int]]:
    """Training indices of each experiment, exactly as mteb's ``_undersample_data`` draws them."""
    idxs = list(range(len(labels)))
    selected = []
    for _ in range(n_experiments):
        np.random.RandomState(seed).shuffle(idxs)  # mteb re-seeds each time and shuffles the previous order
        counts: dict[str, int] = {}
        chosen = []
        for i in idxs:
            if counts.get(labels[i], 0) < per_label:
                chosen.append(i)
                counts[labels[i]] = counts.get(labels[i], 0) + 1
        selected.append(chosen)
    return selected


@task_type
class Classification(Task):
    """Text classification with a train split."""

    type = "classification"
    main_score = "accuracy"
    instruction = "Classify the given text into its category"
    metrics = ("accuracy", "f1", "f1_weighted")

    def load(self, split: str) -> tuple[LabelledData, LabelledData]:
        """The train split and the evaluation split."""
        return self.source.load(self.spec, self.spec.train_split or "train"), self.source.load(self.spec, split)

    def _evaluate_split(self, model: Any, data: tuple[LabelledData, LabelledData], ctx: EvalContext) -> SplitOutput:
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import accuracy_score, f1_score

        train, test = data
        experiments = undersample(train.labels, N_EXPERIMENTS, SAMPLES_PER_LABEL)
        union = sorted(set().union(*experiments))
        pos = {j: i for i, j in enumerate(union)}
        x_union = encode_texts(model, [train.texts[i] for i in union], "query", ctx)
        x_test = encode_texts(model, test.texts, "query", ctx)
        per_exp: list[dict[str, float]] = []
        correct = np.zeros(len(test.texts))
        for chosen in experiments:
            clf = LogisticRegression(max_iter=100, random_state=SEED)
            clf.fit(x_union[[pos[i] for i in chosen]], [train.labels[i] for i in chosen])
            pred = clf.predict(x_test)
            correct += pred == np.asarray(test.labels)
            per_exp.append(
                {
                    "accuracy": accuracy_score(test.labels, pred),
                    "f1": f1_score(test.labels, pred, average="macro"),
                    "f1_weighted": f1_score(test.labels, pred, average="weighted"),
                }
            )
        scores = {k: float(np.mean([e[k] for e in per_exp])) for k in per_exp[0]}
        return SplitOutput(scores, n_items=len(test.texts), items={"correct": (correct / len(experiments)).tolist()})
