package chain

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/relaychain/relaychain/internal/admin"
	"github.com/relaychain/relaychain/internal/daemon"
)

// An upgrade in place ("NAME upgrade", the systemd units' way): the
// running node starts its own binary again, as put in its place on disk,
// with admin.TakeOverEnv set; the new process takes the place as in
// scripts/NAME.sh upgrade (upgrade.go), and, under systemd, tells the
// service manager that it is the service's main process now.

// upgradeCommand is "NAME upgrade".
func upgradeCommand(k Kind) *cli.Command {
	name := k.Name
	return &cli.Command{
		Name:      "upgrade",
		Usage:     "make the running node start its binary again (a new version put in its place) and hand its place over to it, without dropping sessions",
		UsageText: name + " upgrade [--config FILE]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "configuration `FILE`", Value: "./" + name + ".yaml"},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return fmt.Errorf("unexpected argument %q (see --help)", c.Args().First())
			}
			path := daemon.ConfigPath(c)
			cfg, err := LoadWith(k, path, LoadOptions{SkipTLSFiles: true})
			if err != nil {
				return daemon.ReportProblems(c.App.ErrWriter, path, err)
			}
			pid, err := admin.Upgrade(cfg.AdminSocket(), admin.UpgradeTimeout)
			if err != nil {
				return err
			}
			_, _ = fmt.Fprintf(c.App.Writer, "%s: upgraded: pid %d took the place; the previous process finishes its sessions (up to shutdown_grace) and exits\n", name, pid)
			return nil
		},
	}
}

// startSuccessor starts this binary again as the node's successor, and
// waits until it took the place (committed is closed) or failed. The
// successor's output goes where this process's goes.
func startSuccessor(committed <-chan struct{}, log *logrus.Entry) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find the binary to start: %w", err)
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), admin.TakeOverEnv+"=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", exe, err)
	}
	pid := cmd.Process.Pid
	log.Infof("upgrade: started %s as pid %d to take this node's place", exe, pid)
	exited := make(chan error, 1)
	// Reaps the successor if it fails; once it took the place, it
	// outlives this process, which leaves the goroutine behind.
	go func() { exited <- cmd.Wait() }()
	t := time.NewTimer(admin.UpgradeTimeout)
	defer t.Stop()
	select {
	case <-committed:
		return pid, nil
	case err := <-exited:
		if err == nil {
			err = errors.New("it exited")
		}
		return 0, fmt.Errorf("the new process (pid %d) failed to take over: %v; this node serves on", pid, err)
	case <-t.C:
		_ = cmd.Process.Kill()
		return 0, fmt.Errorf("the new process (pid %d) did not take over within %s: stopped; this node serves on", pid, admin.UpgradeTimeout)
	}
}

// notifyService tells the service manager state (sd_notify), when it
// gave the process a notify socket: READY=1 once serving; a successor adds
// MAINPID, so that the service follows it.
func notifyService(state string, log *logrus.Entry) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		log.WithError(err).Warn("the service manager's notify socket does not answer")
		return
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		log.WithError(err).Warn("the service manager was not notified")
	}
}

// readyState is what notifyService sends once the node serves.
func readyState(tookOver bool) string {
	if tookOver {
		return "MAINPID=" + strconv.Itoa(os.Getpid()) + "\nREADY=1"
	}
	return "READY=1"
}
