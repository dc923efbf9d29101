package chain

import (
	"fmt"
	"time"

	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/mux"
)

// ParentChoice is the node-level choice among several parents
// (mux.ParentPolicy), as written in the configuration file: top-level
// keys, beside parents.
type ParentChoice struct {
	// Selection is "ordered" (the first configured parent that is up; the
	// default), "nearest" (the lowest measured round trip, with a margin
	// and a hold) or "spread" (new sessions shared by weight).
	Selection string `yaml:"parent_selection"`
	// NearestMargin: a nearest node moves only to a parent better by this
	// much: a percentage of the current parent's round trip ("20%", the
	// default) or a duration ("5ms").
	NearestMargin string `yaml:"nearest_margin"`
	// NearestHold: ... for this long without a break. Default 30s.
	NearestHold time.Duration `yaml:"nearest_hold"`
	// ProbeInterval is how often a nearest or spread node measures each
	// parent's round trip, and how often the choice is re-evaluated.
	// Default 5s.
	ProbeInterval time.Duration `yaml:"parent_probe_interval"`
	// FailAfter is how long a parent whose link went down or whose pings
	// go unanswered stays chosen (new sessions meanwhile go through
	// another). Default 0s: given up at once.
	FailAfter time.Duration `yaml:"parent_fail_after"`
	// Damping holds a flapping parent down. Default: off.
	Damping Damping `yaml:"parent_damping"`
}

// Damping is the parent_damping section (mux.Damping).
type Damping struct {
	// Penalty is added each time a parent's link goes down. Default 0: no
	// damping.
	Penalty float64 `yaml:"penalty"`
	// Suppress: from this penalty on the parent is held down. Default
	// three penalties.
	Suppress float64 `yaml:"suppress"`
	// Reuse: below this penalty it is used again. Default 3/4 of a penalty.
	Reuse float64 `yaml:"reuse"`
	// HalfLife: the penalty halves in this time. Default 1m.
	HalfLife time.Duration `yaml:"half_life"`
	// MaxSuppress bounds how long a parent is held down. Default four
	// half lives.
	MaxSuppress time.Duration `yaml:"max_suppress"`
}

// defaultParents is the parent selection of Default.
func defaultParentChoice() ParentChoice {
	return ParentChoice{Selection: mux.SelectOrdered.String(), NearestMargin: "20%",
		NearestHold: mux.DefaultNearestHold, ProbeInterval: mux.DefaultProbeInterval}
}

// parentKeys are the top-level keys of the parent selection.
var parentKeys = []string{"parent_selection", "nearest_margin", "nearest_hold", "parent_probe_interval", "parent_fail_after", "parent_damping"}

// validate checks the parent selection and the weights of the parents.
func (p ParentChoice) validate(ps *daemon.Problems, k Kind, parents, children []Link) {
	if !k.Parents {
		for _, key := range parentKeys {
			if ps.Pos.Has(key) {
				ps.Errorf(key, "%s has no parents to choose among", k.withArticle())
			}
		}
	}
	if _, err := mux.ParseParentSelection(p.Selection); err != nil {
		ps.Errorf("parent_selection", "%q is unknown: ordered (the default), nearest or spread", p.Selection)
	}
	if _, err := mux.ParseMargin(p.NearestMargin); err != nil {
		ps.Errorf("nearest_margin", "%q: write a percentage below 100 (\"20%%\") or a positive duration (\"5ms\")", p.NearestMargin)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"nearest_hold", p.NearestHold}, {"parent_probe_interval", p.ProbeInterval}} {
		if d.v <= 0 {
			ps.Errorf(d.key, "must be positive, like \"30s\"")
		}
	}
	if p.FailAfter < 0 {
		ps.Errorf("parent_fail_after", "must not be negative (0 gives a parent up at once)")
	}
	d := p.Damping
	switch {
	case d.Penalty < 0:
		ps.Errorf("parent_damping.penalty", "must not be negative (0 turns damping off)")
	case d.Penalty == 0 && (d.Suppress != 0 || d.Reuse != 0 || d.HalfLife != 0 || d.MaxSuppress != 0):
		ps.Errorf("parent_damping.penalty", "missing: the penalty per flap turns damping on; the other keys need it")
	case d.Penalty > 0:
		md := p.mux().Damping
		if d.Suppress < 0 || d.Reuse < 0 || d.HalfLife < 0 || d.MaxSuppress < 0 {
			ps.Errorf("parent_damping", "suppress, reuse, half_life and max_suppress must not be negative")
		} else if md.Reuse >= md.Suppress {
			ps.Errorf("parent_damping.reuse", "%g must be below suppress %g", md.Reuse, md.Suppress)
		}
	}
	for i, l := range parents {
		if l.Weight < 0 || l.Weight > 1000 {
			ps.Errorf(fmt.Sprintf("parents[%d].weight", i), "%d: a weight is 1 to 1000 (default 1)", l.Weight)
		}
	}
	for i, l := range children {
		if l.Weight != 0 {
			ps.Errorf(fmt.Sprintf("children[%d].weight", i), "a weight is for parents only")
		}
	}
}

// mux is the mux.ParentPolicy of p, once validated.
func (p ParentChoice) mux() mux.ParentPolicy {
	sel, _ := mux.ParseParentSelection(p.Selection)
	m, _ := mux.ParseMargin(p.NearestMargin)
	pol := mux.ParentPolicy{Selection: sel, NearestMargin: m, NearestHold: p.NearestHold,
		ProbeInterval: p.ProbeInterval, FailAfter: p.FailAfter,
		Damping: mux.Damping{Penalty: p.Damping.Penalty, Suppress: p.Damping.Suppress, Reuse: p.Damping.Reuse,
			HalfLife: p.Damping.HalfLife, MaxSuppress: p.Damping.MaxSuppress}}
	// The damping's defaults, for the checks that compare them.
	if d := &pol.Damping; d.Penalty > 0 {
		if d.Suppress == 0 {
			d.Suppress = 3 * d.Penalty
		}
		if d.Reuse == 0 {
			d.Reuse = 0.75 * d.Penalty
		}
	}
	return pol
}
