#!/usr/bin/env bash
# bench.sh: run the relay chain benchmarks (mux/bench*_test.go) and print a
# summary with the project's targets beside the figures.
#
#   scripts/bench.sh [BENCH-REGEXP] [extra go test flags...]
#
# BENCH-REGEXP defaults to "." (all). Environment:
#   BENCHTIME  -benchtime (default 2s)
#   COUNT      how many runs (default 1): the whole selection runs COUNT
#              times in a row, one go test each, so that the variants of a
#              benchmark alternate and a quiet or busy spell of the machine
#              falls on both; the summary gives the median of the runs
#   OUT        file for the raw go test output (default: a temporary file)
#
# Examples:
#   scripts/bench.sh
#   COUNT=5 scripts/bench.sh
#   scripts/bench.sh 'Throughput.*/tls' -cpuprofile /tmp/cpu.out
#   BENCHTIME=5s COUNT=3 scripts/bench.sh SessionOpens
#
# The chain's throughput and session-open benchmarks run twice, links on
# TLS (sub-benchmark tls) and Plaintext (plain); the summary puts the two
# side by side with their ratio: the ratio of the medians, and the median
# and range of the ratios within each run (the steadier figure when the
# machine's load changes between runs).
#
# The targets are measured, never asserted: CPU per GB moved through
# leaf-relay-root at most 1 s summed over the nodes, and with TLS at most
# 1.4 times that without; at least 3,000 session opens/s; at most 10 KB per
# idle session per node; a tree of 2,000 leaves and 100,000 endpoint labels
# routed at the root within 5 s of the first announcement; at most 200
# bytes of heap per route at the root. A full run takes about three
# minutes on two cores (BenchmarkConverge builds the tree three times,
# several seconds each).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bench="${1:-.}"
if [[ $# -gt 0 ]]; then shift; fi
benchtime="${BENCHTIME:-2s}"
count="${COUNT:-1}"
out="${OUT:-$(mktemp "${TMPDIR:-/tmp}/relaychain-bench.XXXXXX")}"
: >"$out"

# One op of BenchmarkIdleSessionHeap opens 2,000 sessions and takes seconds,
# so at the default benchtime it runs once or twice.
for ((run = 1; run <= count; run++)); do
	if ((count > 1)); then echo "bench.sh: run $run of $count" | tee -a "$out"; fi
	if ! go test -run '^$' -bench "$bench" -benchtime "$benchtime" -count 1 "$@" ./mux/ 2>&1 | tee -a "$out"; then
		echo "bench.sh: go test failed; raw output in $out" >&2
		exit 1
	fi
done

echo
echo "Summary: medians of $count run(s) (raw output in $out)"
awk '
function fmt(v) {
	if (v >= 1000 || v <= -1000) return sprintf("%.0f", v)
	return sprintf("%.3g", v)
}
# median of the values of key k (n[k] of them, in val[k, 1..n[k]])
function median(k,    i, j, t, m, a) {
	m = n[k]
	for (i = 1; i <= m; i++) a[i] = val[k, i]
	for (i = 2; i <= m; i++) {
		t = a[i]
		for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]
		a[j + 1] = t
	}
	if (m % 2) return a[(m + 1) / 2]
	return (a[m / 2] + a[m / 2 + 1]) / 2
}
BEGIN {
	target["ThroughputLeafRelayRoot node-cpu-s/GB"] = "<= 1"
	ratioTarget["ThroughputLeafRelayRoot node-cpu-s/GB"] = "tls <= 1.4x"
	ratioTarget["ThroughputChain node-cpu-s/GB"] = "tls <= 1.4x"
	target["SessionOpens opens/s"] = ">= 3000"
	target["IdleSessionHeap heap-B/sess/node"] = "<= 10240"
	target["Converge/cold=held/log=0 ms-cold"] = "<= 5000"
	target["RoutingTableHeap heap-B/route"] = "<= 200"
	keep["MB/s"] = 1; keep["cpu-s/GB"] = 1; keep["node-cpu-s/GB"] = 1
	keep["ns/rtt-1hop"] = 1; keep["ns/rtt-3hop"] = 1; keep["ns/hop-rtt"] = 1
	keep["opens/s"] = 1; keep["cpu-us/open"] = 1
	keep["heap-B/sess/node"] = 1; keep["stack-B/sess/node"] = 1
	keep["heap-B/sess-all"] = 1; keep["stack-B/sess-all"] = 1
	run = 0
	keep["ms-cold"] = 1; keep["ms-total"] = 1; keep["ms-restart"] = 1; keep["ms-cpu"] = 1
	keep["relay-B/route"] = 1; keep["ctl-B/label"] = 1
	keep["heap-B/route"] = 1; keep["ns/route"] = 1; keep["ns/label"] = 1
}
/^goos:/ { run++ }
/^Benchmark/ {
	name = $1
	sub(/^Benchmark/, "", name)
	sub(/-[0-9]+$/, "", name)
	base = name; variant = ""
	if (name ~ /\/(tls|plain)$/) {
		variant = name; sub(/^.*\//, "", variant)
		sub(/\/(tls|plain)$/, "", base)
	}
	for (i = 3; i + 1 <= NF; i += 2) {
		unit = $(i + 1)
		if (!(unit in keep)) continue
		k = name SUBSEP unit
		if (!(k in n)) { order[++nk] = k; n[k] = 0 }
		val[k, ++n[k]] = $i
		byRun[k, run] = $i
		if (variant != "") {
			pk = base SUBSEP unit
			if (!(pk in paired)) { porder[++np] = pk; paired[pk] = 1 }
		}
	}
	runs = run
}
END {
	if (np > 0) {
		print "Links on TLS and Plaintext. tls/plain: the ratio of the medians; per run: the median (and range)"
		print "of the ratios of the two variants in each run."
		printf "%-24s %-14s %9s %9s %9s %18s  %s\n", "benchmark", "metric", "plain", "tls", "tls/plain", "per run", "target"
		printf "%-24s %-14s %9s %9s %9s %18s  %s\n", "---------", "------", "-----", "---", "---------", "-------", "------"
		for (p = 1; p <= np; p++) {
			split(porder[p], f, SUBSEP)
			kt = f[1] "/tls" SUBSEP f[2]; kp = f[1] "/plain" SUBSEP f[2]
			mt = (kt in n) ? median(kt) : ""; mp = (kp in n) ? median(kp) : ""
			ratio = ""; rng = ""
			if (mt != "" && mp != "" && mp != 0) {
				ratio = sprintf("%.2f", mt / mp)
				rk = "ratio" SUBSEP porder[p]; n[rk] = 0; lo = ""; hi = ""
				for (r = 1; r <= runs; r++) {
					if (!((kt, r) in byRun) || !((kp, r) in byRun) || byRun[kp, r] == 0) continue
					x = byRun[kt, r] / byRun[kp, r]
					val[rk, ++n[rk]] = x
					if (lo == "" || x < lo) lo = x
					if (hi == "" || x > hi) hi = x
				}
				if (lo != "") rng = sprintf("%.2f (%.2f-%.2f)", median(rk), lo, hi)
			}
			t = target[f[1] " " f[2]]
			if (ratioTarget[f[1] " " f[2]] != "") t = t (t != "" ? "; " : "") ratioTarget[f[1] " " f[2]]
			printf "%-24s %-14s %9s %9s %9s %18s  %s\n", f[1], f[2], (mp == "" ? "-" : fmt(mp)), (mt == "" ? "-" : fmt(mt)), ratio, rng, t
		}
		print ""
	}
	printf "%-38s %-16s %12s  %s\n", "benchmark", "metric", "value", "target"
	printf "%-38s %-16s %12s  %s\n", "---------", "------", "-----", "------"
	for (o = 1; o <= nk; o++) {
		split(order[o], f, SUBSEP)
		if (f[1] ~ /\/(tls|plain)$/) continue
		printf "%-38s %-16s %12s  %s\n", f[1], f[2], fmt(median(order[o])), target[f[1] " " f[2]]
	}
}
' "$out"
