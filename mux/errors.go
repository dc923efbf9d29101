package mux

import (
	"errors"
	"fmt"
)

// Sentinel errors. Compare with errors.Is.
var (
	// ErrBadHello: the peer's hello is not a relay chain hello (garbage,
	// wrong magic, truncated or malformed).
	ErrBadHello = errors.New("bad hello")
	// ErrVersion: the peer speaks another protocol version.
	ErrVersion = errors.New("protocol version mismatch")
	// ErrRejected: the hello was well formed but this node refuses the peer
	// (unexpected or duplicate label, role or side mismatch).
	ErrRejected = errors.New("peer rejected")
	// ErrRefusedByPeer: the peer refused this node in its hello verdict.
	ErrRefusedByPeer = errors.New("refused by peer")
	// ErrBadControl: a malformed control message.
	ErrBadControl = errors.New("bad control message")
	// ErrBadHeader: a malformed session open header or status.
	ErrBadHeader = errors.New("bad open header")
	// ErrBadFrame: a malformed data frame inside a session.
	ErrBadFrame = errors.New("bad frame")
	// ErrAborted: the session ended without a clean end from the other side
	// (reset, dead link, timeout on some hop).
	ErrAborted = errors.New("session aborted")
	// ErrShutdown: the node is shutting down.
	ErrShutdown = errors.New("node shutting down")
	// ErrNotRoot: only the root collects the status of the tree.
	ErrNotRoot = errors.New("only the root can show the tree")
	// ErrRestartNeeded: a reconfiguration changes what a running node
	// cannot change (its label, role, TLS credentials).
	ErrRestartNeeded = errors.New("a restart is needed to change")

	// The status codes of a routed session open, as errors. A *StatusError
	// matches the one of its code with errors.Is.
	ErrNoRoute = errors.New("no route")
	ErrRefused = errors.New("refused")
	ErrDenied  = errors.New("denied")
	ErrTimeout = errors.New("timeout")
	ErrFailed  = errors.New("failed")
	// ErrUnresolved: the destination's host name did not resolve.
	ErrUnresolved = errors.New("unresolved")
)

// StatusError is a session open that did not succeed: the status code, the
// label of the node that decided it, and its reason.
type StatusError struct {
	Code   Status
	Node   string
	Reason string
}

func (e *StatusError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("%s (at %s)", e.Code, e.Node)
	}
	return fmt.Sprintf("%s (at %s): %s", e.Code, e.Node, e.Reason)
}

// Is makes errors.Is(err, ErrNoRoute) and friends work.
func (e *StatusError) Is(target error) bool {
	return target == e.Code.err()
}
