package framing

import (
	"io"
	"iter"

	"github.com/relaychain/relaychain/events"
)

// SplitDatagram returns the events of one datagram in framing f, each at most
// maxEvent bytes long (DefaultMaxEvent when maxEvent <= 0). A rejected part of
// the datagram yields a nil event with ErrOversized or ErrMalformed, and the
// iteration goes on with the rest. An unknown framing yields one
// events.ErrUnknownFraming. The events are sub-slices of dgram: the sequence
// does not copy.
func SplitDatagram(f events.Framing, dgram []byte, maxEvent int) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		if maxEvent <= 0 {
			maxEvent = DefaultMaxEvent
		}
		// RFC 5426: a datagram holds whole messages; octet counting is a
		// stream framing (RFC 6587) and is not looked for.
		r := &Reader{framing: f, max: maxEvent, buf: dgram, end: len(dgram), err: io.EOF}
		for {
			ev, err := r.Next()
			if err == io.EOF || !yield(ev, err) {
				return
			}
			if err != nil && !f.Valid() {
				return
			}
		}
	}
}
