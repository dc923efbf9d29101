package mux

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/sirupsen/logrus"
)

// Conn is one end of a routed session: what an entry gets from Open and
// what an in-process service Handler is given. Bytes written are carried in
// data frames; CloseWrite sends the end marker, so the other end reads
// io.EOF only after everything was sent. If the stream ends any other
// way (the other end aborted, a link on the path died, a hop timed out),
// Read returns an error that matches ErrAborted, never io.EOF.
//
// One goroutine may Read while another Writes. Close releases the session:
// when both directions ended cleanly it is a clean close, otherwise an
// abort.
type Conn struct {
	st  *yamux.Stream
	hdr Header

	rmu    sync.Mutex
	remain int   // bytes left in the current data frame
	rerr   error // sticky read result (io.EOF after the end marker)

	wmu    sync.Mutex
	whead  [frameHeaderLen]byte
	wended bool
	werr   error // sticky: after a failed write the framing cannot go on

	closeOnce sync.Once
	aborted   chan struct{}
	abortWhy  error
	onClose   func()
	link      *link // the link the stream runs on

	// What the session's log says at this end (sessionlog.go).
	side       string        // who this end's peer is: "client" (entry, Open) or "target" (destination)
	log        *logrus.Entry // the session's log, for its level-4 steps; may be nil
	stats      connStats
	logOnClose bool // Node.Open: no splice logs the end, Close and Abort do
	opened     time.Time
	endOnce    sync.Once
}

func newConn(l *link, st *yamux.Stream, h Header, onClose func()) *Conn {
	return &Conn{st: st, hdr: h, aborted: make(chan struct{}), onClose: onClose, link: l}
}

// Header returns the session's open header.
func (c *Conn) Header() Header { return c.hdr }

// Read reads session bytes. It returns io.EOF after the other end's clean
// end, and an error matching ErrAborted when the session was aborted.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	select {
	case <-c.aborted:
		// yamux hands out buffered bytes even past the deadline Abort
		// set; an aborted session delivers nothing more.
		return 0, fmt.Errorf("%w: %w", ErrAborted, c.abortWhy)
	default:
	}
	for c.remain == 0 {
		if c.rerr != nil {
			return 0, c.rerr
		}
		var h [frameHeaderLen]byte
		if _, err := io.ReadFull(c.st, h[:]); err != nil {
			c.rerr = c.readFailure(err)
			return 0, c.rerr
		}
		n := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
		switch h[0] {
		case frameData:
			c.remain = n
			c.stats.framesIn.Add(1)
		case frameEnd:
			if n != 0 {
				c.rerr = fmt.Errorf("%w: %w: end marker with length %d", ErrAborted, ErrBadFrame, n)
				return 0, c.rerr
			}
			c.rerr = io.EOF
			c.logHalfClose(otherSide(c.side))
		case frameAbort:
			c.rerr = readAbortFrame(c.st, n)
			return 0, c.rerr
		default:
			c.rerr = fmt.Errorf("%w: %w: type %d", ErrAborted, ErrBadFrame, h[0])
			return 0, c.rerr
		}
	}
	if len(p) > c.remain {
		p = p[:c.remain]
	}
	n, err := c.st.Read(p)
	c.remain -= n
	c.stats.bytesIn.Add(int64(n))
	if err != nil {
		// Deliver any bytes first; the failure is seen on the next read.
		c.rerr = c.readFailure(err)
		c.remain = 0
		if n == 0 {
			return 0, c.rerr
		}
	}
	return n, nil
}

// readFailure turns a stream read error (io.EOF included: the stream ended
// without an end marker) into the abort it means.
func (c *Conn) readFailure(err error) error {
	select {
	case <-c.aborted:
		return fmt.Errorf("%w: %w", ErrAborted, c.abortWhy)
	default:
	}
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		if c.st.Session().IsClosed() {
			return fmt.Errorf("%w: %w", ErrAborted, errLinkLost)
		}
		return fmt.Errorf("%w: by the other end", ErrAborted)
	case errors.Is(err, yamux.ErrTimeout):
		return fmt.Errorf("%w: read deadline", ErrAborted)
	case errors.Is(err, yamux.ErrConnectionReset):
		return fmt.Errorf("%w: stream reset", ErrAborted)
	}
	return fmt.Errorf("%w: %w", ErrAborted, err)
}

// Write sends p in data frames.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	if c.wended {
		return 0, fmt.Errorf("write after close: %w", net.ErrClosed)
	}
	if len(p) > 0 && len(p) <= bigSize {
		// One stream write (one yamux frame) for header and payload,
		// not two: half the frames and syscalls for small writes.
		bp := bigPool.Get().(*[]byte)
		b := (*bp)[:frameHeaderLen+len(p)]
		copy(b[frameHeaderLen:], p)
		putFrameHeader(b, frameData, len(p))
		n, err := c.st.Write(b) // yamux is done with b when Write returns
		bigPool.Put(bp)
		if err != nil {
			return max(n-frameHeaderLen, 0), c.writeFailure(err)
		}
		c.countOut(len(p))
		return len(p), nil
	}
	total := 0
	for len(p) > 0 {
		n := len(p)
		if n > maxFrame {
			n = maxFrame
		}
		putFrameHeader(c.whead[:], frameData, n)
		if _, err := c.st.Write(c.whead[:]); err != nil {
			return total, c.writeFailure(err)
		}
		m, err := c.st.Write(p[:n])
		total += m
		if err != nil {
			return total, c.writeFailure(err)
		}
		c.countOut(n)
		p = p[n:]
	}
	return total, nil
}

// writeFrame sends b[frameHeaderLen:] as one data frame; the first
// frameHeaderLen bytes of b are room for the frame header. It saves a
// write per frame on the splice path.
func (c *Conn) writeFrame(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	if c.wended {
		return fmt.Errorf("write after close: %w", net.ErrClosed)
	}
	putFrameHeader(b, frameData, len(b)-frameHeaderLen)
	if _, err := c.st.Write(b); err != nil {
		return c.writeFailure(err)
	}
	c.countOut(len(b) - frameHeaderLen)
	return nil
}

// writeFailure turns a failed stream write into the abort it means and
// keeps it: a frame may have gone out in part, so nothing more may be
// written (a later frame would land inside it). Called with wmu held.
func (c *Conn) writeFailure(err error) error {
	select {
	case <-c.aborted:
		c.werr = fmt.Errorf("%w: %w", ErrAborted, c.abortWhy)
	default:
		if c.st.Session().IsClosed() {
			c.werr = fmt.Errorf("%w: %w", ErrAborted, errLinkLost)
		} else {
			c.werr = fmt.Errorf("%w: %w", ErrAborted, err)
		}
	}
	return c.werr
}

// CloseWrite sends the end marker: the other end reads io.EOF once it has
// read everything. Reading goes on.
//
// The stream's own FIN waits for Close (both directions ended): a yamux
// stream closed on one side is reset after StreamCloseTimeout unless the
// peer closes too, which would cut a session whose other direction goes on
// for longer than that.
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	if c.wended {
		return nil
	}
	c.wended = true
	var end [frameHeaderLen]byte
	putFrameHeader(end[:], frameEnd, 0)
	if _, err := c.st.Write(end[:]); err != nil {
		return c.writeFailure(err)
	}
	c.logHalfClose(c.side)
	return nil
}

// Abort ends the session at once, without an end marker, so that the other
// end sees an abort. Pending reads and writes return. Idempotent.
func (c *Conn) Abort(reason error) {
	c.closeOnce.Do(func() {
		if reason == nil {
			reason = errors.New("aborted locally")
		}
		c.abortWhy = reason
		close(c.aborted)
		c.sendAbort(reason)
		now := time.Now()
		_ = c.st.SetDeadline(now)
		_ = c.st.Close()
		if c.onClose != nil {
			c.onClose()
		}
	})
	c.logOpenEnd()
}

// Close ends the session. If both directions already ended cleanly (the
// end marker was sent and received) it releases the stream; otherwise it
// aborts.
func (c *Conn) Close() error {
	// A Read or Write in progress holds its lock: then that direction has
	// not ended, and Close must not wait for it but abort, which releases it.
	readDone, writeDone := false, false
	if c.rmu.TryLock() {
		readDone = c.rerr == io.EOF
		c.rmu.Unlock()
	}
	if c.wmu.TryLock() {
		writeDone = c.wended && c.werr == nil
		c.wmu.Unlock()
	}
	if !readDone || !writeDone {
		c.Abort(errors.New("closed before both directions ended"))
		return nil
	}
	c.closeOnce.Do(func() {
		_ = c.st.Close()
		if c.onClose != nil {
			c.onClose()
		}
	})
	c.logOpenEnd()
	return nil
}

// shrink releases the stream's receive buffer when it is empty, so an idle
// session holds no large buffer.
func (c *Conn) shrink() { c.st.Shrink() }

// SetDeadline, SetReadDeadline and SetWriteDeadline act on the stream.
func (c *Conn) SetDeadline(t time.Time) error      { return c.st.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.st.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.st.SetWriteDeadline(t) }

// LocalAddr and RemoteAddr describe the session as labels.
func (c *Conn) LocalAddr() net.Addr  { return labelAddr(c.hdr.Origin) }
func (c *Conn) RemoteAddr() net.Addr { return labelAddr(c.hdr.Dest + "/" + c.hdr.Service) }

type labelAddr string

func (a labelAddr) Network() string { return "relaychain" }
func (a labelAddr) String() string  { return string(a) }

var _ net.Conn = (*Conn)(nil)

// onLost registers f to run when the link ends (at once if it has ended)
// and returns the function that unregisters it. The ends of sessions use
// it to learn of a dead link even while both their directions wait on
// their TCP peer, without a goroutine per session.
func (l *link) onLost(f func()) (cancel func()) {
	l.lostMu.Lock()
	if l.lost {
		l.lostMu.Unlock()
		f()
		return func() {}
	}
	l.lostSeq++
	id := l.lostSeq
	if l.onLostFn == nil {
		l.onLostFn = map[uint64]func(){}
	}
	l.onLostFn[id] = f
	l.lostMu.Unlock()
	return func() {
		l.lostMu.Lock()
		delete(l.onLostFn, id)
		l.lostMu.Unlock()
	}
}

// fireLost runs the onLost functions once.
func (l *link) fireLost() {
	l.lostMu.Lock()
	l.lost = true
	fns := l.onLostFn
	l.onLostFn = nil
	l.lostMu.Unlock()
	for _, f := range fns {
		f()
	}
}
