//go:build !unix

package mux

import "syscall"

// reuseAddr leaves the socket as it is outside Unix: a reconnect from a
// pinned source port may wait for the last connection's TIME_WAIT.
func reuseAddr(_, _ string, _ syscall.RawConn) error { return nil }
