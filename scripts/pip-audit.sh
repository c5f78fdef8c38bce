#!/usr/bin/env bash
# Audit the deploy lock (requirements.txt: what the Cloud Function runs) for known vulnerabilities.
#
#   scripts/pip-audit.sh [REQUIREMENTS] [-- extra pip-audit args, e.g. --ignore-vuln GHSA-…]
#
# Exit 0: every pinned dependency was audited and none has a known vulnerability; or the
#         vulnerability services cannot be reached, printed as "SKIPPED: vulnerability service
#         unreachable" (PyPI's JSON API is tried first, then OSV).
# Exit 1: a dependency has a known vulnerability (listed with its fixed versions), some
#         dependencies could not be audited while others could, or pip-audit failed otherwise.
#
# The lock pins every package (make lock), so pip-audit runs with --no-deps --disable-pip: it reads
# the pins and queries the service; nothing is resolved or installed. PIP_AUDIT overrides the
# pip-audit command (default: the tools venv's, scripts/tools-venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

requirements="requirements.txt"
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
    requirements="$1"
    shift
fi
[ "${1:-}" != "--" ] || shift

python=".venv/bin/python"
[ -x "$python" ] || python="python3"
default_pip_audit="$("$(dirname "$0")/tools-venv.sh")/bin/pip-audit"
export PIP_AUDIT="${PIP_AUDIT:-$default_pip_audit}"

exec "$python" - "$requirements" "$@" <<'PY'
import json
import os
import re
import shlex
import subprocess
import sys

requirements, extra = sys.argv[1], sys.argv[2:]
UNREACHABLE = re.compile(
    r"ConnectionError|Could not connect|NameResolution|Name or service not known|Max retries exceeded"
    r"|timed out|Timeout|Temporary failure in name resolution|Network is unreachable|Connection refused"
    r"|ProxyError|SSLError|not redirecting properly"
)


def audit(service):
    """('ok', deps) | ('unreachable', why) | ('error', why)"""
    argv = [*shlex.split(os.environ["PIP_AUDIT"]), "-r", requirements, "--no-deps", "--disable-pip"]
    argv += ["--progress-spinner", "off", "--desc", "off", "-f", "json", "-s", service, *extra]
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    last = next((line for line in reversed(done.stderr.splitlines()) if line.strip()), f"exit {done.returncode}")
    try:
        report = json.loads(done.stdout)
    except ValueError:
        kind = "unreachable" if UNREACHABLE.search(last) else "error"
        return kind, f"{service}: {last.strip()[:300]}"
    deps = report.get("dependencies", [])
    audited = [dep for dep in deps if "skip_reason" not in dep]
    if deps and not audited:  # every lookup failed: the service answered nothing usable (e.g. a proxy's 404s)
        return "unreachable", f"{service}: no dependency could be looked up ({deps[0]['skip_reason']})"
    return "ok", deps


reasons = []
for service in ("pypi", "osv"):
    kind, result = audit(service)
    if kind == "ok":
        break
    if kind == "error":
        print(f"pip-audit failed: {result}", file=sys.stderr)
        sys.exit(1)
    reasons.append(result)
else:
    print(f"SKIPPED: vulnerability service unreachable; {requirements} was NOT audited ({'; '.join(reasons)})")
    sys.exit(0)

vulnerable = [dep for dep in result if dep.get("vulns")]
skipped = [dep for dep in result if "skip_reason" in dep]
for dep in vulnerable:
    for vuln in dep["vulns"]:
        fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version"
        aliases = ", ".join(vuln.get("aliases") or [])
        print(f"VULNERABLE: {dep['name']}=={dep['version']}: {vuln['id']} ({aliases}); fixed in: {fixes}")
for dep in skipped:
    print(f"NOT AUDITED: {dep['name']}: {dep['skip_reason']}")
if vulnerable or skipped:
    print(f"pip-audit ({service}): {len(vulnerable)} vulnerable, {len(skipped)} not audited, in {requirements}")
    sys.exit(1)
print(f"pip-audit ({service}): {len(result)} pinned dependencies of {requirements}, no known vulnerabilities")
PY
