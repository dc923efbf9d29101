package spool

import "errors"

var (
	// ErrFull is returned by Append when the spool is full and the policy is
	// Refuse.
	ErrFull = errors.New("spool full")
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("spool closed")
	// ErrTooLarge is returned by Append for a record larger than
	// Options.MaxRecord or a source longer than 65535 bytes.
	ErrTooLarge = errors.New("record too large")
	// ErrBadAck is returned by Ack for a sequence number that was never
	// appended.
	ErrBadAck = errors.New("acknowledgement beyond the last record")
	// ErrCorrupt is returned by Open for a spool directory that cannot be
	// repaired by truncating a torn record (segments out of order, a damaged
	// ack file), and by Read when a segment changed under the spool.
	ErrCorrupt = errors.New("spool corrupt")
	// ErrLocked is returned by Open when another process holds the spool.
	ErrLocked = errors.New("spool in use by another process")
	// ErrBadOptions is wrapped by Open for invalid Options.
	ErrBadOptions = errors.New("invalid spool options")
)
