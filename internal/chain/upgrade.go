package chain

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/internal/admin"
	"github.com/relaychain/relaychain/internal/atomicfile"
)

// A rolling upgrade (scripts/NAME.sh upgrade): the new binary starts with
// admin.TakeOverEnv set, takes the listening sockets over from the
// instance running with the same configuration (through its admin
// socket), and links with its label beside it; the old one hands its place
// over and drains its sessions for shutdown_grace (mux.Node.HandOver and
// Drain).

// takeOverTimeout bounds the request for the running instance's sockets,
// and its confirmation of the handover once this process is ready.
const takeOverTimeout = 10 * time.Second

// commitTimeout bounds the wait for the running instance to commit the
// handover once this process is ready: it stops accepting and hands its
// links over, and its part (the eventsink's intake and spool) stops,
// for up to partHandOverTimeout, and closes the spool.
const commitTimeout = takeOverTimeout + partHandOverTimeout + 15*time.Second

// takeOver returns the listening sockets of the running instance, and the
// connection that commits the handover (Ready), when this process was
// started to take its place, else nil.
func takeOver(cfg *Config, log *logrus.Entry) (*admin.Takeover, error) {
	if os.Getenv(admin.TakeOverEnv) == "" {
		return nil, nil
	}
	tk, err := admin.TakeOver(cfg.AdminSocket(), takeOverTimeout)
	if err != nil {
		return nil, fmt.Errorf("take over from the running instance: %w", err)
	}
	log.Infof("took copies of %d listening sockets from the running instance; it serves on until this one is ready", len(tk.Listeners)+len(tk.PacketConns))
	return tk, nil
}

// confirmTakeOver tells the running instance that this one is ready: it
// stops accepting and hands its links over, and drains. The pid file that
// admin.PidFileEnv names gets this process's pid.
func confirmTakeOver(tk *admin.Takeover, log *logrus.Entry) error {
	if err := tk.Ready(commitTimeout); err != nil {
		return err
	}
	log.Info("took the running instance's place: accepting from now on; it finishes its sessions and exits")
	if path := os.Getenv(admin.PidFileEnv); path != "" {
		data := []byte(strconv.Itoa(os.Getpid()) + "\n")
		if err := atomicfile.Write(path, "."+filepath.Base(path)+".tmp", data, nil); err != nil {
			log.WithError(err).Error("pid file not written")
		}
	}
	return nil
}

// upgradeRefusal is the reason this process refuses to hand its place
// over, if any: it is taking over itself, and its predecessor has not
// exited yet.
func upgradeRefusal(tk *admin.Takeover, ready *atomic.Bool) error {
	if tk == nil {
		return nil
	}
	if !ready.Load() {
		return errors.New("an upgrade is in progress: this process is still taking its predecessor's place")
	}
	select {
	case <-tk.Gone():
		return nil
	default:
		return errors.New("an upgrade is in progress: the previous process still finishes its sessions; upgrade again once it has exited")
	}
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
