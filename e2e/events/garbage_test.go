package eventse2e

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// TestGarbageInput sends the real eventsink binary garbage, oversized and
// malformed input on each of its listeners (EIF over TCP, lines over TCP,
// lines over UDP), then valid events: the eventsink stays up, rejects and
// logs the bad input, resynchronises on the same connection after an
// oversized or malformed event, and every valid event reaches the event
// server exactly once, in order.
func TestGarbageInput(t *testing.T) {
	c := newChain(t, chainOpts{sinkEvents: "  max_event_bytes: 4KiB\n" + sinkDefaults})
	srv := startEventServer(t, c.Addr(e2etest.PortEvents))
	c.StartAll()
	eif, lines, udp := c.Addr(e2etest.PortEIF), c.Addr(e2etest.PortLinesTCP), c.Addr(e2etest.PortSyslogUDP)
	e2etest.WaitListening(t, lines, 10*time.Second)
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	// The senders of the valid events: one per listener.
	const sEIF, sLines, sUDP = 0, numEIF, numEIF + numLinesTC
	var sent [numSenders]int
	valid := func(sender int) string {
		sent[sender]++
		return eventText(sender, sent[sender])
	}

	// TCP: write, then close (or reset), and expect the eventsink to go on.
	// The eventsink resets a connection after too many rejected events: a
	// write of garbage may fail then.
	tcp := func(addr string, reset bool, chunks ...[]byte) {
		t.Helper()
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		defer conn.Close()
		for _, b := range chunks {
			_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := conn.Write(b); err != nil {
				if !bytes.Contains(b, []byte("sender=")) {
					t.Logf("write of garbage to %s: %v", addr, err)
					return
				}
				t.Fatalf("write to %s: %v", addr, err)
			}
		}
		if reset {
			_ = conn.(*net.TCPConn).SetLinger(0)
			return
		}
		// Wait for the eventsink's end of the connection: everything was
		// read (and the valid events spooled) once it closes, or it reset
		// the connection for too many rejected events.
		_ = conn.(*net.TCPConn).CloseWrite()
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.Copy(io.Discard, conn); err != nil && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("waiting for %s to close: %v", addr, err)
		}
	}
	b := func(s string) []byte { return []byte(s) }
	big := strings.Repeat("x", 10<<10)

	// EIF over TCP.
	tcp(eif, false, garbage(256<<10))
	tcp(eif, true, garbage(64<<10))
	tcp(eif, false, b("Big_Event;msg='"+big+"';END\n"+valid(sEIF)+"\n")) // oversized, then valid
	tcp(eif, false, b("Bad Class;END\nCls;no_value;END\nCls;a=\x01;END\n"+valid(sEIF)+"\n"))
	tcp(eif, false, b(strings.Repeat("Cls;bad;END\n", 150))) // reset after too many rejects
	tcp(eif, false, b("Cls;a=1"))                            // cut by the end of the stream
	tcp(eif, false, b("\x00\x00;;;  "+valid(sEIF)+"\n"))     // filler between events is skipped
	// Lines over TCP.
	tcp(lines, false, garbage(256<<10))
	tcp(lines, true, garbage(64<<10))
	tcp(lines, false, b(big+"\n"+valid(sLines)+"\n"))
	tcp(lines, false, b("ctl \x01\x02 line\n\x00\n"+valid(sLines)+"\r\n"))
	// Lines over UDP.
	uc, err := net.Dial("udp", udp)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	udpSends := [][]byte{garbage(1), garbage(100), garbage(4000), garbage(8000), b(big[:8000] + "\n"), b("\x00\x01\x02")}
	for range 50 {
		udpSends = append(udpSends, garbage(1+rng.IntN(9000)))
	}
	for _, d := range udpSends {
		if _, err := uc.Write(d); err != nil {
			t.Fatalf("UDP write: %v", err)
		}
	}

	// Then valid events on every listener, on fresh connections.
	var eifBatch, linesBatch []byte
	for range 100 {
		eifBatch = append(append(eifBatch, valid(sEIF)...), '\n')
		linesBatch = append(append(linesBatch, valid(sLines)...), '\n')
	}
	tcp(eif, false, eifBatch)
	tcp(lines, false, linesBatch)
	for range 100 {
		if _, err := uc.Write(b(valid(sUDP))); err != nil {
			t.Fatalf("UDP write: %v", err)
		}
	}

	c.Proc("es-site-a").CheckRunning(t)
	e2etest.Eventually(t, 30*time.Second, "the valid events at the event server", func() error {
		got := srv.maxCounters()
		for _, s := range []int{sEIF, sLines} {
			if got[s] < sent[s] {
				return fmt.Errorf("sender %d: up to %d of %d", s, got[s], sent[s])
			}
		}
		_, drops, err := e2etest.UDPSocket(c.Port(e2etest.PortSyslogUDP))
		if err != nil {
			return err
		}
		if n := srv.counts()[sUDP]; n < sent[sUDP]-drops {
			return fmt.Errorf("UDP: %d of %d (%d dropped by the kernel)", n, sent[sUDP], drops)
		}
		return nil
	})
	_, drops, err := e2etest.UDPSocket(c.Port(e2etest.PortSyslogUDP))
	if err != nil {
		t.Fatal(err)
	}
	recs, other, torn := srv.snapshot()
	if msg := checkDelivery(recs, sent, 0).failures(drops); msg != "" {
		t.Error(msg)
	}
	if len(torn) > 0 {
		t.Errorf("partial lines at the event server: %q", torn)
	}
	t.Logf("%d valid events delivered; %d garbage lines were well-formed enough to be taken as events", len(recs), len(other))

	// The eventsink rejected and logged the bad input, and stops cleanly.
	sink := c.Proc("es-site-a")
	log := sink.LogSince(0)
	for _, want := range []string{"rejected: oversized event", "rejected: malformed event", "bad events from", "panic"} {
		n := strings.Count(log, want)
		switch {
		case want == "panic" && n > 0:
			t.Errorf("the eventsink logged a panic:\n%s", e2etest.Tail(sink.Log, 40))
		case want != "panic" && n == 0:
			t.Errorf("the eventsink's log has no %q line", want)
		}
	}
	waitSpoolAcked(t, filepath.Join(c.NodeDir("es-site-a"), "spool"))
	off := sink.LogSize()
	sink.Terminate(t, 20*time.Second)
	st := statsLine(sink.LogSince(off))
	t.Logf("eventsink stopped: %v", st)
	if st["pending"] != "0" {
		t.Errorf("the eventsink stopped with %q events pending, want 0", st["pending"])
	}
}
