#!/usr/bin/env bash
# Interop against the Python ARCP reference (agentruntimecontrolprotocol==1.1.3), both ways:
# 1. its client drives our `arcp serve` through hello, submit, streaming, result, listing,
#    subscription (history and live), acks and resume;
# 2. our client (crates/arcp-client/examples/interop.rs) drives its runtime, started through
#    its library by python_runtime.py with our built-in agents, through hello, submit,
#    streaming, result, cancel, subscription with history, acks, listing and resume.
# Installs the reference into a venv under the cargo target directory ($CARGO_TARGET_DIR, or
# target/) from PyPI, builds, runs, cleans up.
# Findings: spec/interop.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
target_dir="${CARGO_TARGET_DIR:-target}"
venv="$target_dir/interop-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import arcp' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check agentruntimecontrolprotocol==1.1.3
fi
cargo build --quiet --locked -p runtime
cargo build --quiet --locked -p arcp-client --example interop

out=$(mktemp)
ref_out=$(mktemp)
ref_log=$(mktemp)
server=""
reference=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  [ -n "$reference" ] && kill "$reference" 2>/dev/null || true
  rm -f "$out" "$ref_out" "$ref_log"
  [ -n "${store_dir:-}" ] && rm -rf "$store_dir" || true
}
trap cleanup EXIT

# 1. The Python reference client against arcp serve.
store_dir=$(mktemp -d)
"$target_dir/debug/arcp" serve --listen 127.0.0.1:0 --token interop-token --store "sqlite:$store_dir/arcp.db" >"$out" 2>/dev/null &
server=$!
url=""
for _ in $(seq 1 100); do
  url=$(sed -n 's/^arcp listening on \(ws:\/\/[^ ]*\)$/\1/p' "$out" | head -n 1)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "arcp serve did not start"; exit 1; }
echo "interop: Python reference client against $url"
timeout 120 "$venv/bin/python" conformance/interop/python_client.py "$url" interop-token
kill "$server" 2>/dev/null || true
wait "$server" 2>/dev/null || true
server=""

# 2. Our client against the Python reference runtime (port 0: it prints the port it got).
"$venv/bin/python" conformance/interop/python_runtime.py --host 127.0.0.1 --port 0 \
  --token interop-token >"$ref_out" 2>"$ref_log" &
reference=$!
ref_url=""
for _ in $(seq 1 150); do
  ref_url=$(sed -n 's/^listening on \(ws:\/\/[^ ]*\)$/\1/p' "$ref_out" | head -n 1)
  [ -n "$ref_url" ] && break
  kill -0 "$reference" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$ref_url" ]; then
  echo "the Python reference runtime did not start:"
  cat "$ref_log"
  exit 1
fi
echo "interop: arcp-rs client against the Python reference runtime at $ref_url"
if ! timeout 150 "$target_dir/debug/examples/interop" "$ref_url" interop-token; then
  echo "the Python reference runtime's log (last 40 lines):"
  tail -n 40 "$ref_log"
  exit 1
fi
