package mux_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// loadTuning is muxtest.FastTuning with the link and stream timeouts of
// DefaultTuning. The load tests are about bytes, not about detecting dead
// links, and FastTuning's timeouts are too short for a link saturated both
// ways by a slow -race build on a loaded machine:
//   - a yamux keepalive answer queues behind the data in flight on its link
//     (the send queue and both sockets' buffers, several MiB on loopback),
//     so it can take more than a 1s write timeout, and the link would be
//     declared dead;
//   - once an end closed its stream, the peer must close within the stream
//     close timeout or yamux resets the stream, and the peer closes only
//     after it drained what is still in flight towards it, which with 200
//     sessions sharing a slow link can take longer than FastTuning's 5s;
//   - a session open (its SYN, header and status) queues behind the same
//     data on every hop, both ways: with 200 sessions opened at once, the
//     last opens wait for the first sessions' bytes, and on a loaded
//     2-core machine (another test binary beside this one) that took
//     longer than the default 15s ("no answer from relay2 within 15s" in
//     TestManyConcurrentSessions). The opens are bounded at 60s instead.
func loadTuning() mux.Tuning {
	t := muxtest.FastTuning()
	d := mux.DefaultTuning()
	t.KeepAliveInterval = d.KeepAliveInterval
	t.WriteTimeout = d.WriteTimeout
	t.OpenTimeout = 60 * time.Second
	t.StreamCloseTimeout = d.StreamCloseTimeout
	return t
}

// TestFullDuplexLargeTransfer carries a large stream both ways at once, in
// a session from the leaf to the root and one from the root to the leaf at
// the same time, and checks every byte by SHA-256.
func TestFullDuplexLargeTransfer(t *testing.T) {
	checkReleased(t)
	// 64 MiB each way in each session: 256 MiB through every hop. Under
	// -race on two CPUs this takes 7 to 15s, so the size is the same with
	// and without the race detector. MUX_TEST_DUPLEX_MIB overrides it.
	size := int64(64 << 20)
	if mib, err := strconv.ParseInt(os.Getenv("MUX_TEST_DUPLEX_MIB"), 10, 64); err == nil && mib >= 0 {
		size = mib << 20
	}
	srv := startTarget(t, serveDuplex)
	svc := map[string]mux.Service{"duplex": {Addrs: []string{srv.addr()}}}
	c := startChain(t, chainOpts{tuning: loadTuning(), rootServices: svc, leafServices: svc})
	ctx := context.Background()
	errc := make(chan error, 2)
	go func() { errc <- openExchange(ctx, c.leaf, "root", "duplex", size, size, 1) }()
	go func() { errc <- openExchange(ctx, c.root, "leaf", "duplex", size, size, 2) }()
	for i := 0; i < 2; i++ {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	assertDrained(t, c.nodes()...)
	srv.waitClosed(t, 2)
}

// TestManyConcurrentSessions runs 200 sessions at once through the chain,
// of random sizes both ways, up and down, opened with Node.Open and by TCP
// clients of entry listeners on the leaf and on the root; every byte is
// checked.
func TestManyConcurrentSessions(t *testing.T) {
	checkReleased(t)
	const sessions = 200
	const maxSize = 1 << 20
	srv := startTarget(t, serveDuplex)
	svc := map[string]mux.Service{"duplex": {Addrs: []string{srv.addr()}}}
	rootEntry, leafEntry := listenEntry(t), listenEntry(t)
	c := startChain(t, chainOpts{
		tuning:       loadTuning(),
		rootServices: svc,
		leafServices: svc,
		rootOpts:     []muxtest.Option{muxtest.WithEntry(rootEntry, "down", "leaf", "duplex")},
		leafOpts:     []muxtest.Option{muxtest.WithEntry(leafEntry, "up", "root", "duplex")},
	})
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	errc := make(chan error, sessions)
	var wg sync.WaitGroup
	for i := 0; i < sessions; i++ {
		up, down := rng.Int64N(maxSize+1), rng.Int64N(maxSize+1)
		if i%50 == 0 {
			up = 0 // some sessions carry nothing one way
		}
		seed := uint64(1000 + 2*i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			switch i % 4 {
			case 0:
				err = openExchange(ctx, c.leaf, "root", "duplex", up, down, seed)
			case 1:
				err = openExchange(ctx, c.root, "leaf", "duplex", up, down, seed)
			case 2:
				err = entryExchange(leafEntry.Addr().String(), up, down, seed)
			case 3:
				err = entryExchange(rootEntry.Addr().String(), up, down, seed)
			}
			if err != nil {
				errc <- fmt.Errorf("session %d (%d up, %d down): %w", i, up, down, err)
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	assertDrained(t, c.nodes()...)
	srv.waitClosed(t, sessions)
}

// TestFrozenReaderDoesNotBlockOthers: one session's client stops reading,
// so its sender is held by flow control on every hop; another session on
// the same links carries its data to completion meanwhile.
func TestFrozenReaderDoesNotBlockOthers(t *testing.T) {
	checkReleased(t)
	tun := loadTuning()
	tun.WindowSize = 256 << 10 // small windows: the frozen session fills them fast
	// When the frozen client resets, its entry aborts the stream, but the
	// relay next to it is blocked writing into that stream (its window is
	// full and nobody reads it any more); yamux's stream close timeout
	// (a reset after it) is what releases that relay. See the end.
	tun.StreamCloseTimeout = 2 * time.Second
	var pushed atomic.Int64
	frozenTarget := startTarget(t, func(c *net.TCPConn) {
		// Write until the connection fails; nobody reads the other end.
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Write(buf)
			pushed.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	srv := startTarget(t, serveDuplex)
	ln := listenEntry(t)
	c := startChain(t, chainOpts{
		tuning:       tun,
		rootServices: map[string]mux.Service{"duplex": {Addrs: []string{srv.addr()}}},
		leafServices: map[string]mux.Service{
			"firehose": {Addrs: []string{frozenTarget.addr()}},
			"duplex":   {Addrs: []string{srv.addr()}},
		},
		rootOpts: []muxtest.Option{muxtest.WithEntry(ln, "firehose", "leaf", "firehose")},
	})

	// The frozen client: connects through the entry and never reads.
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	frozen := nc.(*net.TCPConn)
	defer frozen.Close()
	// The target writes far more than the windows of the three hops and
	// the socket buffers hold, so it is held by flow control.
	muxtest.WaitFor(t, 10*time.Second, "the frozen session to fill its windows", func() bool {
		return pushed.Load() > 4*int64(tun.WindowSize)
	})

	// Meanwhile another session on the same links runs to completion, both
	// ways, in either direction through the chain.
	const size = 4 << 20
	errc := make(chan error, 2)
	go func() { errc <- openExchange(context.Background(), c.root, "leaf", "duplex", size, size, 11) }()
	go func() { errc <- openExchange(context.Background(), c.leaf, "root", "duplex", size, size, 12) }()
	for i := 0; i < 2; i++ {
		if err := <-errc; err != nil {
			t.Fatalf("session beside a frozen one: %v", err)
		}
	}
	held := pushed.Load()
	// The frozen session is still there, still held: its target has not
	// got far beyond what the windows and socket buffers hold.
	if got := c.leaf.Sessions(); got != 1 {
		t.Fatalf("leaf carries %d sessions, want the frozen one", got)
	}
	if held > 64<<20 {
		t.Fatalf("the frozen session's target pushed %d bytes: flow control did not hold it", held)
	}
	// Resetting the frozen client ends its session everywhere, within the
	// stream close timeout.
	_ = frozen.SetLinger(0)
	_ = frozen.Close()
	muxtest.WaitFor(t, tun.StreamCloseTimeout+5*time.Second, "the frozen session to be released everywhere", func() bool {
		for _, n := range c.nodes() {
			if n.Sessions() != 0 {
				return false
			}
		}
		return true
	})
	frozenTarget.waitClosed(t, 1)
	srv.waitClosed(t, 2)
}
