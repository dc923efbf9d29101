package muxtest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// DelayProxy forwards the TCP connections made to its loopback address to
// a target, delaying every byte by a one-way delay each way (a round trip
// through it takes twice the delay more), as a distant network would. The
// delay may be changed while connections run; the order of the bytes is
// kept. Cut resets every connection it carries, like a network that
// drops them; new ones are still forwarded.
type DelayProxy struct {
	ln     net.Listener
	target string
	delay  atomic.Int64 // one way, in nanoseconds
	wg     sync.WaitGroup
	conns  atomic.Int64 // connections accepted

	mu     sync.Mutex
	open   map[net.Conn]struct{}
	closed bool
}

// StartDelayProxy starts a DelayProxy on 127.0.0.1 forwarding to target
// with the one-way delay oneWay. The test's cleanup closes it and waits
// for its goroutines.
func StartDelayProxy(t testing.TB, target string, oneWay time.Duration) *DelayProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &DelayProxy{ln: ln, target: target, open: map[net.Conn]struct{}{}}
	p.delay.Store(int64(oneWay))
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's address, to dial instead of the target.
func (p *DelayProxy) Addr() string { return p.ln.Addr().String() }

// SetDelay changes the one-way delay of the bytes read from now on.
func (p *DelayProxy) SetDelay(oneWay time.Duration) { p.delay.Store(int64(oneWay)) }

// Accepted is how many connections the proxy accepted.
func (p *DelayProxy) Accepted() int64 { return p.conns.Load() }

// Cut resets every connection the proxy carries now.
func (p *DelayProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.open {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
		delete(p.open, c)
	}
}

// Close stops the proxy, resets its connections and waits for its
// goroutines. Idempotent.
func (p *DelayProxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	_ = p.ln.Close()
	p.Cut()
	p.wg.Wait()
}

func (p *DelayProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.open[c] = struct{}{}
	return true
}

func (p *DelayProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.conns.Add(1)
		if !p.track(c) {
			continue
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *DelayProxy) handle(a net.Conn) {
	defer p.wg.Done()
	b, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil || !p.track(b) {
		p.drop(a)
		return
	}
	var dirs sync.WaitGroup
	dirs.Add(2)
	go func() { defer dirs.Done(); p.pipe(b, a) }()
	go func() { defer dirs.Done(); p.pipe(a, b) }()
	dirs.Wait()
	p.drop(a)
	p.drop(b)
}

func (p *DelayProxy) drop(c net.Conn) {
	p.mu.Lock()
	delete(p.open, c)
	p.mu.Unlock()
	_ = c.Close()
}

// chunk is bytes read and the time they may be written.
type chunk struct {
	b   []byte
	due time.Time
}

// pipe copies src to dst, each chunk once its delay has passed. The queue
// between the reader and the writer is bounded: a writer held up holds
// the reader up too. The first error on either side closes both.
func (p *DelayProxy) pipe(dst, src net.Conn) {
	q := make(chan chunk, 256)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range q {
			if d := time.Until(c.due); d > 0 {
				time.Sleep(d)
			}
			if _, err := dst.Write(c.b); err != nil {
				_ = src.Close()
				for range q {
				}
				return
			}
		}
	}()
	for {
		buf := make([]byte, 32<<10)
		k, err := src.Read(buf)
		if k > 0 {
			q <- chunk{b: buf[:k], due: time.Now().Add(time.Duration(p.delay.Load()))}
		}
		if err != nil {
			break
		}
	}
	close(q)
	<-done
	_ = dst.Close()
}
