#!/usr/bin/env bash
# The Terraform checks of `make lint`, all offline:
#   1. terraform fmt -check (when terraform is installed)
#   2. terraform validate, when `terraform init` can get the providers (it cannot offline: say so)
#   3. python-hcl2 parses every .tf file (the same parser tests/unit/test_terraform.py uses)
#   4. checkov on deploy/terraform, from the tools venv (scripts/tools-venv.sh)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TF_DIR="$ROOT/deploy/terraform"
PY=${PY:-$ROOT/.venv/bin/python}

say() { printf 'check-terraform: %s\n' "$*"; }

# A TF_CLI_CONFIG_FILE that points nowhere only makes terraform print warnings.
if [[ -n "${TF_CLI_CONFIG_FILE:-}" && ! -e "$TF_CLI_CONFIG_FILE" ]]; then
  unset TF_CLI_CONFIG_FILE
fi

# 1-2. terraform itself
if command -v terraform >/dev/null 2>&1; then
  terraform fmt -check -recursive -diff "$TF_DIR"
  say "terraform fmt: ok"
  data_dir="$ROOT/.devstack/terraform-data"
  mkdir -p "$data_dir"
  if TF_DATA_DIR="$data_dir" terraform -chdir="$TF_DIR" init -backend=false -input=false -no-color \
    >"$data_dir/init.log" 2>&1; then
    TF_DATA_DIR="$data_dir" terraform -chdir="$TF_DIR" validate -no-color
  else
    say "SKIPPED terraform validate: 'terraform init' could not install the providers (offline?); see $data_dir/init.log"
  fi
else
  say "SKIPPED terraform fmt/validate: terraform is not installed"
fi

# 3. every file parses
"$PY" - "$TF_DIR" <<'PY'
import sys
from pathlib import Path

import hcl2

files = sorted(Path(sys.argv[1]).glob("*.tf"))
for path in files:
    with path.open(encoding="utf-8") as handle:
        hcl2.load(handle)
print(f"check-terraform: python-hcl2 parsed {len(files)} files")
PY

# 4. checkov, offline (--skip-download: no guidelines or policies fetched from Prisma Cloud)
TOOLS_VENV=$("$ROOT/scripts/tools-venv.sh")
"$TOOLS_VENV/bin/checkov" -d "$TF_DIR" --framework terraform --quiet --compact --skip-download
say "checkov: ok"
