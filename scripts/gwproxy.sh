#!/usr/bin/env bash
# gwproxy.sh start|stop|status|restart|reload|check|upgrade [instance-dir]
# Runs one gwproxy instance in the background; see daemonctl.sh.
DAEMON=gwproxy
. "$(dirname "${BASH_SOURCE[0]}")/daemonctl.sh"
