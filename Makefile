# Everything CI runs is behind these targets; .ci/run calls `make lint test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

.DEFAULT_GOAL := help
.PHONY: help install prereqs test unit chaos bench lint demo seed seed-dry-run stub lock clean

help:
	@echo "make install   create $(VENV)/ with runtime and dev dependencies"
	@echo "make test      unit, service, integration (real emulators) and e2e (real trigger loop) tests, with coverage"
	@echo "make bench     benchmarks, each printed as a ratio to a baseline measured in the same run"
	@echo "make chaos     the fault-injection tests alone, printing their figures (docs/reliability.md)"
	@echo "make lint      ruff, ruff format --check, mypy --strict, and the prompts/profiles lint"
	@echo "make demo      local stack: emulator + fake GCS + Gemini stub + the function; runs a demo flow"
	@echo "make seed      push prompts/ and llm_profiles.yaml to the Firestore in GOOGLE_CLOUD_PROJECT"
	@echo "make seed-dry-run  show what 'make seed' would change, write nothing"
	@echo "make unit      the fast tests only (unit and service: fakes, no emulator), about 10 s"
	@echo "make stub      serve the local Gemini stub on its own (python -m devstack stub)"
	@echo "make lock      regenerate requirements.txt, the pinned deploy lock"
	@echo "make clean     remove .venv/, .devstack/ and the tools' caches"

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -e ".[dev]"
	@touch $(STAMP)

prereqs:
	@scripts/ensure-prereqs.sh

# Coverage is measured in this process (function processes of the e2e tests are not): the
# package must stay above 85 %, its pure core at 100 % (lines and branches).
test: install prereqs
	@mkdir -p .devstack
	$(PY) -m coverage run -m pytest
	$(PY) -m coverage report --fail-under=85
	$(PY) -m coverage report --include='worker_llm_client/core/*' --fail-under=100

unit: install
	$(PY) -m pytest tests/unit tests/service

# Benchmarks: each figure against a baseline measured in the same run; regenerates the results
# section of docs/benchmarks.md, its histogram and the profiles in docs/profiles/ (bench extra).
bench: install prereqs $(BENCH_STAMP)
	$(PY) -m benchmarks

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev,bench]"
	@touch $(BENCH_STAMP)

# Fault injection through the real trigger loop; figures in .devstack/chaos-results.json
chaos: install prereqs
	$(PY) -m pytest tests/chaos -q
	@cat .devstack/chaos-results.json

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m worker_llm_client lint

demo: install prereqs
	$(PY) -m devstack demo

seed: install
	$(PY) -m worker_llm_client seed

seed-dry-run: install
	$(PY) -m worker_llm_client seed --dry-run

stub: install
	$(PY) -m devstack stub

# Regenerate the pinned deploy lock from pyproject's runtime dependencies.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --disable-pip-version-check .
	{ echo "# Pinned deploy lock for the Cloud Function (runtime only; dev tools live in pyproject's [dev] extra)."; \
	  echo "# Regenerate: make lock"; \
	  .lock-venv/bin/pip freeze --exclude-editable | grep -v -E '^(worker-llm-client|pip|setuptools|wheel)[= @]'; } > requirements.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .devstack .pytest_cache .mypy_cache .ruff_cache
