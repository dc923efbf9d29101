package events

import (
	"fmt"
	"strings"
)

// Framing is how an event was cut out of its sender's bytes, and so how it
// is written to the event server. It travels in every event (PROTOCOL.md)
// and is kept in the eventsink's spool records: never renumber the values.
type Framing byte

// The framings.
const (
	// EIF is the EIF-style `Class;attr=value;...;END` framing.
	EIF Framing = 1
	// Line is the newline-delimited framing (syslog or plain text lines).
	Line Framing = 2
)

// Valid reports whether f is a known framing.
func (f Framing) Valid() bool { return f == EIF || f == Line }

// String returns the configuration name of f: "eif", "line", or
// "framing(N)".
func (f Framing) String() string {
	switch f {
	case EIF:
		return "eif"
	case Line:
		return "line"
	}
	return fmt.Sprintf("framing(%d)", byte(f))
}

// ParseFraming returns the framing named s ("eif", or "line"/"lines";
// case-insensitive).
func ParseFraming(s string) (Framing, error) {
	switch strings.ToLower(s) {
	case "eif":
		return EIF, nil
	case "line", "lines":
		return Line, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrUnknownFraming, s)
}
