package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
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

// TestUpgradeTwice upgrades gwp-site-a while a session holds its old
// process draining, then upgrades it again at once: the second upgrade is
// refused, saying an upgrade is in progress, and the pid file still names
// the first successor, which serves on. The held session completes with
// every byte through the old process; once that one has exited, a third
// upgrade goes through.
func TestUpgradeTwice(t *testing.T) {
	const grace = 5 * time.Second // shutdown_grace of configs/example
	tg := startTargets(t)
	c := startChain(t, tg)
	routes := entryRoutes(c, tg)
	const name, daemon = "gwp-site-a", "gwproxy"
	old := c.Proc(name)
	dir := c.NodeDir(name)
	in := newInstance(t, daemon, dir)
	if err := os.WriteFile(filepath.Join(dir, daemon+".pid"), []byte(strconv.Itoa(old.Pid())+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Log(e2etest.FileText(old.Log))
		}
	}()
	// Up through gwp-site-a's entry, paused half-way.
	r := routes[0]
	p := plan{up: 2 << 20, down: 2 << 20, gate: &gate{at: 1 << 20, open: make(chan struct{})}}
	held := startSession(t, r.entry, p)
	ts := r.tg.session(held.id)
	e2etest.Eventually(t, 20*time.Second, "half the upload arrived", func() error {
		if n := ts.pr.recv.Load(); n < 1<<20 {
			return fmt.Errorf("the target has %d bytes", n)
		}
		return nil
	})

	out := in.must("upgrade", 0)
	t.Logf("first upgrade: %s", out)
	first := in.pid()
	if first == 0 || first == old.Pid() {
		t.Fatalf("after the first upgrade the pid file names %d (the old process was %d)", first, old.Pid())
	}
	out, code := in.script("upgrade")
	t.Logf("second upgrade: %s", out)
	if code == 0 || !strings.Contains(out, "an upgrade is in progress") {
		t.Fatalf("second upgrade while the first drains: exit %d, want refused as in progress:\n%s", code, out)
	}
	if pid := in.pid(); pid != first {
		t.Fatalf("after the refused upgrade the pid file names %d, want the first successor %d", pid, first)
	}
	if old.Exited() {
		t.Fatalf("the old process exited with a session in flight: %v", old.Err())
	}
	for _, r := range routes {
		if err := probeSession(t, r); err != nil {
			t.Errorf("%s after the refused upgrade: %v", r.name, err)
		}
	}

	close(p.gate.open)
	cl := held.wait(t, 30*time.Second)
	if err := checkClean(cl, r.tg.result(t, held.id, 30*time.Second), p); err != nil {
		t.Errorf("the held session: %v", err)
	}
	if err := old.Wait(t, grace+10*time.Second); err != nil {
		t.Errorf("the old %s: want exit status 0, got %v", name, err)
	}
	e2etest.Eventually(t, 20*time.Second, "a third upgrade once the old process exited", func() error {
		out, code := in.script("upgrade")
		if code != 0 {
			return fmt.Errorf("exit %d: %s", code, out)
		}
		return nil
	})
	if pid := in.pid(); pid == first || pid == 0 {
		t.Fatalf("after the third upgrade the pid file names %d (the first successor was %d)", pid, first)
	}
	for _, r := range routes {
		e2etest.Eventually(t, 20*time.Second, r.name+" after the third upgrade", func() error {
			return probeSession(t, r)
		})
	}
}

// TestUpgradeInPlace runs "relay upgrade" for relay-dmz2, as the systemd
// units document: the running relay starts its binary again, the new
// process takes the place, the command names its pid; the old process
// exits 0 within shutdown_grace, and sessions on every route go through
// the new one.
func TestUpgradeInPlace(t *testing.T) {
	const grace = 5 * time.Second // shutdown_grace of configs/example
	tg := startTargets(t)
	c := startChain(t, tg)
	routes := entryRoutes(c, tg)
	const name, daemon = "relay-dmz2", "relay"
	old := c.Proc(name)
	dir := c.NodeDir(name)
	newInstance(t, daemon, dir) // its cleanup ends the new process
	defer func() {
		if t.Failed() {
			t.Log(e2etest.FileText(old.Log))
		}
	}()
	cmd := exec.Command(filepath.Join(e2etest.BinDir(t), daemon), "upgrade", "--config", filepath.Join(dir, daemon+".yaml"))
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	t.Logf("%s upgrade: %s", daemon, out)
	if err != nil {
		t.Fatalf("%s upgrade: %v\n%s", daemon, err, out)
	}
	m := regexp.MustCompile(`pid (\d+) took the place`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s upgrade named no pid: %q", daemon, out)
	}
	pid, _ := strconv.Atoi(m[1])
	if pid == old.Pid() {
		t.Fatalf("the successor is the old process %d", pid)
	}
	if err := old.Wait(t, grace+10*time.Second); err != nil {
		t.Errorf("the old %s: want exit status 0, got %v", name, err)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the successor %d is not running: %v", pid, err)
	}
	for _, r := range routes {
		e2etest.Eventually(t, 20*time.Second, r.name+" through the successor", func() error {
			return probeSession(t, r)
		})
	}
}
