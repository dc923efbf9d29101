package mux

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/yamux"
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
	return l.sendBuilt(func() ctrlMsg { return m })
}

// sendBuilt builds a control message and writes it, both under the
// control stream's lock, so that messages that replace what the neighbour
// knows (WHO reply, TELL, TELL reply) go out in the order their contents
// were taken: a newer TELL is never overtaken by an older reply.
func (l *link) sendBuilt(build func() ctrlMsg) error {
	l.ctrlMu.Lock()
	defer l.ctrlMu.Unlock()
	m := build()
	if l.ctrl == nil {
		// Not open yet: the TELL sent when it opens carries the news.
		return nil
	}
	_ = l.ctrl.SetWriteDeadline(time.Now().Add(l.n.tun.WriteTimeout))
	_, err := l.ctrl.Write(m.encode())
	_ = l.ctrl.SetWriteDeadline(time.Time{})
	if err == nil {
		l.log.WithField("labels", joinLabels(m.Labels)).Debugf("%s command sent", m.Type)
	}
	return err
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
	_ = st.SetWriteDeadline(time.Now().Add(l.n.tun.WriteTimeout))
	_, err = st.Write([]byte{streamControl})
	_ = st.SetWriteDeadline(time.Time{})
	l.ctrlMu.Unlock()
	if err != nil {
		return
	}
	if err := l.send(ctrlMsg{Type: ctrlWho}); err != nil {
		return
	}
	for {
		m, err := readCtrl(st)
		if err != nil {
			l.controlEnded(err)
			return
		}
		l.log.WithField("labels", joinLabels(m.Labels)).Infof("%s command received", m.Type)
		switch m.Type {
		case ctrlWhoReply, ctrlTell:
			if len(m.Labels) == 0 || m.Labels[0] != l.cfg.Peer {
				l.protocolError(fmt.Errorf("%s must start with the sender's label %s", m.Type, l.cfg.Peer))
				return
			}
			l.n.setBelow(l.cfg.Peer, m.Labels)
			if m.Type == ctrlTell {
				if err := l.sendBuilt(l.n.tellReply); err != nil {
					return
				}
			}
		default:
			l.protocolError(fmt.Errorf("a parent does not expect %s", m.Type))
			return
		}
	}
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
		l.log.WithField("labels", joinLabels(m.Labels)).Infof("%s command received", m.Type)
		switch m.Type {
		case ctrlWho:
			if err := l.sendBuilt(func() ctrlMsg {
				return ctrlMsg{Type: ctrlWhoReply, Labels: l.n.table.tellLabels()}
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
			l.n.refreshPath()
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
		build := func() ctrlMsg { return ctrlMsg{Type: ctrlTell, Labels: l.n.table.tellLabels()} }
		if !l.cfg.Parent {
			build = l.n.tellReply
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
