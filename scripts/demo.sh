#!/usr/bin/env bash
# demo.sh: builds everything and runs the example chain of
# configs/example on loopback: an epproxy, two relays and two gwproxies
# (plus an eventsink), each started with its own start/stop script in its
# own instance directory under run/demo. It sends an upcall and a downcall
# through the chain, shows the sessions and the WHO/TELL handshake in the
# logs hop by hop, and stops everything.
#
# Every wait has a bound: when one runs out, the demo says what it waited
# for and where to look, stops the chain and exits 1.
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
events=
if [ -x bin/eventsink ] && [ -d "$run/es-site-a" ]; then
	nodes+=(es-site-a:eventsink)
	events=1
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

# fail says why the demo stops and exits 1 (the trap stops the chain).
fail() {
	printf '\ndemo failed: %s\nthe logs are in %s/*/\n' "$*" "$run" >&2
	exit 1
}

# wait_for SECONDS WHAT COMMAND...: runs COMMAND every 0.1s until it
# succeeds; after SECONDS it fails the demo, saying what it waited for.
wait_for() {
	local secs="$1" what="$2"
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@"; do
		if ((SECONDS >= deadline)); then
			fail "gave up after ${secs}s waiting for $what"
		fi
		sleep 0.1
	done
}

# logged FILE PATTERN: FILE holds a line matching the extended regexp.
logged() { grep -qE -- "$2" "$1" 2>/dev/null; }

# listening NAME: the demo target NAME has said it listens.
listening() { logged "$run/$1.out" 'listening on'; }

step "certificates: a CA for the demo, and one certificate per node (mutual TLS on every link)"
bin/epproxy pki ca --out "$run/ca" >/dev/null
for n in "${nodes[@]}"; do
	label="${n%%:*}"
	"bin/${n#*:}" pki issue --ca "$run/ca" --label "$label" --out "$run/$label" >/dev/null
	echo "  $label: $run/$label/$label.crt, $label.key (mode 0600), ca.crt"
done

step "demo targets: the gateway and two endpoints"
bin/chaindemo serve -listen 127.0.0.1:19494 -name gateway >"$run/gateway.out" 2>&1 &
pids+=($!)
bin/chaindemo serve -listen 127.0.0.1:19701 -name endpoint-site-a >"$run/endpoint-a.out" 2>&1 &
pids+=($!)
bin/chaindemo serve -listen 127.0.0.1:19702 -name endpoint-site-b >"$run/endpoint-b.out" 2>&1 &
pids+=($!)
targets=(gateway endpoint-a endpoint-b)
if [ -n "$events" ]; then
	bin/chaindemo collect -listen 127.0.0.1:19800 -out "$run/event-server.txt" >"$run/event-server.out" 2>&1 &
	pids+=($!)
	targets+=(event-server)
fi
for t in "${targets[@]}"; do
	wait_for 5 "the demo's $t to listen (see $run/$t.out)" listening "$t"
done

step "starting the chain, outermost first (start-up order does not matter)"
for ((i = ${#nodes[@]} - 1; i >= 0; i--)); do
	n="${nodes[$i]}"
	"scripts/${n#*:}.sh" start "$run/${n%%:*}" || fail "${n%%:*} did not start"
done

# formed: the root has a route to every leaf, and every leaf's path to the
# root reaches epp-main. The logger quotes a value only when it holds a
# space or a quote, so the paths below stand unquoted.
formed() {
	local root_log="$run/epp-main/epproxy.log" leaf
	for leaf in gwp-site-a gwp-site-b ${events:+es-site-a}; do
		logged "$root_log" "routing: routes changed through [^ ]+: [0-9]+ added, [0-9]+ removed \[added=([^ ]*,)?$leaf[, ]" || return 1
	done
	logged "$run/gwp-site-a/gwproxy.log" 'routing: path to the root changed \[.*path=relay-dmz2,relay-dmz1,epp-main\]' &&
		logged "$run/gwp-site-b/gwproxy.log" 'routing: path to the root changed \[.*path=relay-dmz2,relay-dmz1,epp-main\]' &&
		{ [ -z "$events" ] || logged "$run/es-site-a/eventsink.log" 'routing: path to the root changed \[.*path=gwp-site-a,relay-dmz2,relay-dmz1,epp-main\]'; }
}

step "waiting for the WHO/TELL handshake to reach the root"
wait_for 15 "the WHO/TELL handshake to reach the root (routes to every leaf in epp-main/epproxy.log, each leaf's path up to epp-main)" formed
for n in "${nodes[@]}"; do
	name="${n%%:*}"
	echo "-- $name"
	grep -h 'routing: ' "$run/$name/${n#*:}.log" | grep -E 'command received|routes changed|path to the root' | sed 's/^/   /' || true
done

# send WHAT ADDR BYTES: one session through the chain, its bytes checked
# by SHA-256 on the way back.
send() {
	bin/chaindemo send -addr "$2" -bytes "$3" -timeout 20s || fail "$1 through $2 did not complete"
}

step "upcall: an endpoint at site A connects to its gwproxy, as if to the gateway"
send "the upcall from site A" 127.0.0.1:19601 4194304
step "upcall from site B"
send "the upcall from site B" 127.0.0.1:19602 1048576
step "downcall: the gateway connects to epp-main to reach an endpoint at site A"
send "the downcall to site A" 127.0.0.1:19501 4194304
step "downcall to site B"
send "the downcall to site B" 127.0.0.1:19502 1048576

if [ -n "$events" ]; then
	step "events: a log adapter at site A sends 3 EIF events to its eventsink"
	send_events() {
		{ printf 'Demo_Event;msg=%s;sev=WARNING;END\n' one two three >/dev/tcp/127.0.0.1/19810; } 2>/dev/null
	}
	wait_for 5 "es-site-a to take events on 127.0.0.1:19810" send_events
	delivered() { [ "$(grep -c 'Demo_Event' "$run/event-server.txt" 2>/dev/null || true)" -ge 3 ]; }
	wait_for 10 "the 3 events at the event server ($run/event-server.txt)" delivered
	echo "the event server received:"
	sed 's/^/   /' "$run/event-server.txt"
fi

# sessions_ended: on every node, each session of the demo's sends that was
# opened or forwarded has logged its end (the event sessions aside).
sessions_ended() {
	local n log started ended
	for n in "${nodes[@]}"; do
		log="$run/${n%%:*}/${n#*:}.log"
		started="$(grep -E 'session: (opened|forwarded) ' "$log" | grep -cv 'service=events' || true)"
		ended="$(grep -E 'session: (closed|aborted) ' "$log" | grep -cv 'service=events' || true)"
		[ "$started" -eq "$ended" ] || return 1
	done
}
wait_for 5 "every session to log its end on every node" sessions_ended
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
