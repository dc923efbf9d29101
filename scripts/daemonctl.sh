#!/usr/bin/env bash
# daemonctl.sh: start, stop and watch one instance of a relay chain daemon.
# Sourced by epproxy.sh, gwproxy.sh, relay.sh and eventsink.sh, which set
# DAEMON to their daemon's name. Usage (through those scripts):
#
#   NAME.sh start|stop|status|restart|reload|check|upgrade [instance-dir]
#
# upgrade starts the binary (a new version put in its place) beside the
# running instance: the new process takes the listening sockets over and
# links with the same label, the old one stops taking new sessions, lets
# those in flight finish for up to shutdown_grace, and exits. The pid file
# names the new process once it has taken over (the old one stops accepting
# only then); if the new one fails, the old one serves on as it was and the
# pid file still names it. An eventsink's new process also takes its intake
# sockets, its spool and its senders' open connections.
#
# An instance directory holds the configuration NAME.yaml; the script keeps
# NAME.pid and NAME.out (what the daemon prints before its own log is open)
# there, and the daemon runs with the instance directory as its working
# directory, so a relative log file in NAME.yaml lands there too. Several
# instances live side by side in different directories.
#
# The binary is $RELAYCHAIN_BIN/NAME when RELAYCHAIN_BIN is set, else
# ../bin/NAME beside this script, else NAME on the PATH.
#
# Exit codes follow LSB: status exits 0 when running, 1 when dead with a
# pid file left, 3 when not running; start on a running instance and stop
# on a stopped one succeed without doing anything.

set -uo pipefail

: "${DAEMON:?set DAEMON before sourcing daemonctl.sh}"
STOP_TIMEOUT="${STOP_TIMEOUT:-40}"       # seconds before stop escalates to SIGKILL
UPGRADE_TIMEOUT="${UPGRADE_TIMEOUT:-30}" # seconds for the new process of an upgrade to take over

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cmd="${1:-}"
inst="${2:-.}"

usage() {
	echo "usage: $DAEMON.sh start|stop|status|restart|reload|check|upgrade [instance-dir]" >&2
	exit 2
}

[ -n "$cmd" ] || usage
if [ ! -d "$inst" ]; then
	echo "$DAEMON: instance directory $inst does not exist" >&2
	exit 5
fi
inst="$(cd "$inst" && pwd)"
conf="$inst/$DAEMON.yaml"
pidfile="$inst/$DAEMON.pid"
outfile="$inst/$DAEMON.out"

if [ -n "${RELAYCHAIN_BIN:-}" ]; then
	bin="$RELAYCHAIN_BIN/$DAEMON"
elif [ -x "$here/../bin/$DAEMON" ]; then
	bin="$here/../bin/$DAEMON"
else
	bin="$(command -v "$DAEMON" || true)"
fi

# running prints the pid and succeeds when the pid file names a live
# process of this daemon.
running() {
	[ -f "$pidfile" ] || return 1
	local pid
	pid="$(cat "$pidfile" 2>/dev/null)"
	case "$pid" in '' | *[!0-9]*) return 1 ;; esac
	kill -0 "$pid" 2>/dev/null || return 1
	# The pid may have been reused by another program.
	if [ -r "/proc/$pid/cmdline" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "$DAEMON"; then
		return 1
	fi
	echo "$pid"
}

need_bin() {
	if [ -z "$bin" ] || [ ! -x "$bin" ]; then
		echo "$DAEMON: binary not found (set RELAYCHAIN_BIN or build into bin/)" >&2
		exit 5
	fi
}

do_check() {
	need_bin
	if [ ! -f "$conf" ]; then
		echo "$DAEMON: no configuration at $conf" >&2
		exit 6
	fi
	(cd "$inst" && "$bin" check --config "$conf") || exit 6
}

do_start() {
	local pid
	if pid="$(running)"; then
		echo "$DAEMON: already running in $inst (pid $pid)"
		return 0
	fi
	do_check >/dev/null
	rm -f "$pidfile"
	(
		cd "$inst" || exit 1
		exec nohup "$bin" --config "$conf" </dev/null >>"$outfile" 2>&1
	) &
	pid=$!
	echo "$pid" >"$pidfile"
	# Give it a moment to fail on start-up (a port in use, say).
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		sleep 0.1
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "$DAEMON: failed to start; last lines of $outfile:" >&2
			tail -n 20 "$outfile" >&2
			rm -f "$pidfile"
			return 1
		fi
	done
	echo "$DAEMON: started in $inst (pid $pid)"
}

do_stop() {
	local pid
	if ! pid="$(running)"; then
		rm -f "$pidfile"
		echo "$DAEMON: not running in $inst"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null
	local waited=0
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$waited" -ge $((STOP_TIMEOUT * 10)) ]; then
			echo "$DAEMON: pid $pid still running after ${STOP_TIMEOUT}s; sending SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null
			break
		fi
		sleep 0.1
		waited=$((waited + 1))
	done
	while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	rm -f "$pidfile"
	echo "$DAEMON: stopped in $inst (pid $pid)"
}

do_status() {
	local pid summary
	if pid="$(running)"; then
		echo "$DAEMON: running in $inst (pid $pid)"
		# The node's own summary, when its admin socket answers.
		if [ -n "$bin" ] && summary="$("$bin" status --config "$conf" 2>/dev/null)"; then
			echo
			echo "$summary"
		fi
		exit 0
	fi
	if [ -f "$pidfile" ]; then
		echo "$DAEMON: dead in $inst, but pid file $pidfile exists"
		exit 1
	fi
	echo "$DAEMON: not running in $inst"
	exit 3
}

do_reload() {
	local pid
	if ! pid="$(running)"; then
		echo "$DAEMON: not running in $inst" >&2
		exit 7
	fi
	kill -HUP "$pid"
	echo "$DAEMON: asked pid $pid to reload its configuration (see its log)"
}

do_upgrade() {
	local old new
	if ! old="$(running)"; then
		echo "$DAEMON: not running in $inst; starting it"
		do_start
		return
	fi
	do_check >/dev/null
	# The new process writes its pid into the pid file once it has taken
	# the place: the old one stops accepting only then. Until then the old
	# one serves on, and goes on as it was if the new one fails.
	(
		cd "$inst" || exit 1
		RELAYCHAIN_TAKE_OVER=1 RELAYCHAIN_PID_FILE="$pidfile" exec nohup "$bin" --config "$conf" </dev/null >>"$outfile" 2>&1
	) &
	new=$!
	local waited=0
	while [ "$(cat "$pidfile" 2>/dev/null)" != "$new" ]; do
		if ! kill -0 "$new" 2>/dev/null; then
			echo "$DAEMON: the new process failed to take over; pid $old runs on as before. Last lines of $outfile:" >&2
			tail -n 20 "$outfile" >&2
			return 1
		fi
		if [ "$waited" -ge $((UPGRADE_TIMEOUT * 10)) ]; then
			echo "$DAEMON: the new process (pid $new) did not take over within ${UPGRADE_TIMEOUT}s; stopping it, pid $old runs on as before" >&2
			kill -TERM "$new" 2>/dev/null
			tail -n 20 "$outfile" >&2
			return 1
		fi
		sleep 0.1
		waited=$((waited + 1))
	done
	echo "$DAEMON: upgraded in $inst: pid $new took over from pid $old, which finishes its sessions (up to shutdown_grace) and exits"
}

case "$cmd" in
start) do_start ;;
stop) do_stop ;;
restart)
	do_stop
	do_start
	;;
status) do_status ;;
reload) do_reload ;;
check) do_check ;;
upgrade) do_upgrade ;;
*) usage ;;
esac
