package e2etest

import "syscall"

// sysProcAttr puts a child in its own process group, so that Stop ends
// everything it started, and has it killed with the test binary, should
// that die first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
