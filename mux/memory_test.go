package mux

import (
	"testing"
	"time"
)

// A burst of sessions that ends gives its memory back once; a count that
// moves within a band does not.
func TestBurstGivesMemoryBack(t *testing.T) {
	var b burstTracker
	calls := make(chan struct{}, 10)
	b.free = func() { calls <- struct{}{} }

	// A steady load: up to 300 sessions, never below 200.
	for range 300 {
		b.opened()
	}
	for range 100 {
		b.closed()
	}
	select {
	case <-calls:
		t.Fatal("memory given back while the session count stayed within a band")
	case <-time.After(burstSettle + 500*time.Millisecond):
	}

	// The burst ends: the count falls from 300 to 0.
	for range 200 {
		b.closed()
	}
	select {
	case <-calls:
	case <-time.After(burstSettle + 10*time.Second):
		t.Fatal("memory not given back within 10 s of the end of a burst of 300 sessions")
	}
	// The new peak starts once free has returned.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b.mu.Lock()
		ok := !b.pending && b.peak == 0 && b.freed == 1
		b.mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the tracker did not start a new peak within 5 s of giving memory back")
		}
	}

	// A second small burst, under burstMin sessions: nothing more.
	for range burstMin - 1 {
		b.opened()
	}
	for range burstMin - 1 {
		b.closed()
	}
	select {
	case <-calls:
		t.Fatalf("memory given back after a burst of %d sessions, under %d", burstMin-1, burstMin)
	case <-time.After(burstSettle + 500*time.Millisecond):
	}
}
