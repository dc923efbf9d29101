package muxtest

import (
	"net"
	"strconv"
)

// reserved holds the port reservations of this process; the kernel
// releases them when it exits.
var reserved []net.Listener

// reserve claims port p among the test binaries running at the same
// time: it binds the abstract unix socket @relaychain-test-port-P,
// which only one process can hold, and which goes away with it (no file
// is left behind). The caller holds portMu.
func reserve(p int) bool {
	ln, err := net.Listen("unix", "@relaychain-test-port-"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	reserved = append(reserved, ln)
	return true
}

// Reservations is how many port reservations this process holds (each an
// open socket, for tests that count sockets).
func Reservations() int {
	portMu.Lock()
	defer portMu.Unlock()
	return len(reserved)
}
