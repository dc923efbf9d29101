//go:build !linux

package e2etest

import "syscall"

// sysProcAttr puts a child in its own process group, so that Stop ends
// everything it started. (Only Linux can also have it killed with the
// test binary.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
