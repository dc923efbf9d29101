package framing

import "errors"

var (
	// ErrOversized reports an event longer than the maximum event size. The
	// event was skipped; the Reader can go on.
	ErrOversized = errors.New("oversized event")
	// ErrMalformed reports an event that is not well formed in its framing. The
	// event was skipped; the Reader can go on.
	ErrMalformed = errors.New("malformed event")
)
