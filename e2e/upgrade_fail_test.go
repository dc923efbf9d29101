package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// TestUpgradeFailedSuccessor upgrades gwp-site-a with a configuration
// whose new entry's port is taken: the new process fails after it got
// copies of the listening sockets, and the script says so and exits 1;
// the old process never stopped accepting, serves new sessions on every
// route, has its admin socket back, and the pid file still names it. An
// upgrade with the configuration put back then goes through.
func TestUpgradeFailedSuccessor(t *testing.T) {
	const grace = 5 * time.Second // shutdown_grace of configs/example
	tg := startTargets(t)
	c := startChain(t, tg)
	routes := entryRoutes(c, tg)
	const name, daemon = "gwp-site-a", "gwproxy"
	old := c.Proc(name)
	dir := c.NodeDir(name)
	in := newInstance(t, daemon, dir)
	pidfile := filepath.Join(dir, daemon+".pid")
	if err := os.WriteFile(pidfile, []byte(strconv.Itoa(old.Pid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Log(e2etest.FileText(old.Log))
		}
	}()

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	conf := filepath.Join(dir, daemon+".yaml")
	orig, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(orig), "\nentries:\n") {
		t.Fatalf("%s has no entries list:\n%s", conf, orig)
	}
	blocked := strings.Replace(string(orig), "\nentries:\n", "\nentries:\n  - name: blocked\n    listen: "+taken.Addr().String()+"\n    dest: epp-main\n    service: gateway\n", 1)
	if err := os.WriteFile(conf, []byte(blocked), 0o644); err != nil {
		t.Fatal(err)
	}

	skip := old.LogSize()
	out, code := in.script("upgrade")
	t.Logf("%s.sh upgrade: %s", daemon, out)
	if code == 0 || !strings.Contains(out, "failed to take over") {
		t.Fatalf("upgrade with a taken port: exit %d, want a failure reported:\n%s", code, out)
	}
	old.WaitLog(t, skip, 20*time.Second, `handover abandoned: it went away before it was ready; this node keeps its listening sockets and links and serves on`)
	if old.Exited() {
		t.Fatalf("the old %s exited: %v", name, old.Err())
	}
	if pid := in.pid(); pid != old.Pid() {
		t.Fatalf("after the failed upgrade the pid file names %d, want the old process %d", pid, old.Pid())
	}
	for _, r := range routes {
		if err := probeSession(t, r); err != nil {
			t.Errorf("%s after the failed upgrade: %v", r.name, err)
		}
	}
	if pids := e2etest.ProcessesWith(conf); len(pids) != 1 || pids[0] != old.Pid() {
		t.Errorf("processes running %s: %v, want only the old %d", conf, pids, old.Pid())
	}

	// The old process hands over as before once the configuration is good.
	if err := os.WriteFile(conf, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	out = in.must("upgrade", 0)
	t.Logf("%s.sh upgrade: %s", daemon, out)
	newPid := in.pid()
	if newPid == 0 || newPid == old.Pid() {
		t.Fatalf("after the upgrade the pid file names %d (the old process was %d)", newPid, old.Pid())
	}
	if err := old.Wait(t, grace+10*time.Second); err != nil {
		t.Errorf("the old %s: want exit status 0, got %v", name, err)
	}
	for _, r := range routes {
		e2etest.Eventually(t, 20*time.Second, r.name+" through the new process", func() error {
			return probeSession(t, r)
		})
	}
}
