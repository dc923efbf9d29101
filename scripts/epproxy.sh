#!/usr/bin/env bash
# epproxy.sh start|stop|status|restart|reload|check|upgrade [instance-dir]
# Runs one epproxy instance in the background; see daemonctl.sh.
DAEMON=epproxy
. "$(dirname "${BASH_SOURCE[0]}")/daemonctl.sh"
