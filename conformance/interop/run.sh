#!/usr/bin/env bash
# Interop against the Python ARCP reference (agentruntimecontrolprotocol==1.1.3):
# its client drives our `arcp serve` through hello, submit, streaming, result and resume.
# Installs the reference into a venv under target/ (PyPI), builds the binary, runs, cleans up.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="target/interop-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import arcp' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check agentruntimecontrolprotocol==1.1.3
fi
cargo build --quiet --locked -p runtime
out=$(mktemp)
./target/debug/arcp serve --listen 127.0.0.1:0 --token interop-token >"$out" 2>/dev/null &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f "$out"' EXIT
url=""
for _ in $(seq 1 100); do
  url=$(sed -n 's/^arcp listening on \(ws:\/\/[^ ]*\)$/\1/p' "$out" | head -n 1)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "arcp serve did not start"; exit 1; }
echo "interop: Python reference client against $url"
timeout 120 "$venv/bin/python" conformance/interop/python_client.py "$url" interop-token
