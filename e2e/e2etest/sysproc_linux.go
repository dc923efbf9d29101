package e2etest

import (
	"net"
	"strconv"
	"syscall"
)

// sysProcAttr puts a child in its own process group, so that Stop ends
// everything it started, and has it killed with the test binary, should
// that die first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// reserved holds the port reservations of this process; the kernel
// releases them when it exits.
var reserved []net.Listener

// reserve claims port p among the test binaries running at the same
// time: it binds the abstract unix socket @relaychain-e2etest-port-P,
// which only one process can hold, and which goes away with it (no file
// is left behind). The caller holds portMu.
func reserve(p int) bool {
	ln, err := net.Listen("unix", "@relaychain-e2etest-port-"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	reserved = append(reserved, ln)
	return true
}
