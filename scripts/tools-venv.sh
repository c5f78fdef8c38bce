#!/usr/bin/env bash
# The command-line tools of the checks (checkov, bandit, pip-audit), in their own venv
# (.devstack/tools-venv), not in .venv: checkov's pins would fight the runtime lock, and bandit and
# pip-audit bring rich, which structlog then imports with the function (it made `import main` 25 ms
# slower in make bench's cold-start figure). Installed once; the stamp names the versions.
# Prints the venv's path.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS_VENV="$ROOT/.devstack/tools-venv"
TOOLS="checkov==3.3.30 bandit==1.9.4 pip-audit==2.10.1"
STAMP="$TOOLS_VENV/.installed-$(printf '%s' "$TOOLS" | cksum | cut -d' ' -f1)"

if [[ ! -f "$STAMP" ]]; then
  printf 'tools-venv: installing %s into %s (once)\n' "$TOOLS" "$TOOLS_VENV" >&2
  python3 -m venv "$TOOLS_VENV"
  # shellcheck disable=SC2086  # the list is ours, word splitting intended
  "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check $TOOLS >&2
  touch "$STAMP"
fi
printf '%s\n' "$TOOLS_VENV"
