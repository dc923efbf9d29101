package mux

import (
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sirupsen/logrus"
)

// acceptAny is child links, one per label, that accept every network.
func acceptAny(children ...string) []LinkConfig {
	out := make([]LinkConfig, len(children))
	for i, c := range children {
		out[i] = LinkConfig{Peer: c, AcceptNetworks: []string{AnyNetwork}}
	}
	return out
}

func TestNetworkWithin(t *testing.T) {
	for _, c := range []struct {
		n, a string
		want bool
	}{
		{"10.1.2.0/24", "10.1.0.0/16", true},
		{"10.1.0.0/16", "10.1.0.0/16", true},
		{"10.1.0.0/15", "10.1.0.0/16", false},
		{"10.2.0.0/24", "10.1.0.0/16", false},
		{"10.1.2.3", "10.1.0.0/16", true},
		{"@10.1.2.3", "10.1.0.0/16", true},
		{"@10.1.2.3", "10.1.0.0/16:443", false}, // a host route holds every port
		{"10.1.2.0/24:443", "10.1.0.0/16", true},
		{"10.1.2.0/24:443", "10.1.0.0/16:400-500", true},
		{"10.1.2.0/24:400-600", "10.1.0.0/16:400-500", false},
		{"10.1.2.0/24", "10.1.0.0/16:443", false},
		{"2001:db8:1::/48", "2001:db8::/32", true},
		{"::ffff:10.1.0.0/112", "10.1.0.0/16", true}, // written as IPv4 once parsed
		{"2001:db8::/32", "10.0.0.0/8", false},
		{"a.site-a.example", "*.site-a.example", true},
		{"x.a.site-a.example", "*.site-a.example", true},
		{"*.a.site-a.example", "*.site-a.example", true},
		{"*.site-a.example", "*.site-a.example", true},
		{"site-a.example", "*.site-a.example", false}, // a pattern holds names under it, not itself
		{"evilsite-a.example", "*.site-a.example", false},
		{"*.site-a.example", "site-a.example", false},
		{"db.site-a.example", "db.site-a.example", true},
		{"db.site-a.example:22", "db.site-a.example", true},
		{"db.site-a.example", "db.site-a.example:22", false},
		{"10.1.2.3", "*.site-a.example", false},
		{"db.site-a.example", "0.0.0.0/0", false},
	} {
		n, err := parseAdNetwork(c.n)
		if err != nil {
			t.Fatal(err)
		}
		a, err := ParseNetwork(c.a)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.Within(a); got != c.want {
			t.Errorf("%s within %s = %v, want %v", c.n, c.a, got, c.want)
		}
	}
}

func TestParseAccept(t *testing.T) {
	for _, bad := range [][]string{{"any", "10.0.0.0/8"}, {"10.0.0.0/33"}, {"@10.0.0.1"}, {""}} {
		if _, err := parseAccept(bad); err == nil {
			t.Errorf("accept %q taken", bad)
		}
	}
	s, err := parseAccept(nil)
	if err != nil || s.allows(Network{Host: "x.example"}) {
		t.Fatalf("no accepted networks: %v, allows a name", err)
	}
	if errs := (Config{Label: "p", Role: RoleRoot, Links: []LinkConfig{{Peer: "c", Listen: "127.0.0.1:0", Plaintext: true, AcceptNetworks: []string{"10.0.0.0/33"}}}}).Validate(); len(errs) != 1 {
		t.Fatalf("a bad accepted network: %v", errs)
	}
	if errs := (Config{Label: "c", Role: RoleLeaf, Links: []LinkConfig{{Peer: "p", Parent: true, Dial: "127.0.0.1:1", Plaintext: true, AcceptNetworks: []string{AnyNetwork}}}}).Validate(); len(errs) != 1 {
		t.Fatalf("accepted networks on a parent link: %v", errs)
	}
}

// lockedBuf is a log sink tests read while the table writes.
type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *lockedBuf) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuf) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func bufLog(w io.Writer) *logrus.Entry {
	logger := logrus.New()
	logger.SetOutput(w)
	logger.SetLevel(logrus.InfoLevel)
	return logrus.NewEntry(logger)
}

// TestAcceptedNetworksTable takes announcements from two children, one
// accepting site A's networks, the other site B's, and checks what each
// may claim, what is refused, logged and counted, and what a change of
// the accepted networks drops and keeps.
func TestAcceptedNetworksTable(t *testing.T) {
	var buf lockedBuf
	rt := newRoutingTable("root", bufLog(&buf), 1000, 1000)
	rt.setAccept([]LinkConfig{
		{Peer: "gwp-a", AcceptNetworks: []string{"10.1.0.0/16", "*.site-a.example"}},
		{Peer: "gwp-b", AcceptNetworks: []string{"10.2.0.0/16", "10.9.0.0/24:443"}},
		{Peer: "es-c"},
	})
	if err := rt.replaceNets("gwp-a", ads("gwp-a", "10.1.0.0/16", "db.site-a.example", "@10.1.0.9")); err != nil {
		t.Fatal(err)
	}
	if err := rt.replaceNets("gwp-b", ads("gwp-b", "10.2.0.0/16", "10.1.5.0/24", "@10.1.0.7", "10.9.0.0/24:443", "10.9.0.0/24", "x.site-a.example")); err != nil {
		t.Fatal(err)
	}
	if err := rt.replaceNets("es-c", ads("es-c", "10.3.0.0/16")); err != nil {
		t.Fatal(err)
	}
	got := firstFewAds(rt.nets.all())
	want := "gwp-a=10.1.0.0/16,gwp-a=@10.1.0.9,gwp-a=db.site-a.example,gwp-b=10.2.0.0/16,gwp-b=10.9.0.0/24:443"
	if got != want {
		t.Fatalf("networks taken: %s\nwant %s", got, want)
	}
	for _, dest := range []struct {
		host  string
		port  uint16
		owner string
	}{{"10.1.5.1", 80, "gwp-a"}, {"10.1.0.7", 22, "gwp-a"}, {"x.site-a.example", 22, ""}, {"10.9.0.1", 443, "gwp-b"}, {"10.9.0.1", 80, ""}} {
		best := rt.nets.lookup(dest.host, dest.port, func(string) bool { return true })
		owner := ""
		if len(best) == 1 {
			owner = best[0].ad.Owner
		}
		if owner != dest.owner || len(best) > 1 {
			t.Errorf("%s:%d served by %q (%d), want %q", dest.host, dest.port, owner, len(best), dest.owner)
		}
	}
	if rt.refusedNets != 5 {
		t.Fatalf("refused %d networks, want 5", rt.refusedNets)
	}
	log := buf.String()
	for _, line := range []string{
		`refused network 10.1.5.0/24 of gwp-b announced by child gwp-b: outside the link's accept_networks (10.2.0.0/16,10.9.0.0/24:443)`,
		`refused network @10.1.0.7 of gwp-b announced by child gwp-b`,
		`refused network 10.9.0.0/24 of gwp-b announced by child gwp-b`,
		`refused network x.site-a.example of gwp-b`,
		`refused network 10.3.0.0/16 of es-c announced by child es-c: the link to es-c has no accept_networks`,
	} {
		if !strings.Contains(log, line) {
			t.Errorf("no line %q in the log:\n%s", line, log)
		}
	}

	// gwp-a's link now accepts only 10.1.0.0/24: its prefix and its
	// host route outside go at once; its names stay under the pattern.
	changed := rt.setAccept([]LinkConfig{
		{Peer: "gwp-a", AcceptNetworks: []string{"10.1.0.0/24", "*.site-a.example"}},
		{Peer: "gwp-b", AcceptNetworks: []string{"10.2.0.0/16", "10.9.0.0/24:443"}},
	})
	if strings.Join(changed, ",") != "gwp-a" {
		t.Fatalf("changed: %v", changed)
	}
	got = firstFewAds(rt.nets.all())
	want = "gwp-a=@10.1.0.9,gwp-a=db.site-a.example,gwp-b=10.2.0.0/16,gwp-b=10.9.0.0/24:443"
	if got != want {
		t.Fatalf("networks kept: %s\nwant %s", got, want)
	}
}

// TestRefusedNetworksLoggedFloodProof announces many networks outside a
// link's accepted networks: a few lines, every one counted.
func TestRefusedNetworksLoggedFloodProof(t *testing.T) {
	var buf lockedBuf
	rt := newRoutingTable("root", bufLog(&buf), 1000, 1000)
	rt.setAccept([]LinkConfig{{Peer: "c1", AcceptNetworks: []string{"10.1.0.0/16"}}})
	var nets []string
	for i := 0; i < 100; i++ {
		nets = append(nets, "10.2."+strconv.Itoa(i)+".0/24")
	}
	if err := rt.replaceNets("c1", ads("c1", nets...)); err != nil {
		t.Fatal(err)
	}
	rt.acceptLog.flush()
	log := buf.String()
	if k := strings.Count(log, "refused network "); k < 1 || k > tieLogBurst {
		t.Fatalf("%d refusal lines for 100 refusals, want 1 to %d", k, tieLogBurst)
	}
	if !strings.Contains(log, "more networks refused outside the accepted networks of their link") || rt.refusedNets != 100 {
		t.Fatalf("no summary or a wrong count (%d):\n%s", rt.refusedNets, log)
	}
}

// TestWithdrawnLabelTakesItsNetworks has a child withdraw a label in a
// delta that leaves its networks: they go with it. In a diamond (the
// label below two children), the other child's announcement keeps them,
// and the label's route moves to it.
func TestWithdrawnLabelTakesItsNetworks(t *testing.T) {
	rt := newRoutingTable("root", testLog(t), 1000, 1000)
	rt.setAccept(acceptAny("relay1", "relay2"))
	var up, down []NetAd
	rt.onNets = func(u, d []NetAd) { up, down = append(up, u...), append(down, d...) }
	for _, r := range []string{"relay1", "relay2"} {
		if _, err := rt.replace(r, []string{"gwp-a", "gwp-b"}); err != nil {
			t.Fatal(err)
		}
		if err := rt.replaceNets(r, append(ads("gwp-a", "10.1.0.0/16"), ads("gwp-b", "10.2.0.0/16")...)); err != nil {
			t.Fatal(err)
		}
	}
	if rt.routes["gwp-a"] != "relay1" || len(rt.nets.entries) != 2 {
		t.Fatalf("routes %v, %d networks", rt.routes, len(rt.nets.entries))
	}
	// relay1 loses gwp-a: a delta that withdraws the label alone.
	if _, err := rt.apply("relay1", nil, []string{"gwp-a"}); err != nil {
		t.Fatal(err)
	}
	if owner := rt.nets.lookup("10.1.0.5", 80, func(string) bool { return true }); len(owner) != 1 || rt.routes["gwp-a"] != "relay2" {
		t.Fatalf("after relay1 withdrew gwp-a: %d owners of 10.1.0.5, route via %q", len(owner), rt.routes["gwp-a"])
	}
	if _, had := rt.nets.byChild["relay1"][NetAd{Owner: "gwp-a", Network: "10.1.0.0/16"}]; had {
		t.Fatal("relay1 still announces gwp-a's network after withdrawing gwp-a")
	}
	if len(down) != 0 {
		t.Fatalf("networks told gone while relay2 still serves them: %v", down)
	}
	// relay2 withdraws it too: the network leaves the table, and is told
	// gone upwards.
	if _, err := rt.apply("relay2", nil, []string{"gwp-a"}); err != nil {
		t.Fatal(err)
	}
	if _, routed := rt.routes["gwp-a"]; routed || len(rt.nets.entries) != 1 {
		t.Fatalf("after both withdrew gwp-a: routes %v, networks %s", rt.routes, firstFewAds(rt.nets.all()))
	}
	if firstFewAds(down) != "gwp-a=10.1.0.0/16" {
		t.Fatalf("told gone: %s", firstFewAds(down))
	}
	// The label back without its network: none comes back with it.
	if _, err := rt.apply("relay1", []string{"gwp-a"}, nil); err != nil {
		t.Fatal(err)
	}
	if len(rt.nets.entries) != 1 {
		t.Fatalf("networks after gwp-a came back alone: %s", firstFewAds(rt.nets.all()))
	}
}
