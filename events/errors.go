package events

import "errors"

var (
	// ErrVersion reports a message of a protocol version this code does not speak.
	ErrVersion = errors.New("unsupported events protocol version")
	// ErrUnexpectedType reports a message of another type than the one expected
	// (an Ack where a Batch was due, or an unknown type).
	ErrUnexpectedType = errors.New("unexpected message type")
	// ErrTooLarge reports a batch above Limits.MaxBatchBytes.
	ErrTooLarge = errors.New("batch too large")
	// ErrTooManyEvents reports a batch with more than Limits.MaxEvents events.
	ErrTooManyEvents = errors.New("too many events in batch")
	// ErrBadLabel reports a sink label that breaks the label rule
	// (mux.CheckLabel: 1 to 64 characters from [A-Za-z0-9._-], starting
	// with a letter or digit).
	ErrBadLabel = errors.New("bad sink label")
	// ErrUnknownFraming reports a framing byte or name that is neither EIF
	// nor Line (ParseFraming, and the eventsink's readers and listeners).
	ErrUnknownFraming = errors.New("unknown framing")
	// ErrMalformed reports a message that does not decode: cut short, trailing
	// bytes, an empty batch, sequence numbers not increasing, an unknown
	// framing, an empty event, a line with a newline, an EIF event not ending
	// in END, a source longer than 255 bytes.
	ErrMalformed = errors.New("malformed message")
)
