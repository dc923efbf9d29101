package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// twoRelays is the example chain with gwp-site-a below both relays:
// relay-dmz2 as before and relay-dmz1 directly, each link through a
// delaying proxy (near: to relay-dmz2, far: to relay-dmz1).
type twoRelays struct {
	c           *e2etest.Chain
	toDMZ2      *muxtest.DelayProxy
	toDMZ1      *muxtest.DelayProxy
	gwp, d2, d1 *e2etest.Process
}

// parentNodes are the daemons of the tests of several parents.
var parentNodes = []e2etest.Node{
	{Name: "relay-dmz2", Daemon: "relay"},
	{Name: "relay-dmz1", Daemon: "relay"},
	{Name: "gwp-site-a", Daemon: "gwproxy"},
	{Name: "epp-main", Daemon: "epproxy"},
}

var reDialDMZ2 = regexp.MustCompile(`(- label: relay-dmz2\n\s+dial: )127\.0\.0\.1:\d+`)

// startTwoRelays starts the chain; keys are the gwproxy's parent
// selection (top-level YAML), weights the parents' weight lines ("": none).
func startTwoRelays(t *testing.T, delayDMZ2, delayDMZ1 time.Duration, keys, weightDMZ2, weightDMZ1 string) *twoRelays {
	t.Helper()
	gateway := startEchoServer(t)
	dmz2Out, dmz1Out := e2etest.FreePort(t), e2etest.FreePort(t)
	tr := &twoRelays{
		toDMZ2: muxtest.StartDelayProxy(t, fmt.Sprintf("127.0.0.1:%d", dmz2Out), delayDMZ2),
		toDMZ1: muxtest.StartDelayProxy(t, fmt.Sprintf("127.0.0.1:%d", dmz1Out), delayDMZ1),
	}
	edit := func(node, text string) string {
		switch node {
		case "gwp-site-a":
			text = reDialDMZ2.ReplaceAllString(text, "${1}"+tr.toDMZ2.Addr()+weightDMZ2)
			text = strings.Replace(text, "children:", "  - label: relay-dmz1\n    dial: "+tr.toDMZ1.Addr()+weightDMZ1+"\nchildren:", 1)
			return text + keys
		case "relay-dmz1":
			return strings.Replace(text, "children:\n", fmt.Sprintf("children:\n  - label: gwp-site-a\n    listen: 127.0.0.1:%d\n    accept_networks: [127.0.1.0/24, \"*.site-a.example\"]\n    accept_labels: [es-site-a]\n", dmz1Out), 1)
		}
		return text
	}
	tr.c = e2etest.NewChain(t, e2etest.Options{Nodes: parentNodes, Tuning: e2etest.FastTuning, Edit: edit,
		Fixed: map[int]int{e2etest.PortDMZ2Out: dmz2Out, e2etest.PortGateway: gateway}})
	tr.c.StartAll()
	tr.gwp, tr.d2, tr.d1 = tr.c.Proc("gwp-site-a"), tr.c.Proc("relay-dmz2"), tr.c.Proc("relay-dmz1")
	tr.c.Proc("epp-main").WaitLog(t, 0, 20*time.Second, e2etest.RouteAdded("gwp-site-a"))
	return tr
}

// startEchoServer serves an echo on a loopback port until the test ends,
// and returns the port.
func startEchoServer(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr).Port
}

var reForwarded = regexp.MustCompile(`(?m) session: forwarded `)

// forwarded counts the sessions p forwarded, in its log.
func forwarded(p *e2etest.Process) int {
	return len(reForwarded.FindAllStringIndex(p.LogSince(0), -1))
}

// session runs one upcall from site A: a few bytes to the gateway's echo
// and back.
func (tr *twoRelays) session() error {
	// A connect refused by the loopback (a loaded machine's full accept
	// queue) never reached the gwproxy: tried again, at most 3 times.
	var c net.Conn
	var err error
	for try := 0; try < 3; try++ {
		if c, err = net.DialTimeout("tcp", tr.c.Addr(e2etest.PortUpA), 10*time.Second); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	var b [4]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	if string(b[:]) != "ping" {
		return errors.New("echo garbled")
	}
	return nil
}

// via runs a session and reports which relay carried it from the
// gwproxy: relay-dmz2 (then relay-dmz1) or relay-dmz1 alone.
func (tr *twoRelays) via(t *testing.T) string {
	t.Helper()
	d2, d1 := forwarded(tr.d2), forwarded(tr.d1)
	if err := tr.session(); err != nil {
		t.Fatalf("upcall: %v", err)
	}
	var got string
	e2etest.Eventually(t, 10*time.Second, "the relays' log of the session", func() error {
		switch {
		case forwarded(tr.d2) > d2:
			got = "relay-dmz2"
		case forwarded(tr.d1) > d1:
			got = "relay-dmz1"
		default:
			return errors.New("no relay logged it")
		}
		return nil
	})
	return got
}

// linkRTT is the round trip the gwproxy last measured on its link to peer.
func (tr *twoRelays) linkRTT(t *testing.T, peer string) (time.Duration, error) {
	st, err := nodeStatus(t, tr.c, e2etest.Node{Name: "gwp-site-a", Daemon: "gwproxy"})
	if err != nil {
		return 0, err
	}
	for _, l := range st.Links {
		if l.Peer == peer && l.Up {
			return l.RTT, nil
		}
	}
	return 0, fmt.Errorf("link to %s not up", peer)
}

// TestParentNearestE2E: a gwproxy below two relays in nearest mode sends
// its sessions through the one with the lower round trip; when the other
// becomes better by less than the margin it stays, and when by more than
// the margin it moves.
func TestParentNearestE2E(t *testing.T) {
	tr := startTwoRelays(t, 2*time.Millisecond, 20*time.Millisecond, `
parent_selection: nearest
nearest_margin: 20%
nearest_hold: 1s
parent_probe_interval: 100ms
`, "", "")
	tr.gwp.WaitLog(t, 0, 20*time.Second, `routing: active parent is now relay-dmz2 \(`)
	if v := tr.via(t); v != "relay-dmz2" {
		t.Fatalf("session through %s, want the nearer relay-dmz2", v)
	}

	// relay-dmz2 44ms away, relay-dmz1 40ms: better by 9%, under the
	// margin. Once the gwproxy measured it, three holds pass without a
	// move.
	tr.toDMZ2.SetDelay(22 * time.Millisecond)
	e2etest.Eventually(t, 20*time.Second, "the new round trip measured", func() error {
		rtt, err := tr.linkRTT(t, "relay-dmz2")
		if err == nil && rtt < 44*time.Millisecond {
			err = fmt.Errorf("round trip %s", rtt)
		}
		return err
	})
	mark := tr.gwp.LogSize()
	time.Sleep(3 * time.Second)
	if strings.Contains(tr.gwp.LogSince(mark), "active parent is now") {
		t.Fatalf("moved on a difference under the margin:\n%s", tr.gwp.LogSince(mark))
	}
	if v := tr.via(t); v != "relay-dmz2" {
		t.Fatalf("session through %s under the margin, want relay-dmz2 still", v)
	}

	// relay-dmz2 100ms away: relay-dmz1 better by 60%; the gwproxy moves,
	// and says why.
	tr.toDMZ2.SetDelay(50 * time.Millisecond)
	tr.gwp.WaitLog(t, mark, 20*time.Second, `routing: active parent is now relay-dmz1 \(round trip \S+ against \S+ through relay-dmz2, better by more than 20% for 1s\)`)
	if v := tr.via(t); v != "relay-dmz1" {
		t.Fatalf("session through %s after the move, want relay-dmz1", v)
	}
	st, err := nodeStatus(t, tr.c, e2etest.Node{Name: "gwp-site-a", Daemon: "gwproxy"})
	if err != nil || st.ParentSelection != "nearest" || st.ActiveParent != "relay-dmz1" {
		t.Fatalf("status: selection %q, active parent %q (%v)", st.ParentSelection, st.ActiveParent, err)
	}
}

// TestParentSpreadE2E: a gwproxy in spread mode shares 1,000 sessions
// between its two relays by their weights, 1 to 3, within 10%.
func TestParentSpreadE2E(t *testing.T) {
	tr := startTwoRelays(t, 0, 0, "\nparent_selection: spread\n", "\n    weight: 1", "\n    weight: 3")
	tr.gwp.WaitLog(t, 0, 20*time.Second, `routing: new sessions spread over relay-dmz2 \(weight 1\), relay-dmz1 \(weight 3\)`)
	d2, d1 := forwarded(tr.d2), forwarded(tr.d1)
	const total, workers = 1000, 8
	var next atomic.Int64
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= total {
				if err := tr.session(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("upcall: %v\n%s\n%s", err, refusals(tr.gwp), clientLines(tr.gwp, err))
	}
	var viaDMZ2, all int
	e2etest.Eventually(t, 20*time.Second, "every session in relay-dmz1's log", func() error {
		viaDMZ2, all = forwarded(tr.d2)-d2, forwarded(tr.d1)-d1
		if all < total {
			return fmt.Errorf("%d of %d", all, total)
		}
		return nil
	})
	direct := all - viaDMZ2
	t.Logf("%d sessions: %d through relay-dmz2, %d straight to relay-dmz1", all, viaDMZ2, direct)
	if all != total || viaDMZ2 < 225 || viaDMZ2 > 275 || direct < 675 || direct > 825 {
		t.Fatalf("%d sessions, %d through relay-dmz2 and %d straight to relay-dmz1; want 250 and 750 within 10%%", all, viaDMZ2, direct)
	}
}

// TestParentDampingE2E: a parent whose link flaps is suppressed (new
// sessions go through the other relay although it is up and first in
// order), then reused once its penalty has decayed; each change is logged
// once.
func TestParentDampingE2E(t *testing.T) {
	tr := startTwoRelays(t, 0, 0, `
parent_damping:
  penalty: 1000
  suppress: 1800
  reuse: 900
  half_life: 4s
`, "", "")
	tr.gwp.WaitLog(t, 0, 20*time.Second, `routing: active parent is now relay-dmz2 \(`)
	off := int64(0)
	for i := 0; i < 3; i++ {
		off = tr.gwp.WaitLog(t, off, 20*time.Second, `link: link up \[.*l=relay-dmz2`)
		tr.toDMZ2.Cut()
		off = tr.gwp.WaitLog(t, off, 20*time.Second, `link: link down \[.*l=relay-dmz2`)
	}
	// The move to relay-dmz1 came with the link down that suppressed
	// relay-dmz2, or before it; either way it stays there.
	sup := tr.gwp.WaitLog(t, 0, 20*time.Second, `routing: parent relay-dmz2 suppressed: its link flaps`)
	tr.gwp.WaitLog(t, off, 20*time.Second, `link: link up \[.*l=relay-dmz2`)
	if v := tr.via(t); v != "relay-dmz1" && !strings.Contains(tr.gwp.LogSince(0), "parent relay-dmz2 reused") {
		t.Fatalf("session through %s while relay-dmz2 is suppressed", v)
	}
	if st, err := nodeStatus(t, tr.c, e2etest.Node{Name: "gwp-site-a", Daemon: "gwproxy"}); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(tr.gwp.LogSince(0), "parent relay-dmz2 reused") && st.ActiveParent != "relay-dmz1" {
		t.Fatalf("status while relay-dmz2 is suppressed: active parent %q", st.ActiveParent)
	}
	tr.gwp.WaitLog(t, sup, 20*time.Second, `routing: parent relay-dmz2 reused`, `routing: active parent is now relay-dmz2 \(`)
	if v := tr.via(t); v != "relay-dmz2" {
		t.Fatalf("session through %s once relay-dmz2 was reused", v)
	}
	log := tr.gwp.LogSince(0)
	if s, r := strings.Count(log, "parent relay-dmz2 suppressed"), strings.Count(log, "parent relay-dmz2 reused"); s != 1 || r != 1 {
		t.Fatalf("%d suppressions and %d reuses logged, want one each", s, r)
	}
}

// refusals are the lines of p's log about sessions refused or aborted,
// the last ten, for a failure's message.
func refusals(p *e2etest.Process) string {
	var out []string
	for _, l := range strings.Split(p.LogSince(0), "\n") {
		if strings.Contains(l, "session: refused") || strings.Contains(l, "session: aborted") {
			out = append(out, l)
		}
	}
	return strings.Join(out[max(0, len(out)-10):], "\n")
}

var reClientPort = regexp.MustCompile(`tcp (127\.0\.0\.1:\d+)->`)

// clientLines are the lines of p's log that name the client address in
// err, for a failure's message.
func clientLines(p *e2etest.Process, err error) string {
	m := reClientPort.FindStringSubmatch(err.Error())
	if m == nil {
		return ""
	}
	var out []string
	for _, l := range strings.Split(p.LogSince(0), "\n") {
		if strings.Contains(l, m[1]) {
			out = append(out, l)
		}
	}
	return "gwp-site-a's lines about " + m[1] + ":\n" + strings.Join(out, "\n")
}
