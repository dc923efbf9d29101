#!/usr/bin/env bash
# eventsink.sh start|stop|status|restart|reload|check|upgrade [instance-dir]
# Runs one eventsink instance in the background; see daemonctl.sh.
DAEMON=eventsink
. "$(dirname "${BASH_SOURCE[0]}")/daemonctl.sh"
