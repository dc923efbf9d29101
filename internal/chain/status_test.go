package chain

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/internal/admin"
	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

func TestRunStatus(t *testing.T) {
	eppPath, gwpPath, entry, _ := smallTree(t, echoServer(t), time.Second)
	epp := startRun(t, EPProxy, eppPath)
	gwp := startRun(t, GWProxy, gwpPath)
	n := gwp.getNode(t)
	muxtest.WaitFor(t, 10*time.Second, "gwp-test's path to the root", func() bool {
		p := n.PathToRoot()
		return len(p) == 1 && p[0] == "epp-test"
	})
	gwpSock := filepath.Join(filepath.Dir(gwpPath), "gwproxy.sock")
	fi, err := os.Stat(gwpSock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: mode %v, want a socket with 0600", gwpSock, fi.Mode())
	}

	c, err := net.Dial("tcp", entry)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoOnce(t, c, []byte("status, please\n"))

	out, errOut, err := runCLI(t, GWProxy, "status", "--config", gwpPath)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, errOut)
	}
	t.Logf("gwproxy status:\n%s", out)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^gwp-test \(leaf\) `),
		regexp.MustCompile(`(?m)^path to the root: epp-test$`),
		regexp.MustCompile(`(?m)^  epp-test +parent +up +`),
		regexp.MustCompile(`(?m)^sessions: 1 active$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("gwproxy status does not match %s", want)
		}
	}

	out, errOut, err = runCLI(t, EPProxy, "status", "--json", "-c", eppPath)
	if err != nil {
		t.Fatalf("status --json: %v\n%s", err, errOut)
	}
	var st mux.NodeStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if st.Label != "epp-test" || st.Role != "root" || st.Version == "" || st.Routes != 1 || st.Sessions != 1 {
		t.Errorf("epproxy status: %+v", st)
	}
	if len(st.Links) != 1 || st.Links[0].Peer != "gwp-test" || !st.Links[0].Up || st.Links[0].Sessions != 1 ||
		st.Links[0].BytesIn < 15 || st.Links[0].BytesOut < 15 {
		t.Errorf("epproxy links: %+v", st.Links)
	}

	// The parent goes: the gwproxy shows its link down, with when.
	_ = c.Close()
	if err := epp.stop(t, 10*time.Second); err != nil {
		t.Fatalf("epproxy Run = %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(eppPath), "epproxy.sock")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the epproxy's socket after it stopped: %v, want it gone", err)
	}
	muxtest.WaitFor(t, 10*time.Second, "gwp-test's link down", func() bool {
		st, err := admin.Query(gwpSock, 5*time.Second)
		return err == nil && len(st.Links) == 1 && !st.Links[0].Up
	})
	out, _, err = runCLI(t, GWProxy, "status", "--config", gwpPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^path to the root: none`),
		regexp.MustCompile(`(?m)^  epp-test +parent +down +\S+ ago `),
		regexp.MustCompile(`(?m)^  [0-9-]+ [0-9:]+  epp-test: link down$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("gwproxy status with its parent gone does not match %s:\n%s", want, out)
		}
	}

	// Not running: a clear error.
	_, _, err = runCLI(t, EPProxy, "status", "-c", eppPath)
	if err == nil || !errors.Is(err, admin.ErrNotRunning) ||
		!strings.Contains(err.Error(), "not running: no socket at "+filepath.Join(filepath.Dir(eppPath), "epproxy.sock")) {
		t.Errorf("status of a stopped epproxy: %v", err)
	}
}

func TestAdminSocketKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "relay.yaml")
	if err := os.WriteFile(path, []byte(okRelay+"admin:\n  socket: run/r.sock\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadWith(Relay, path, LoadOptions{SkipTLSFiles: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.AdminSocket(), filepath.Join(dir, "run/r.sock"); got != want {
		t.Errorf("admin socket %q, want %q", got, want)
	}
	cfg, err = LoadWith(Relay, writeConfig(t, "relay.yaml", okRelay), LoadOptions{SkipTLSFiles: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := filepath.Base(cfg.AdminSocket()); got != "relay.sock" {
		t.Errorf("default admin socket %q, want relay.sock beside the file", cfg.AdminSocket())
	}
}

// A node whose admin socket cannot be made still runs, and says why.
func TestRunWithoutAdminSocket(t *testing.T) {
	eppPath, _, _, _ := smallTree(t, echoServer(t), time.Second)
	appendFile(t, eppPath, "admin:\n  socket: no/such/dir/epproxy.sock\n")
	epp := startRun(t, EPProxy, eppPath)
	epp.getNode(t)
	if !strings.Contains(epp.logs.String(), "no admin socket: epproxy status will not answer") {
		t.Errorf("no error about the admin socket in the log:\n%s", epp.logs.String())
	}
	if err := epp.stop(t, 10*time.Second); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}
