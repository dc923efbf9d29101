// Command epproxy is the endpoint proxy: the root of the relay chain, in
// the secure zone beside the gateway. It dials the gateway for upcalls
// (its services), routes the gateway's downcalls down the tree (its
// entries), and delivers the events of the eventsinks to the event server
// (its events section). See README.md.
package main

import (
	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/epproxy/delivery"
	"github.com/relaychain/relaychain/events"
	"github.com/relaychain/relaychain/internal/chain"
	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/mux"
)

func main() { daemon.Main(chain.Spec(chain.EPProxy, chain.Hooks{Services: eventService})) }

// eventService offers the event service when the configuration has an
// events section.
func eventService(cfg *chain.Config, log *logrus.Entry) (map[string]mux.Service, func(), error) {
	ev := cfg.Events
	if ev == nil {
		return nil, nil, nil
	}
	svc, err := delivery.New(delivery.Config{
		Server:       ev.Server,
		File:         ev.File,
		StateFile:    ev.State,
		DialTimeout:  cfg.Tuning.DialTimeout,
		WriteTimeout: ev.WriteTimeout,
		Limits:       events.Limits{MaxBatchBytes: chain.MaxBatchBytes + 1<<20, MaxEvents: chain.MaxBatchEvents},
	}, log)
	if err != nil {
		return nil, nil, err
	}
	log.WithField("component", "events").Infof("event service %s: server %q, file %q", ev.Service, ev.Server, ev.File)
	release := func() { _ = svc.Close() }
	return map[string]mux.Service{ev.Service: {Handler: svc.Handle}}, release, nil
}
