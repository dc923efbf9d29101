#!/usr/bin/env bash
# bench-chain.sh: measure the real binaries as their users see them
# (tools/chainbench): a chain gwproxy -> relay -> epproxy on loopback, on
# TLS and on plaintext links, beside three plain read/write relays, each
# node its own process, measured from outside. Prints a Markdown table of
# medians and ratios; the progress goes to standard error.
#
#   scripts/bench-chain.sh [chainbench flags...]
#
# Environment:
#   OUT  file the table is also written to (default: none)
#
# Examples:
#   scripts/bench-chain.sh                     # the full bench: 3 rounds, about 15 minutes on 2 cores
#   scripts/bench-chain.sh -quick              # a few seconds per system: does it work?
#   scripts/bench-chain.sh -rounds 5 -settle 10s,30s,60s -held 9000
#   scripts/bench-chain.sh -systems tls,ref -mib 512 -settle 1s,2s,3s
#   scripts/bench-chain.sh -systems plain,splice -rtts 5000  # the round trip against two splice relays
#   # a change against the build before it, in the same rounds (OLD holds
#   # the epproxy, relay and gwproxy built before the change):
#   scripts/bench-chain.sh -base-bin OLD -systems base-plain,plain,ref
#
# Nothing is asserted: the figures are measured. See tools/chainbench for
# what each one is.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/build.sh >&2
go build -trimpath -o bin/ ./tools/chainbench
if [[ -n "${OUT:-}" ]]; then
	bin/chainbench -bin bin "$@" | tee "$OUT"
else
	bin/chainbench -bin bin "$@"
fi
