#!/usr/bin/env bash
# Checks in a real browser that Swagger UI at /docs renders an entry per key:
# a model, a split and a sequence of the demo configuration. Needs Debian's
# chromium (apt-get install chromium) and a gateway serving the demo, e.g.
#   npm start -- --port 18080
# Usage: test/browser/check-docs.sh [base-url] [screenshot.png]
set -euo pipefail
base=${1:-http://127.0.0.1:18080}
shot=${2:-/tmp/modelgate-docs.png}
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chrome() {
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --virtual-time-budget=15000 "$@" 2>/dev/null
}
dom=$(chrome --dump-dom "$base/docs/static/index.html")
missing=0
for entry in 'iris-v2 (model)' 'iris (split)' 'iris-pipeline (sequence)' "${EXTRA_ENTRY:-}"; do
  [ -z "$entry" ] && continue
  if grep -qF "$entry" <<<"$dom"; then echo "found: $entry"; else echo "MISSING: $entry"; missing=1; fi
done
chrome --window-size=1280,2400 --screenshot="$shot" "$base/docs/static/index.html#/keys" >/dev/null
echo "screenshot: $shot"
exit $missing
