package mux

import (
	"runtime/debug"
	"sync"
	"time"
)

// Giving memory back after a burst of sessions.
//
// A held session costs a few KiB on each node (goroutine stacks, the
// stream, small buffers). Once a burst of thousands of sessions has ended,
// that memory is free in the Go heap, but the runtime returns it to the
// operating system only after its next collections, and a node that
// carries little after the burst allocates too little to start one: the
// process kept its peak RSS for minutes (until the runtime's forced
// collection every two minutes, and its background scavenger after it).
//
// So the process counts the sessions its nodes carry, and when that count
// has fallen far from its peak (by at least burstMin sessions, to at most
// half of the peak), it collects and returns the free memory to the
// operating system (debug.FreeOSMemory) burstSettle later, at most once
// per burstEvery. A node whose session count moves within a band (the
// steady load of a busy node) never triggers it; a collection costs
// milliseconds of CPU on a heap the size of a node's.
const (
	burstMin    = 256
	burstSettle = time.Second
	burstEvery  = 5 * time.Second
)

// memBurst is the process's session count (all nodes in it) and its peak
// since memory was last given back.
var memBurst burstTracker

type burstTracker struct {
	mu      sync.Mutex
	live    int
	peak    int
	pending bool      // a return is scheduled
	last    time.Time // when memory was last given back
	free    func()    // gives the memory back; debug.FreeOSMemory but in tests
	freed   int       // how many times free ran, for tests
}

// opened counts a session that began.
func (b *burstTracker) opened() {
	b.mu.Lock()
	b.live++
	b.peak = max(b.peak, b.live)
	b.mu.Unlock()
}

// closed counts a session that ended, and schedules the return of memory
// once the count has fallen far from its peak.
func (b *burstTracker) closed() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.live--
	if b.pending || b.peak-b.live < burstMin || b.live > b.peak/2 {
		return
	}
	b.pending = true
	wait := burstSettle
	if next := time.Until(b.last.Add(burstEvery)); next > wait {
		wait = next
	}
	// The timer's function runs once, briefly, and owns nothing: the
	// runtime runs it; it needs no owner to wait for it.
	time.AfterFunc(wait, b.giveBack)
}

// giveBack returns the free memory to the operating system and starts a
// new peak from the sessions carried now.
func (b *burstTracker) giveBack() {
	b.mu.Lock()
	free := b.free
	b.mu.Unlock()
	if free == nil {
		free = debug.FreeOSMemory
	}
	free()
	b.mu.Lock()
	b.pending = false
	b.last = time.Now()
	b.peak = b.live
	b.freed++
	b.mu.Unlock()
}
