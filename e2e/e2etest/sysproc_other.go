//go:build !linux

package e2etest

import "syscall"

// sysProcAttr puts a child in its own process group, so that Stop ends
// everything it started. (Only Linux can also have it killed with the
// test binary.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// reserve would claim port p among the test binaries running at the same
// time; without Linux's abstract unix sockets, ports are only unique
// within one test binary.
func reserve(int) bool { return true }
