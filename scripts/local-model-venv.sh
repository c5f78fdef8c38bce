#!/usr/bin/env bash
# The local model's own venv (.devstack/local-model-venv) with devstack/local-model-requirements.txt:
# llama-cpp-python's OpenAI-compatible server and the SmolLM2-135M-Instruct GGUF file. Kept out of
# .venv (the function's environment must not get llama.cpp or numpy). Idempotent: a stamp named by
# the hash of the requirements and of the interpreter's version says the venv is current; otherwise
# it is rebuilt from scratch. The first build on a machine compiles llama.cpp (about 4 minutes on 2
# cores); pip caches the wheel it built, so a rebuild on that machine takes about 15 s.
# Uses $PYTHON (the Makefile passes its own), else python3. pip's output goes to
# .devstack/local-model-build.log.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
VENV="$ROOT/.devstack/local-model-venv"
REQUIREMENTS="$ROOT/devstack/local-model-requirements.txt"
LOG="$ROOT/.devstack/local-model-build.log"

key=$({ cat "$REQUIREMENTS"; "$PYTHON" --version 2>&1; } | "$PYTHON" -c \
  'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:16])')
STAMP="$VENV/.installed-$key"

if [[ -f "$STAMP" ]]; then
  printf 'local-model: %s is up to date\n' "$VENV"
  exit 0
fi

started=$SECONDS
printf 'local-model: building %s from %s\n' "$VENV" "${REQUIREMENTS#"$ROOT"/}"
printf 'local-model: a first build compiles llama.cpp (about 4 min on 2 cores; pip caches the wheel); log: %s\n' \
  "${LOG#"$ROOT"/}"
rm -rf "$VENV"
mkdir -p "$(dirname "$LOG")"
"$PYTHON" -m venv "$VENV"
if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -r "$REQUIREMENTS" >"$LOG" 2>&1; then
  tail -n 30 "$LOG" >&2
  printf 'local-model: pip install failed (a compiler and cmake are needed to build llama-cpp-python); full log: %s\n' \
    "$LOG" >&2
  exit 1
fi
touch "$STAMP"
printf 'local-model: ready in %ss\n' "$((SECONDS - started))"
