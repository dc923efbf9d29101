#!/usr/bin/env bash
# relay.sh start|stop|status|restart|reload|check|upgrade [instance-dir]
# Runs one relay instance in the background; see daemonctl.sh.
DAEMON=relay
. "$(dirname "${BASH_SOURCE[0]}")/daemonctl.sh"
