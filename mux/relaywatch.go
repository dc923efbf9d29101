package mux

import (
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/sirupsen/logrus"
)

// What a relay knows of the sessions it carries (sessionlog.go says what
// every hop logs): it follows their frames without changing them.

// relayWatch follows a session's frames through a relay: it counts the
// payload and the frames each way, sees the end and abort frames, and
// sends abort frames when the relay itself aborts. Direction 0 is from
// the client's side (stream a) to the target's (stream b), 1 the other way.
type relayWatch struct {
	n        *Node
	from, to *link
	log      *logrus.Entry
	dir      [2]relayDir

	mu       sync.Mutex
	firstFin int // the direction whose stream ended first (its FIN): 0, 1, or -1
	abort    func(error)
}

type relayDir struct {
	mu     sync.Mutex // held while bytes of this direction are written
	scan   frameScan
	writes int64
	broken bool // a write failed: the stream may hold half a frame
}

func newRelayWatch(n *Node, from, to *link, log *logrus.Entry) *relayWatch {
	return &relayWatch{n: n, from: from, to: to, log: log, firstFin: -1}
}

// write passes p on to dst for direction d, following its frames.
func (w *relayWatch) write(d int, dst *yamux.Stream, p []byte) error {
	rd := &w.dir[d]
	rd.mu.Lock()
	defer rd.mu.Unlock()
	ended := rd.scan.ended
	rd.scan.scan(p)
	rd.writes++
	if !ended && rd.scan.ended {
		w.log.WithField("by", [2]string{whoClient, whoTarget}[d]).Debug("half-close")
	}
	_, err := dst.Write(p)
	if err != nil {
		rd.broken = true
	}
	return err
}

// fin records that the stream of direction d ended (its FIN).
func (w *relayWatch) fin(d int) {
	w.mu.Lock()
	if w.firstFin < 0 {
		w.firstFin = d
	}
	w.mu.Unlock()
}

// sendAborts runs as the relay aborts for why, before it closes the
// streams: each stream that is between frames and has seen no abort gets
// an abort frame naming who. Both directions are held while the frames go
// out, so that a FIN passed on by the other direction (closeDst) cannot
// overtake a frame.
func (w *relayWatch) sendAborts(why error, streams [2]*yamux.Stream) {
	if errors.Is(why, errPeerAborted) {
		return // the ends know
	}
	who := w.localWho(why)
	var held [2]bool
	for d := range w.dir {
		held[d] = w.dir[d].mu.TryLock()
	}
	for d := range w.dir {
		rd := &w.dir[d]
		if !held[d] {
			continue
		}
		if !rd.broken && rd.scan.who == "" && rd.scan.between() && !streams[d].Session().IsClosed() {
			_ = streams[d].SetWriteDeadline(time.Now().Add(abortFrameWait))
			_, _ = streams[d].Write(encodeAbort(who))
		}
	}
	for d := range w.dir {
		if held[d] {
			w.dir[d].mu.Unlock()
		}
	}
}

// closeDst passes on the clean end of direction d's source: the FIN of
// its destination stream, after any abort frame being sent there.
func (w *relayWatch) closeDst(d int, dst *yamux.Stream) {
	w.dir[d].mu.Lock()
	_ = dst.Close()
	w.dir[d].mu.Unlock()
}

// setAbort records the abort function of the splice, for abortAll.
func (w *relayWatch) setAbort(f func(error)) {
	w.mu.Lock()
	w.abort = f
	w.mu.Unlock()
}

// localWho names who aborted when the relay itself decided it.
func (w *relayWatch) localWho(why error) string {
	if x := whoCarried(why); x != "" {
		return x
	}
	switch {
	case errors.Is(why, errShutdown):
		return "shutdown:" + w.n.cfg.Label
	case errors.Is(why, errIdle):
		return whoTimeout
	case errors.Is(why, errLinkLost):
		if w.from.sess.IsClosed() || !w.to.sess.IsClosed() {
			return linkWho(w.from)
		}
		return linkWho(w.to)
	}
	return w.n.cfg.Label
}

// outcome is how the session ended as every hop names it.
func (w *relayWatch) outcome(res endResult) (aborted bool, who string) {
	for d := range w.dir {
		if x := w.dir[d].scan.who; x != "" {
			return true, x
		}
	}
	w.mu.Lock()
	first := w.firstFin
	w.mu.Unlock()
	if res.aborted && !errors.Is(res.reason, errPeerAborted) {
		return true, w.localWho(res.reason)
	}
	if !res.aborted && w.dir[0].scan.ended && w.dir[1].scan.ended {
		return false, ""
	}
	// A stream ended without its end frame or an abort frame.
	if first == 1 {
		return true, whoTarget
	}
	if first == 0 {
		return true, whoClient
	}
	return true, w.n.cfg.Label
}

// logEnd logs the session's last lines at the relay.
func (w *relayWatch) logEnd(res endResult, start time.Time) {
	log := w.log.WithFields(logrus.Fields{"up": w.dir[0].scan.payload, "down": w.dir[1].scan.payload,
		"dur": time.Since(start).Round(time.Millisecond).String()})
	aborted, who := w.outcome(res)
	if aborted {
		f := logrus.Fields{"who": who}
		if res.reason != nil {
			f["reason"] = res.reason.Error()
		}
		log.WithFields(f).Info("aborted")
	} else {
		log.Info("closed")
	}
	if log.Logger.IsLevelEnabled(logrus.TraceLevel) {
		log.WithFields(logrus.Fields{
			"frames_up": w.dir[0].scan.frames, "frames_down": w.dir[1].scan.frames,
			"writes_up": w.dir[0].writes, "writes_down": w.dir[1].writes,
		}).Trace("frames")
	}
}

// frameScan follows the frame headers in a byte stream passed on in
// chunks of any size, without changing it.
type frameScan struct {
	hdr     [frameHeaderLen]byte
	nhdr    int // header bytes held
	typ     byte
	remain  int // bytes left in the current frame's payload
	text    []byte
	payload int64 // payload bytes of data frames
	frames  int64 // data frames
	ended   bool  // an end frame was seen
	who     string
	bad     bool // not frames: stop following
}

func (s *frameScan) scan(p []byte) {
	for len(p) > 0 && !s.bad {
		if s.remain > 0 {
			k := min(len(p), s.remain)
			if s.typ == frameData {
				s.payload += int64(k)
			} else {
				s.text = append(s.text, p[:k]...)
			}
			s.remain -= k
			p = p[k:]
			if s.remain == 0 && s.typ == frameAbort {
				s.who = string(s.text)
			}
			continue
		}
		k := copy(s.hdr[s.nhdr:], p)
		s.nhdr += k
		p = p[k:]
		if s.nhdr < frameHeaderLen {
			return
		}
		s.nhdr = 0
		s.typ = s.hdr[0]
		n := int(s.hdr[1])<<16 | int(s.hdr[2])<<8 | int(s.hdr[3])
		switch s.typ {
		case frameData:
			s.frames++
			s.remain = n
		case frameEnd:
			s.ended = true
		case frameAbort:
			// One abort frame ends a session; a second, or one too long, is
			// not what an end sends: stop following, and hold no more text
			// than one reason.
			if n == 0 || n > maxReason || s.who != "" {
				s.bad = true
				s.text = nil
				return
			}
			s.text = s.text[:0]
			s.remain = n
		default:
			s.bad = true
		}
	}
}

// between reports whether the bytes so far end at a frame boundary.
func (s *frameScan) between() bool { return !s.bad && s.nhdr == 0 && s.remain == 0 }

// endOutcome is the outcome the relay counts (outcome.go): the one every
// hop names.
func (w *relayWatch) endOutcome(res endResult) string {
	if aborted, _ := w.outcome(res); aborted {
		return OutcomeAborted
	}
	return OutcomeClosed
}
