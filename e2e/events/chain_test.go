package eventse2e

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// batchEvents is the eventsink's batch size in these tests: the most
// events an epproxy kill -9 may deliver twice.
const batchEvents = 500

// chainOpts adjust the configurations.
type chainOpts struct {
	// sinkEvents replaces the eventsink's batch settings (the lines after
	// "dest: epp-main"); empty: sinkDefaults.
	sinkEvents string
	// fsync is the spool's fsync setting (the lines after "dir: spool");
	// empty: spoolDefaults.
	fsync string
}

// spoolDefaults: batched fsync, often, so a test is not slowed down by it.
const spoolDefaults = `    fsync: interval
    fsync_interval: 50ms
`

// sinkDefaults are the eventsink settings of the tests: batches of
// batchEvents, a quick ack timeout, batched fsync.
const sinkDefaults = `  batch_events: 500
  ack_timeout: 5s
`

// newChain writes the configurations of configs/example for the event
// path into a temporary directory, with every example port mapped to a
// free one and the settings of these tests. It starts nothing.
func newChain(t testing.TB, o chainOpts) *e2etest.Chain {
	t.Helper()
	if o.sinkEvents == "" {
		o.sinkEvents = sinkDefaults
	}
	if o.fsync == "" {
		o.fsync = spoolDefaults
	}
	edit := func(node, text string) string {
		replace := func(old, new string) {
			if !strings.Contains(text, old) {
				t.Fatalf("configs/example/%s no longer has %q; update the test", node, old)
			}
			text = strings.Replace(text, old, new, 1)
		}
		replace("shutdown_grace: 5s", "shutdown_grace: 2s")
		switch node {
		case "epp-main":
			// Only the event server: the test counts what reaches it.
			replace("  file: events.jsonl\n", "  write_timeout: 1s\n")
		case "es-site-a":
			replace("  dest: epp-main\n", "  dest: epp-main\n"+o.sinkEvents)
			replace("  spool:\n    dir: spool\n", "  spool:\n    dir: spool\n"+o.fsync)
		}
		return text
	}
	return e2etest.NewChain(t, e2etest.Options{Nodes: e2etest.EventNodes, Edit: edit, Tuning: e2etest.FastTuning})
}

// countLog counts the lines of node's log (all its runs) that contain s.
func countLog(c *e2etest.Chain, node, s string) int {
	return strings.Count(c.Proc(node).LogSince(0), s)
}

// waitSpoolAcked waits until the eventsink's spool in dir holds no
// segment: the spool deletes a segment once all its events are
// acknowledged, so every event was acknowledged by the epproxy. (Stopping
// the eventsink while an ack is on its way is no loss, the batch is sent
// again on the next start, but it leaves events pending.)
func waitSpoolAcked(t testing.TB, dir string) {
	t.Helper()
	e2etest.Eventually(t, 30*time.Second, "the eventsink's spool to be acknowledged", func() error {
		segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
		if err != nil || len(segs) > 0 {
			return fmt.Errorf("segments %v (%v)", segs, err)
		}
		return nil
	})
}

// errNotYet is returned by conditions that do not hold yet.
var errNotYet = errors.New("not yet")

// statsLine finds the eventsink's "eventsink stopped" line in log and
// returns its key=value fields.
func statsLine(log string) map[string]string {
	i := strings.LastIndex(log, "eventsink stopped [")
	if i < 0 {
		return nil
	}
	line := log[i+len("eventsink stopped ["):]
	if j := strings.IndexByte(line, ']'); j >= 0 {
		line = line[:j]
	}
	out := map[string]string{}
	for _, kv := range strings.Fields(line) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}
