package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Options shape a run of the bench; DefaultOptions and QuickOptions give
// the two usual ones.
type Options struct {
	BinDir  string // the daemons' binaries
	Self    string // chainbench itself, started for the backend and the plain relays; "": this executable
	TempDir string // where the run's temporary directory goes; "": the system's

	BaseBinDir string // the binaries of the systems base-tls and base-plain

	Systems     string // comma-separated sysTLS, sysPlain, sysRef, sysSOCKS: each round's order
	Rounds      int
	MiB         int // per throughput test and direction
	Streams     int // sessions of the parallel throughput test
	RTTs        int
	Opens       int
	OpenClients int // concurrent clients of the opens test and of the held sessions' opening
	Held        int
	Settle      []time.Duration // RSS readings after the held sessions closed
	LogLevel    int             // the daemons'
	Timeout     time.Duration   // the whole run (applied by the command)

	Progress io.Writer // a line per result as it comes; nil: standard error
}

// DefaultOptions is the full bench: several minutes on two cores.
func DefaultOptions() Options {
	return Options{
		Systems:     strings.Join([]string{sysTLS, sysPlain, sysRef}, ","),
		Rounds:      3,
		MiB:         2048,
		Streams:     8,
		RTTs:        5000,
		Opens:       5000,
		OpenClients: 50,
		Held:        9000,
		Settle:      []time.Duration{10 * time.Second, 30 * time.Second, 60 * time.Second},
		LogLevel:    3,
		Timeout:     90 * time.Minute,
	}
}

// QuickOptions is a run of a few seconds per system, which only shows
// that everything works.
func QuickOptions() Options {
	o := DefaultOptions()
	o.Rounds = 1
	o.MiB = 16
	o.RTTs = 200
	o.Opens = 200
	o.Held = 100
	o.Settle = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}
	o.Timeout = 3 * time.Minute
	return o
}

// Validate reports every bad option at once.
func (o Options) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	kinds := o.systems()
	if len(kinds) == 0 {
		bad("-systems: none given")
	}
	for i, k := range kinds {
		if systemTitle[k] == "" {
			bad("-systems: %q is not one of %s, %s, %s, %s, %s, %s, %s", k, sysTLS, sysPlain, sysRef, sysSplice, sysSOCKS, sysBaseTLS, sysBasePlain)
		}
		if (k == sysBaseTLS || k == sysBasePlain) && o.BaseBinDir == "" {
			bad("-systems: %s needs -base-bin", k)
		}
		if slices.Contains(kinds[:i], k) {
			bad("-systems: %s twice", k)
		}
	}
	for _, v := range []struct {
		name string
		v    int
	}{{"rounds", o.Rounds}, {"mib", o.MiB}, {"streams", o.Streams}, {"rtts", o.RTTs}, {"opens", o.Opens}, {"open-clients", o.OpenClients}, {"held", o.Held}} {
		if v.v <= 0 {
			bad("-%s: %d, want at least 1", v.name, v.v)
		}
	}
	if o.MiB < o.Streams {
		bad("-mib %d: want at least one MiB per stream (%d)", o.MiB, o.Streams)
	}
	// Each plain relay holds two descriptors per held session.
	if o.Held > 9900 {
		bad("-held %d: at most 9900, as a plain relay holds two descriptors per session and a process here may open 20,000", o.Held)
	}
	if len(o.Settle) == 0 || !slices.IsSorted(o.Settle) || o.Settle[0] < 0 {
		bad("-settle: want times after the close in increasing order")
	}
	if o.LogLevel < 0 || o.LogLevel > 5 {
		bad("-log-level %d: want 0..5", o.LogLevel)
	}
	if o.Timeout <= 0 {
		bad("-timeout: want a positive duration")
	}
	if o.BinDir != "" {
		for _, d := range []string{"epproxy", "relay", "gwproxy"} {
			if _, err := os.Stat(filepath.Join(o.BinDir, d)); err != nil {
				bad("-bin: %v (build them with scripts/build.sh)", err)
			}
			if o.BaseBinDir == "" {
				continue
			}
			if _, err := os.Stat(filepath.Join(o.BaseBinDir, d)); err != nil {
				bad("-base-bin: %v", err)
			}
		}
	}
	return errors.Join(errs...)
}

func (o Options) systems() []string {
	var out []string
	for _, k := range strings.Split(o.Systems, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, k)
		}
	}
	return out
}

func (o Options) logf(format string, a ...any) {
	fmt.Fprintf(o.Progress, format+"\n", a...)
}

// Run measures every system of o in interleaved rounds, each round on
// freshly started processes in a temporary directory that Run removes.
// It stops every process it started before it returns, also when ctx
// ends. On error the report holds the samples done so far.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.BinDir == "" {
		return nil, errors.New("no directory of binaries given")
	}
	// The processes run in directories of their own.
	bin, err := filepath.Abs(o.BinDir)
	if err != nil {
		return nil, err
	}
	o.BinDir = bin
	if o.BaseBinDir != "" {
		if o.BaseBinDir, err = filepath.Abs(o.BaseBinDir); err != nil {
			return nil, err
		}
	}
	if o.Progress == nil {
		o.Progress = os.Stderr
	}
	if o.Self == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		o.Self = self
	}
	dir, err := os.MkdirTemp(o.TempDir, "chainbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	rep := &Report{Options: o, Machine: machine(), Started: time.Now()}
	kinds := o.systems()
	for round := 1; round <= o.Rounds; round++ {
		for _, kind := range kinds {
			o.logf("round %d/%d: %s", round, o.Rounds, systemTitle[kind])
			smp, err := runSystem(ctx, o, kind, round, filepath.Join(dir, fmt.Sprintf("round%d-%s", round, kind)))
			rep.Samples = append(rep.Samples, smp)
			if err != nil {
				return rep, fmt.Errorf("round %d, %s: %w", round, systemTitle[kind], err)
			}
		}
	}
	return rep, nil
}

// runSystem starts a fresh kind in dir, measures it and stops it.
func runSystem(ctx context.Context, o Options, kind string, round int, dir string) (smp Sample, err error) {
	smp = Sample{System: kind, Round: round}
	s, err := startSystem(ctx, o, kind, dir)
	if err != nil {
		return smp, err
	}
	smp.PIDs = s.pids()
	defer func() {
		if serr := s.stop(); serr != nil && err == nil {
			err = fmt.Errorf("stop: %w", serr)
		}
	}()
	if err := measure(ctx, o, s, &smp); err != nil {
		if ctx.Err() != nil {
			return smp, fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return smp, errors.Join(err, s.check())
	}
	return smp, s.check()
}

// machine describes where the run happens, for the report.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d CPUs (%s), Linux %s", numCPU(), model, kernel)
}
