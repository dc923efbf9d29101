package chain_test

import (
	"context"
	"fmt"
	"os"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/internal/chain"
	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/mux"
)

// A relay's whole main: the command line, the configuration and the run
// loop all come from the Spec of its Kind. Here the same Spec checks the
// configuration in testdata, as "relay check" does.
func ExampleSpec() {
	main := func() { daemon.Main(chain.Spec(chain.Relay, chain.Hooks{})) }
	_ = main

	app := daemon.App(chain.Spec(chain.Relay, chain.Hooks{}))
	app.Writer, app.ErrWriter = os.Stdout, os.Stdout
	if err := app.Run([]string{"relay", "check", "--config", "testdata/relay.yaml"}); err != nil {
		fmt.Println(err)
	}
	// Output:
	// testdata/relay.yaml: configuration OK
}

// A daemon that adds its own pieces to the node passes them in Hooks:
// Services for in-process services, Part for work beside the node (a
// function through RunFunc, or a Part that hands over in an upgrade, as
// the eventsink's does).
func ExampleHooks() {
	hooks := chain.Hooks{
		Part: chain.RunFunc(func(ctx context.Context, cfg *chain.Config, n *mux.Node, log *logrus.Entry) error {
			log.Infof("%s: running beside the node until it stops", cfg.Label)
			<-ctx.Done()
			return nil
		}),
	}
	main := func() { daemon.Main(chain.Spec(chain.EventSink, hooks)) }
	_ = main
}

// The configurations of a whole chain, checked together on an admin host
// (the TLS files they name are not read), and the firewall rules they
// need, as "relay chain firewall" prints them.
func ExampleLoadSet() {
	s, err := chain.LoadSet("../../configs/example")
	if err != nil {
		fmt.Println(err) // a file that does not load: every problem, FILE:LINE: KEY: ...
		return
	}
	crossings, err := s.Crossings() // checks first (Set.Check)
	if err != nil {
		fmt.Println(err) // two ends of a link that disagree, ...
		return
	}
	for _, c := range crossings {
		fmt.Printf("%d/tcp to %s, opened by %v\n", c.Port, c.Listener, c.Dialers)
	}
	// Output:
	// 17101/tcp to relay-dmz1, opened by [epp-main]
	// 17102/tcp to relay-dmz2, opened by [relay-dmz1]
	// 17103/tcp to relay-dmz2, opened by [gwp-site-a gwp-site-b]
	// 17201/tcp to gwp-site-a, opened by [es-site-a]
}
