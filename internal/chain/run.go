package chain

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/relaychain/relaychain/internal/admin"
	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/internal/pki"
	"github.com/relaychain/relaychain/internal/version"
	"github.com/relaychain/relaychain/mux"
)

// Hooks let a daemon add its own pieces to the node it runs: in-process
// services (the epproxy's event service) and goroutines that run beside
// the node (the eventsink's intake and forwarder). Both are optional.
type Hooks struct {
	// Services returns in-process services to add to the node, and a
	// function that releases them after the node has shut down.
	Services func(cfg *Config, log *logrus.Entry) (map[string]mux.Service, func(), error)
	// Part makes what runs beside the node (the eventsink's intake,
	// spool and forwarder; part.go). It is called once the node is made,
	// before a process taking a predecessor's place says it is ready.
	Part func(cfg *Config, n *mux.Node, inherited *Inherited, log *logrus.Entry) (Part, error)
}

// Spec is the command line of a chain daemon of kind k.
func Spec(k Kind, h Hooks) daemon.Spec[*Config] {
	return daemon.Spec[*Config]{
		Name:  k.Name,
		Usage: k.Usage,
		Load:  func(path string) (*Config, error) { return Load(k, path) },
		Run: func(ctx context.Context, cfg *Config, logger *logrus.Logger, _ *daemon.Level) error {
			return Run(ctx, cfg, logger, h)
		},
		Commands: []*cli.Command{chainCommand(k.Name), statusCommand(k), upgradeCommand(k)},
		// SIGHUP reloads the whole file (reload.go); the TLS files are
		// read again there.
		Apply: Apply,
	}
}

// Run runs the node that cfg describes until ctx ends, then drains its
// sessions for at most the shutdown grace period and aborts the rest.
// While it runs, it warns at start and daily about a TLS certificate that
// expires within 14 days.
func Run(ctx context.Context, cfg *Config, logger *logrus.Logger, h Hooks) error {
	if cfg.noTLSFiles {
		return fmt.Errorf("%s was loaded without its TLS files (LoadOptions.SkipTLSFiles): it cannot run", cfg.file)
	}
	log := logrus.NewEntry(logger)
	mlog := log.WithField("component", "main")
	var extra map[string]mux.Service
	release := func() {}
	if h.Services != nil {
		var err error
		extra, release, err = h.Services(cfg, log)
		if err != nil {
			return err
		}
		if release == nil {
			release = func() {}
		}
	}
	defer release()
	mc := cfg.MuxConfig(extra)
	mc.Version = version.String(cfg.kind.Name)
	for _, w := range cfg.Warnings() {
		mlog.Warn(w)
	}
	tk, err := takeOver(cfg, mlog)
	if err != nil {
		return err
	}
	var inherited map[string]net.Listener
	inh := &Inherited{}
	if tk != nil {
		// Closed after the admin socket on the way out: before Ready,
		// the running instance binds its own again and serves on.
		defer tk.Close()
		inherited = tk.Listeners
		inh = &Inherited{Listeners: tk.Listeners, PacketConns: tk.PacketConns}
	}
	var tookOver atomic.Bool
	mc.Inherited = inherited
	n, err := mux.New(mc, log)
	if err != nil {
		closeUnused(inherited, nil)
		return err
	}
	ctx, handOver := context.WithCancel(ctx)
	defer handOver()
	var handedOver atomic.Bool
	committed := make(chan struct{}) // closed once handed over
	// Without its admin socket (a read-only instance directory, a path
	// too long for a Unix socket) the node still runs: status is for the
	// operator, the links are for the traffic.
	alog := daemon.Component(log, "admin")
	// On the epproxy, the registry kept across restarts and the
	// port_map ports (registry.go), shown in the status.
	var keeper *registryKeeper
	status := n.Status
	if cfg.kind.Role == mux.RoleRoot {
		if keeper, err = newRegistryKeeper(cfg, n, log); err != nil {
			_ = n.Shutdown(context.Background())
			return err
		}
		status = func() mux.NodeStatus {
			st := n.Status()
			keeper.fill(&st)
			return st
		}
	}
	// On a gwproxy that learns its endpoints, those it learnt before.
	var learnt *learntKeeper
	if cfg.RegisterEndpoints {
		if learnt, err = newLearntKeeper(cfg, n, log); err != nil {
			_ = n.Shutdown(context.Background())
			return err
		}
	}
	var sock *admin.Socket
	if s, err := admin.ListenSocket(cfg.AdminSocket(), status, alog); err != nil {
		alog.WithError(err).Errorf("no admin socket: %s status will not answer; set admin.socket to a writable place", cfg.kind.Name)
	} else {
		sock = s
		sock.SetTree(n.Tree)
		sockDone := make(chan struct{})
		go func() {
			defer close(sockDone)
			_ = sock.Serve()
		}()
		// The socket answers while the node drains, and goes after it.
		defer func() {
			_ = sock.Close()
			<-sockDone
		}()
	}
	var httpStop func()
	httpWait := func() {}
	defer func() { httpWait() }()
	startHTTP := func() error {
		h, err := admin.ListenHTTP(cfg.Admin.Listen, status, cfg.Admin.PProf)
		if err != nil {
			return err
		}
		alog.Infof("metrics, health and readiness on http://%s", h.Addr())
		httpDone := make(chan struct{})
		go func() {
			defer close(httpDone)
			if err := h.Serve(); err != nil {
				alog.WithError(err).Error("admin listener failed")
			}
		}()
		httpStop = func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = h.Shutdown(ctx)
		}
		httpWait = func() {
			httpStop()
			<-httpDone
		}
		return nil
	}
	if cfg.Admin.Listen != "" && tk == nil {
		if err := startHTTP(); err != nil {
			_ = n.Shutdown(context.Background())
			return err
		}
	}
	for _, e := range cfg.Entries {
		if e.Kind == KindPortMap { // its ports are bound by the registry keeper
			continue
		}
		ec := cfg.entryConfig(e)
		for _, addr := range e.Listen {
			ln, err := listenEntry(addr, inherited)
			if err != nil {
				_ = n.Shutdown(context.Background())
				return fmt.Errorf("entry %s: %w", e.Name, err)
			}
			if e.Kind != "" {
				n.AddAddrEntry(ln, cfg.addrEntryConfig(e))
				continue
			}
			n.AddEntryWith(ln, ec)
		}
	}
	if keeper != nil {
		// The port_map ports, bound now: a successor's on the sockets
		// it took over (registry_upgrade.go).
		inherited = keeper.adopt(inherited)
		inh.Listeners = inherited
	}
	var part Part
	partServed := false
	if h.Part != nil {
		if part, err = h.Part(cfg, n, inh, log); err != nil {
			closeUnused(inherited, nil)
			inh.closePackets()
			_ = n.Shutdown(context.Background())
			return err
		}
		defer func() {
			if !partServed {
				part.Close()
			}
		}()
	}
	closeUnused(inherited, cfg)
	inh.closePackets()
	if sock != nil {
		sock.OnHandover(func() ([]mux.ListenerFile, error) {
			if err := upgradeRefusal(tk, &tookOver); err != nil {
				return nil, err
			}
			return listenerFiles(n, part)
		}, func() (*admin.Handed, error) {
			if err := n.BeginHandOver(); err != nil {
				return nil, err
			}
			handed := handPartOver(part, mlog)
			handedOver.Store(true)
			close(committed)
			if httpStop != nil {
				httpStop()
			}
			handOver()
			return handed, nil
		})
	}
	if sock != nil {
		sock.OnUpgrade(func() (int, error) {
			if err := upgradeRefusal(tk, &tookOver); err != nil {
				return 0, err
			}
			return startSuccessor(committed, mlog)
		})
	}
	if tk != nil {
		// Everything that could fail is bound: the running instance
		// stops accepting now, and this one starts.
		if err := confirmTakeOver(tk, mlog); err != nil {
			_ = n.Shutdown(context.Background())
			return fmt.Errorf("take over from the running instance: %w; it serves on", err)
		}
		tookOver.Store(true)
		if cfg.Admin.Listen != "" {
			// Free since the running instance handed over.
			if err := startHTTP(); err != nil {
				alog.WithError(err).Error("no metrics listener: health and readiness will not answer until a restart")
			}
		}
	}
	notifyService(readyState(tk != nil), mlog)
	run := &liveNode{cur: cfg, node: n, extra: extra, log: daemon.Component(log, "config")}
	runs.Store(cfg, run)
	defer runs.Delete(cfg)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return n.Serve(gctx) })
	tlog := daemon.Component(log, "tls")
	g.Go(func() error {
		watchExpiry(gctx, func() []*pki.Store { return run.current().TLSStores() }, tlog, 24*time.Hour)
		return nil
	})
	if part != nil {
		var from *admin.Handed
		if tk != nil {
			from = tk.Handed
		}
		partServed = true
		g.Go(func() error { return part.Serve(gctx, from) })
	}
	if keeper != nil {
		g.Go(func() error { return keeper.run(gctx) })
	}
	if learnt != nil {
		g.Go(func() error { return learnt.run(gctx) })
	}
	runErr := g.Wait()
	grace := run.current().ShutdownGrace
	// A fresh context: the one given to Run is already cancelled.
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if handedOver.Load() {
		mlog.Infof("handing over to the successor: draining %d sessions for up to %s", n.Sessions(), grace)
		if left := n.Drain(sctx); left > 0 {
			mlog.Warnf("handover: %d sessions left after the grace period", left)
		} else {
			mlog.Info("handover: every session ended")
		}
	}
	mlog.Infof("shutting down: draining %d sessions for up to %s", n.Sessions(), grace)
	if err := n.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		runErr = errors.Join(runErr, err)
	}
	return runErr
}
