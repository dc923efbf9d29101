package mux

import (
	"testing"
)

// TestRoutingTableContestedLabel: a label told by several children is
// routed through the first that told it; when that child stops telling
// it (a delta, a whole announcement, its link down) the route moves to
// another child that tells it, the first in label order; when none is
// left the route goes. A label told by one child only goes with it.
func TestRoutingTableContestedLabel(t *testing.T) {
	rt := newRoutingTable("relay", testLog(t), 100, 1000)
	via := func(label string) string {
		t.Helper()
		c, _ := rt.lookup(label)
		return c
	}
	must := func(_ []string, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(rt.replace("a", []string{"x", "y"}))
	must(rt.replace("c", []string{"x"}))
	must(rt.replace("b", []string{"x"}))
	if via("x") != "a" || via("y") != "a" {
		t.Fatalf("x via %q, y via %q; want both via a, the first to tell them", via("x"), via("y"))
	}
	must(rt.apply("a", nil, []string{"x"}))
	if via("x") != "b" {
		t.Fatalf("a stopped telling x: x via %q, want b", via("x"))
	}
	rt.drop("b")
	if via("x") != "c" {
		t.Fatalf("b's link down: x via %q, want c", via("x"))
	}
	must(rt.replace("c", nil))
	if c := via("x"); c != "" {
		t.Fatalf("nobody tells x: x via %q, want no route", c)
	}
	if via("y") != "a" {
		t.Fatalf("y via %q, want a", via("y"))
	}
	rt.mu.Lock()
	contested := rt.warned["x"]
	rt.mu.Unlock()
	if contested {
		t.Fatal("x is still marked as told by two children")
	}
	must(rt.replace("d", []string{"x"}))
	must(rt.replace("e", []string{"x"}))
	rt.drop("d")
	if via("x") != "e" {
		t.Fatalf("told again by d then e, d's link down: x via %q, want e", via("x"))
	}
	rt.drop("a")
	if c := via("y"); c != "" {
		t.Fatalf("a's link down: y via %q, want no route", c)
	}
	if n := rt.size(); n != 3 { // c and e, which still tell their own labels, and x
		t.Fatalf("%d routes left, want 3 (c, e, x): %v", n, rt.snapshot())
	}
}
