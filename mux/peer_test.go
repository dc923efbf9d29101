package mux_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// scripted is a peer that speaks the protocol by hand over a real link
// (TLS, hello, yamux), to do what a real node never does: announce labels
// that are not its own, forge origins, flood. It stands for a node whose
// certificate is valid but which was taken over.
type scripted struct {
	t    testing.TB
	sess *yamux.Session
	ctrl net.Conn // the control stream, once the parent opened it (child side)

	mu       sync.Mutex
	received []mux.CtrlMsg // what the node sent on the control stream
}

// dialScripted links to a node's listen address as label, a child
// (parent false) or a parent (parent true) of the node, with a
// certificate from the test CA.
func dialScripted(t testing.TB, addr, label string, role mux.Role, parent bool) *scripted {
	t.Helper()
	creds := muxtest.WithTLS(t, mux.Config{Label: label, Links: []mux.LinkConfig{{Peer: "x"}}}).TLS.TLSMaterial()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := scriptedLink(raw, label, creds, role, parent)
	if err != nil {
		t.Fatalf("scripted %s: %v", label, err)
	}
	s := &scripted{t: t, sess: sess}
	t.Cleanup(func() { _ = sess.Close() })
	if !parent {
		st, err := sess.AcceptStream()
		if err != nil {
			t.Fatalf("scripted %s: no control stream: %v", label, err)
		}
		var typ [1]byte
		if _, err := io.ReadFull(st, typ[:]); err != nil || typ[0] != 'C' {
			t.Fatalf("scripted %s: control stream type %q, %v", label, typ, err)
		}
		s.ctrl = st
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				m, err := mux.ReadCtrl(st)
				if err != nil {
					return
				}
				s.mu.Lock()
				s.received = append(s.received, m)
				s.mu.Unlock()
			}
		}()
		t.Cleanup(func() { _ = sess.Close(); <-done })
	}
	return s
}

// scriptedLink runs a link's handshake by hand on raw, as label with creds,
// a child (parent false) or a parent (parent true) of the node at the
// other end: TLS 1.3 (the node's certificate is not checked), the hellos
// and verdicts, then yamux as the dialling side. It returns the yamux
// session, which closes raw; on an error it closes raw itself.
func scriptedLink(raw net.Conn, label string, creds *mux.TLSMaterial, role mux.Role, parent bool) (*yamux.Session, error) {
	c := tls.Client(raw, &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: []tls.Certificate{creds.Cert}})
	fail := func(err error) (*yamux.Session, error) {
		_ = raw.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(mux.Hello{Version: mux.ProtoVersion, Role: role, Parent: parent, Label: label}.Encode()); err != nil {
		return fail(fmt.Errorf("hello: %w", err))
	}
	if _, err := mux.ReadHello(c); err != nil {
		return fail(fmt.Errorf("the node's hello: %w", err))
	}
	if ok, reason, err := mux.ReadVerdict(c); err != nil || !ok {
		return fail(fmt.Errorf("refused: %q %v", reason, err))
	}
	if _, err := c.Write(mux.EncodeVerdict("", true)); err != nil {
		return fail(fmt.Errorf("verdict: %w", err))
	}
	_ = c.SetDeadline(time.Time{})
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	sess, err := yamux.Client(c, cfg)
	if err != nil {
		return fail(err)
	}
	return sess, nil
}

// send writes control messages to the node.
func (s *scripted) send(msgs ...mux.CtrlMsg) {
	s.t.Helper()
	for _, m := range msgs {
		if _, err := s.ctrl.Write(m.Encode()); err != nil {
			s.t.Fatalf("scripted: send %v: %v", m.Type, err)
		}
	}
}

// open opens a session to the node with header h and returns the status.
func (s *scripted) open(h mux.Header) *mux.StatusError {
	s.t.Helper()
	st, err := s.sess.OpenStream()
	if err != nil {
		s.t.Fatal(err)
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := st.Write(h.Encode()); err != nil {
		s.t.Fatal(err)
	}
	se, err := mux.ReadStatus(st)
	if err != nil {
		s.t.Fatalf("scripted: status: %v", err)
	}
	return se
}

// announce is a full announcement (WHO reply) of label and labels, in
// chunks as a real node sends it.
func announce(label string, labels []string) []mux.CtrlMsg {
	all := append([]string{label}, labels...)
	first := min(len(all), mux.MaxChunk)
	msgs := []mux.CtrlMsg{{Type: mux.CtrlWhoReply, Labels: all[:first]}}
	seq := uint32(0)
	for rest := all[first:]; len(rest) > 0; {
		k := min(len(rest), mux.MaxChunk)
		seq++
		msgs = append(msgs, mux.CtrlMsg{Type: mux.CtrlDelta, Seq: seq, Labels: rest[:k]})
		rest = rest[k:]
	}
	return msgs
}
