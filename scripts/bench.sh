#!/usr/bin/env bash
# bench.sh: run the relay chain benchmarks (mux/bench*_test.go) and print a
# summary with the project's targets beside the figures.
#
#   scripts/bench.sh [BENCH-REGEXP] [extra go test flags...]
#
# BENCH-REGEXP defaults to "." (all). Environment:
#   BENCHTIME  -benchtime (default 2s)
#   COUNT      -count (default 1)
#   OUT        file for the raw go test output (default: a temporary file)
#
# Examples:
#   scripts/bench.sh
#   scripts/bench.sh Throughput -cpuprofile /tmp/cpu.out
#   BENCHTIME=5s COUNT=3 scripts/bench.sh SessionOpens
#
# The targets are measured, never asserted: CPU per GB moved through
# leaf-relay-root at most 1 s summed over the nodes; at least 3,000 session
# opens/s; at most 10 KB per idle session per node; a tree of 2,000 leaves
# and 100,000 endpoint labels routed at the root within 5 s of the first
# announcement; at most 200 bytes of heap per route at the root. A full run
# takes about two minutes on two cores (BenchmarkConverge builds the tree
# three times, several seconds each).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bench="${1:-.}"
if [[ $# -gt 0 ]]; then shift; fi
benchtime="${BENCHTIME:-2s}"
count="${COUNT:-1}"
out="${OUT:-$(mktemp "${TMPDIR:-/tmp}/relaychain-bench.XXXXXX")}"

# One op of BenchmarkIdleSessionHeap opens 2,000 sessions and takes seconds,
# so at the default benchtime it runs once or twice.
if ! go test -run '^$' -bench "$bench" -benchtime "$benchtime" -count "$count" "$@" ./mux/ 2>&1 | tee "$out"; then
	echo "bench.sh: go test failed; raw output in $out" >&2
	exit 1
fi

echo
echo "Summary (raw output in $out)"
awk '
function fmt(v) {
	if (v >= 1000 || v <= -1000) return sprintf("%.0f", v)
	return sprintf("%.3g", v)
}
BEGIN {
	target["ThroughputLeafRelayRoot node-cpu-s/GB"] = "<= 1"
	target["SessionOpens opens/s"] = ">= 3000"
	target["IdleSessionHeap heap-B/sess/node"] = "<= 10240"
	target["Converge/cold=held/log=0 ms-cold"] = "<= 5000"
	target["RoutingTableHeap heap-B/route"] = "<= 200"
	keep["MB/s"] = 1; keep["cpu-s/GB"] = 1; keep["node-cpu-s/GB"] = 1
	keep["ns/rtt-1hop"] = 1; keep["ns/rtt-3hop"] = 1; keep["ns/hop-rtt"] = 1
	keep["opens/s"] = 1; keep["cpu-us/open"] = 1
	keep["heap-B/sess/node"] = 1; keep["stack-B/sess/node"] = 1
	keep["heap-B/sess-all"] = 1; keep["stack-B/sess-all"] = 1
	keep["ms-cold"] = 1; keep["ms-total"] = 1; keep["ms-restart"] = 1; keep["ms-cpu"] = 1
	keep["relay-B/route"] = 1; keep["ctl-B/label"] = 1
	keep["heap-B/route"] = 1; keep["ns/route"] = 1; keep["ns/label"] = 1
	printf "%-38s %-16s %10s  %s\n", "benchmark", "metric", "value", "target"
	printf "%-38s %-16s %10s  %s\n", "---------", "------", "-----", "------"
}
/^Benchmark/ {
	name = $1
	sub(/^Benchmark/, "", name)
	sub(/-[0-9]+$/, "", name)
	for (i = 3; i + 1 <= NF; i += 2) {
		unit = $(i + 1)
		if (!(unit in keep)) continue
		printf "%-38s %-16s %10s  %s\n", name, unit, fmt($i), target[name " " unit]
	}
}
' "$out"
