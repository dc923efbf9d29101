package sink_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/eventsink/sink"
	"github.com/relaychain/relaychain/internal/chain"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// TestSinkHandOver hands a serving eventsink over to a successor in the
// same process, as an upgrade does across two: the successor gets copies
// of the intake sockets, then, at the commit, the spool and the open TCP
// connection with half an event read; its configuration renames the TCP
// listener, which it takes by address. A sender writing throughout on one
// connection, and datagrams sent while the sockets change hands, all
// reach the root; the predecessor is left with nothing open.
func TestSinkHandOver(t *testing.T) {
	svc := &eventService{}
	_, leaf := muxtest.StartPair(t, svc.handle)
	dir := filepath.Join(t.TempDir(), "spool")
	cfg := sinkConfig(t, dir)
	// Both sinks serve the same addresses: the configuration names them.
	cfg.Events.Listeners[0].Listen = fmt.Sprintf("127.0.0.1:%d", muxtest.FreePort(t))
	cfg.Events.Listeners[1].Listen = fmt.Sprintf("127.0.0.1:%d", muxtest.FreePort(t))
	old, err := sink.New(cfg, leaf, muxtest.Log(t))
	if err != nil {
		t.Fatalf("sink.New: %v", err)
	}
	tcpAddr, udpAddr := old.Addr("eif"), old.Addr("syslog")
	stopOld := serve(t, old)

	tc, err := net.Dial("tcp", tcpAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	uc, err := net.Dial("udp", udpAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	ev := func(i int) string { return fmt.Sprintf("Ev;n=%d;END", i) }
	write := func(c net.Conn, s string) {
		t.Helper()
		if _, err := io.WriteString(c, s); err != nil {
			t.Fatal(err)
		}
	}
	const n = 400
	for i := range n / 2 {
		write(tc, ev(i)+"\n")
	}
	half := ev(n/2) + "\n"
	write(tc, half[:5])
	muxtest.WaitFor(t, 10*time.Second, "the first half at the root", func() bool {
		got, _, _ := svc.got()
		return len(got) >= n/2
	})

	// The successor: copies of the intake sockets, then the commit.
	files, err := old.ListenerFiles()
	if err != nil {
		t.Fatalf("ListenerFiles: %v", err)
	}
	inh := &chain.Inherited{Listeners: map[string]net.Listener{}, PacketConns: map[string]net.PacketConn{}}
	for _, f := range files {
		if strings.HasPrefix(f.Addr, "events/udp/") {
			pc, err := net.FilePacketConn(f.File)
			if err != nil {
				t.Fatal(err)
			}
			inh.PacketConns[f.Addr] = pc
		} else {
			ln, err := net.FileListener(f.File)
			if err != nil {
				t.Fatal(err)
			}
			inh.Listeners[f.Addr] = ln
		}
		f.File.Close()
	}
	// The successor's configuration renames the TCP listener: it takes
	// the socket and the connection by address.
	next := *cfg
	evc := *cfg.Events
	evc.Listeners = append([]chain.EventListener(nil), cfg.Events.Listeners...)
	evc.Listeners[0].Name = "eif-renamed"
	next.Events = &evc
	part, err := sink.Part(&next, leaf, inh, muxtest.Log(t))
	if err != nil {
		t.Fatalf("sink.Part: %v", err)
	}
	if len(inh.Listeners)+len(inh.PacketConns) != 0 {
		t.Fatalf("sockets handed over and not taken: %v %v", inh.Listeners, inh.PacketConns)
	}
	// A sink not served yet (its spool not open) waits a while, then
	// refuses to hand over.
	defer sink.SetStartWait(50 * time.Millisecond)()
	if _, err := part.ListenerFiles(); err == nil {
		t.Fatal("a sink that is not served yet handed its sockets over")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	handed, err := old.HandOver(ctx)
	if err != nil {
		t.Fatalf("HandOver: %v", err)
	}
	if len(handed.Files) != 1 {
		t.Fatalf("%d connections handed over, want 1", len(handed.Files))
	}
	if err := stopOld(); err != nil {
		t.Fatalf("the predecessor's Serve: %v", err)
	}
	write(uc, "<13>sent while the sockets change hands\n")
	write(tc, half[5:])
	for i := n/2 + 1; i < n; i++ {
		write(tc, ev(i)+"\n")
	}
	nctx, stopNext := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- part.Serve(nctx, handed) }()
	defer func() {
		stopNext()
		if err := <-served; err != nil {
			t.Errorf("the successor's Serve: %v", err)
		}
	}()
	tc2, err := net.Dial("tcp", tcpAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc2.Close()
	write(tc2, ev(n)+"\n")

	muxtest.WaitFor(t, 10*time.Second, "every event at the root", func() bool {
		got, _, _ := svc.got()
		seen := map[string]bool{}
		for _, r := range got {
			seen[r.data] = true
		}
		return len(seen) == n+2
	})
	got, _, err := svc.got()
	if err != nil {
		t.Fatalf("event service: %v", err)
	}
	// Sent again (a batch not acknowledged before the handover) is
	// allowed, as the epproxy drops it; out of order on the connection is
	// not.
	next1 := 0
	for _, r := range got {
		var k int
		if _, err := fmt.Sscanf(r.data, "Ev;n=%d;END", &k); err != nil || k > n {
			continue
		}
		if k == next1 {
			next1++
		} else if k > next1 && k != n {
			t.Fatalf("event %d arrived before event %d", k, next1)
		}
	}
	if next1 < n {
		t.Fatalf("events of the handed-over connection in order: up to %d of %d", next1, n)
	}
}
