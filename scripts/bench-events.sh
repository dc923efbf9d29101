#!/usr/bin/env bash
# bench-events.sh: measure events per second end to end through the real
# daemons (e2e/events/bench_test.go): TCP senders -> eventsink (spool) ->
# gwproxy -> relay -> relay -> epproxy -> an in-test event server, and
# print a summary.
#
#   scripts/bench-events.sh [SUB-BENCH-REGEXP] [extra go test flags...]
#
# SUB-BENCH-REGEXP selects the spool's fsync policy: "interval" (the
# default: batched fsync every 200ms, the configured default), "always"
# (one fsync per event), or "." for both. Environment:
#   EVENTS  events per run (-benchtime EVENTSx; default 100000)
#   COUNT   -count (default 3)
#   OUT     file for the raw go test output (default: a temporary file)
#   TMPDIR  where the daemons' instance directories (spool, state) go: the
#           filesystem under test for the fsyncs
#
# Examples:
#   scripts/bench-events.sh
#   EVENTS=20000 scripts/bench-events.sh always
#   TMPDIR=/var/tmp COUNT=5 scripts/bench-events.sh .
#
# The figure is measured, never asserted. Each run starts its own chain,
# outside the timer; one op is one event, timed from the first write to
# the last event read by the event server.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

sub="${1:-interval}"
if [[ $# -gt 0 ]]; then shift; fi
events="${EVENTS:-100000}"
count="${COUNT:-3}"
out="${OUT:-$(mktemp "${TMPDIR:-/tmp}/relaychain-bench-events.XXXXXX")}"

go test -run '^$' -bench "BenchmarkEventsEndToEnd/$sub" -benchtime "${events}x" -count "$count" "$@" ./e2e/events/ 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
if [[ $status -ne 0 ]]; then
	echo "bench-events.sh: go test failed (exit $status); raw output in $out" >&2
	exit "$status"
fi

echo
echo "Summary (raw output in $out; $events events per run)"
awk '
/^BenchmarkEventsEndToEnd/ {
	name = $1
	sub(/^BenchmarkEventsEndToEnd\//, "", name)
	sub(/-[0-9]+$/, "", name)
	for (i = 3; i + 1 <= NF; i += 2) {
		if ($(i + 1) == "events/s") { v = $i }
		if ($(i + 1) == "MB/s") { mb = $i }
	}
	n[name]++
	sum[name] += v
	mbsum[name] += mb
	if (!(name in lo) || v < lo[name]) lo[name] = v
	if (!(name in hi) || v > hi[name]) hi[name] = v
}
END {
	printf "%-24s %5s %12s %12s %12s %8s\n", "spool fsync", "runs", "events/s", "min", "max", "MB/s"
	for (k in n)
		printf "%-24s %5d %12.0f %12.0f %12.0f %8.2f\n", k, n[k], sum[k] / n[k], lo[k], hi[k], mbsum[k] / n[k]
}' "$out"
