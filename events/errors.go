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
	// ErrBadLabel reports an empty, too long or non-printable sink label.
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
