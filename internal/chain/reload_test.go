package chain

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux/muxtest"
)

// editConfig rewrites the file at path with edit applied, and loads it.
func editConfig(t testing.TB, k Kind, path string, edit func(string) string) *Config {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(edit(string(b))), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(k, path)
	if err != nil {
		t.Fatalf("load the edited %s: %v", path, err)
	}
	return cfg
}

// TestApply reloads a running gwproxy: an entry added and a tuning
// changed, then the first entry removed (its session aborted after the
// grace, its port closed), then changes that are refused whole: a label
// (a restart is needed) and an entry on a port in use.
func TestApply(t *testing.T) {
	eppPath, gwpPath, entry, _ := smallTree(t, echoServer(t), 300*time.Millisecond)
	startRun(t, EPProxy, eppPath)
	gwp := startRun(t, GWProxy, gwpPath)
	n := gwp.getNode(t)
	muxtest.WaitFor(t, 10*time.Second, "gwp-test's path to the root", func() bool { return len(n.PathToRoot()) == 1 })
	held, err := net.Dial("tcp", entry)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	echoOnce(t, held, []byte("before"))

	entry2 := freeAddr(t)
	next := editConfig(t, GWProxy, gwpPath, func(s string) string {
		s = strings.Replace(s, "entries:\n", "entries:\n  - name: upcall2\n    listen: "+entry2+"\n    dest: epp-test\n    service: gateway\n", 1)
		return strings.Replace(s, "reconnect_max: 100ms", "reconnect_max: 200ms", 1)
	})
	if err := Apply(gwp.cfg, next, gwp.logger); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"entry upcall2 added on " + entry2 + " for gateway at epp-test\n",
		"tuning.reconnect_max 100ms -> 200ms\n",
		"configuration reloaded from " + gwpPath + ": 2 changes applied\n",
	} {
		if !strings.Contains(gwp.logs.String(), want) {
			t.Errorf("no %q in the log:\n%s", want, gwp.logs.String())
		}
	}
	echoOnce(t, held, []byte("the entry kept goes on"))
	c2, err := net.Dial("tcp", entry2)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	echoOnce(t, c2, []byte("through the added entry"))

	// The first entry removed: its port closes at once, its session is
	// aborted once the grace (300ms) ended.
	next = editConfig(t, GWProxy, gwpPath, func(s string) string {
		i := strings.Index(s, "  - name: upcall\n")
		return s[:i] + s[i+len("  - name: upcall\n    listen: "+entry+"\n    dest: epp-test\n    service: gateway\n"):]
	})
	if err := Apply(gwp.cfg, next, gwp.logger); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(gwp.logs.String(), "entry upcall removed\n") {
		t.Errorf("no entry removed in the log:\n%s", gwp.logs.String())
	}
	if c, err := net.DialTimeout("tcp", entry, 5*time.Second); err == nil {
		_ = c.Close()
		t.Error("the removed entry still accepts connections")
	}
	_ = held.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := held.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("the removed entry's session: read %v, want its end", err)
	}
	echoOnce(t, c2, []byte("the added entry goes on"))

	// Refused whole: a new label, and an entry on a port in use.
	before := gwp.logs.String()
	next = editConfig(t, GWProxy, gwpPath, func(s string) string {
		s = strings.Replace(s, "label: gwp-test", "label: gwp-other", 1)
		return strings.Replace(s, "reconnect_max: 200ms", "reconnect_max: 300ms", 1)
	})
	if err := Apply(gwp.cfg, next, gwp.logger); err == nil || !strings.Contains(err.Error(), "a restart is needed to change label") {
		t.Errorf("a new label: %v, want a restart needed", err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	next = editConfig(t, GWProxy, gwpPath, func(s string) string {
		s = strings.Replace(s, "label: gwp-other", "label: gwp-test", 1)
		return strings.Replace(s, "entries:\n", "entries:\n  - name: upcall3\n    listen: "+busy.Addr().String()+"\n    dest: epp-test\n    service: gateway\n", 1)
	})
	if err := Apply(gwp.cfg, next, gwp.logger); err == nil || !strings.Contains(err.Error(), "entry upcall3") {
		t.Errorf("an entry on a port in use: %v, want refused", err)
	}
	if after := strings.TrimPrefix(gwp.logs.String(), before); strings.Contains(after, "300ms") || strings.Contains(after, "added") {
		t.Errorf("a refused reload applied changes:\n%s", after)
	}
	echoOnce(t, c2, []byte("nothing changed"))
	if err := Apply(&Config{}, next, gwp.logger); err == nil {
		t.Error("Apply of a configuration no Run runs with: no error")
	}
}
