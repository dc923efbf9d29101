package eventse2e

import (
	"errors"
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

// TestEventSinkUpgrade upgrades the eventsink twice while 20 senders
// send, first from the inside ("eventsink upgrade", as under systemd),
// then with scripts/eventsink.sh upgrade: the successor takes the intake sockets, the spool and
// the senders' open TCP connections, stopped between events. No sender
// sees an error or has to connect again; every TCP event and every
// datagram the kernel did not drop reaches the event server exactly once
// and in order (what the old forwarder had in flight is sent again and
// dropped by the epproxy); each old process exits 0; the last one stops
// with nothing pending.
func TestEventSinkUpgrade(t *testing.T) {
	const perSender = 1500 // 20 senders: 30,000 events
	const grace = 2 * time.Second
	c := newChain(t, chainOpts{})
	srv := startEventServer(t, c.Addr(e2etest.PortEvents))
	start := time.Now()
	c.StartAll()
	dir := c.NodeDir("es-site-a")
	conf := filepath.Join(dir, "eventsink.yaml")
	udpPort := c.Port(e2etest.PortSyslogUDP)
	e2etest.WaitListening(t, c.Addr(e2etest.PortLinesTCP), 10*time.Second)
	fl := startFleet(t, perSender, c.Addr(e2etest.PortEIF), c.Addr(e2etest.PortLinesTCP), c.Addr(e2etest.PortSyslogUDP))
	t.Cleanup(func() {
		for _, pid := range e2etest.ProcessesWith(conf) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	step := func(format string, args ...any) {
		t.Logf("%6.2fs %-50s sent %6d, at the event server %6d", time.Since(start).Seconds(),
			fmt.Sprintf(format, args...), fl.totalSent(), srv.received())
	}
	limit := func(pct int) int { return perSender * pct / 100 }
	udpDrops := func() int {
		_, d, err := e2etest.UDPSocket(udpPort)
		if err != nil {
			t.Fatalf("eventsink UDP socket: %v", err)
		}
		return d
	}
	log := c.Proc("es-site-a") // the first process; its successors log to the same file
	pid := log.Pid()
	upgrade := func(round int) {
		t.Helper()
		off := log.LogSize()
		// The first round from the inside, the second with the script.
		cmd := exec.Command(filepath.Join(e2etest.BinDir(t), "eventsink"), "upgrade", "--config", conf)
		took := `pid (\d+) took the place`
		if round == 2 {
			if err := os.WriteFile(filepath.Join(dir, "eventsink.pid"), []byte(fmt.Sprintln(pid)), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd = exec.Command(filepath.Join(e2etest.ModuleRoot(t), "scripts", "eventsink.sh"), "upgrade", dir)
			cmd.Env = append(os.Environ(), "RELAYCHAIN_BIN="+e2etest.BinDir(t))
			took = `pid (\d+) took over from pid`
		}
		cmd.Dir = dir
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s\nlog:\n%s", cmd, err, out, log.LogSince(off))
		}
		m := regexp.MustCompile(took).FindSubmatch(out)
		if m == nil {
			t.Fatalf("%s named no pid: %q", cmd, out)
		}
		next, _ := strconv.Atoi(string(m[1]))
		step("%d. upgraded: pid %d took the place of %d", round, next, pid)
		e2etest.Eventually(t, grace+10*time.Second, fmt.Sprintf("pid %d to exit", pid), func() error {
			if e2etest.Alive(pid) && !isZombie(pid) {
				return fmt.Errorf("pid %d runs", pid)
			}
			return nil
		})
		if round == 1 {
			if err := log.Wait(t, 5*time.Second); err != nil {
				t.Errorf("the first eventsink: want exit status 0, got %v", err)
			}
		}
		// Every TCP sender's connection went over, none was closed.
		text := log.LogSince(off)
		tcp := fmt.Sprint(numEIF + numLinesTC)
		for _, want := range []string{
			"handed over to the successor: the spool, and " + tcp + " open intake connections",
			"took over " + tcp + " open intake connections from the predecessor",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("upgrade %d: the log has no %q:\n%s", round, want, text)
			}
		}
		if d, ok := intakePause(text); ok {
			t.Logf("upgrade %d: the intake paused %s (from the old process stopping it to the new one reading on)", round, d)
		}
		pid = next
	}

	fl.setLimit(limit(30))
	fl.waitLimit(60 * time.Second)
	step("warm-up sent")
	for round, to := range []int{60, 90} {
		fl.setLimit(limit(to))
		// Strike while events flow: once the senders are past half of
		// the phase.
		e2etest.Eventually(t, 60*time.Second, "the middle of the phase", func() error {
			if n, want := fl.totalSent(), numSenders*(limit(to)-limit(15)); n < want {
				return fmt.Errorf("%d sent, want %d", n, want)
			}
			return nil
		})
		upgrade(round + 1)
	}
	fl.setLimit(perSender)
	fl.waitLimit(60 * time.Second)
	drops := udpDrops()
	deadline := time.Now().Add(60 * time.Second)
	for {
		recs, _, _ := srv.snapshot()
		r := checkDelivery(recs, fl.lastSent(), len(recs)+1)
		msg := r.failures(drops)
		if msg == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60s:\n%s\nlog:\n%s", msg, e2etest.Tail(log.Log, 40))
		}
		time.Sleep(20 * time.Millisecond)
	}
	step("all delivered")
	fl.close()
	if n := fl.writeErr.Load(); n > 0 {
		t.Errorf("%d sender writes failed", n)
	}
	if fl.totalSent() != numSenders*perSender {
		t.Errorf("%d events sent, want %d", fl.totalSent(), numSenders*perSender)
	}
	recs, other, torn := srv.snapshot()
	if len(other)+len(torn) > 0 {
		t.Errorf("the event server got lines that are not whole events: %q %q", other, torn)
	}
	// No repeats allowed anywhere: checkDelivery's window is past the end.
	if msg := checkDelivery(recs, fl.lastSent(), len(recs)+1).failures(drops); msg != "" {
		t.Error(msg)
	}
	waitSpoolAcked(t, filepath.Join(dir, "spool"))
	off := log.LogSize()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	e2etest.Eventually(t, 20*time.Second, "the last eventsink to stop", func() error {
		if e2etest.Alive(pid) && !isZombie(pid) {
			return fmt.Errorf("pid %d runs", pid)
		}
		return nil
	})
	st := statsLine(log.LogSince(off))
	if st["pending"] != "0" {
		t.Errorf("the last eventsink stopped with %q events pending, want 0", st["pending"])
	}
	t.Logf("%d events sent, %d received; UDP: %d dropped by the kernel", fl.totalSent(), len(recs), drops)
}

// isZombie reports whether pid has exited and waits to be reaped.
func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z'
}

// TestEventSinkUpgradeFails: a successor that cannot bind a listener its
// configuration adds (a port in use) fails before it is ready; the
// running eventsink says so, keeps its intake, spool and senders, and
// events sent on the connection opened before go on arriving.
func TestEventSinkUpgradeFails(t *testing.T) {
	c := newChain(t, chainOpts{})
	srv := startEventServer(t, c.Addr(e2etest.PortEvents))
	c.StartAll()
	dir := c.NodeDir("es-site-a")
	conf := filepath.Join(dir, "eventsink.yaml")
	t.Cleanup(func() {
		for _, pid := range e2etest.ProcessesWith(conf) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	e2etest.WaitListening(t, c.Addr(e2etest.PortLinesTCP), 10*time.Second)
	fl := startFleet(t, 200, c.Addr(e2etest.PortEIF), c.Addr(e2etest.PortLinesTCP), c.Addr(e2etest.PortSyslogUDP))
	fl.setLimit(100)
	fl.waitLimit(60 * time.Second)

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	added := strings.Replace(string(b), "  listeners:\n", fmt.Sprintf("  listeners:\n    - name: busy\n      protocol: tcp\n      listen: %s\n      framing: lines\n", busy.Addr()), 1)
	if added == string(b) {
		t.Fatal("the eventsink's configuration has no listeners: update the test")
	}
	if err := os.WriteFile(conf, []byte(added), 0o644); err != nil {
		t.Fatal(err)
	}
	old := c.Proc("es-site-a")
	off := old.LogSize()
	cmd := exec.Command(filepath.Join(e2etest.BinDir(t), "eventsink"), "upgrade", "--config", conf)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "failed to take over") {
		t.Fatalf("eventsink upgrade with a listener on a port in use: %v, %q", err, out)
	}
	old.WaitLog(t, off, 10*time.Second, "handover abandoned: .* serves on")
	old.CheckRunning(t)
	if procs := e2etest.ProcessesWith(conf); len(procs) != 1 || procs[0] != old.Pid() {
		t.Fatalf("processes running the eventsink: %v, want only %d", procs, old.Pid())
	}
	fl.setLimit(200)
	fl.waitLimit(60 * time.Second)
	e2etest.Eventually(t, 30*time.Second, "every event at the event server", func() error {
		recs, _, _ := srv.snapshot()
		if msg := checkDelivery(recs, fl.lastSent(), len(recs)+1).failures(1 << 20); msg != "" {
			return errors.New(msg)
		}
		return nil
	})
	if n := fl.writeErr.Load(); n > 0 {
		t.Errorf("%d sender writes failed", n)
	}
}

// intakePause is the time between the old eventsink stopping its intake
// and the new one reading on, from the timestamps of their log lines.
func intakePause(log string) (time.Duration, bool) {
	at := func(marker string) (time.Time, bool) {
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, marker) && len(line) > 21 {
				ts, err := time.Parse("06/01/02 15:04:05.000", line[:21])
				return ts, err == nil
			}
		}
		return time.Time{}, false
	}
	from, ok1 := at("connections stopped between events")
	to, ok2 := at("open intake connections from the predecessor")
	return to.Sub(from), ok1 && ok2
}
