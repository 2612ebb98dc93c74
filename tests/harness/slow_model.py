"""A plugin for the concurrency tests (``--plugin tests.harness.slow_model``): ``test-slow``, test-random that
takes a while per encode call and appends a line to ``$ZOOBENCH_TEST_ENCODE_LOG`` for each."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from zoo.families.baselines import CARDS, HashingEncoder
from zoo.registry import ModelCard, register_model

CARD = dataclasses.replace(CARDS["test-random"], name="test-slow")


class SlowEncoder(HashingEncoder):
    def encode(self, texts: Sequence[str], *, kind: str = "document", batch_size: int = 32) -> np.ndarray:
        with open(os.environ["ZOOBENCH_TEST_ENCODE_LOG"], "a") as log:
            log.write(f"{os.getpid()} {len(texts)}\n")
        time.sleep(float(os.environ.get("ZOOBENCH_TEST_ENCODE_SLEEP", "1")))
        return super().encode(texts, kind=kind, batch_size=batch_size)


@register_model("test-slow", cards=[CARD])
def test_slow(card: ModelCard, **kwargs: Any) -> SlowEncoder:
    """test-random, slowly."""
    return SlowEncoder(card, **kwargs)
