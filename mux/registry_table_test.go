package mux

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
)

func ads(owner string, nets ...string) []NetAd {
	out := make([]NetAd, len(nets))
	for i, n := range nets {
		out[i] = NetAd{Owner: owner, Network: n}
	}
	return out
}

// Host routes have their own cap per link, refused one by one over it
// and counted; they do not count towards the cap of the networks.
func TestHostRouteCapPerLink(t *testing.T) {
	rt := newRoutingTable("root", testLog(t), 1, 1000)
	rt.setAccept(acceptAny("c1"))
	rt.maxEndpointsPerLink = 2
	if err := rt.replaceNets("c1", ads("c1", "@10.0.0.1", "@10.0.0.2", "@10.0.0.3", "10.9.0.0/16")); err != nil {
		t.Fatalf("replaceNets: %v", err)
	}
	if got := len(rt.nets.entries); got != 3 {
		t.Errorf("%d networks taken, want 2 host routes and 1 network: %v", got, rt.nets.all())
	}
	if rt.refusedEndpoints != 1 || rt.nets.epCount["c1"] != 2 {
		t.Errorf("refused %d, counted %d; want 1 and 2", rt.refusedEndpoints, rt.nets.epCount["c1"])
	}
	// A delta that withdraws one makes room for another.
	if err := rt.applyNets("c1", ads("c1", "@10.0.0.4"), ads("c1", "@10.0.0.1")); err != nil {
		t.Fatalf("applyNets: %v", err)
	}
	all := map[string]bool{}
	for _, a := range rt.nets.all() {
		all[a.Network] = true
	}
	if !all["@10.0.0.4"] || all["@10.0.0.1"] || rt.nets.epCount["c1"] != 2 {
		t.Errorf("after the delta: %v", rt.nets.all())
	}
	// A second network is still over the networks' cap (1).
	if err := rt.applyNets("c1", ads("c1", "10.8.0.0/16"), nil); err == nil {
		t.Error("a second network through the link was taken over the cap of 1")
	}
	// A host route of a label not in the child's subtree is refused.
	before := rt.refused
	_ = rt.applyNets("c1", ads("elsewhere", "@10.0.0.9"), nil)
	if rt.refused != before+1 {
		t.Error("a host route of a label outside the subtree was not refused")
	}
}

// A host route ranks after a configured network of the same address, and
// before any shorter prefix; two host routes of one address tie.
func TestHostRouteSpecificity(t *testing.T) {
	tab := newNetTable()
	add := func(owner, s string) []string {
		n, err := parseAdNetwork(s)
		if err != nil {
			t.Fatal(err)
		}
		_, ties := tab.add("c-"+owner, NetAd{Owner: owner, Network: n.String()}, n)
		return ties
	}
	owner := func(host string) []string {
		var out []string
		for _, e := range tab.lookup(host, 443, func(string) bool { return true }) {
			out = append(out, e.ad.Owner)
		}
		return out
	}
	add("wide", "10.0.0.0/8")
	add("learnt", "@10.1.2.3")
	add("learnt", "@10.1.2.4")
	add("fixed", "10.1.2.4")
	if got := owner("10.1.2.3"); len(got) != 1 || got[0] != "learnt" {
		t.Errorf("10.1.2.3 -> %v, want the host route", got)
	}
	if got := owner("10.1.2.4"); len(got) != 1 || got[0] != "fixed" {
		t.Errorf("10.1.2.4 -> %v, want the configured address", got)
	}
	if got := owner("10.1.2.5"); len(got) != 1 || got[0] != "wide" {
		t.Errorf("10.1.2.5 -> %v, want the prefix", got)
	}
	if ties := add("moved", "@10.1.2.3"); len(ties) != 1 || ties[0] != "learnt" {
		t.Errorf("ties %v, want learnt", ties)
	}
	if got := owner("10.1.2.3"); len(got) != 2 {
		t.Errorf("10.1.2.3 -> %v, want a tie of two", got)
	}
	for _, bad := range []string{"@10.0.0.1/32", "@::ffff:10.0.0.1", "@fe80::1%eth0", "@host.example", "@"} {
		if n, err := parseAdNetwork(bad); err == nil && n.String() == bad {
			t.Errorf("%q read as a canonical host route", bad)
		}
	}
	if _, err := ParseNetwork("@10.0.0.1"); err == nil {
		t.Error("a configuration took a host route")
	}
}

// hostRouteAds is n host routes of the child c1 and 100 /16 prefixes.
func hostRouteAds(n int) []NetAd {
	var out []NetAd
	for i := 0; i < n; i++ {
		out = append(out, NetAd{Owner: "c1", Network: "@10." + itoa(i>>16&255) + "." + itoa(i>>8&255) + "." + itoa(i&255)})
	}
	for i := 0; i < 100; i++ {
		out = append(out, NetAd{Owner: "c1", Network: "10." + itoa(i) + ".0.0/16"})
	}
	return out
}

func itoa(i int) string {
	const d = "0123456789"
	if i < 10 {
		return d[i : i+1]
	}
	return itoa(i/10) + d[i%10:i%10+1]
}

// BenchmarkHostRoutesAnnounce takes a full announcement of 20,000 host
// routes and 100 prefixes from one child.
func BenchmarkHostRoutesAnnounce(b *testing.B) {
	ads := hostRouteAds(20000)
	for i := 0; i < b.N; i++ {
		rt := newRoutingTable("root", testLog(b), 10000, 1000)
		rt.setAccept(acceptAny("c1"))
		if err := rt.replaceNets("c1", ads); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHostRouteLookup looks up an address among 20,000 host routes
// and 100 prefixes.
func BenchmarkHostRouteLookup(b *testing.B) {
	rt := newRoutingTable("root", testLog(b), 10000, 1000)
	rt.setAccept(acceptAny("c1"))
	if err := rt.replaceNets("c1", hostRouteAds(20000)); err != nil {
		b.Fatal(err)
	}
	all := func(string) bool { return true }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if len(rt.nets.lookup("10.0.78.31", 443, all)) != 1 {
			b.Fatal("no match")
		}
	}
}

// A child that copies other nodes' networks by the hundred makes ties:
// each is a configuration error, but they are logged flood-proof, at
// most tieLogBurst lines in a minute.
func TestNetworkTiesLoggedFloodProof(t *testing.T) {
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	var mu sync.Mutex
	lines := 0
	logger.AddHook(hookFunc(func(e *logrus.Entry) {
		if strings.Contains(e.Message, "configuration error: network") {
			mu.Lock()
			lines++
			mu.Unlock()
		}
	}))
	rt := newRoutingTable("root", logrus.NewEntry(logger), 1000, 1000)
	rt.setAccept(acceptAny("c1", "c2"))
	var nets []string
	for i := range 100 {
		nets = append(nets, fmt.Sprintf("10.%d.0.0/16", i))
	}
	if err := rt.replaceNets("c1", ads("c1", nets...)); err != nil {
		t.Fatal(err)
	}
	if err := rt.replaceNets("c2", ads("c2", nets...)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if lines == 0 || lines > tieLogBurst {
		t.Fatalf("%d tie lines for 100 ties, want 1 to %d", lines, tieLogBurst)
	}
	if got := rt.tieLog.total(); got != 100 {
		t.Fatalf("%d ties noted, want 100", got)
	}
}

type hookFunc func(*logrus.Entry)

func (hookFunc) Levels() []logrus.Level       { return logrus.AllLevels }
func (h hookFunc) Fire(e *logrus.Entry) error { h(e); return nil }
