package mux

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is the one exponential backoff of the project: reconnecting
// links, retrying accepts, the eventsink's forwarder and its intake all
// use it. Each wait is the current step halved plus a random part of the
// other half (jitter, so that many nodes cut off at once do not come back
// in step); the step starts at Min and doubles up to Max.
//
// Typical usage:
//
//	b := mux.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}
//	for !connected() {
//		if !mux.SleepCtx(ctx, b.Next()) {
//			return ctx.Err()
//		}
//	}
//	b.Reset()
//
// A Backoff is not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Reset starts the steps again from Min.
func (b *Backoff) Reset() { b.cur = 0 }

// Next returns the wait before the next attempt and doubles the step.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur *= 2
	}
	if b.cur > b.Max {
		b.cur = b.Max
	}
	if b.cur <= 0 {
		return 0
	}
	half := b.cur / 2
	return half + rand.N(half+1)
}

// Jitter returns a random wait in [0, d): the spread of a first
// reconnect, so that the many nodes that lost their links at the same
// moment do not come back in the same second.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// SleepCtx waits d; it returns false when ctx ends first.
func SleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
