package sink

import "time"

// SetStartWait sets how long a handover waits for the sink to serve, and
// returns a function that sets it back.
func SetStartWait(d time.Duration) func() {
	old := startWait
	startWait = d
	return func() { startWait = old }
}
