package framing

import (
	"errors"
	"fmt"
	"io"

	"github.com/relaychain/relaychain/events"
)

// State is where a Reader stands between two events: the bytes it has
// read from its source and not yet returned as events, and whether it is
// skipping the rest of an oversized event. A Reader started from it with
// Resume, on the same stream, returns the events the suspended one would
// have returned (an eventsink hands its open connections to the process
// that takes its place this way).
type State struct {
	// Pending are the bytes read and not returned: the start of the
	// next event, or of the oversized one being skipped.
	Pending []byte `json:"pending,omitempty"`
	// Discard: the rest of an oversized event is being skipped.
	Discard bool `json:"discard,omitempty"`
	// Raw is how much of a terminator the skipping has seen (EIF).
	Raw uint8 `json:"raw,omitempty"`
}

// Suspend returns the Reader's State, once Next has returned every
// complete event and then the source's error (a read deadline): the
// Reader must not be used after. It returns false if the Reader cannot
// be resumed: its input ended, or it stopped at an event over the limit
// that cannot be skipped.
func (r *Reader) Suspend() (State, bool) {
	if r.err == nil || r.err == io.EOF || errors.Is(r.err, ErrFrameTooLarge) {
		return State{}, false
	}
	return State{
		Pending: append([]byte(nil), r.buf[r.start:r.end]...),
		Discard: r.discard,
		Raw:     uint8(r.raw),
	}, true
}

// Resume returns a Reader of framing f from src, as NewReader, that takes
// up where a suspended one stood: st's pending bytes come first.
func Resume(src io.Reader, f events.Framing, maxEvent int, st State) (*Reader, error) {
	r := NewReader(src, f, maxEvent)
	if len(st.Pending) > len(r.buf)-minRead {
		return nil, fmt.Errorf("framing: %d pending bytes, more than an event of at most %d bytes", len(st.Pending), r.max)
	}
	if st.Raw > uint8(rawEND) {
		return nil, fmt.Errorf("framing: invalid terminator state %d", st.Raw)
	}
	r.end = copy(r.buf, st.Pending)
	r.discard = st.Discard
	if r.discard {
		r.raw = rawEnd(st.Raw)
	}
	return r, nil
}
