// Command chainbench measures the relay chain as its users see it: the real
// binaries, each its own process, measured from outside. It starts a chain
// gwproxy -> relay -> epproxy on 127.0.0.1 (fresh ports, configurations
// in a temporary directory, a CA and certificates made with the binaries'
// own "pki" commands), with an entry on the gwproxy to a service on the
// epproxy whose address is a backend; and beside it, in the same run, a
// reference of the same shape: three plain relays that copy with read and
// write through 32 KiB buffers, each its own process. With -systems splice,
// also the round-trip reference: two plain relays that splice(2)
// between their TCP connections (chainbench splicerelay).
//
//	chainbench [flags]              run the bench, print a Markdown table
//	chainbench -quick               a small run, for a check that it works
//	scripts/bench-chain.sh [flags]  build everything, then run it
//
// Three systems are measured, in interleaved rounds (chain on TLS as
// shipped, the chain with every link insecure_plaintext, the reference;
// then again), each round on freshly started processes; and, to measure a
// change, the chain built from other binaries (-base-bin) as base-tls and
// base-plain, with the ratios of the chain to it. For each system:
//
//   - RSS and PSS (/proc/PID/smaps_rollup) per held connection with -held
//     idle sessions open, and the RSS of the three at each -settle time
//     after they closed (first, on processes that have carried nothing
//     yet, so that the growth is not hidden in a heap grown before);
//   - throughput with 1 and with -streams sessions, upload (client ->
//     backend) and download (backend -> client), -mib MiB per test and
//     direction; and the CPU seconds per GB (1e9 bytes) the three relay
//     processes spent, utime+stime from /proc/PID/stat before and after;
//   - the round trip of 64-byte messages on one session (p50, p99);
//   - session opens per second: -open-clients clients open, exchange 16
//     bytes and close, -opens sessions in all.
//
// The figures are the medians over the rounds; the table gives the ratios
// to the reference and TLS/plaintext.
//
// What is measured and what is not: the client runs in chainbench, the
// backend in a child process of its own (chainbench backend); neither's
// CPU counts, only the three relay processes'. The daemons log at -log-level
// (3, as shipped: one line per session at each end) to files.
//
// File descriptors: each plain relay holds two descriptors per connection,
// and every process here may open at most 20,000 (the machine's limit), so
// -held defaults to 9,000: the client (chainbench) and the backend hold one
// per connection, a gwproxy or an epproxy one, the relay none.
//
// Everything runs on loopback; every wait is bounded; every process is
// stopped and the temporary directory removed at the end, on failure and
// on Ctrl-C too (the children die with chainbench even if it is killed).
// Linux only: it reads /proc.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := command(ctx, os.Args[1:])
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chainbench:", err)
		os.Exit(1)
	}
}

// command runs the bench, or one of the roles chainbench starts as its own
// children (backend, plainrelay, splicerelay).
func command(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "backend":
			return backendCommand(ctx, args[1:])
		case "plainrelay":
			return plainRelayCommand(ctx, args[1:])
		case "splicerelay":
			return spliceRelayCommand(ctx, args[1:])
		}
	}
	o, err := parseOptions(args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	rep, err := Run(ctx, o)
	if err != nil {
		return err
	}
	fmt.Print(rep.Markdown())
	return nil
}

// parseOptions reads the bench's flags; -quick changes the defaults of the
// flags not given.
func parseOptions(args []string) (Options, error) {
	o := DefaultOptions()
	fs := flag.NewFlagSet("chainbench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: chainbench [flags]  (see the package documentation)")
		fs.PrintDefaults()
	}
	quick := fs.Bool("quick", false, "small sizes, one round, few held connections: a check that the bench works")
	fs.StringVar(&o.BinDir, "bin", o.BinDir, "directory of the epproxy, relay and gwproxy binaries (default: chainbench's own)")
	fs.StringVar(&o.Systems, "systems", o.Systems, "systems to measure, in round order: tls, plain, ref, splice (two splice relays); socks (the TLS chain through a SOCKS5 entry); base-tls, base-plain (the chain of -base-bin)")
	fs.StringVar(&o.BaseBinDir, "base-bin", o.BaseBinDir, "directory of other binaries of the chain (a build before a change), measured as base-tls and base-plain")
	fs.IntVar(&o.Rounds, "rounds", o.Rounds, "interleaved rounds; the figures are medians over them")
	fs.IntVar(&o.MiB, "mib", o.MiB, "MiB moved by each throughput test, each direction (split over the streams)")
	fs.IntVar(&o.Streams, "streams", o.Streams, "sessions of the parallel throughput test")
	fs.IntVar(&o.RTTs, "rtts", o.RTTs, "round trips timed")
	fs.IntVar(&o.Opens, "opens", o.Opens, "sessions opened in the opens test")
	fs.IntVar(&o.OpenClients, "open-clients", o.OpenClients, "concurrent clients of the opens test")
	fs.IntVar(&o.Held, "held", o.Held, "idle sessions held open for the memory figures")
	settle := fs.String("settle", joinDurations(o.Settle), "when to read RSS after the held sessions close, comma-separated")
	fs.IntVar(&o.LogLevel, "log-level", o.LogLevel, "the daemons' log level (3 as shipped)")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "give up after this long")
	fs.StringVar(&o.TempDir, "tmp", o.TempDir, "where the temporary directory goes (default: the system's)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick {
		q := QuickOptions()
		for name, apply := range map[string]func(){
			"rounds": func() { o.Rounds = q.Rounds }, "mib": func() { o.MiB = q.MiB },
			"rtts": func() { o.RTTs = q.RTTs }, "opens": func() { o.Opens = q.Opens },
			"held": func() { o.Held = q.Held }, "timeout": func() { o.Timeout = q.Timeout },
			"settle": func() { o.Settle = q.Settle },
		} {
			if !set[name] {
				apply()
			}
		}
	}
	if set["settle"] {
		d, err := parseDurations(*settle)
		if err != nil {
			return o, fmt.Errorf("-settle: %w", err)
		}
		o.Settle = d
	}
	if o.BinDir == "" {
		self, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("find the binaries: %w (give -bin)", err)
		}
		o.BinDir = filepath.Dir(self)
	}
	return o, o.Validate()
}

func parseDurations(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func joinDurations(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, d.String())
	}
	return strings.Join(s, ",")
}
