package chain

import (
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

const twoParents = `label: gwp
parents:
  - label: r1
    dial: 127.0.0.1:7103
    insecure_plaintext: true
  - label: r2
    dial: 127.0.0.1:7104
    insecure_plaintext: true
`

// TestLoadParentChoice: the parent selection keys reach the node.
func TestLoadParentChoice(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		cfg, err := Load(Relay, writeConfig(t, "relay.yaml", okRelay))
		if err != nil {
			t.Fatal(err)
		}
		got := cfg.MuxConfig(nil).Parents
		want := mux.ParentPolicy{Selection: mux.SelectOrdered, NearestMargin: mux.Margin{Ratio: 0.2},
			NearestHold: 30 * time.Second, ProbeInterval: 5 * time.Second}
		if got != want {
			t.Fatalf("defaults %+v, want %+v", got, want)
		}
	})
	t.Run("nearest", func(t *testing.T) {
		cfg, err := Load(Relay, writeConfig(t, "relay.yaml", twoParents+`parent_selection: nearest
nearest_margin: 5ms
nearest_hold: 10s
parent_probe_interval: 1s
parent_fail_after: 3s
parent_damping:
  penalty: 1000
  half_life: 30s
`))
		if err != nil {
			t.Fatal(err)
		}
		mc := cfg.MuxConfig(nil)
		p := mc.Parents
		if p.Selection != mux.SelectNearest || p.NearestMargin != (mux.Margin{Abs: 5 * time.Millisecond}) || p.NearestHold != 10*time.Second ||
			p.ProbeInterval != time.Second || p.FailAfter != 3*time.Second || p.Damping.Penalty != 1000 || p.Damping.HalfLife != 30*time.Second {
			t.Fatalf("policy %+v", p)
		}
		if errs := mc.Validate(); len(errs) > 0 {
			t.Fatalf("mux refuses it: %v", errs)
		}
	})
	t.Run("spread", func(t *testing.T) {
		cfg, err := Load(GWProxy, writeConfig(t, "gwproxy.yaml", `label: gwp
parent_selection: spread
parents:
  - label: r1
    dial: 127.0.0.1:7103
    insecure_plaintext: true
    weight: 3
  - label: r2
    dial: 127.0.0.1:7104
    insecure_plaintext: true
`))
		if err != nil {
			t.Fatal(err)
		}
		mc := cfg.MuxConfig(nil)
		if mc.Parents.Selection != mux.SelectSpread || mc.Links[0].Weight != 3 || mc.Links[1].Weight != 0 {
			t.Fatalf("selection %s, weights %d and %d", mc.Parents.Selection, mc.Links[0].Weight, mc.Links[1].Weight)
		}
	})
}

// TestLoadParentChoiceRejects: each wrong setting is named with its line.
func TestLoadParentChoiceRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind Kind
		yaml string
		want []problem
	}{
		{"unknown selection", Relay, okRelay + "parent_selection: fastest\n",
			[]problem{{6, "parent_selection", `"fastest" is unknown: ordered (the default), nearest or spread`}}},
		{"margin", Relay, okRelay + "nearest_margin: 150%\n",
			[]problem{{6, "nearest_margin", "a percentage below 100"}}},
		{"margin without unit", Relay, okRelay + "nearest_margin: 20\n",
			[]problem{{6, "nearest_margin", "or a positive duration"}}},
		{"hold", Relay, okRelay + "nearest_hold: 0s\n",
			[]problem{{6, "nearest_hold", "must be positive"}}},
		{"fail after", Relay, okRelay + "parent_fail_after: -1s\n",
			[]problem{{6, "parent_fail_after", "must not be negative"}}},
		{"damping without penalty", Relay, okRelay + "parent_damping:\n  half_life: 10s\n",
			[]problem{{6, "parent_damping.penalty", "missing"}}},
		{"damping reuse above suppress", Relay, okRelay + "parent_damping:\n  penalty: 1000\n  suppress: 2000\n  reuse: 2500\n",
			[]problem{{9, "parent_damping.reuse", "2500 must be below suppress 2000"}}},
		{"weight", Relay, twoParents + "    weight: -2\n",
			[]problem{{9, "parents[1].weight", "a weight is 1 to 1000"}}},
		{"weight on a child", Relay, okRelay + "children:\n  - label: c\n    listen: 127.0.0.1:7300\n    insecure_plaintext: true\n    weight: 2\n",
			[]problem{{10, "children[0].weight", "for parents only"}}},
		{"epproxy", EPProxy, okEPProxy + "parent_selection: nearest\n",
			[]problem{{9, "parent_selection", "an epproxy has no parents to choose among"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.kind.Name+".yaml", tc.yaml)
			_, err := Load(tc.kind, path)
			checkProblems(t, path, err, tc.want)
		})
	}
}

// TestApplyParentChoice: a reload changes a running gwproxy's parent
// selection without a restart, and says so.
func TestApplyParentChoice(t *testing.T) {
	eppPath, gwpPath, _, _ := smallTree(t, echoServer(t), 300*time.Millisecond)
	startRun(t, EPProxy, eppPath)
	gwp := startRun(t, GWProxy, gwpPath)
	n := gwp.getNode(t)
	muxtest.WaitFor(t, 10*time.Second, "gwp-test's path to the root", func() bool { return len(n.PathToRoot()) == 1 })
	next := editConfig(t, GWProxy, gwpPath, func(s string) string { return s + "parent_selection: nearest\nnearest_hold: 5s\n" })
	if err := Apply(gwp.cfg, next, gwp.logger); err != nil {
		t.Fatal(err)
	}
	if want := "parent selection nearest (was ordered)\n"; !strings.Contains(gwp.logs.String(), want) {
		t.Errorf("no %q in the log:\n%s", want, gwp.logs.String())
	}
	if st := n.Status(); st.ParentSelection != "nearest" || st.ActiveParent != "epp-test" {
		t.Errorf("status after the reload: selection %q, active parent %q", st.ParentSelection, st.ActiveParent)
	}
}
