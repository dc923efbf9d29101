package framing

import (
	"fmt"
	"strings"
)

// DefaultMaxEvent is the maximum event size used when none is given.
const DefaultMaxEvent = 64 << 10

// The framings. The values are part of the spool's record format and of the
// events wire format: never renumber them.
const (
	// EIF is the EIF-style `Class;attr=value;...;END` framing.
	EIF byte = 1
	// Line is the newline-delimited framing (syslog or plain text lines).
	Line byte = 2
)

// Valid reports whether f is a known framing.
func Valid(f byte) bool { return f == EIF || f == Line }

// Name returns the configuration name of f: "eif", "line", or "framing(N)".
func Name(f byte) string {
	switch f {
	case EIF:
		return "eif"
	case Line:
		return "line"
	}
	return fmt.Sprintf("framing(%d)", f)
}

// Parse returns the framing named s ("eif", or "line"/"lines"; case-insensitive).
func Parse(s string) (byte, error) {
	switch strings.ToLower(s) {
	case "eif":
		return EIF, nil
	case "line", "lines":
		return Line, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrUnknownFraming, s)
}
