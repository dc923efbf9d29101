package chain

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// httpGet returns the status code and body of url.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// metric returns the value of the sample whose name and labels are
// series ("relaychain_link_up{peer=\"x\",side=\"parent\"}") in body.
func metric(t *testing.T, body, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in the metrics", series)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: %v", series, err)
	}
	return v
}

func TestRunMetricsHealthReady(t *testing.T) {
	eppPath, gwpPath, entry, _ := smallTree(t, echoServer(t), time.Second)
	adminAddr := freeAddr(t)
	appendFile(t, gwpPath, fmt.Sprintf("admin:\n  listen: %s\n", adminAddr))
	epp := startRun(t, EPProxy, eppPath)
	gwp := startRun(t, GWProxy, gwpPath)
	n := gwp.getNode(t)
	muxtest.WaitFor(t, 10*time.Second, "gwp-test's path to the root", func() bool {
		p := n.PathToRoot()
		return len(p) == 1 && p[0] == "epp-test"
	})
	base := "http://" + adminAddr

	if code, body := httpGet(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with the parent up: %d %q", code, body)
	}
	if code, _ := httpGet(t, base+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without admin.pprof: %d, want 404", code)
	}

	// One session, open while the metrics are scraped.
	c, err := net.Dial("tcp", entry)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 100000)
	echoOnce(t, c, msg)
	muxtest.WaitFor(t, 10*time.Second, "a keepalive round trip", func() bool {
		for _, l := range n.Status().Links {
			if l.RTT > 0 {
				return true
			}
		}
		return false
	})
	code, body := httpGet(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	if v := metric(t, body, `relaychain_link_up{peer="epp-test",side="parent"}`); v != 1 {
		t.Errorf("link up: %v, want 1", v)
	}
	if v := metric(t, body, `relaychain_sessions_active`); v != 1 {
		t.Errorf("sessions active: %v, want 1", v)
	}
	// The session's bytes each way went over the link, in yamux frames.
	for _, dir := range []string{"in", "out"} {
		if v := metric(t, body, `relaychain_link_bytes_total{direction="`+dir+`",peer="epp-test"}`); v < float64(len(msg)) {
			t.Errorf("link bytes %s: %v, want at least %d", dir, v, len(msg))
		}
	}
	if v := metric(t, body, `relaychain_link_rtt_seconds{peer="epp-test"}`); v <= 0 || v > 5 {
		t.Errorf("link rtt: %v", v)
	}
	if v := metric(t, body, `relaychain_path_to_root_up`); v != 1 {
		t.Errorf("path to root up: %v, want 1", v)
	}
	for _, s := range []string{`relaychain_routes`, `relaychain_hellos_in_progress`,
		`relaychain_refused_total{what="link_connections"}`, `relaychain_refused_total{what="announcements"}`,
		`relaychain_refused_total{what="forged_origins"}`, `relaychain_refused_total{what="denied_destinations"}`,
		`relaychain_refused_total{what="denied_by_rules"}`, `relaychain_refused_total{what="networks"}`} {
		if v := metric(t, body, s); v != 0 {
			t.Errorf("%s: %v, want 0", s, v)
		}
	}
	// No session ended yet: every outcome is there, at 0.
	for _, o := range mux.SessionOutcomes() {
		if v := metric(t, body, `relaychain_sessions_ended_total{outcome="`+o+`"}`); v != 0 {
			t.Errorf("sessions ended %s: %v, want 0", o, v)
		}
	}
	// The client closes: the session ends closed.
	_ = c.Close()
	muxtest.WaitFor(t, 10*time.Second, "the session counted closed", func() bool {
		_, body := httpGet(t, base+"/metrics")
		return metric(t, body, `relaychain_sessions_ended_total{outcome="closed"}`) == 1
	})
	_, body = httpGet(t, base+"/metrics")
	if v := metric(t, body, `relaychain_sessions_ended_total{outcome="aborted"}`); v != 0 {
		t.Errorf("sessions ended aborted: %v, want 0", v)
	}

	// The parent goes: not ready any more, still healthy.
	if err := epp.stop(t, 10*time.Second); err != nil {
		t.Fatalf("epproxy Run = %v", err)
	}
	muxtest.WaitFor(t, 10*time.Second, "/readyz to answer 503", func() bool {
		code, _ := httpGet(t, base+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	if code, _ := httpGet(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with the parent down: %d", code)
	}
	_, body = httpGet(t, base+"/metrics")
	if v := metric(t, body, `relaychain_link_up{peer="epp-test",side="parent"}`); v != 0 {
		t.Errorf("link up after the parent stopped: %v, want 0", v)
	}
	if v := metric(t, body, `relaychain_path_to_root_up`); v != 0 {
		t.Errorf("path to root up after the parent stopped: %v, want 0", v)
	}
}

func TestRunPProf(t *testing.T) {
	eppPath, _, _, _ := smallTree(t, echoServer(t), time.Second)
	adminAddr := freeAddr(t)
	appendFile(t, eppPath, fmt.Sprintf("admin:\n  listen: %s\n  pprof: true\n", adminAddr))
	epp := startRun(t, EPProxy, eppPath)
	epp.getNode(t)
	muxtest.WaitFor(t, 10*time.Second, "the admin listener", func() bool {
		c, err := net.Dial("tcp", adminAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if code, body := httpGet(t, "http://"+adminAddr+"/debug/pprof/"); code != http.StatusOK || !regexp.MustCompile(`goroutine`).MatchString(body) {
		t.Errorf("/debug/pprof/: %d", code)
	}
	// The root is always ready.
	if code, _ := httpGet(t, "http://"+adminAddr+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz at the root: %d", code)
	}
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

func TestAdminConfigProblems(t *testing.T) {
	path := writeConfig(t, "relay.yaml", okRelay+"admin:\n  listen: nohost\n")
	if _, err := LoadWith(Relay, path, LoadOptions{SkipTLSFiles: true}); err == nil || !regexp.MustCompile(`admin\.listen`).MatchString(err.Error()) {
		t.Errorf("admin.listen without a port: %v", err)
	}
	path = writeConfig(t, "relay.yaml", okRelay+"admin:\n  pprof: true\n")
	if _, err := LoadWith(Relay, path, LoadOptions{SkipTLSFiles: true}); err == nil || !regexp.MustCompile(`admin\.pprof: needs admin\.listen`).MatchString(err.Error()) {
		t.Errorf("admin.pprof without admin.listen: %v", err)
	}
}
