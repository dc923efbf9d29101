package sink_test

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/relaychain/relaychain/eventsink/sink"
	"github.com/relaychain/relaychain/eventsink/spool"
	"github.com/relaychain/relaychain/internal/chain"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// TestStopClosesEveryListenerAtOnce: when the eventsink stops, every
// intake listener stops accepting at once, though a sender that never
// pauses keeps the first one reading; once it pauses, the stop ends, with
// its events spooled.
func TestStopClosesEveryListenerAtOnce(t *testing.T) {
	svc := &eventService{}
	_, leaf := muxtest.StartPair(t, svc.handle)
	dir := filepath.Join(t.TempDir(), "spool")
	cfg := sinkConfig(t, dir)
	cfg.ShutdownGrace = time.Minute
	cfg.Events.Listeners = []chain.EventListener{
		{Name: "a", Protocol: "tcp", Listen: "127.0.0.1:0", Framing: "eif", MaxConnsPerSource: 64, IdleTimeout: time.Minute},
		{Name: "b", Protocol: "tcp", Listen: "127.0.0.1:0", Framing: "eif", MaxConnsPerSource: 64, IdleTimeout: time.Minute},
	}
	s, err := sink.New(cfg, leaf, muxtest.Log(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := serve(t, s)
	aAddr, bAddr := s.Addr("a").String(), s.Addr("b").String()
	a, err := net.Dial("tcp", aAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	quit, sent := make(chan struct{}), make(chan int, 1)
	go func() {
		n := 0
		defer func() { sent <- n }()
		for {
			select {
			case <-quit:
				return
			case <-time.After(20 * time.Millisecond):
				if _, err := fmt.Fprintf(a, "Ev;n=%d;END\n", n+1); err != nil {
					return
				}
				n++
			}
		}
	}()
	muxtest.WaitFor(t, 10*time.Second, "an event at the root", func() bool {
		got, _, _ := svc.got()
		return len(got) > 0
	})
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	refuses := func(addr string) func() bool {
		return func() bool {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return true
			}
			c.Close()
			return false
		}
	}
	muxtest.WaitFor(t, 10*time.Second, "listener a to stop accepting", refuses(aAddr))
	muxtest.WaitFor(t, 10*time.Second, "listener b to stop accepting while a still reads", refuses(bAddr))
	select {
	case err := <-stopped:
		t.Fatalf("the stop ended while a sender still sent: %v", err)
	default:
	}
	close(quit)
	n := <-sent
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the stop did not end once the sender paused")
	}
	// Everything the sender wrote was read and spooled: at the root, or
	// still in the spool.
	seen := map[string]bool{}
	got, _, _ := svc.got()
	for _, r := range got {
		seen[r.data] = true
	}
	sp, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	recs, err := sp.Read(sp.Stats().Acked+1, 1<<20, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		seen[string(r.Data)] = true
	}
	for i := 1; i <= n; i++ {
		if ev := fmt.Sprintf("Ev;n=%d;END", i); !seen[ev] {
			t.Fatalf("%s of the %d sent is neither at the root nor in the spool", ev, n)
		}
	}
}
