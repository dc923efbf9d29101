package chain

import (
	"fmt"
	"net"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/internal/admin"
)

// A rolling upgrade (scripts/NAME.sh upgrade): the new binary starts with
// admin.TakeOverEnv set, takes the listening sockets over from the
// instance running with the same configuration (through its admin
// socket), and links with its label beside it; the old one hands its place
// over and drains its sessions for shutdown_grace (mux.Node.HandOver and
// Drain).

// takeOverTimeout bounds the request for the running instance's sockets.
const takeOverTimeout = 10 * time.Second

// takeOver returns the listening sockets of the running instance when
// this process was started to take its place, else nil.
func takeOver(cfg *Config, h Hooks, log *logrus.Entry) (map[string]net.Listener, error) {
	if os.Getenv(admin.TakeOverEnv) == "" {
		return nil, nil
	}
	if h.Run != nil {
		// The eventsink's intake listeners are its own, not the node's.
		return nil, fmt.Errorf("%s cannot take a running instance's place: its intake listeners are not handed over; restart it instead", cfg.kind.Name)
	}
	lns, err := admin.TakeOver(cfg.AdminSocket(), takeOverTimeout)
	if err != nil {
		return nil, fmt.Errorf("take over from the running instance: %w", err)
	}
	log.Infof("took %d listening sockets over from the running instance; it drains its sessions", len(lns))
	return lns, nil
}

// listenEntry binds an entry's address, or takes the socket inherited for
// it.
func listenEntry(addr string, inherited map[string]net.Listener) (net.Listener, error) {
	if ln, ok := inherited[addr]; ok {
		return ln, nil
	}
	return net.Listen("tcp", addr)
}

// closeUnused closes the inherited sockets that no link and no entry of
// cfg (nil: none) listens on: an address the new configuration dropped.
func closeUnused(inherited map[string]net.Listener, cfg *Config) {
	used := map[string]bool{}
	if cfg != nil {
		var lists []Addrs
		for _, l := range cfg.Parents {
			lists = append(lists, l.Listen)
		}
		for _, l := range cfg.Children {
			lists = append(lists, l.Listen)
		}
		for _, e := range cfg.Entries {
			lists = append(lists, e.Listen)
		}
		for _, list := range lists {
			for _, a := range list {
				used[a] = true
			}
		}
	}
	for addr, ln := range inherited {
		if !used[addr] {
			_ = ln.Close()
		}
	}
}
