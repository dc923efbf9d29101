package mux

import (
	"errors"
	"strings"
	"sync"
)

// This file counts the sessions that ended on a node by how they ended,
// for its status and metrics.

// Session outcomes, as a node counts them: a session that was carried
// ended closed (both directions ended cleanly) or aborted; one refused at
// its open ended with its status code's name, spaces as underscores:
// no_route, refused, denied, timeout, failed, unresolved.
const (
	OutcomeClosed  = "closed"
	OutcomeAborted = "aborted"
)

// outcomeCounts counts sessions by outcome; its zero value is ready.
type outcomeCounts struct {
	mu sync.Mutex
	m  map[string]uint64
}

func (o *outcomeCounts) add(outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[string]uint64{}
	}
	o.m[outcome]++
}

func (o *outcomeCounts) snapshot() map[string]uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string]uint64, len(o.m))
	for k, v := range o.m {
		out[k] = v
	}
	return out
}

// statusOutcome is the outcome of a session refused with code.
func statusOutcome(code Status) string {
	return strings.ReplaceAll(code.String(), " ", "_")
}

// errOutcome is the outcome of a session whose open failed with err.
func errOutcome(err error) string {
	var se *StatusError
	if errors.As(err, &se) {
		return statusOutcome(se.Code)
	}
	return statusOutcome(StatusFailed)
}

// endOutcome is the outcome of a session that was carried and ended with
// res.
func endOutcome(res endResult) string {
	if res.aborted {
		return OutcomeAborted
	}
	return OutcomeClosed
}

// connOutcome is the outcome of a session end c once it is closed.
func connOutcome(c *Conn) string {
	select {
	case <-c.aborted:
		return OutcomeAborted
	default:
		return OutcomeClosed
	}
}

// SessionsEnded returns how many sessions ended on this node since it
// started, by outcome.
func (n *Node) SessionsEnded() map[string]uint64 { return n.outcomes.snapshot() }

// SessionOutcomes lists every outcome a node counts: closed, aborted, then
// the refusals' status names.
func SessionOutcomes() []string {
	out := []string{OutcomeClosed, OutcomeAborted}
	for s := StatusNoRoute; s <= statusLast; s++ {
		out = append(out, statusOutcome(s))
	}
	return out
}
