// Package eventse2e is the end-to-end test of the event path: log adapters
// and syslog senders → eventsink (spool) → gwproxy → relays → epproxy →
// event server, with the real daemons built once from this module, each
// run as its own process from configs/example rewritten to free loopback
// ports, and an in-test event server that records every line.
//
// It checks that events are neither lost nor repeated while the event
// server, a relay, the eventsink and the epproxy are stopped or killed in
// turn (TestEventsSurviveFaults), that garbage sent to the eventsink does
// not stop it (TestGarbageInput), and measures events per second end to
// end (BenchmarkEventsEndToEnd, scripts/bench-events.sh).
//
// Typical usage:
//
//	go test -count=1 -v ./e2e/events/
//	go test -race -count=1 ./e2e/events/
//	go test -run '^$' -bench . -benchtime 100000x ./e2e/events/
//
// It shares the harness of package e2etest with package e2e, and lives
// apart from it so that both run at the same time (the harness hands out
// ports no other test binary holds).
package eventse2e

import (
	"testing"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

func TestMain(m *testing.M) { e2etest.Main(m) }
