package eventse2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// tcpChunk is the most events a TCP sender writes at once.
const tcpChunk = 10

// fleet is the senders: one goroutine each, sending events 1..total in
// order. A sender sends event n only once the fleet's limit is at least n,
// so the test moves them on phase by phase and can hold them still (every
// sender has written everything up to the limit) around a fault. An event
// counts as sent once its Write returned without error (TCP) or its
// datagram was handed to the kernel (UDP).
type fleet struct {
	t     testing.TB
	total int
	addrs [3]string // by senderKind

	mu     sync.Mutex
	cond   *sync.Cond
	limit  [3]int // by senderKind
	gen    int    // bumped to make the TCP senders reconnect
	closed bool

	sent     [numSenders]atomic.Int64 // last counter sent
	writeErr atomic.Int64             // unexpected write errors
	wg       sync.WaitGroup
}

// startFleet starts numSenders senders, each to send total events, to the
// eventsink listening at the given addresses.
func startFleet(t testing.TB, total int, eifAddr, linesAddr, udpAddr string) *fleet {
	t.Helper()
	f := &fleet{t: t, total: total, addrs: [3]string{eifAddr, linesAddr, udpAddr}}
	f.cond = sync.NewCond(&f.mu)
	for i := range numSenders {
		f.wg.Add(1)
		go f.run(i)
	}
	t.Cleanup(f.close)
	return f
}

// setLimit lets every sender go on up to event n.
func (f *fleet) setLimit(n int) {
	f.setKindLimit(kindEIF, n)
	f.setKindLimit(kindLinesTCP, n)
	f.setKindLimit(kindUDP, n)
}

// setKindLimit lets the senders of one kind go on up to event n.
func (f *fleet) setKindLimit(k senderKind, n int) {
	f.mu.Lock()
	f.limit[k] = min(n, f.total)
	f.mu.Unlock()
	f.cond.Broadcast()
}

// reconnect makes every TCP sender open a new connection before its next
// event (after the eventsink was killed).
func (f *fleet) reconnect() {
	f.mu.Lock()
	f.gen++
	f.mu.Unlock()
}

func (f *fleet) close() {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cond.Broadcast()
	f.wg.Wait()
}

// lastSent returns the last counter each sender sent.
func (f *fleet) lastSent() [numSenders]int {
	var out [numSenders]int
	for i := range out {
		out[i] = int(f.sent[i].Load())
	}
	return out
}

// totalSent returns the number of events sent.
func (f *fleet) totalSent() int {
	n := 0
	for _, s := range f.lastSent() {
		n += s
	}
	return n
}

// waitLimit waits until every sender has sent everything up to its limit.
func (f *fleet) waitLimit(d time.Duration) {
	f.t.Helper()
	f.mu.Lock()
	limit := f.limit
	f.mu.Unlock()
	e2etest.Eventually(f.t, d, fmt.Sprintf("the senders to send up to %v", limit), func() error {
		for i, s := range f.lastSent() {
			if s < limit[kindOf(i)] {
				return fmt.Errorf("sender %d (%s) at %d", i, kindOf(i), s)
			}
		}
		return nil
	})
}

// next waits until event n may be sent; it returns the reconnect
// generation and the limit, or false when the fleet is closed.
func (f *fleet) next(k senderKind, n int) (gen, limit int, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for n > f.limit[k] && !f.closed {
		f.cond.Wait()
	}
	return f.gen, f.limit[k], !f.closed
}

func (f *fleet) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

// run is sender id's goroutine.
func (f *fleet) run(id int) {
	defer f.wg.Done()
	kind := kindOf(id)
	var c net.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	gen := -1
	buf := make([]byte, 0, 2048)
	for n := 1; n <= f.total; {
		g, lim, ok := f.next(kind, n)
		if !ok {
			return
		}
		if c == nil || (kind != kindUDP && g != gen) {
			if c != nil {
				c.Close()
			}
			if c = f.dial(kind); c == nil {
				return // closed
			}
			gen = g
		}
		// A TCP sender writes up to tcpChunk events at once, as adapters
		// with a backlog do; a UDP sender one event per datagram.
		last := n
		if kind != kindUDP {
			last = min(n+tcpChunk-1, lim)
		}
		buf = buf[:0]
		for i := n; i <= last; i++ {
			buf = append(buf, eventText(id, i)...)
			if kind != kindUDP {
				buf = append(buf, '\n')
			}
		}
		if kind != kindUDP {
			_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		}
		if _, err := c.Write(buf); err != nil {
			// The eventsink never closes a sender's connection in this
			// test while it runs: this is a failure. Send the events
			// again on a new connection; the final check tells whether
			// events were lost.
			f.writeErr.Add(1)
			f.t.Errorf("sender %d (%s): events %d..%d: write: %v", id, kind, n, last, err)
			c.Close()
			c = nil
			continue
		}
		f.sent[id].Store(int64(last))
		n = last + 1
		if kind == kindUDP && n%3 == 0 {
			// Pace the datagrams so that the eventsink's socket buffer
			// rarely overflows (the kernel's drops are counted anyway).
			time.Sleep(time.Millisecond)
		}
	}
}

// dial connects to the eventsink, retrying until it answers or the fleet
// closes.
func (f *fleet) dial(kind senderKind) net.Conn {
	network := "tcp"
	if kind == kindUDP {
		network = "udp"
	}
	for !f.isClosed() {
		c, err := net.DialTimeout(network, f.addrs[kind], time.Second)
		if err == nil {
			return c
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// spoolCounters reads the eventsink's spool segments (read-only; the
// format is in eventsink/spool/doc.go) and returns the highest counter of
// each sender among the records there. A record cut short (being written)
// ends a segment; a segment deleted meanwhile is skipped.
func spoolCounters(dir string) [numSenders]int {
	var out [numSenders]int
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, p := range segs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for len(b) >= 8 {
			n := int(binary.LittleEndian.Uint32(b))
			if n < 19 || len(b) < 8+n {
				break
			}
			body := b[8 : 8+n]
			srcLen := int(binary.LittleEndian.Uint16(body[17:]))
			if 19+srcLen > n {
				break
			}
			if s, c, ok := parseEvent(string(body[19+srcLen:])); ok {
				out[s] = max(out[s], c)
			}
			b = b[8+n:]
		}
	}
	return out
}
