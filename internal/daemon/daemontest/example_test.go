package daemontest_test

import (
	"context"
	"testing"
	"time"

	"github.com/relaychain/relaychain/internal/chain"
	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/internal/daemon/daemontest"
)

// A test that runs a relay in-process for a second, with the relay's log
// lines in the test's output (go test -v), silent once the test has ended.
func ExampleLogger() {
	testRelay := func(t *testing.T) {
		cfg, err := chain.Load(chain.Relay, "testdata/relay.yaml")
		if err != nil {
			t.Fatal(err)
		}
		log := daemontest.Logger(t, daemon.LevelDebug)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := chain.Run(ctx, cfg, log, chain.Hooks{}); err != nil {
			t.Fatal(err)
		}
	}
	_ = testRelay
}
