"""Dataset sources: one module per source, each a loader plus its task declarations.

A source module offers four functions: ``specs(data_dir)`` (the tasks it can list),
``spec(name, data_dir)`` (one task, or a one-line ``ZooError``), ``load(spec, split)`` (the data
of one split in the shape the task type reads) and ``checksum(spec)`` (recorded with results, and
compared on reruns). A source whose tasks are run by another tool (mteb) also offers
``task_class(spec)``: the Task class to use instead of ``TASK_TYPES[spec.type]``.
"""

from __future__ import annotations

from types import ModuleType

from harness.datasets import beir, local, mteb, synthetic, trec_dl

__all__ = ["SOURCES"]

SOURCES: dict[str, ModuleType] = {
    "local": local,
    "mteb": mteb,
    "beir": beir,
    "trec-dl": trec_dl,
    "synthetic": synthetic,
}
