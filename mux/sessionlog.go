package mux

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// What every hop of a session says about it (PROTOCOL.md section 4, "Data
// frames" and "Abort frames"): the same id, the same payload bytes each
// way, and the same outcome: closed, or aborted with who aborted it.
//
// who is one of:
//
//	client             the entry's side: its TCP client (or the in-process opener)
//	target             the destination's side: the service's socket (or handler)
//	timeout            the idle timeout
//	shutdown:LABEL     the node LABEL shut down with the session still open
//	link:PARENT/CHILD  the link between PARENT and CHILD was lost
//	LABEL              a hop's own failure
//
// The hop that decides an abort sends it in an abort frame before its
// stream ends, so the hops behind it name the same who; when no frame can
// be sent (a frame in progress, a dead link) each hop infers it the same
// way from the side whose stream ended first.

const (
	whoClient  = "client"
	whoTarget  = "target"
	whoTimeout = "timeout"

	// abortFrameWait bounds the write of an abort frame: a stream whose
	// window is full gets none rather than hold the abort back.
	abortFrameWait = 200 * time.Millisecond
)

var errShutdown = errors.New("shutdown")

// abortedBy is an abort whose author is known, carried by an abort frame.
type abortedBy struct{ who string }

func (a *abortedBy) Error() string { return "by " + a.who }

// whoCarried returns the who of an abort frame found in err's chain, or "".
func whoCarried(err error) string {
	var a *abortedBy
	if errors.As(err, &a) {
		return a.who
	}
	return ""
}

// linkWho names the link l as both of its ends name it.
func linkWho(l *link) string {
	if l.cfg.Parent {
		return "link:" + l.cfg.Peer + "/" + l.n.cfg.Label
	}
	return "link:" + l.n.cfg.Label + "/" + l.cfg.Peer
}

// otherSide is the side across the session from side.
func otherSide(side string) string {
	if side == whoClient {
		return whoTarget
	}
	return whoClient
}

// encodeAbort is an abort frame carrying who.
func encodeAbort(who string) []byte {
	if len(who) > maxReason {
		who = who[:maxReason]
	}
	b := make([]byte, frameHeaderLen+len(who))
	putFrameHeader(b, frameAbort, len(who))
	copy(b[frameHeaderLen:], who)
	return b
}

// readAbortFrame reads the text of an abort frame of length n whose header
// was read, and returns the abort it means.
func readAbortFrame(r io.Reader, n int) error {
	if n > maxReason {
		return fmt.Errorf("%w: %w: abort frame of %d bytes", ErrAborted, ErrBadFrame, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("%w: %w: abort frame cut short", ErrAborted, ErrBadFrame)
	}
	return fmt.Errorf("%w: %w", ErrAborted, &abortedBy{who: string(b)})
}

// readAfterEnd reads what follows the other end's end frame: nothing (the
// stream's end) or an abort frame. Anything else is a protocol error.
func readAfterEnd(st io.Reader) error {
	var h [frameHeaderLen]byte
	n, err := io.ReadFull(st, h[:])
	if n == 0 {
		return err
	}
	if err == nil && h[0] == frameAbort {
		return readAbortFrame(st, int(h[1])<<16|int(h[2])<<8|int(h[3]))
	}
	return fmt.Errorf("%w: bytes after the end marker", ErrBadFrame)
}

// connStats are one end's counts: payload bytes and frames each way, and
// writes to the local peer. Kept for the session's last lines.
type connStats struct {
	bytesOut, bytesIn   atomic.Int64 // payload sent in data frames, read from them
	framesOut, framesIn atomic.Int64
	peerWrites          atomic.Int64 // writes to the TCP peer at this end
}

// whoFor names who aborted a session at this end, given why it aborted.
func (c *Conn) whoFor(why error) string {
	if w := whoCarried(why); w != "" {
		return w
	}
	switch {
	case errors.Is(why, errShutdown):
		return "shutdown:" + c.nodeLabel()
	case errors.Is(why, errIdle):
		return whoTimeout
	case errors.Is(why, errLinkLost):
		if c.link != nil {
			return linkWho(c.link)
		}
	case errors.Is(why, ErrAborted):
		// The stream ended without an end frame and without an abort
		// frame: the other side did.
		return otherSide(c.side)
	}
	return c.side
}

func (c *Conn) nodeLabel() string {
	if c.link != nil {
		return c.link.n.cfg.Label
	}
	return ""
}

// sendAbort sends an abort frame for why, unless a frame is being written
// (it would land inside it), the session already failed, or the abort came
// from the other side (which knows). Called by Abort, before the stream
// closes.
func (c *Conn) sendAbort(why error) {
	if errors.Is(why, ErrAborted) || errors.Is(why, errLinkLost) {
		return
	}
	if !c.wmu.TryLock() {
		return
	}
	defer c.wmu.Unlock()
	if c.werr != nil {
		return
	}
	_ = c.st.SetWriteDeadline(time.Now().Add(abortFrameWait))
	_, _ = c.st.Write(encodeAbort(c.whoFor(why)))
}

// logHalfClose logs a direction's clean end at level 4.
func (c *Conn) logHalfClose(by string) {
	if c.log != nil {
		c.log.WithField("by", by).Debug("half-close")
	}
}

// endFields are the fields of a session's last line at one end: bytes in
// the session's terms (up: from the client's side to the target's).
func (c *Conn) endFields(res endResult, start time.Time) logrus.Fields {
	up, down := res.up, res.down
	if c.side == whoTarget {
		up, down = down, up
	}
	return logrus.Fields{"up": up, "down": down, "dur": time.Since(start).Round(time.Millisecond).String()}
}

// logEnd logs how a session ended at an end of it: closed, or aborted and
// by whom (level 3), and at level 5 its frames.
func (c *Conn) logEnd(log *logrus.Entry, res endResult, start time.Time) {
	log = log.WithFields(c.endFields(res, start))
	if res.aborted {
		log.WithFields(logrus.Fields{"who": c.whoFor(res.reason), "reason": fmt.Sprint(res.reason)}).Info("aborted")
	} else {
		log.Info("closed")
	}
	if log.Logger.IsLevelEnabled(logrus.TraceLevel) {
		fo, fi, pw := c.stats.framesOut.Load(), c.stats.framesIn.Load(), c.stats.peerWrites.Load()
		f := logrus.Fields{"frames_out": fo, "frames_in": fi, "peer_writes": pw}
		log.WithFields(f).Trace("frames")
	}
}

// result is how an in-process end (Open, a Handler) ended, from its Conn,
// counted as spliceEnd counts: up is what the local side sent.
func (c *Conn) result() endResult {
	res := endResult{up: c.stats.bytesOut.Load(), down: c.stats.bytesIn.Load()}
	select {
	case <-c.aborted:
		res.aborted = true
		res.reason = c.abortWhy
	default:
	}
	return res
}

// Sessions alive on this node, with the function that aborts each, so a
// shutdown that ends them says so to every hop.

func (n *Node) addLive(abort func(error)) (remove func()) {
	n.liveMu.Lock()
	if n.live == nil {
		n.live = map[uint64]func(error){}
	}
	n.liveSeq++
	id := n.liveSeq
	n.live[id] = abort
	n.liveMu.Unlock()
	return func() {
		n.liveMu.Lock()
		delete(n.live, id)
		n.liveMu.Unlock()
	}
}

// abortLive aborts every session still alive on this node as a shutdown,
// then gives the abort frames up to abortDeliverWait to reach the
// neighbours: a link closed while its peer still sends resets, and the
// reset can drop the frames in flight. The wait ends as soon as each link
// carries no session stream (the neighbours closed theirs).
func (n *Node) abortLive() {
	n.liveMu.Lock()
	fns := make([]func(error), 0, len(n.live))
	for _, f := range n.live {
		fns = append(fns, f)
	}
	n.liveMu.Unlock()
	for _, f := range fns {
		f(errShutdown)
	}
	n.mu.Lock()
	links := make([]*link, 0, len(n.links))
	for _, l := range n.links {
		links = append(links, l)
	}
	n.mu.Unlock()
	deadline := time.Now().Add(abortDeliverWait)
	for _, l := range links {
		for l.sess.NumStreams() > 1 && !l.sess.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// abortDeliverWait bounds abortLive's wait for its abort frames.
const abortDeliverWait = time.Second

// countOut counts a data frame of n payload bytes sent.
func (c *Conn) countOut(n int) {
	c.stats.bytesOut.Add(int64(n))
	c.stats.framesOut.Add(1)
}

// logOpenEnd logs, once, the end of a session opened with Node.Open.
func (c *Conn) logOpenEnd() {
	if !c.logOnClose || c.log == nil {
		return
	}
	c.endOnce.Do(func() { c.logEnd(c.log, c.result(), c.opened) })
}
