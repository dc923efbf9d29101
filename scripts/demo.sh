#!/usr/bin/env bash
# demo.sh: builds everything and runs the example chain of
# configs/example on loopback: an epproxy, two relays and two gwproxies
# (plus an eventsink), each started with its own start/stop script in its
# own instance directory under run/demo. It sends an upcall and a downcall
# through the chain, shows the sessions and the WHO/TELL handshake in the
# logs hop by hop, and stops everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"

scripts/build.sh
export RELAYCHAIN_BIN="$root/bin"
run="$root/run/demo"
rm -rf "$run"
mkdir -p "$run"
cp -r configs/example/. "$run/"

pids=()
nodes=(epp-main:epproxy relay-dmz1:relay relay-dmz2:relay gwp-site-a:gwproxy gwp-site-b:gwproxy)
if [ -x bin/eventsink ] && [ -d "$run/es-site-a" ]; then
	nodes+=(es-site-a:eventsink)
fi
cleanup() {
	for n in "${nodes[@]}"; do
		"scripts/${n#*:}.sh" stop "$run/${n%%:*}" >/dev/null 2>&1 || true
	done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

step "demo targets: the gateway and two endpoints"
bin/chaindemo serve -listen 127.0.0.1:19494 -name gateway >"$run/gateway.out" 2>&1 &
pids+=($!)
bin/chaindemo serve -listen 127.0.0.1:19701 -name endpoint-site-a >"$run/endpoint-a.out" 2>&1 &
pids+=($!)
bin/chaindemo serve -listen 127.0.0.1:19702 -name endpoint-site-b >"$run/endpoint-b.out" 2>&1 &
pids+=($!)
if [ -d "$run/es-site-a" ]; then
	bin/chaindemo collect -listen 127.0.0.1:19800 -out "$run/event-server.txt" >"$run/event-server.out" 2>&1 &
	pids+=($!)
fi

step "starting the chain, outermost first (start-up order does not matter)"
for ((i = ${#nodes[@]} - 1; i >= 0; i--)); do
	n="${nodes[$i]}"
	"scripts/${n#*:}.sh" start "$run/${n%%:*}"
done

step "waiting for the WHO/TELL handshake to reach the root"
for _ in $(seq 1 300); do
	if grep -q 'route added.*label=gwp-site-a' "$run/epp-main/epproxy.log" 2>/dev/null &&
		grep -q 'route added.*label=gwp-site-b' "$run/epp-main/epproxy.log" 2>/dev/null &&
		{ [ ! -d "$run/es-site-a" ] || grep -q 'route added.*label=es-site-a' "$run/epp-main/epproxy.log" 2>/dev/null; } &&
		grep -q 'path to the root changed.*path="relay-dmz2,relay-dmz1,epp-main"' "$run/gwp-site-a/gwproxy.log" 2>/dev/null; then
		break
	fi
	sleep 0.1
done
for n in "${nodes[@]}"; do
	name="${n%%:*}"
	echo "-- $name"
	grep -h 'routing: ' "$run/$name/${n#*:}.log" | grep -E 'command received|route added|path to the root' | sed 's/^/   /' || true
done

step "upcall: an endpoint at site A connects to its gwproxy, as if to the gateway"
bin/chaindemo send -addr 127.0.0.1:19601 -bytes 4194304
step "upcall from site B"
bin/chaindemo send -addr 127.0.0.1:19602 -bytes 1048576
step "downcall: the gateway connects to epp-main to reach an endpoint at site A"
bin/chaindemo send -addr 127.0.0.1:19501 -bytes 4194304
step "downcall to site B"
bin/chaindemo send -addr 127.0.0.1:19502 -bytes 1048576

if [ -d "$run/es-site-a" ]; then
	step "events: a log adapter at site A sends 3 EIF events to its eventsink"
	printf 'Demo_Event;msg=%s;sev=WARNING;END\n' one two three >/dev/tcp/127.0.0.1/19810
	for _ in $(seq 1 100); do
		[ "$(grep -c 'Demo_Event' "$run/event-server.txt" 2>/dev/null || true)" -ge 3 ] && break
		sleep 0.1
	done
	echo "the event server received:"
	sed 's/^/   /' "$run/event-server.txt"
fi

sleep 0.2 # let the last session-closed lines reach the logs
step "the sessions, hop by hop (level 3 log lines)"
for n in "${nodes[@]}"; do
	name="${n%%:*}"
	echo "-- $name"
	grep -h 'session: \(opened\|forwarded\|closed\)' "$run/$name/${n#*:}.log" | head -n 8 | sed 's/^/   /' || true
done

step "status, then stopping the chain"
for n in "${nodes[@]}"; do "scripts/${n#*:}.sh" status "$run/${n%%:*}"; done
for n in "${nodes[@]}"; do "scripts/${n#*:}.sh" stop "$run/${n%%:*}"; done
trap - EXIT
cleanup
step "demo finished: logs are in run/demo/*/"
