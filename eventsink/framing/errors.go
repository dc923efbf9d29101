package framing

import "errors"

var (
	// ErrOversized reports an event longer than the maximum event size. The
	// event was skipped; the Reader can go on.
	ErrOversized = errors.New("oversized event")
	// ErrMalformed reports an event that is not well formed in its framing. The
	// event was skipped; the Reader can go on.
	ErrMalformed = errors.New("malformed event")
	// ErrFrameTooLarge reports an octet-counted frame (RFC 6587, "MSG-LEN
	// <PRI>...") whose MSG-LEN is over the maximum event size. The stream
	// cannot be followed past it without reading that many bytes: the
	// error is sticky, and the caller closes the connection. The events
	// before it were returned.
	ErrFrameTooLarge = errors.New("octet-counted frame over the maximum event size")
)
