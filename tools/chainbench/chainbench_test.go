package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// TestMain lets the test binary play chainbench's roles: Run starts its
// own executable as the backend and the plain relays. Built with -race,
// each of them would wait a second when it exits (the race runtime's
// atexit_sleep_ms); they inherit the setting that spares it.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "backend" || os.Args[1] == "plainrelay" || os.Args[1] == "splicerelay") {
		main()
		return
	}
	if os.Getenv("GORACE") == "" {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	e2etest.Main(m)
}

// quickOptions is QuickOptions made smaller still, for the tests.
func quickOptions(t *testing.T) Options {
	o := QuickOptions()
	o.BinDir = e2etest.BinDir(t)
	o.TempDir = t.TempDir()
	o.MiB = 8
	o.RTTs = 100
	o.Opens = 100
	o.Held = 50
	return o
}

// lineWriter hands each progress line to the test log, and to a hook.
type lineWriter struct {
	t      *testing.T
	mu     sync.Mutex
	onLine func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(line)
		if w.onLine != nil {
			w.onLine(line)
		}
	}
	return len(p), nil
}

// TestQuickRun runs the bench in its quick mode against the real binaries
// and checks that every figure was measured, that every process it
// started is gone and that its temporary directory was removed.
func TestQuickRun(t *testing.T) {
	o := quickOptions(t)
	o.Systems = strings.Join([]string{sysTLS, sysPlain, sysRef, sysSplice}, ",")
	o.Progress = &lineWriter{t: t}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	kinds := o.systems()
	if len(rep.Samples) != len(kinds) {
		t.Fatalf("%d samples, want one per system (%v)", len(rep.Samples), kinds)
	}
	total := int64(o.MiB) << 20
	for i, s := range rep.Samples {
		if s.System != kinds[i] {
			t.Errorf("sample %d is of %s, want %s", i, s.System, kinds[i])
		}
		name := systemTitle[s.System]
		if len(s.Transfers) != 4 {
			t.Errorf("%s: %d throughput tests, want 4", name, len(s.Transfers))
		}
		for _, tr := range s.Transfers {
			if tr.Bytes != total || tr.Wall <= 0 || tr.CPU < 0 {
				t.Errorf("%s: %+v: want %d bytes in a positive time", name, tr, total)
			}
		}
		if s.RTTs != o.RTTs || s.RTT50 <= 0 || s.RTT99 < s.RTT50 {
			t.Errorf("%s: %d round trips, p50 %s, p99 %s", name, s.RTTs, s.RTT50, s.RTT99)
		}
		if s.Opens != o.Opens || s.OpenFailures != 0 || s.OpensWall <= 0 {
			t.Errorf("%s: %d opens (%d failed) in %s, want %d", name, s.Opens, s.OpenFailures, s.OpensWall, o.Opens)
		}
		nodes := 3
		if s.System == sysSplice {
			nodes = 2
		}
		if s.Held != o.Held || len(s.Base) != nodes || len(s.Holding) != nodes || len(s.AfterRSS) != len(o.Settle) {
			t.Errorf("%s: held %d, memory of %d and %d processes, %d readings after close", name, s.Held, len(s.Base), len(s.Holding), len(s.AfterRSS))
		}
		for j := range s.Base {
			if s.Base[j].RSS == 0 || s.Base[j].PSS == 0 || s.Holding[j].RSS == 0 {
				t.Errorf("%s: process %d: memory %+v, %+v", name, j, s.Base[j], s.Holding[j])
			}
		}
		checkGone(t, s)
	}
	checkRemoved(t, o.TempDir)
	md := rep.Markdown()
	for _, want := range []string{"| chain TLS | chain plaintext | reference | two splice relays | TLS / ref | plaintext / ref | TLS / plaintext | TLS / splice | plaintext / splice |",
		"| throughput, 1 session upload (MB/s) |", "| CPU s per GB, 8 sessions download |", "| session opens/s, 50 clients |",
		"| RSS per held session, the three (KiB; 50 held) |", "| RSS of the three 300ms after close (MiB) |"} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
	t.Logf("\n%s", md)
}

// TestInterrupted ends a run in the middle, as Ctrl-C does, and checks
// that every process it started is gone and its directory removed.
func TestInterrupted(t *testing.T) {
	o := quickOptions(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o.Progress = &lineWriter{t: t, onLine: func(line string) {
		if strings.Contains(line, "session(s) upload") {
			cancel()
		}
	}}
	rep, err := Run(ctx, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want the cancellation", err)
	}
	if rep == nil || len(rep.Samples) != 1 || len(rep.Samples[0].PIDs) != 4 {
		t.Fatalf("want the interrupted sample with its 4 processes, got %+v", rep)
	}
	checkGone(t, rep.Samples[0])
	checkRemoved(t, o.TempDir)
}

// checkGone fails unless every process of s has exited and was reaped.
func checkGone(t *testing.T, s Sample) {
	t.Helper()
	if len(s.PIDs) != len(s.Base)+1 {
		t.Errorf("%s: %d processes recorded, want %d", systemTitle[s.System], len(s.PIDs), len(s.Base)+1)
	}
	for _, pid := range s.PIDs {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("%s: process %d still there (kill -0: %v)", systemTitle[s.System], pid, err)
		}
	}
}

// checkRemoved fails unless dir is empty.
func checkRemoved(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) > 0 {
		t.Errorf("%s still holds %s", dir, ents[0].Name())
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(i))
	}
	if p := percentile(d, 50); p != 100 {
		t.Errorf("p50 of 1..200: %d, want 100", p)
	}
	if p := percentile(d, 99); p != 198 {
		t.Errorf("p99 of 1..200: %d, want 198", p)
	}
	if p := percentile(d[:1], 99); p != 1 {
		t.Errorf("p99 of one: %d", p)
	}
}

func TestNumber(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 1.234: "1.23", 12.34: "12.3", 123.4: "123", 1234.5: "1,234", 1234567: "1,234,567", -5300: "-5,300"} {
		if got := number(v); got != want {
			t.Errorf("number(%v) = %q, want %q", v, got, want)
		}
	}
}

// TestProcReaders reads this process's CPU, memory and descriptors.
func TestProcReaders(t *testing.T) {
	pid := os.Getpid()
	buf := bytes.Repeat([]byte{1}, 8<<20) // touched: resident
	cpu, err := cpuTime(pid)
	if err != nil || cpu < 0 {
		t.Fatalf("cpuTime: %v, %v", cpu, err)
	}
	m, err := memory(pid)
	if err != nil || m.RSS < uint64(len(buf)) || m.PSS == 0 || m.PSS > m.RSS {
		t.Fatalf("memory: %+v, %v", m, err)
	}
	runtime.KeepAlive(buf)
	n, err := fdCount(pid)
	if err != nil || n < 3 {
		t.Fatalf("fdCount: %d, %v", n, err)
	}
}

func TestParseOptions(t *testing.T) {
	o, err := parseOptions([]string{"-quick", "-held", "20", "-bin", t.TempDir(), "-settle", "1s,2s"})
	if err == nil || !strings.Contains(err.Error(), "epproxy") {
		t.Errorf("a -bin without the daemons: %v", err)
	}
	if o.Rounds != 1 || o.Held != 20 || o.MiB != QuickOptions().MiB || len(o.Settle) != 2 || o.Settle[1] != 2*time.Second {
		t.Errorf("-quick with -held 20 -settle 1s,2s: %+v", o)
	}
	if _, err := parseOptions([]string{"-systems", "tls,foo,tls", "-held", "20000", "-bin", ""}); err == nil ||
		!strings.Contains(err.Error(), `"foo"`) || !strings.Contains(err.Error(), "tls twice") || !strings.Contains(err.Error(), "-held 20000") {
		t.Errorf("bad options: %v", err)
	}
	if _, err := parseOptions([]string{"-systems", "plain,base-plain", "-bin", ""}); err == nil || !strings.Contains(err.Error(), "base-plain needs -base-bin") {
		t.Errorf("base-plain without -base-bin: %v", err)
	}
}
