package mux

import (
	"context"
	"testing"
	"time"
)

// TestHandshakeBucket: the burst is admitted at once, then one token per
// 1/rate; a wait ends with its context. (Lower bounds only: a loaded
// machine may only make the waits longer.)
func TestHandshakeBucket(t *testing.T) {
	b := newHandshakeBucket(func() (float64, int) { return 20, 5 }) // a token every 50ms after 5
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < 5; i++ {
		if !b.take(ctx) {
			t.Fatal("a token of the burst was refused")
		}
	}
	for i := 0; i < 4; i++ {
		if !b.take(ctx) {
			t.Fatal("a token was refused")
		}
	}
	if took := time.Since(start); took < 4*50*time.Millisecond*9/10 {
		t.Fatalf("9 tokens of a bucket of 5 at 20/s taken in %v: faster than the rate", took)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if b.take(cctx) {
		t.Fatal("a token taken after its context ended")
	}
}
