package mux

import (
	"context"
	"errors"
	"time"

	"github.com/sirupsen/logrus"
)

// This file is a node's life after New: Serve starts its loops, and
// Shutdown stops accepting, lets the sessions drain, aborts what is left
// and waits for every goroutine of the node.

// Serve runs the node: link listeners, dialled links with their reconnect
// loops, and entries. It returns nil when ctx ends or Shutdown begins, once
// nothing new is accepted any more; established links and sessions go on
// until Shutdown, which the caller must call.
func (n *Node) Serve(ctx context.Context) error {
	started := false
	n.serveOnce.Do(func() { started = true })
	if !started {
		return errors.New("serve called twice")
	}
	n.log.WithField("component", "node").Infof("serving as %s", n.cfg.Role)
	// Under reconfMu and mu: a reconfiguration comes before or after.
	n.reconfMu.Lock()
	n.mu.Lock()
	links := append([]LinkConfig(nil), n.cfg.Links...)
	n.serving = true
	n.mu.Unlock()
	for _, lc := range links {
		if lc.Plaintext {
			n.log.WithFields(logrus.Fields{"component": "link", "l": lc.Peer}).Warn("link is insecure_plaintext: its peer is not authenticated and its traffic is not encrypted")
		}
	}
	n.lnMu.Lock()
	listeners := append([]*linkListener(nil), n.listeners...)
	entries := append([]*entry(nil), n.entries...)
	n.lnMu.Unlock()
	for _, ll := range listeners {
		ll := ll
		n.spawn(func() { n.acceptLinks(ll) })
	}
	for _, lc := range links {
		if lc.Dial != "" {
			n.startDial(lc)
		}
	}
	for _, e := range entries {
		e := e
		n.spawn(func() { n.acceptEntry(e) })
	}
	n.reconfMu.Unlock()
	n.spawn(n.summaryLoop)
	if n.cfg.Role != RoleRoot {
		n.spawn(n.parentLoop)
	}
	n.spawn(n.expireEndpointsLoop)
	select {
	case <-ctx.Done():
	case <-n.acceptCtx.Done():
	}
	n.stopAccepting()
	return nil
}

func (n *Node) stopAccepting() {
	n.stopAccept()
	n.closeListeners()
	if n.handingOver.Load() {
		return // it carries what reaches it until Drain
	}
	n.mu.Lock()
	n.draining = true
	n.mu.Unlock()
}

// Shutdown stops accepting links and sessions, waits until the sessions
// end or ctx ends, then aborts what is left, closes every link and waits
// for every goroutine of the node (at most Tuning.ShutdownAbortWait more).
// It returns ctx's error when sessions had to be aborted. Idempotent.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutOnce.Do(func() { n.shutErr = n.shutdown(ctx) })
	return n.shutErr
}

func (n *Node) shutdown(ctx context.Context) error {
	log := n.log.WithField("component", "node")
	n.handingOver.Store(false) // a handover's Drain is over: no new session now
	n.stopAccepting()
	var forced error
	if left := n.waitSessions(ctx); left > 0 {
		forced = ctx.Err()
		log.Warnf("shutdown: aborting %d sessions left after the grace period", left)
		n.abortLive()
	}
	n.cancel()
	n.mu.Lock()
	n.dead = true
	links := make([]*link, 0, len(n.links))
	for _, l := range n.links {
		links = append(links, l)
	}
	n.mu.Unlock()
	for _, l := range links {
		l.close()
	}
	done := make(chan struct{})
	go func() {
		n.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		n.refusals.flush()
		n.denials.flush()
		n.ruleLog.flush()
		n.destDenials.flush()
		n.authLog.flush()
	case <-time.After(n.tuning().ShutdownAbortWait):
		log.Error("shutdown: goroutines still running after the abort wait")
		return errors.New("shutdown: goroutines still running")
	}
	log.Info("shut down")
	return forced
}

// waitSessions waits until no session is left or ctx ends, and returns how
// many are left.
func (n *Node) waitSessions(ctx context.Context) int {
	for {
		n.mu.Lock()
		left := len(n.sessions)
		if left == 0 {
			n.mu.Unlock()
			return 0
		}
		if n.idle == nil {
			n.idle = make(chan struct{})
		}
		idle := n.idle
		n.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			n.mu.Lock()
			left = len(n.sessions)
			n.mu.Unlock()
			return left
		}
	}
}
