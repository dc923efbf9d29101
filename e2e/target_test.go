package e2e

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// The session protocol between the in-test clients and targets. The client
// opens with a header:
//
//	id     8 bytes  session id, unique in the test binary
//	down   8 bytes  bytes the target sends back (infinite: until an error)
//	flags  1 byte   flagHold: do not half-close after sending
//
// then both sides stream pseudo-random bytes at the same time (full
// duplex), each hashing what it sends and what it receives with SHA-256;
// a side that has sent all it should half-closes (CloseWrite), unless
// told to hold. The header is not counted nor hashed.
const (
	headerLen = 17
	flagHold  = 1
	infinite  = math.MaxInt64
	chunkSize = 32 << 10
)

// sessionDeadline is the safety net of every test socket: no session of
// these tests runs longer, so a hang fails instead of blocking the run.
const sessionDeadline = 90 * time.Second

var nextID atomic.Uint64

// tcpState returns the kernel's TCP state of c (e2etest.StateClose, ...), or -1.
func tcpState(c *net.TCPConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1
	}
	st := -1
	_ = rc.Control(func(fd uintptr) {
		var info [256]byte // struct tcp_info; tcpi_state is its first byte
		l := uint32(len(info))
		_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_TCP, syscall.TCP_INFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&l)), 0)
		if e == 0 {
			st = int(info[0])
		}
	})
	return st
}

// endKind is how one side of a test socket saw the session end.
type endKind int

const (
	endNone  endKind = iota // not ended (or still running)
	endClean                // the peer's FIN: a clean end of the bytes
	endReset                // the peer's RST
	endOther                // another error (a deadline, say)
)

func (k endKind) String() string {
	return [...]string{"none", "clean EOF", "reset", "other error"}[k]
}

// half is one direction's outcome at one side.
type half struct {
	n   int64
	sum [32]byte
	err error // nil: completed (reader: clean EOF; writer: all sent)
}

// sideResult is what one side (client or target) saw of a session.
type sideResult struct {
	id        uint64
	sent      half
	recv      half
	end       endKind   // how the read direction ended
	state     int       // TCP state when the read direction ended
	endAt     time.Time // when both directions were done
	recvFirst time.Time // the first byte received (zero if none)
}

func (r *sideResult) String() string {
	return fmt.Sprintf("id=%d sent=%d (err %v) recv=%d (err %v) end=%s state=%d", r.id, r.sent.n, r.sent.err, r.recv.n, r.recv.err, r.end, r.state)
}

// progress counts bytes moved so far, for waiting on a session mid-transfer.
type progress struct{ sent, recv atomic.Int64 }

// gate pauses a writer after a number of bytes until it is opened.
type gate struct {
	at   int64
	open chan struct{}
}

// runSide runs both directions of a session on c: it sends sendN bytes
// (pausing at g, if any) and then half-closes unless hold, and reads until
// the end. It returns when both directions are done.
func runSide(c *net.TCPConn, id uint64, seed uint64, sendN int64, hold bool, g *gate, pr *progress) *sideResult {
	res := &sideResult{id: id, state: -1}
	var wg sync.WaitGroup
	var readDone atomic.Bool
	var wroteFIN atomic.Bool
	wg.Add(1)
	go func() {
		defer wg.Done()
		res.sent = sendStream(c, seed, sendN, g, pr)
		if res.sent.err == nil && !hold {
			// Marked before the call: once the FIN is out, the socket
			// may reach CLOSE cleanly before CloseWrite returns.
			wroteFIN.Store(true)
			if err := c.CloseWrite(); err != nil {
				res.sent.err = err
			}
		}
		if res.sent.err != nil && !readDone.Load() {
			// Writing failed: the read direction learns the outcome
			// from the same socket, no need to wait for more.
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		}
	}()
	h := sha256.New()
	buf := make([]byte, chunkSize)
	var n int64
	var err error
	for {
		var m int
		m, err = c.Read(buf)
		if m > 0 {
			if n == 0 {
				res.recvFirst = time.Now()
			}
			h.Write(buf[:m])
			n += int64(m)
			pr.recv.Add(int64(m))
		}
		if err != nil {
			break
		}
	}
	res.state = tcpState(c)
	readDone.Store(true)
	switch {
	case errors.Is(err, io.EOF):
		// A FIN, or the EOF that follows an RST whose ECONNRESET the
		// writer consumed: the socket is then closed, not in CLOSE_WAIT.
		if res.state == e2etest.StateClose && !wroteFIN.Load() {
			res.end = endReset
		} else {
			res.end = endClean
			err = nil
		}
	case errors.Is(err, syscall.ECONNRESET):
		res.end = endReset
	default:
		res.end = endOther
	}
	res.recv = half{n: n, err: err}
	copy(res.recv.sum[:], h.Sum(nil))
	if res.end != endClean {
		// Unblock a writer stuck on a dead session; it has lost anyway.
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	}
	wg.Wait()
	if res.end == endClean && (errors.Is(res.sent.err, syscall.ECONNRESET) || errors.Is(res.sent.err, syscall.EPIPE)) {
		// The RST came after the FIN: the session did not end cleanly.
		res.end = endReset
	}
	res.endAt = time.Now()
	return res
}

// sendStream writes n pseudo-random bytes from seed (infinite: until an
// error) to w, hashing them.
func sendStream(w io.Writer, seed uint64, n int64, g *gate, pr *progress) half {
	rng := rand.NewChaCha8([32]byte{0: byte(seed), 1: byte(seed >> 8), 2: byte(seed >> 16), 3: byte(seed >> 24), 4: byte(seed >> 32), 5: byte(seed >> 40), 31: 0x5e})
	h := sha256.New()
	buf := make([]byte, chunkSize)
	var sent int64
	for sent < n {
		m := int64(len(buf))
		if n-sent < m {
			m = n - sent
		}
		if g != nil && sent < g.at && sent+m > g.at {
			m = g.at - sent
		}
		if g != nil && sent == g.at {
			<-g.open
			g = nil
			continue
		}
		_, _ = rng.Read(buf[:m])
		k, err := w.Write(buf[:m])
		h.Write(buf[:k])
		sent += int64(k)
		if pr != nil {
			pr.sent.Add(int64(k))
		}
		if err != nil {
			return finish(h, sent, err)
		}
	}
	return finish(h, sent, nil)
}

func finish(h hash.Hash, n int64, err error) half {
	r := half{n: n, err: err}
	copy(r.sum[:], h.Sum(nil))
	return r
}

// target is an in-test server standing for the gateway or an endpoint: it
// serves the session protocol and keeps what it saw of each session.
type target struct {
	t    testing.TB
	name string
	ln   *net.TCPListener

	mu       sync.Mutex
	sessions map[uint64]*targetSession
	conns    map[*net.TCPConn]bool
	wg       sync.WaitGroup
}

type targetSession struct {
	started chan struct{} // closed when the header arrived
	done    chan struct{} // closed when res is set
	pr      progress
	res     *sideResult
}

// startTarget listens on a free loopback port; the cleanup closes the
// listener and every connection and waits for the goroutines.
func startTarget(t testing.TB, name string) *target {
	t.Helper()
	return startTargetAt(t, "127.0.0.1", name)
}

// startTargetAt is startTarget on the loopback address ip.
func startTargetAt(t testing.TB, ip, name string) *target {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{t: t, name: name, ln: ln, sessions: map[uint64]*targetSession{}, conns: map[*net.TCPConn]bool{}}
	tg.wg.Add(1)
	go tg.acceptLoop()
	t.Cleanup(tg.close)
	return tg
}

func (tg *target) port() int { return tg.ln.Addr().(*net.TCPAddr).Port }

func (tg *target) close() {
	_ = tg.ln.Close()
	tg.mu.Lock()
	for c := range tg.conns {
		_ = c.Close()
	}
	tg.mu.Unlock()
	tg.wg.Wait()
}

func (tg *target) acceptLoop() {
	defer tg.wg.Done()
	for {
		c, err := tg.ln.AcceptTCP()
		if err != nil {
			return
		}
		tg.mu.Lock()
		tg.conns[c] = true
		tg.mu.Unlock()
		tg.wg.Add(1)
		go tg.serve(c)
	}
}

// session returns the record of session id, creating it.
func (tg *target) session(id uint64) *targetSession {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	s, ok := tg.sessions[id]
	if !ok {
		s = &targetSession{started: make(chan struct{}), done: make(chan struct{})}
		tg.sessions[id] = s
	}
	return s
}

func (tg *target) serve(c *net.TCPConn) {
	defer tg.wg.Done()
	defer func() {
		_ = c.Close()
		tg.mu.Lock()
		delete(tg.conns, c)
		tg.mu.Unlock()
	}()
	_ = c.SetDeadline(time.Now().Add(sessionDeadline))
	var hdr [headerLen]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return
	}
	id := binary.BigEndian.Uint64(hdr[0:])
	down := int64(binary.BigEndian.Uint64(hdr[8:]))
	hold := hdr[16]&flagHold != 0
	s := tg.session(id)
	close(s.started)
	s.res = runSide(c, id, id^0xd0d0, down, hold, nil, &s.pr)
	close(s.done)
}

// result waits at most d for the target's record of session id.
func (tg *target) result(t testing.TB, id uint64, d time.Duration) *sideResult {
	t.Helper()
	s := tg.session(id)
	select {
	case <-s.done:
		return s.res
	case <-time.After(d):
		t.Fatalf("%s: session %d not done within %s", tg.name, id, d)
		return nil
	}
}

// session plan, run by a client.
type plan struct {
	up, down int64 // bytes the client sends, bytes the target sends
	hold     bool  // neither side half-closes after sending
	gate     *gate // pauses the client's sending
}

// clientSession is one session from the client's side.
type clientSession struct {
	id    uint64
	entry string
	conn  *net.TCPConn
	pr    progress
	done  chan struct{}
	res   *sideResult
	err   error // dial or header error
}

// startSession dials entry, sends the header and runs the session in the
// background. The caller waits with wait.
func startSession(t testing.TB, entry string, p plan) *clientSession {
	t.Helper()
	cs := &clientSession{id: nextID.Add(1), entry: entry, done: make(chan struct{})}
	c, err := net.DialTimeout("tcp", entry, 5*time.Second)
	if err != nil {
		cs.err = err
		close(cs.done)
		return cs
	}
	cs.conn = c.(*net.TCPConn)
	t.Cleanup(func() { _ = cs.conn.Close() })
	_ = cs.conn.SetDeadline(time.Now().Add(sessionDeadline))
	var hdr [headerLen]byte
	binary.BigEndian.PutUint64(hdr[0:], cs.id)
	binary.BigEndian.PutUint64(hdr[8:], uint64(p.down))
	if p.hold {
		hdr[16] = flagHold
	}
	if _, err := cs.conn.Write(hdr[:]); err != nil {
		cs.err = err
		_ = cs.conn.Close()
		close(cs.done)
		return cs
	}
	go func() {
		defer close(cs.done)
		cs.res = runSide(cs.conn, cs.id, cs.id^0xc1c1, p.up, p.hold, p.gate, &cs.pr)
		_ = cs.conn.Close()
	}()
	return cs
}

// wait waits at most d for the session to end at the client.
func (cs *clientSession) wait(t testing.TB, d time.Duration) *sideResult {
	t.Helper()
	select {
	case <-cs.done:
	case <-time.After(d):
		t.Fatalf("session %d via %s: not done within %s (sent %d, received %d)", cs.id, cs.entry, d, cs.pr.sent.Load(), cs.pr.recv.Load())
	}
	if cs.err != nil {
		t.Fatalf("session %d via %s: %v", cs.id, cs.entry, cs.err)
	}
	return cs.res
}

// checkClean checks that a session completed cleanly and that each side
// received exactly what the other sent.
func checkClean(cl, tg *sideResult, p plan) error {
	var errs []error
	if cl.end != endClean || cl.recv.err != nil || cl.sent.err != nil {
		errs = append(errs, fmt.Errorf("client: %v", cl))
	}
	if tg.end != endClean || tg.recv.err != nil || tg.sent.err != nil {
		errs = append(errs, fmt.Errorf("target: %v", tg))
	}
	if cl.sent.n != p.up || tg.recv.n != p.up || cl.sent.sum != tg.recv.sum {
		errs = append(errs, fmt.Errorf("upstream: client sent %d bytes, target received %d, sha256 match %v", cl.sent.n, tg.recv.n, cl.sent.sum == tg.recv.sum))
	}
	if tg.sent.n != p.down || cl.recv.n != p.down || tg.sent.sum != cl.recv.sum {
		errs = append(errs, fmt.Errorf("downstream: target sent %d bytes, client received %d, sha256 match %v", tg.sent.n, cl.recv.n, tg.sent.sum == cl.recv.sum))
	}
	return errors.Join(errs...)
}
