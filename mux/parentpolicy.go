package mux

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// This file holds the settings of the choice among several parents
// (ParentPolicy) and their checks; parents.go makes the choice.

// ParentSelection is how a node with several parents chooses the one that
// a new session goes up through.
type ParentSelection uint8

const (
	// SelectOrdered uses the first configured parent that is up (the
	// default).
	SelectOrdered ParentSelection = iota
	// SelectNearest uses the parent with the lowest measured round trip,
	// changing only when another is better by the margin for the hold.
	SelectNearest
	// SelectSpread spreads new sessions over every healthy parent, in
	// proportion to their weights.
	SelectSpread
)

func (s ParentSelection) String() string {
	switch s {
	case SelectOrdered:
		return "ordered"
	case SelectNearest:
		return "nearest"
	case SelectSpread:
		return "spread"
	}
	return fmt.Sprintf("selection(%d)", uint8(s))
}

// ParseParentSelection reads "ordered", "nearest" or "spread".
func ParseParentSelection(s string) (ParentSelection, error) {
	for _, v := range []ParentSelection{SelectOrdered, SelectNearest, SelectSpread} {
		if s == v.String() {
			return v, nil
		}
	}
	return 0, fmt.Errorf("parent selection %q is unknown: ordered, nearest or spread", s)
}

// Margin is how much better another parent's round trip must be before a
// nearest node moves to it: a fraction of the current parent's round trip
// (Ratio, 0.2 for 20%) or a duration (Abs). Zero: DefaultNearestMargin.
type Margin struct {
	Ratio float64
	Abs   time.Duration
}

func (m Margin) String() string {
	if m.Abs > 0 {
		return m.Abs.String()
	}
	return fmt.Sprintf("%g%%", m.Ratio*100)
}

// ParseMargin reads a margin: a percentage ("20%") or a duration ("5ms").
func ParseMargin(s string) (Margin, error) {
	s = strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		var v float64
		if _, err := fmt.Sscanf(p, "%g", &v); err != nil || math.IsNaN(v) || v <= 0 || v >= 100 {
			return Margin{}, fmt.Errorf("margin %q: a percentage must be above 0%% and below 100%%", s)
		}
		return Margin{Ratio: v / 100}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return Margin{}, fmt.Errorf("margin %q: write a percentage (\"20%%\") or a positive duration (\"5ms\")", s)
	}
	return Margin{Abs: d}, nil
}

// better reports whether a round trip of cand is better than cur by the
// margin.
func (m Margin) better(cand, cur time.Duration) bool {
	if m.Abs > 0 {
		return cur-cand > m.Abs
	}
	return float64(cand) < float64(cur)*(1-m.Ratio)
}

// Damping holds a parent that flaps down for new sessions, as routers
// damp flapping routes: each time its link goes down it gains Penalty;
// the penalty halves every HalfLife; at Suppress the parent is held down
// (suppressed) until the penalty decays to Reuse. The penalty is capped
// so that no hold lasts longer than MaxSuppress. A suppressed parent is
// still used when no other parent is up. Penalty zero: no damping (the
// default).
type Damping struct {
	Penalty     float64       // added per flap; 0: no damping
	Suppress    float64       // held down from this penalty on; default 3 flaps' worth
	Reuse       float64       // used again below this; default 3/4 of a flap's
	HalfLife    time.Duration // default 1m
	MaxSuppress time.Duration // longest hold; default 4 half lives
}

// ParentPolicy is how a node with several parents chooses among them.
// Each field's zero is its default.
type ParentPolicy struct {
	Selection ParentSelection
	// NearestMargin: a nearest node moves only to a parent better by this
	// much. Default 20%.
	NearestMargin Margin
	// NearestHold: ... and for this long without a break. Default 30s.
	NearestHold time.Duration
	// ProbeInterval is how often a nearest or spread node measures each
	// parent's round trip (a yamux ping, besides the keepalive), and how
	// often every node re-evaluates its choice. Default 5s.
	ProbeInterval time.Duration
	// FailAfter is how long a parent stays chosen after its link went down
	// or its pings went unanswered; meanwhile a new session goes through
	// another parent that is up, but the choice stays. Zero: given up at
	// once (the default).
	FailAfter time.Duration
	// Damping holds flapping parents down. Default: off.
	Damping Damping
}

// Defaults of ParentPolicy.
const (
	DefaultNearestRatio  = 0.2
	DefaultNearestHold   = 30 * time.Second
	DefaultProbeInterval = 5 * time.Second
	defaultHalfLife      = time.Minute
)

func (p ParentPolicy) withDefaults() ParentPolicy {
	if p.NearestMargin == (Margin{}) {
		p.NearestMargin.Ratio = DefaultNearestRatio
	}
	if p.NearestHold == 0 {
		p.NearestHold = DefaultNearestHold
	}
	if p.ProbeInterval == 0 {
		p.ProbeInterval = DefaultProbeInterval
	}
	if d := &p.Damping; d.Penalty > 0 {
		if d.Suppress == 0 {
			d.Suppress = 3 * d.Penalty
		}
		if d.Reuse == 0 {
			d.Reuse = 0.75 * d.Penalty
		}
		if d.HalfLife == 0 {
			d.HalfLife = defaultHalfLife
		}
		if d.MaxSuppress == 0 {
			d.MaxSuppress = 4 * d.HalfLife
		}
	}
	return p
}

// Validate reports every problem of p at once.
func (p ParentPolicy) Validate() []error {
	var errs []error
	if p.Selection > SelectSpread {
		errs = append(errs, fmt.Errorf("parent selection %d is unknown", p.Selection))
	}
	if p.NearestMargin.Ratio < 0 || p.NearestMargin.Ratio >= 1 || p.NearestMargin.Abs < 0 {
		errs = append(errs, fmt.Errorf("nearest margin %s: a fraction from 0 to below 1, or a positive duration", p.NearestMargin))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"nearest hold", p.NearestHold},
		{"parent probe interval", p.ProbeInterval},
		{"parent fail after", p.FailAfter},
		{"damping half life", p.Damping.HalfLife},
		{"damping max suppress", p.Damping.MaxSuppress},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %s is negative", d.name, d.v))
		}
	}
	d := p.withDefaults().Damping
	switch {
	case d.Penalty < 0 || d.Suppress < 0 || d.Reuse < 0:
		errs = append(errs, errors.New("damping penalty, suppress and reuse must not be negative"))
	case d.Penalty > 0 && d.Reuse >= d.Suppress:
		errs = append(errs, fmt.Errorf("damping reuse %g must be below suppress %g", d.Reuse, d.Suppress))
	}
	return errs
}
