//go:build !linux

package muxtest

// reserve would claim port p among the test binaries running at the same
// time; without Linux's abstract unix sockets, ports are only unique
// within one test binary.
func reserve(int) bool { return true }

// Reservations is how many port reservations this process holds: none
// here.
func Reservations() int { return 0 }
