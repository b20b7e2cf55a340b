#!/usr/bin/env bash
# Re-copy the vendored NiiVue viewer from npm at a pinned version (needs npm and network).
# The Python package ships the result, so `pip install medseg` + `medseg serve` work offline.
# After changing VERSION, update the first line of LICENSE-niivue.txt and re-run the browser test.
set -euo pipefail
VERSION="${1:-0.69.0}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack "@niivue/niivue@${VERSION}" --silent >/dev/null)
tar -xzf "$work"/niivue-niivue-"${VERSION}".tgz -C "$work"
cp "$work/package/dist/niivue.umd.js" "$here/niivue.umd.js"
echo "copied @niivue/niivue ${VERSION} ($(wc -c <"$here/niivue.umd.js") bytes) to $here"
