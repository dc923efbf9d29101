package mux_test

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultProxy forwards the TCP connections made to its address to target,
// and fails like a network on request: cut resets every connection it
// carries (SetLinger(0) and Close on both sides); blackhole stops
// forwarding and stops reading, without closing anything, so that only the
// ends' keepalives can notice. It counts the bytes it forwards each way.
type faultProxy struct {
	ln     net.Listener
	target string
	from   net.IP // the source address of its connections to target; nil: any
	done   chan struct{}
	wg     sync.WaitGroup

	up, down atomic.Int64 // bytes forwarded to target, and back from it

	mu     sync.Mutex
	gate   chan struct{} // closed while forwarding
	conns  map[*net.TCPConn]struct{}
	closed bool
}

func startProxy(t testing.TB, target string) *faultProxy {
	t.Helper()
	return startProxyFrom(t, target, nil)
}

// startProxyFrom is startProxy with the connections to target made from
// the source address from.
func startProxyFrom(t testing.TB, target string, from net.IP) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := make(chan struct{})
	close(open)
	p := &faultProxy{ln: ln, target: target, from: from, done: make(chan struct{}), gate: open, conns: map[*net.TCPConn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.handle(c.(*net.TCPConn))
	}
}

func (p *faultProxy) track(c *net.TCPConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *faultProxy) untrack(c *net.TCPConn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

// waitGate blocks while the proxy is blackholed; false: the proxy closed.
func (p *faultProxy) waitGate() bool {
	p.mu.Lock()
	g := p.gate
	p.mu.Unlock()
	select {
	case <-g:
		return true
	case <-p.done:
		return false
	}
}

func (p *faultProxy) handle(a *net.TCPConn) {
	defer p.wg.Done()
	if !p.track(a) {
		_ = a.Close()
		return
	}
	defer p.untrack(a)
	if !p.waitGate() {
		return
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	if p.from != nil {
		d.LocalAddr = &net.TCPAddr{IP: p.from}
	}
	bc, err := d.Dial("tcp", p.target)
	if err != nil {
		resetConn(a)
		return
	}
	b := bc.(*net.TCPConn)
	if !p.track(b) {
		_ = b.Close()
		return
	}
	defer p.untrack(b)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.pipe(b, a, &p.down)
	}()
	p.pipe(a, b, &p.up)
	wg.Wait()
}

// pipe copies src to dst while the gate is open, counting in n what it
// wrote: a clean end half-closes dst, an error resets both.
func (p *faultProxy) pipe(src, dst *net.TCPConn, n *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		if !p.waitGate() {
			return
		}
		k, err := src.Read(buf)
		if k > 0 {
			if !p.waitGate() {
				return
			}
			w, werr := dst.Write(buf[:k])
			n.Add(int64(w))
			if werr != nil {
				resetConn(src)
				resetConn(dst)
				return
			}
		}
		if err == io.EOF {
			_ = dst.CloseWrite()
			return
		}
		if err != nil {
			resetConn(src)
			resetConn(dst)
			return
		}
	}
}

// cut resets every connection the proxy carries. New connections are
// forwarded as before.
func (p *faultProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		resetConn(c)
	}
}

// blackhole stops forwarding and reading on every connection, present and
// new, until heal.
func (p *faultProxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gate = make(chan struct{})
}

// heal forwards again. The connections that lived through the blackhole
// are dropped first: their ends have given up on them.
func (p *faultProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		resetConn(c)
	}
	close(p.gate)
}

func (p *faultProxy) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.done)
	_ = p.ln.Close()
	for c := range p.conns {
		resetConn(c)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
