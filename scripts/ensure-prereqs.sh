#!/usr/bin/env bash
# The Firestore emulator (from the Google Cloud CLI) and Java are needed by `make test` and
# `make demo`. Install them with apt when we can (root on Debian/Ubuntu), else say how.
set -euo pipefail

have_emulator() {
  local gcloud_bin root
  gcloud_bin=$(command -v gcloud 2>/dev/null) || return 1
  root=$(cd "$(dirname "$(readlink -f "$gcloud_bin")")/.." && pwd)
  [ -x "$root/platform/cloud-firestore-emulator/cloud_firestore_emulator" ]
}
have_java() { command -v java >/dev/null 2>&1 || [ -n "${JAVA:-}" ]; }

if have_emulator && have_java; then exit 0; fi

missing=()
have_emulator || missing+=(google-cloud-cli-firestore-emulator)
have_java || missing+=(openjdk-17-jre-headless)
echo "prereqs: missing ${missing[*]}" >&2

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; then
    have_emulator && have_java && exit 0
  fi
fi
cat >&2 <<'MSG'
prereqs: cannot install them automatically. Fix:
  - Google Cloud CLI: https://cloud.google.com/sdk/docs/install
  - the emulator:     gcloud components install cloud-firestore-emulator
                      (apt-managed SDK: sudo apt-get install google-cloud-cli-firestore-emulator)
  - Java 17+:         sudo apt-get install openjdk-17-jre-headless
MSG
exit 1
