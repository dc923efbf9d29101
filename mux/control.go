package mux

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/sirupsen/logrus"
)

// This file is PROTOCOL.md section 3: the control stream and its WHO and
// TELL messages, which keep every node's routing table.

// wantTell asks the link's notify loop to send a TELL; a request already
// pending covers this one.
func (l *link) wantTell() {
	select {
	case l.tellCh <- struct{}{}:
	default:
	}
}

// send writes a control message under the link's write timeout.
func (l *link) send(m ctrlMsg) error {
	return l.sendBuilt(func() []ctrlMsg { return []ctrlMsg{m} })
}

// sendBuilt builds control messages and writes them, both under the
// control stream's lock, so that messages that replace or change what the
// neighbour knows (WHO reply, TELL, deltas, TELL reply) go out in the order
// their contents were taken: a newer TELL is never overtaken by an older
// reply. Nothing is built before the control stream is open: the TELL
// sent when it opens carries the news.
func (l *link) sendBuilt(build func() []ctrlMsg) error {
	l.ctrlMu.Lock()
	defer l.ctrlMu.Unlock()
	if l.ctrl == nil {
		return nil
	}
	for _, m := range build() {
		_ = l.ctrl.SetWriteDeadline(time.Now().Add(l.n.tuning().WriteTimeout))
		_, err := l.ctrl.Write(m.encode())
		_ = l.ctrl.SetWriteDeadline(time.Time{})
		if err != nil {
			return err
		}
		l.log.WithFields(logrus.Fields{"labels": firstFew(m.Labels), "removed": firstFew(m.Removed), "seq": m.Seq}).Debugf("%s command sent", m.Type)
	}
	return nil
}

// fullTell is the whole of what this node tells a parent, as typ (TELL or
// WHO reply) followed by deltas that add what does not fit one message.
// It clears what was pending for l and restarts its delta sequence. The
// caller holds the routing table's lock.
func (l *link) fullTellLocked(typ ctrlType) []ctrlMsg {
	labels := l.n.table.tellLabelsLocked()
	nets := l.n.table.nets.all()
	l.pendAdd, l.pendDel, l.pendFull = nil, nil, false
	l.pendNetAdd, l.pendNetDel = nil, nil
	l.seq = 0
	// Networks go once every label is told: a parent takes a network only
	// from a label it already knows below the sender.
	first := min(len(labels), maxChunk)
	firstNets := 0
	if first == len(labels) {
		firstNets = min(len(nets), maxNetChunk)
	}
	msgs := []ctrlMsg{{Type: typ, Labels: labels[:first], Nets: nets[:firstNets]}}
	for rest, restNets := labels[first:], nets[firstNets:]; len(rest) > 0 || len(restNets) > 0; {
		k, kn := min(len(rest), maxChunk), 0
		if k == len(rest) {
			kn = min(len(restNets), maxNetChunk)
		}
		l.seq++
		msgs = append(msgs, ctrlMsg{Type: ctrlDelta, Seq: l.seq, Labels: rest[:k], Nets: restNets[:kn]})
		rest, restNets = rest[k:], restNets[kn:]
	}
	return msgs
}

// pendingLocked is what changed below this node since the last message to
// the parent l: the whole announcement again, or deltas. The caller holds
// the routing table's lock.
func (l *link) pendingLocked() []ctrlMsg {
	if l.pendFull {
		return l.fullTellLocked(ctrlTell)
	}
	add, del := setList(l.pendAdd), setList(l.pendDel)
	l.pendAdd, l.pendDel = nil, nil
	nadd, ndel := l.takePendingNetsLocked()
	var msgs []ctrlMsg
	for len(add) > 0 || len(del) > 0 || len(nadd) > 0 || len(ndel) > 0 {
		ka, kd := min(len(add), maxChunk), min(len(del), maxChunk)
		kna, knd := 0, min(len(ndel), maxNetChunk)
		if ka == len(add) { // networks once their labels are told
			kna = min(len(nadd), maxNetChunk)
		}
		l.seq++
		msgs = append(msgs, ctrlMsg{Type: ctrlDelta, Seq: l.seq, Labels: add[:ka], Removed: del[:kd], Nets: nadd[:kna], NetsRemoved: ndel[:knd]})
		add, del, nadd, ndel = add[ka:], del[kd:], nadd[kna:], ndel[knd:]
	}
	return msgs
}

// notePendingLocked records a change of this node's routes for the
// parent l. The caller holds the routing table's lock.
func (l *link) notePendingLocked(added, removed []string) {
	if l.pendFull {
		return
	}
	if l.pendAdd == nil {
		l.pendAdd, l.pendDel = map[string]struct{}{}, map[string]struct{}{}
	}
	for _, x := range added {
		delete(l.pendDel, x)
		l.pendAdd[x] = struct{}{}
	}
	for _, x := range removed {
		delete(l.pendAdd, x)
		l.pendDel[x] = struct{}{}
	}
	l.wantTell()
}

func setList(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for x := range m {
		out = append(out, x)
	}
	sort.Strings(out)
	return out
}

// controlAsParent opens the control stream, sends WHO, and answers the
// child's TELLs until the link ends.
func (l *link) controlAsParent() {
	st, err := l.sess.OpenStream()
	if err != nil {
		return
	}
	defer st.Close()
	l.ctrlMu.Lock()
	l.ctrl = st
	_ = st.SetWriteDeadline(time.Now().Add(l.n.tuning().WriteTimeout))
	_, err = st.Write([]byte{streamControl})
	_ = st.SetWriteDeadline(time.Time{})
	l.ctrlMu.Unlock()
	if err != nil {
		return
	}
	if err := l.send(ctrlMsg{Type: ctrlWho}); err != nil {
		return
	}
	expect := uint32(0) // the next delta's sequence number; 0: wait for a TELL or WHO reply
	// After an announcement refused for a cap, the child's later deltas
	// are ignored; WHO asks for the whole again (at most once per
	// resyncInterval) so that a subtree back within the caps is taken.
	var refused, asked bool
	var lastWho time.Time
	for {
		m, err := readCtrl(st)
		if err != nil {
			l.controlEnded(err)
			return
		}
		l.logReceived(m)
		switch m.Type {
		case ctrlWhoReply, ctrlTell:
			if len(m.Labels) == 0 || m.Labels[0] != l.cfg.Peer {
				l.protocolError(fmt.Errorf("%s must start with the sender's label %s", m.Type, l.cfg.Peer))
				return
			}
			expect, refused, asked = 1, false, false
			if err := l.announce(m.Labels[1:], nil, true); err != nil {
				l.refuseAnnouncement(m, err)
				expect, refused = 0, true
			} else if err := l.n.table.replaceNets(l.cfg.Peer, m.Nets); err != nil {
				l.refuseAnnouncement(m, err)
				expect, refused = 0, true
			}
			// Either full announcement gets the reply: it tells the child
			// its path to the root.
			if err := l.sendBuilt(func() []ctrlMsg { return []ctrlMsg{l.n.tellReply()} }); err != nil {
				return
			}
		case ctrlDelta:
			switch {
			case expect == 0 && refused && !asked && time.Since(lastWho) >= resyncInterval:
				asked, lastWho = true, time.Now()
				if err := l.send(ctrlMsg{Type: ctrlWho}); err != nil {
					return
				}
				continue
			case expect == 0:
				continue // refused or out of step: the resync's reply is coming
			case m.Seq != expect:
				l.log.WithFields(logrus.Fields{"seq": m.Seq, "expected": expect}).Warn("TELL delta out of sequence; asking for the whole announcement again")
				expect, asked, lastWho = 0, true, time.Now()
				if err := l.send(ctrlMsg{Type: ctrlWho}); err != nil {
					return
				}
				continue
			}
			expect++
			if err := l.announce(m.Labels, m.Removed, false); err != nil {
				l.refuseAnnouncement(m, err)
				expect, refused, asked = 0, true, false
			} else if err := l.n.table.applyNets(l.cfg.Peer, m.Nets, m.NetsRemoved); err != nil {
				l.refuseAnnouncement(m, err)
				expect, refused, asked = 0, true, false
			}
		case ctrlHandover, ctrlDrain, ctrlDrainReply:
			l.handoverMsg(m)
		default:
			l.protocolError(fmt.Errorf("a parent does not expect %s", m.Type))
			return
		}
	}
}

// resyncInterval bounds how often a parent asks a child whose
// announcement it refused for a cap to announce the whole again.
const resyncInterval = 10 * time.Second

// logReceived logs a control message at level 3, its labels in full only
// at debug level.
func (l *link) logReceived(m ctrlMsg) {
	log := l.log.WithField("labels", firstFew(m.Labels))
	if m.Type == ctrlDelta {
		log = log.WithFields(logrus.Fields{"removed": firstFew(m.Removed), "seq": m.Seq})
	}
	log.Infof("%s command received", m.Type)
	if (len(m.Labels) > 5 || len(m.Removed) > 5) && l.log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		l.log.WithFields(logrus.Fields{"labels": joinLabels(m.Labels), "removed": joinLabels(m.Removed)}).Debugf("%s command received in full", m.Type)
	}
}

// refuseAnnouncement logs, once per link, an announcement refused whole
// for a cap. What the link announced before stays; its later deltas are
// ignored until the next whole announcement, which may fit again.
func (l *link) refuseAnnouncement(m ctrlMsg, err error) {
	if l.capLogged.Swap(true) {
		return
	}
	l.log.WithError(err).WithField("labels", len(m.Labels)).Errorf("%s refused whole: %v (logged once per link)", m.Type, err)
}

// controlAsChild serves the control stream the parent opened: it answers
// WHO, and takes the parent's TELL reply as this node's path to the root.
func (l *link) controlAsChild(st *yamux.Stream) {
	l.ctrlMu.Lock()
	if l.ctrl != nil {
		l.ctrlMu.Unlock()
		l.protocolError(errors.New("a second control stream"))
		return
	}
	l.ctrl = st
	l.ctrlMu.Unlock()
	defer st.Close()
	l.wantTell() // the TELL on connect
	for {
		m, err := readCtrl(st)
		if err != nil {
			l.controlEnded(err)
			return
		}
		l.logReceived(m)
		switch m.Type {
		case ctrlWho:
			if err := l.sendBuilt(func() []ctrlMsg {
				l.n.table.mu.Lock()
				defer l.n.table.mu.Unlock()
				return l.fullTellLocked(ctrlWhoReply)
			}); err != nil {
				return
			}
		case ctrlTellReply:
			if m.Labels[0] != l.cfg.Peer {
				l.protocolError(fmt.Errorf("TELL reply must start with the sender's label %s", l.cfg.Peer))
				return
			}
			if contains(m.Labels, l.n.cfg.Label) || len(m.Labels) > defaultHops {
				l.log.WithField("path", joinLabels(m.Labels)).Error("path to the root loops through this node or is too long: the configuration has a cycle; path ignored")
				continue
			}
			l.n.mu.Lock()
			l.path = m.Labels
			l.n.mu.Unlock()
			l.n.parentTold(l) // and the path to the root, when it is this parent's
			l.answerPredecessor()
		case ctrlHandover, ctrlDrain, ctrlDrainReply:
			l.handoverMsg(m)
		default:
			l.protocolError(fmt.Errorf("a child does not expect %s", m.Type))
			return
		}
	}
}

// notifyLoop tells the neighbour what changed whenever asked, once the
// control stream is there: a TELL to a parent (the labels below this node),
// an unsolicited TELL reply to a child (this node's path to the root).
func (l *link) notifyLoop() {
	for {
		select {
		case <-l.sess.CloseChan():
			return
		case <-l.tellCh:
		}
		build := func() []ctrlMsg {
			l.n.table.mu.Lock()
			defer l.n.table.mu.Unlock()
			return l.pendingLocked()
		}
		if !l.cfg.Parent {
			build = func() []ctrlMsg { return []ctrlMsg{l.n.tellReply()} }
		}
		if err := l.sendBuilt(build); err != nil {
			l.log.WithError(err).Warn("control message not sent; closing the link")
			l.close()
			return
		}
	}
}

func (l *link) controlEnded(err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, yamux.ErrSessionShutdown) || l.sess.IsClosed() {
		l.close()
		return
	}
	l.protocolError(err)
}

func (l *link) protocolError(err error) {
	l.log.WithError(err).Error("control protocol error; closing the link")
	l.close()
}
