package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/relaychain/relaychain/internal/portpick"
)

// The systems measured, by the name -systems takes.
const (
	sysTLS   = "tls"   // the chain, every link mutual TLS as shipped
	sysPlain = "plain" // the chain, every link insecure_plaintext
	sysRef   = "ref"   // three plain relays
	sysSOCKS = "socks" // the TLS chain, its entry a SOCKS5 one that names the backend's address

	// The chain built from other binaries (-base-bin), to compare a
	// change with what it changes, in the same interleaved rounds.
	sysBaseTLS   = "base-tls"
	sysBasePlain = "base-plain"

	// Two plain relays that splice(2) (the round-trip reference).
	sysSplice = "splice"
)

// systemTitle is a system's name in the report.
var systemTitle = map[string]string{
	sysTLS:   "chain TLS",
	sysPlain: "chain plaintext",
	sysRef:   "reference",
	sysSOCKS: "chain TLS, SOCKS5 entry",

	sysBaseTLS:   "base TLS",
	sysBasePlain: "base plaintext",

	sysSplice: "two splice relays",
}

// readyTimeout bounds the wait for a started system to carry a session.
const readyTimeout = 30 * time.Second

// system is one started instance of a system: its three relay processes
// (the measured ones, from the client's side inwards) and its backend.
type system struct {
	kind    string
	entry   string  // where clients connect
	nodes   []*proc // gwproxy, relay, epproxy; or plain-1, plain-2, plain-3
	backend *proc
}

// startSystem starts a fresh instance of kind in dir (which it creates)
// and waits until a session reaches the backend through it. On error,
// whatever it started is stopped.
func startSystem(ctx context.Context, o Options, kind, dir string) (s *system, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s = &system{kind: kind}
	defer func() {
		if err != nil {
			_ = s.stop()
			s = nil
		}
	}()
	var backendAddr string
	s.backend, backendAddr, err = startRole(ctx, "backend", dir, o.Self, "backend", "-listen", "127.0.0.1:0")
	if err != nil {
		return s, err
	}
	switch kind {
	case sysTLS, sysPlain, sysSOCKS:
		err = s.startChain(ctx, o, dir, backendAddr, kind != sysPlain, kind == sysSOCKS)
	case sysBaseTLS, sysBasePlain:
		base := o
		base.BinDir = o.BaseBinDir
		err = s.startChain(ctx, base, dir, backendAddr, kind == sysBaseTLS, false)
	case sysRef:
		err = s.startReference(ctx, o, dir, backendAddr)
	case sysSplice:
		err = s.startSplice(ctx, o, dir, backendAddr)
	default:
		err = fmt.Errorf("unknown system %q", kind)
	}
	if err != nil {
		return s, err
	}
	return s, s.waitReady(ctx)
}

// The chain's labels and the daemon of each, from the client inwards.
var chainNodes = []struct{ label, daemon string }{
	{"gwp-bench", "gwproxy"},
	{"relay-bench", "relay"},
	{"epp-bench", "epproxy"},
}

// startChain writes the configurations of a chain gwproxy -> relay ->
// epproxy (the relay listens for both links, as the example's DMZ relays
// do: the epproxy dials out of the secure zone, the gwproxy in from the
// outer zone), with an entry on the gwproxy to the service "backend" of
// the epproxy, makes the certificates with the daemons' own "pki"
// commands when tls, and starts the daemons (the relay first). With
// socks, the gwproxy's entry is a socks5 one whose sessions go to the
// epproxy, which serves the backend's address: clients name the backend
// in a SOCKS5 request first (s.entry is then socks5://ENTRY/BACKEND).
func (s *system) startChain(ctx context.Context, o Options, dir, backendAddr string, tls, socks bool) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	upLink, downLink, entry := ports[0], ports[1], ports[2]
	s.entry = entry
	if tls {
		ca := filepath.Join(dir, "ca")
		if err := runCommand(ctx, dir, filepath.Join(o.BinDir, "epproxy"), "pki", "ca", "--out", ca); err != nil {
			return err
		}
		for _, n := range chainNodes {
			err := runCommand(ctx, dir, filepath.Join(o.BinDir, n.daemon), "pki", "issue", "--ca", ca, "--label", n.label, "--out", filepath.Join(dir, n.label))
			if err != nil {
				return err
			}
		}
	}
	link := func(side, label, how, addr string) string {
		t := fmt.Sprintf("%s:\n  - label: %s\n    %s: %s\n", side, label, how, addr)
		if !tls {
			t += "    insecure_plaintext: true\n"
		}
		return t
	}
	confs := map[string]string{
		"gwp-bench": link("parents", "relay-bench", "dial", downLink) + fmt.Sprintf(
			"entries:\n  - name: bench\n    listen: %s\n    dest: epp-bench\n    service: backend\n", entry),
		"relay-bench": link("parents", "epp-bench", "listen", upLink) + link("children", "gwp-bench", "listen", downLink),
		// gwp-bench is below relay-bench: the root takes its label.
		"epp-bench": link("children", "relay-bench", "dial", upLink) + "    accept_labels: [gwp-bench]\n" + fmt.Sprintf(
			"services:\n  - name: backend\n    addrs: [%s]\n", backendAddr),
	}
	if socks {
		s.entry = "socks5://" + entry + "/" + backendAddr
		// A socks5 entry denies what no rule allows: allow the backend.
		host, port, err := net.SplitHostPort(backendAddr)
		if err != nil {
			return fmt.Errorf("backend address %s: %w", backendAddr, err)
		}
		confs["gwp-bench"] = link("parents", "relay-bench", "dial", downLink) + fmt.Sprintf(
			"entries:\n  - name: bench\n    listen: %s\n    dest: epp-bench\n    kind: socks5\n"+
				"    rules:\n      - action: allow\n        nets: [%s]\n        ports: [%s]\n", entry, host, port)
		confs["epp-bench"] += fmt.Sprintf("serves: [%q]\n", backendAddr)
	}
	for _, n := range chainNodes {
		nd := filepath.Join(dir, n.label)
		if err := os.MkdirAll(nd, 0o755); err != nil {
			return err
		}
		text := fmt.Sprintf("# Written by chainbench.\nlabel: %s\nlog:\n  level: %d\n  file: %s.log\nshutdown_grace: 2s\n", n.label, o.LogLevel, n.daemon)
		if tls {
			text += fmt.Sprintf("tls:\n  cert: %s.crt\n  key: %s.key\n  ca: ca.crt\n", n.label, n.label)
		}
		text += confs[n.label]
		if err := os.WriteFile(filepath.Join(nd, n.daemon+".yaml"), []byte(text), 0o644); err != nil {
			return err
		}
	}
	s.nodes = make([]*proc, len(chainNodes))
	for _, i := range []int{1, 2, 0} { // the relay listens: it goes first
		n := chainNodes[i]
		nd := filepath.Join(dir, n.label)
		p, err := startProc(n.daemon, nd, filepath.Join(o.BinDir, n.daemon), "--config", filepath.Join(nd, n.daemon+".yaml"))
		if err != nil {
			return err
		}
		p.log = filepath.Join(nd, n.daemon+".log")
		s.nodes[i] = p
	}
	return nil
}

// startReference starts three plain relays in a row in front of the
// backend, the innermost first.
func (s *system) startReference(ctx context.Context, o Options, dir, backendAddr string) error {
	s.nodes = make([]*proc, 3)
	to := backendAddr
	for i := 2; i >= 0; i-- {
		name := fmt.Sprintf("plain-%d", i+1)
		p, addr, err := startRole(ctx, name, dir, o.Self, "plainrelay", "-listen", "127.0.0.1:0", "-to", to)
		if err != nil {
			return err
		}
		s.nodes[i] = p
		to = addr
	}
	s.entry = to
	return nil
}

// startSplice starts two splice relays in a row in front of the backend,
// the inner one first.
func (s *system) startSplice(ctx context.Context, o Options, dir, backendAddr string) error {
	s.nodes = make([]*proc, 2)
	to := backendAddr
	for i := 1; i >= 0; i-- {
		name := fmt.Sprintf("splice-%d", i+1)
		p, addr, err := startRole(ctx, name, dir, o.Self, "splicerelay", "-listen", "127.0.0.1:0", "-to", to)
		if err != nil {
			return err
		}
		s.nodes[i] = p
		to = addr
	}
	s.entry = to
	return nil
}

// waitReady tries an echo session through the system until one works, or
// a process exits, within readyTimeout.
func (s *system) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for {
		if err := s.check(); err != nil {
			return err
		}
		last = echoOnce(ctx, s.entry, []byte("ready?"), 2*time.Second)
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no session reached the backend within %s: %w%s", systemTitle[s.kind], readyTimeout, last, s.tails())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// check fails when a process of the system has exited.
func (s *system) check() error {
	for _, p := range s.all() {
		if p.exited() {
			return fmt.Errorf("%s exited: %v%s", p.name, p.err, p.tail())
		}
	}
	return nil
}

func (s *system) all() []*proc {
	var ps []*proc
	for _, p := range append(s.nodes, s.backend) {
		if p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

func (s *system) tails() string {
	var b strings.Builder
	for _, p := range s.nodes {
		if p != nil {
			b.WriteString(p.tail())
		}
	}
	return b.String()
}

// stop stops the relays together, then the backend, and reports those
// that did not end cleanly.
func (s *system) stop() error {
	errs := make([]error, len(s.nodes)+1)
	var wg sync.WaitGroup
	for i, p := range s.nodes {
		if p != nil {
			wg.Go(func() { errs[i] = p.stop() })
		}
	}
	wg.Wait()
	if s.backend != nil {
		errs[len(s.nodes)] = s.backend.stop()
	}
	return errors.Join(errs...)
}

// pids are the processes' ids, for the checks that they are gone.
func (s *system) pids() []int {
	var out []int
	for _, p := range s.all() {
		out = append(out, p.pid())
	}
	return out
}

// cpu is the CPU used so far by the three relay processes together.
func (s *system) cpu() (time.Duration, error) {
	var sum time.Duration
	for _, p := range s.nodes {
		d, err := cpuTime(p.pid())
		if err != nil {
			return 0, fmt.Errorf("%s: %w", p.name, err)
		}
		sum += d
	}
	return sum, nil
}

// memory is the resident memory of each relay process, and their
// descriptors together.
func (s *system) memory() ([]mem, int, error) {
	out := make([]mem, len(s.nodes))
	fds := 0
	for i, p := range s.nodes {
		m, err := memory(p.pid())
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", p.name, err)
		}
		n, err := fdCount(p.pid())
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", p.name, err)
		}
		out[i] = m
		fds += n
	}
	return out, fds, nil
}

// freePorts returns n loopback ports picked as the tests pick theirs
// (package portpick), reserved as long as this process lives.
func freePorts(n int) ([]string, error) {
	var out []string
	for range n {
		p, err := portpick.One()
		if err != nil {
			return nil, fmt.Errorf("found %d of %d free ports: %w", len(out), n, err)
		}
		out = append(out, "127.0.0.1:"+strconv.Itoa(p))
	}
	return out, nil
}
