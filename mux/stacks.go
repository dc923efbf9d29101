package mux

import (
	"fmt"
	"runtime/debug"
)

// shallow runs f on a goroutine of its own and waits for it to return.
//
// A session parks one goroutine per direction on every node for as long
// as it lives, and a goroutine keeps the largest stack it ever needed
// until the collector halves it, once per cycle. The open of a session
// needs a deep stack (the open header, yamux's open, the status, the
// logging with fields), the parked read of a direction a shallow one. So
// the goroutine that will park runs the open through shallow and never
// grows: the open's stack goes away with the goroutine that ran it. An
// idle session costs some kilobytes less of stack per node for it
// (docs/PERFORMANCE.md, "The real binaries, measured from outside").
//
// A panic in f is raised again in the caller, with f's stack in its
// value, so that the caller's recovery logs where it happened.
func shallow(f func()) {
	var p any
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				p = fmt.Sprintf("%v\n%s", r, debug.Stack())
			}
		}()
		f()
	}()
	<-done
	if p != nil {
		panic(p)
	}
}
