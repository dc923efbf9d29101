package main

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Report is the outcome of a run: every sample, and the table of medians.
type Report struct {
	Options Options
	Machine string
	Started time.Time
	Samples []Sample
}

// row is one line of the table: a figure taken from each sample.
type row struct {
	title string
	value func(Sample) (float64, bool) // false: not measured in this sample
}

// rows are the table's lines, in order.
func (r *Report) rows() []row {
	o := r.Options
	var rows []row
	names := []string{"1 session", fmt.Sprintf("%d sessions", o.Streams)}
	for i := range 4 {
		title := fmt.Sprintf("%s %s", names[i/2], direction(i%2 == 0))
		rows = append(rows, row{"throughput, " + title + " (MB/s)", func(s Sample) (float64, bool) {
			if i >= len(s.Transfers) {
				return 0, false
			}
			return s.Transfers[i].MBps(), true
		}})
	}
	for i := range 4 {
		title := fmt.Sprintf("%s %s", names[i/2], direction(i%2 == 0))
		rows = append(rows, row{"CPU s per GB, " + title, func(s Sample) (float64, bool) {
			if i >= len(s.Transfers) {
				return 0, false
			}
			return s.Transfers[i].CPUPerGB(), true
		}})
	}
	rows = append(rows,
		row{fmt.Sprintf("round trip of %d B, p50 (us)", rttMessage), func(s Sample) (float64, bool) {
			return float64(s.RTT50.Nanoseconds()) / 1e3, s.RTTs > 0
		}},
		row{fmt.Sprintf("round trip of %d B, p99 (us)", rttMessage), func(s Sample) (float64, bool) {
			return float64(s.RTT99.Nanoseconds()) / 1e3, s.RTTs > 0
		}},
		row{fmt.Sprintf("session opens/s, %d clients", o.OpenClients), func(s Sample) (float64, bool) {
			return s.OpensPerSec(), s.Opens > 0
		}},
		row{"CPU us per session open", func(s Sample) (float64, bool) {
			return perOpenMicros(s), s.Opens > 0
		}},
		row{"failed opens", func(s Sample) (float64, bool) {
			return float64(s.OpenFailures), s.Opens > 0
		}},
		row{fmt.Sprintf("RSS per held session, the three (KiB; %d held)", o.Held), func(s Sample) (float64, bool) {
			return perHeld(s, false) / 1024, s.Held > 0
		}},
		row{"PSS per held session, the three (KiB)", func(s Sample) (float64, bool) {
			return perHeld(s, true) / 1024, s.Held > 0
		}},
	)
	for i, where := range []string{"entry (gwproxy, plain-1)", "middle (relay, plain-2)", "exit (epproxy, plain-3)"} {
		rows = append(rows, row{"RSS per held session, " + where + " (KiB)", func(s Sample) (float64, bool) {
			return perHeldNode(s, i) / 1024, s.Held > 0 && i < len(s.Holding)
		}})
	}
	rows = append(rows,
		row{"RSS of the three before holding (MiB)", func(s Sample) (float64, bool) {
			return float64(sumMem(s.Base).RSS) / (1 << 20), s.Held > 0
		}},
		row{"RSS of the three while holding (MiB)", func(s Sample) (float64, bool) {
			return float64(sumMem(s.Holding).RSS) / (1 << 20), s.Held > 0
		}},
	)
	for i, d := range o.Settle {
		rows = append(rows, row{fmt.Sprintf("RSS of the three %s after close (MiB)", d), func(s Sample) (float64, bool) {
			if i >= len(s.AfterRSS) {
				return 0, false
			}
			return float64(s.AfterRSS[i]) / (1 << 20), true
		}})
	}
	rows = append(rows, row{"descriptors left after close", func(s Sample) (float64, bool) {
		return float64(s.FDsAfter - s.FDsBase), len(s.AfterRSS) > 0
	}})
	return rows
}

// stats are the median, minimum and maximum of a row for one system, over
// the rounds that measured it.
type stats struct {
	n                int
	median, min, max float64
}

func (r *Report) stats(rw row, kind string) stats {
	var vs []float64
	for _, s := range r.Samples {
		if s.System != kind {
			continue
		}
		if v, ok := rw.value(s); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return stats{}
	}
	slices.Sort(vs)
	m := vs[len(vs)/2]
	if len(vs)%2 == 0 {
		m = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
	}
	return stats{n: len(vs), median: m, min: vs[0], max: vs[len(vs)-1]}
}

// Markdown is the report: what ran where, and the table of medians with
// their ratios.
func (r *Report) Markdown() string {
	o := r.Options
	var b strings.Builder
	fmt.Fprintf(&b, "## Relay chain measured from outside (chainbench, %s)\n\n", r.Started.Format("2006-01-02"))
	fmt.Fprintf(&b, "%s; chainbench built with %s. ", r.Machine, runtime.Version())
	fmt.Fprintf(&b, "%d interleaved round(s), each system freshly started per round; figures are medians (min-max over the rounds). ", o.Rounds)
	fmt.Fprintf(&b, "Throughput tests move %d MiB per direction (%d sessions: %d MiB each). ", o.MiB, o.Streams, o.MiB/o.Streams)
	fmt.Fprintf(&b, "%d round trips; %d session opens; %d held idle sessions. The daemons log at level %d; the chain uses the shipped tuning.\n\n", o.RTTs, o.Opens, o.Held, o.LogLevel)

	kinds := o.systems()
	type ratio struct {
		title    string
		num, den string
	}
	var ratios []ratio
	has := func(k string) bool { return slices.Contains(kinds, k) }
	for _, rt := range []ratio{{"TLS / ref", sysTLS, sysRef}, {"plaintext / ref", sysPlain, sysRef}, {"TLS / plaintext", sysTLS, sysPlain},
		{"base TLS / ref", sysBaseTLS, sysRef}, {"base plaintext / ref", sysBasePlain, sysRef},
		{"TLS / base TLS", sysTLS, sysBaseTLS}, {"plaintext / base plaintext", sysPlain, sysBasePlain}, {"SOCKS5 / TLS", sysSOCKS, sysTLS},
		{"TLS / splice", sysTLS, sysSplice}, {"plaintext / splice", sysPlain, sysSplice},
		{"base TLS / splice", sysBaseTLS, sysSplice}, {"base plaintext / splice", sysBasePlain, sysSplice}} {
		if has(rt.num) && has(rt.den) {
			ratios = append(ratios, rt)
		}
	}
	b.WriteString("| |")
	for _, k := range kinds {
		fmt.Fprintf(&b, " %s |", systemTitle[k])
	}
	for _, rt := range ratios {
		fmt.Fprintf(&b, " %s |", rt.title)
	}
	b.WriteString("\n|---|")
	b.WriteString(strings.Repeat("---:|", len(kinds)+len(ratios)))
	b.WriteString("\n")
	for _, rw := range r.rows() {
		fmt.Fprintf(&b, "| %s |", rw.title)
		st := map[string]stats{}
		for _, k := range kinds {
			st[k] = r.stats(rw, k)
			fmt.Fprintf(&b, " %s |", st[k].cell())
		}
		for _, rt := range ratios {
			fmt.Fprintf(&b, " %s |", ratioCell(st[rt.num], st[rt.den]))
		}
		b.WriteString("\n")
	}
	b.WriteString("\nThe three: the relay processes only (gwproxy, relay, epproxy; or the three plain relays), never the client or the backend. ")
	b.WriteString("CPU is utime+stime from /proc/PID/stat; GB is 1e9 bytes, MB 1e6. ")
	b.WriteString("Memory per held session is the growth of RSS or PSS (/proc/PID/smaps_rollup) from before opening to while holding, over the sessions held. ")
	b.WriteString("The two splice relays are two processes, not three, and hold at most 3,000 sessions (six descriptors each per relay); the descriptors they leave after close are the pipes Go keeps for splice(2), closed at their next garbage collection. ")
	b.WriteString("A ratio above 1 means more: faster for throughput and opens/s, dearer for the rest.\n")
	return b.String()
}

func (s stats) cell() string {
	switch {
	case s.n == 0:
		return "-"
	case s.n == 1 || s.min == s.max:
		return number(s.median)
	default:
		return fmt.Sprintf("%s (%s-%s)", number(s.median), number(s.min), number(s.max))
	}
}

func ratioCell(num, den stats) string {
	if num.n == 0 || den.n == 0 || den.median == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", num.median/den.median)
}

// number writes v with three significant digits or as a whole number,
// thousands separated by commas.
func number(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1000:
		s := fmt.Sprintf("%.0f", a)
		var b strings.Builder
		if v < 0 {
			b.WriteByte('-')
		}
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		return b.String()
	case a >= 100 || a == 0:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func numCPU() int { return runtime.NumCPU() }
