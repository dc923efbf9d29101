package events

import (
	"errors"
	"strings"
	"testing"
)

func TestParseFramingString(t *testing.T) {
	for _, f := range []Framing{EIF, Line} {
		name := strings.ToUpper(f.String())
		got, err := ParseFraming(name)
		if err != nil || got != f {
			t.Fatalf("ParseFraming(%q) = %d, %v; want %d", name, got, err, f)
		}
	}
	if _, err := ParseFraming("json"); !errors.Is(err, ErrUnknownFraming) {
		t.Fatalf("ParseFraming(json) error = %v", err)
	}
}
