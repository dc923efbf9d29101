package mux

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// Buffers. An idle direction of a session parks in a read of smallSize
// bytes; only while bytes flow does it borrow a bigSize buffer from the
// pool, and it gives it back on the first short read. So an idle session
// holds no large buffer on any node. "Short" is under flowingMin bytes:
// a big read that returns less than the buffer but more than that means
// the peer is still sending.
//
// A big buffer is a frame: a relay hop and the yamux send loop hand over
// one frame per read, each a wake-up of the other goroutine, and an end's
// read of a TCP socket takes what the socket holds up to bigSize. 256 KiB
// frames (64 KiB before) cut the CPU per GB moved through the real chain
// by about a tenth (docs/PERFORMANCE.md); 1 MiB made no further gain.
//
// The stream's own receive buffer (yamux's) is released by shrink once a
// direction has waited shrinkDelay in a small read. Releasing it before
// every small read instead made yamux allocate and zero a new buffer for
// most frames while bytes flowed (a short read does not mean idle: frames
// end in short reads), which cost a sixth of the CPU of a transfer.
const (
	smallSize   = 512
	bigSize     = 256 << 10
	flowingMin  = 16 << 10
	shrinkDelay = 50 * time.Millisecond
)

var bigPool = sync.Pool{New: func() any {
	b := make([]byte, frameHeaderLen+bigSize)
	return &b
}}

// activity records when a session last moved a byte, for the idle timeout.
type activity struct{ last atomic.Int64 }

func (a *activity) touch() { a.last.Store(time.Now().UnixNano()) }

// pump copies src to write until src ends. Each chunk handed to write has
// headroom free bytes before the payload (room for a frame header). It
// returns the bytes copied and which side failed: the read error (io.EOF
// for a clean end) or the write error.
func pump(src io.Reader, headroom int, write func([]byte) error, shrink func(), act *activity) (total int64, rerr, werr error) {
	small := make([]byte, headroom+smallSize)
	var shrinkT *time.Timer
	if shrink != nil {
		shrinkT = time.AfterFunc(shrinkDelay, shrink)
		defer shrinkT.Stop()
	}
	for {
		if shrinkT != nil {
			shrinkT.Reset(shrinkDelay) // shrink if this read waits
		}
		n, err := src.Read(small[headroom:])
		if n > 0 {
			act.touch()
			total += int64(n)
			if werr = write(small[:headroom+n]); werr != nil {
				return total, nil, werr
			}
		}
		if err != nil {
			return total, err, nil
		}
		if n < smallSize {
			continue
		}
		// Bytes are flowing: read big until a short read. The whole pooled
		// buffer is read into, so that a relay (no headroom) reads a whole
		// frame written by an end (headroom plus bigSize) at once.
		if shrinkT != nil {
			shrinkT.Stop()
		}
		bp := bigPool.Get().(*[]byte)
		big := *bp
		for {
			n, err = src.Read(big[headroom:])
			if n > 0 {
				act.touch()
				total += int64(n)
				if werr = write(big[:headroom+n]); werr != nil {
					bigPool.Put(bp)
					return total, nil, werr
				}
			}
			if err != nil {
				bigPool.Put(bp)
				return total, err, nil
			}
			if n < flowingMin {
				break
			}
		}
		bigPool.Put(bp)
	}
}

// closeWriter is a connection whose write side can be closed alone.
type closeWriter interface{ CloseWrite() error }

// idleWatch aborts through abort when act shows no activity for d. It
// returns a stop function. d <= 0: no watch.
func idleWatch(d time.Duration, act *activity, abort func(error)) (stop func()) {
	if d <= 0 {
		return func() {}
	}
	var mu sync.Mutex
	var t *time.Timer
	stopped := false
	var check func()
	check = func() {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		idle := time.Since(time.Unix(0, act.last.Load()))
		if idle < d {
			t = time.AfterFunc(d-idle, check)
			mu.Unlock()
			return
		}
		stopped = true
		mu.Unlock()
		abort(errIdle)
	}
	mu.Lock()
	t = time.AfterFunc(d, check)
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
}

var errIdle = errors.New("idle timeout")

// endResult is how a session ended at one end.
type endResult struct {
	up, down int64 // bytes tcp->conn and conn->tcp
	aborted  bool
	reason   error
}

// spliceEnd carries bytes between a TCP connection at an end of a session
// (the client at the entry, the target at the destination) and the
// session's Conn, both ways, until both directions end. A FIN on either
// side becomes an end marker and a FIN on the other; anything else aborts
// both: the TCP connection is reset and the session aborted. spliceEnd
// closes tcp and c.
//
// Two waits could miss an abort, and are watched: both directions may be
// blocked on tcp (a peer that neither reads nor sends) when the link dies
// (the link tells its sessions when it ends); and once the other end's end marker came, nothing reads the stream, so
// the other end's abort (its stream ending) would not be seen while this
// end still sends.
func spliceEnd(tcp net.Conn, c *Conn, idle, peerWrite time.Duration) endResult {
	var act activity
	act.touch()
	var res endResult
	var once sync.Once
	var aborting atomic.Bool // set before abort closes tcp
	abort := func(why error) {
		once.Do(func() {
			aborting.Store(true)
			res.aborted = true
			res.reason = why
			if tc, ok := tcp.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = tcp.Close()
			c.Abort(why)
		})
	}
	stop := idleWatch(idle, &act, abort)
	defer stop()

	// The link's death aborts even a session whose directions both wait on
	// tcp (a peer that neither reads nor sends).
	unwatch := func() {}
	if c.link != nil {
		unwatch = c.link.onLost(func() { abort(errLinkLost) })
	}

	var ending atomic.Bool    // tcp -> session ended cleanly: the end marker goes out
	var shutWrite atomic.Bool // session -> tcp ended: tcp's write side is shut
	done := make(chan struct{})
	go func() { // tcp -> session
		defer close(done)
		n, rerr, werr := pump(tcp, frameHeaderLen, c.writeFrame, nil, &act)
		res.up = n
		if rerr == io.EOF {
			// Only the peer's FIN becomes the end marker (a clean end
			// at the other end). A reset whose ECONNRESET went to a
			// write of the other direction reads as a plain EOF too;
			// and that write's abort may already have closed tcp, so
			// that its state cannot be read: then the abort under way
			// ends this direction. (Once this side shut its write side,
			// the socket may close cleanly: checked again after the
			// state was read.)
			if !shutWrite.Load() {
				if err := resetByPeer(tcp); err != nil && !shutWrite.Load() {
					rerr = err
				}
			}
			if rerr == io.EOF && aborting.Load() {
				rerr = errAborting
			}
		}
		switch {
		case werr != nil:
			abort(werr)
		case rerr == io.EOF:
			ending.Store(true)
			if err := c.CloseWrite(); err != nil {
				abort(err)
			}
		default:
			abort(rerr)
		}
	}()
	n, rerr, werr := pump(c, 0, func(b []byte) error {
		if peerWrite > 0 {
			_ = tcp.SetWriteDeadline(time.Now().Add(peerWrite))
		}
		_, err := tcp.Write(b)
		c.stats.peerWrites.Add(1)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("the peer took no byte for %s: %w", peerWrite, err)
		}
		return err
	}, c.shrink, &act)
	res.down = n
	switch {
	case werr != nil:
		abort(werr)
	case rerr == io.EOF:
		shutWrite.Store(true)
		if cw, ok := tcp.(closeWriter); ok {
			if err := cw.CloseWrite(); err != nil {
				abort(err)
			}
		}
		if err := awaitPeerEnd(c, done, &ending); err != nil {
			abort(err)
		}
	default:
		abort(rerr)
	}
	<-done
	stop()
	unwatch()
	once.Do(func() {}) // no abort from now on
	if !res.aborted {
		_ = tcp.Close()
		_ = c.Close()
	}
	return res
}

// awaitPeerEnd runs at an end once the other end's end marker was read,
// until this end's sending direction is over (done). The other end closes
// its stream only after it read this end's end marker, so a stream that
// ends before this end began to send it (ending) was aborted at the other
// end, or lost with its link: that is returned as an abort.
func awaitPeerEnd(c *Conn, done <-chan struct{}, ending *atomic.Bool) error {
	got := make(chan error, 1)
	go func() { got <- readAfterEnd(c.st) }()
	select {
	case <-done:
		_ = c.st.SetReadDeadline(time.Now()) // releases the read
		<-got
		return nil
	case err := <-got:
		if ending.Load() {
			return nil // our end marker is on its way: a clean end
		}
		if err == nil {
			err = io.EOF
		}
		return c.readFailure(err)
	}
}

// spliceRelay carries bytes between two streams at a relay hop, both ways,
// without looking at them: the frames pass through. A clean end of one
// stream (its FIN, its link alive) half-closes the other; a dead link, a
// reset or a timeout aborts both (the ends see a stream that ended without
// an end marker). spliceRelay closes a and b. w follows the frames each
// way (a to b is its direction 0) and sends abort frames when this relay
// aborts.
func spliceRelay(a, b *yamux.Stream, idle time.Duration, w *relayWatch) endResult {
	var act activity
	act.touch()
	var res endResult
	var once sync.Once
	abort := func(why error) {
		once.Do(func() {
			res.aborted = true
			res.reason = why
			w.sendAborts(why, [2]*yamux.Stream{b, a})
			now := time.Now()
			_ = a.SetDeadline(now)
			_ = b.SetDeadline(now)
			_ = a.Close()
			_ = b.Close()
		})
	}
	w.setAbort(abort)
	stop := idleWatch(idle, &act, abort)
	defer stop()

	// An end sends its stream's FIN only once both directions of the
	// session have ended (it sent its end marker and read the other's), or
	// when it aborts. So a FIN arriving from a side this relay still has
	// bytes for means that end aborted and reads no more: abort at once
	// rather than wait, blocked on its window, for its stream close
	// timeout. A write in progress when the FIN comes is not enough to
	// tell: after a clean end it is the one that carried the end marker,
	// delivered, but its goroutine has not returned yet (on a loaded
	// machine the end's FIN can come back first). So the FIN sets a past
	// write deadline on its stream: a write blocked on the window (bytes
	// the end will never read) fails, a delivered one returns, and a write
	// that comes after the FIN is refused.
	var finned [2]atomic.Bool // per stream: a (0) and b (1)
	dir := func(src, dst *yamux.Stream, si, di int) int64 {
		n, rerr, werr := pump(src, 0, func(p []byte) error {
			if finned[di].Load() {
				return errPeerAborted
			}
			return w.write(si, dst, p)
		}, src.Shrink, &act)
		switch {
		case werr != nil:
			switch {
			case dst.Session().IsClosed():
				abort(errLinkLost)
			case finned[di].Load():
				abort(errPeerAborted)
			default:
				abort(werr)
			}
		case rerr == io.EOF && !src.Session().IsClosed():
			w.fin(si)
			finned[si].Store(true)
			_ = src.SetWriteDeadline(time.Now())
			w.closeDst(si, dst) // FIN: the clean end goes on
		case rerr == io.EOF:
			abort(errLinkLost)
		default:
			abort(rerr)
		}
		return n
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		res.up = dir(a, b, 0, 1)
	}()
	res.down = dir(b, a, 1, 0)
	<-done
	stop()
	once.Do(func() {})
	return res
}

var (
	errLinkLost    = errors.New("link lost")
	errPeerAborted = errors.New("the other end aborted")
	errAborting    = errors.New("the session is being aborted")
)
