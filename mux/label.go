package mux

import (
	"errors"
	"fmt"
)

// MaxLabelLen is the longest label: node labels, service names and the
// sink labels of events all follow the one rule of CheckLabel.
const MaxLabelLen = 64

// CheckLabel reports whether s is a valid label (a node label or a service
// name): 1 to 64 characters from [A-Za-z0-9._-], starting with a letter or
// digit. This is the project's only label rule; PROTOCOL.md states it.
func CheckLabel(s string) error {
	switch {
	case s == "":
		return errors.New("label is empty")
	case len(s) > MaxLabelLen:
		return fmt.Errorf("label is %d characters long, at most %d allowed", len(s), MaxLabelLen)
	case !isAlnum(s[0]):
		return fmt.Errorf("label %q must start with a letter or digit", s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("label %q: character %q not allowed (only A-Z a-z 0-9 . _ -)", s, rune(c))
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
