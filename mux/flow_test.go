package mux_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux/muxtest"
)

// flow is one end of a session in a fault test, on a real TCP socket: it
// reads everything that comes and (when sending) writes a paced stream,
// until either fails, and records how its read side ended.
type flow struct {
	c        *net.TCPConn
	in, out  atomic.Int64
	done     chan struct{} // closed when the read side ended
	rerr     error         // how it ended; set before done is closed
	wdone    chan struct{} // closed when the write side ended
	werr     error         // how it ended; set before wdone is closed
	quit     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	fast     bool // send as fast as the socket takes it, unpaced
}

func startFlow(c *net.TCPConn, send, read bool) *flow {
	return startFlowPace(c, send, read, false)
}

func startFlowPace(c *net.TCPConn, send, read, fast bool) *flow {
	f := &flow{c: c, done: make(chan struct{}), wdone: make(chan struct{}), quit: make(chan struct{}), fast: fast}
	if !send {
		close(f.wdone)
	}
	if send {
		f.wg.Add(1)
		go f.write()
	}
	if read {
		f.wg.Add(1)
		go f.read()
	}
	return f
}

func (f *flow) read() {
	defer f.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := f.c.Read(buf)
		f.in.Add(int64(n))
		if err != nil {
			f.rerr = err
			close(f.done)
			return
		}
	}
}

// write sends 8 KiB every 2ms (4 MB/s): enough to be mid-transfer at any
// moment, little enough not to load the links. A fast flow does not wait.
func (f *flow) write() {
	defer f.wg.Done()
	defer close(f.wdone)
	buf := make([]byte, 8<<10)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		n, err := f.c.Write(buf)
		f.out.Add(int64(n))
		if err != nil {
			f.werr = err
			return
		}
		if f.fast {
			select {
			case <-f.quit:
				return
			default:
				continue
			}
		}
		select {
		case <-tick.C:
		case <-f.quit:
			return
		}
	}
}

// waitStalled waits until f's sender is held: its byte count does not move
// for several polls in a row.
func waitStalled(t testing.TB, f *flow) {
	t.Helper()
	last, still := int64(-1), 0
	muxtest.WaitFor(t, 20*time.Second, "the sender to be held by flow control", func() bool {
		time.Sleep(50 * time.Millisecond) // the poll interval of a stall
		n := f.out.Load()
		if n == last && n > 0 {
			still++
		} else {
			still = 0
		}
		last = n
		return still >= 4
	})
}

// stop closes the socket and waits for the flow's goroutines.
func (f *flow) stop() {
	f.stopOnce.Do(func() {
		close(f.quit)
		_ = f.c.Close()
	})
	f.wg.Wait()
}

// dialFlow connects to an entry and runs a flow on the connection; the
// test's cleanup stops it.
func dialFlow(t testing.TB, addr string, send, read bool) *flow {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	f := startFlow(nc.(*net.TCPConn), send, read)
	t.Cleanup(f.stop)
	return f
}

// flowTarget is a target that runs a flow on every connection and hands
// it to the test.
func flowTarget(t testing.TB, send bool) (*target, chan *flow) {
	t.Helper()
	return flowTargetPace(t, send, false)
}

func flowTargetPace(t testing.TB, send, fast bool) (*target, chan *flow) {
	t.Helper()
	flows := make(chan *flow, 64)
	srv := startTarget(t, func(c *net.TCPConn) {
		f := startFlowPace(c, send, true, fast)
		flows <- f
		<-f.done
		<-f.wdone // the test may want to know how the write side ended
		f.stop()
	})
	return srv, flows
}

func nextFlow(t testing.TB, flows chan *flow) *flow {
	t.Helper()
	select {
	case f := <-flows:
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no session reached the target")
		return nil
	}
}

// waitMoving waits until f has received and (if it sends) sent some bytes.
func waitMoving(t testing.TB, what string, fs ...*flow) {
	t.Helper()
	muxtest.WaitFor(t, 10*time.Second, what+": bytes flowing", func() bool {
		for _, f := range fs {
			if f.in.Load() < 64<<10 {
				return false
			}
		}
		return true
	})
}

// assertReset waits up to d for f's read side to end and checks that the
// socket was reset, never closed cleanly. Linux reports a reset once, to
// the first read or write that comes: when the read side saw the end of
// the stream, the write side must have been told of the reset.
func assertReset(t testing.TB, f *flow, d time.Duration, who string) {
	t.Helper()
	deadline := time.After(d)
	select {
	case <-f.done:
	case <-deadline:
		t.Fatalf("%s: no abort within %s (%d bytes in, %d out)", who, d, f.in.Load(), f.out.Load())
	}
	if errors.Is(f.rerr, syscall.ECONNRESET) {
		return
	}
	select {
	case <-f.wdone:
	case <-deadline:
		t.Fatalf("%s: read ended with %v and the writer goes on", who, f.rerr)
	}
	if !errors.Is(f.werr, syscall.ECONNRESET) {
		t.Fatalf("%s: the socket ended with %v (read) and %v (write), want a reset", who, f.rerr, f.werr)
	}
}

// drainReset reads a socket that was not being read until it fails, and
// checks that it was reset.
func drainReset(t testing.TB, f *flow, who string) {
	t.Helper()
	_ = f.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, f.c)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("%s: the socket ended with %v, want a reset", who, err)
	}
}

func resetConn(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}
