package mux

import "testing"

func TestParseNetwork(t *testing.T) {
	for in, want := range map[string]string{
		"10.20.0.0/16":               "10.20.0.0/16",
		"10.20.3.4/16":               "10.20.0.0/16",
		"10.20.0.5":                  "10.20.0.5",
		"10.20.0.5/32":               "10.20.0.5",
		"10.20.0.0/16:22":            "10.20.0.0/16:22",
		"10.20.0.0/16:8000-8100":     "10.20.0.0/16:8000-8100",
		"2001:DB8::/32":              "2001:db8::/32",
		"[2001:db8::/32]:443":        "[2001:db8::/32]:443",
		"[2001:db8::1]:443":          "[2001:db8::1]:443",
		"::ffff:10.0.0.0/104":        "10.0.0.0/8",
		"DB.Site-A.example":          "db.site-a.example",
		"*.site-a.example:22":        "*.site-a.example:22",
		"localhost":                  "localhost",
		"*.site-a.example:1-65535":   "*.site-a.example", // every port: no ports
		"[*.site-a.example]:22":      "*.site-a.example:22",
		"under_score.example":        "under_score.example",
		"10.0.0.0/0":                 "0.0.0.0/0",
		"[10.0.0.0/8]":               "10.0.0.0/8",
		"*.example":                  "*.example",
		"a.b.c.d.e.f.g.h.i.j.k.l.mn": "a.b.c.d.e.f.g.h.i.j.k.l.mn",
	} {
		n, err := ParseNetwork(in)
		if err != nil || n.String() != want {
			t.Errorf("ParseNetwork(%q) = %q, %v; want %q", in, n.String(), err, want)
			continue
		}
		if n2, err := ParseNetwork(n.String()); err != nil || n2 != n {
			t.Errorf("%q does not read back: %+v, %v", n.String(), n2, err)
		}
	}
	for _, in := range []string{"", "10.0.0.0/33", "10.0.0.0/8:", "10.0.0.0/8:0", "10.0.0.0/8:70000",
		"10.0.0.0/8:9-8", "[::1", "[::1]22", "a..b", "*.", "*", "a.*.b", "fe80::1%eth0", "a b", "[::1]:", "-:1-"} {
		if n, err := ParseNetwork(in); err == nil {
			t.Errorf("ParseNetwork(%q) = %v, want an error", in, n)
		}
	}
}

func TestNetTableMostSpecific(t *testing.T) {
	tab := newNetTable()
	add := func(owner, s string) {
		n, err := ParseNetwork(s)
		if err != nil {
			t.Fatal(err)
		}
		tab.add("c-"+owner, NetAd{Owner: owner, Network: n.String()}, n)
	}
	add("wide", "10.0.0.0/8")
	add("mid", "10.1.0.0/16")
	add("ssh", "10.1.0.0/16:22")
	add("host", "10.1.2.3")
	add("v6", "2001:db8::/32")
	add("pat", "*.example")
	add("sub", "*.a.example")
	add("exact", "x.a.example")
	all := func(string) bool { return true }
	for _, c := range []struct {
		host string
		port uint16
		want string
	}{
		{"10.9.9.9", 80, "wide"}, {"10.1.9.9", 80, "mid"}, {"10.1.9.9", 22, "ssh"}, {"10.1.2.3", 22, "host"},
		{"2001:db8::7", 1, "v6"}, {"::ffff:10.1.9.9", 80, "mid"},
		{"b.example", 1, "pat"}, {"y.a.example", 1, "sub"}, {"X.A.example", 1, "exact"}, {"deep.y.a.example", 1, "sub"},
		{"11.0.0.1", 1, ""}, {"example", 1, ""}, {"a.example", 1, "pat"},
	} {
		got := ""
		if best := tab.lookup(c.host, c.port, all); len(best) > 0 {
			got = best[0].ad.Owner
		}
		if got != c.want {
			t.Errorf("%s:%d -> %q, want %q", c.host, c.port, got, c.want)
		}
	}
	// A route that is gone makes its networks unusable: the next best wins.
	if best := tab.lookup("10.1.2.3", 22, func(o string) bool { return o != "host" }); len(best) != 1 || best[0].ad.Owner != "ssh" {
		t.Errorf("without host: %v", best)
	}
	// Removing the last announcer takes the network out of every index.
	if !tab.remove("c-host", NetAd{Owner: "host", Network: "10.1.2.3"}) {
		t.Fatal("remove")
	}
	if best := tab.lookup("10.1.2.3", 80, all); len(best) != 1 || best[0].ad.Owner != "mid" {
		t.Errorf("after remove: %v", best)
	}
	if len(tab.entries) != 7 || tab.lengths[32] != 0 {
		t.Errorf("indexes after remove: %d entries, lengths %v", len(tab.entries), tab.lengths)
	}
	// Ties: same network, equally wide ports, another owner.
	n, _ := ParseNetwork("10.1.0.0/16")
	if _, ties := tab.add("c-other", NetAd{Owner: "other", Network: "10.1.0.0/16"}, n); len(ties) != 1 || ties[0] != "mid" {
		t.Errorf("ties: %v", ties)
	}
	if best := tab.lookup("10.1.9.9", 80, all); len(best) != 2 {
		t.Errorf("a tie looks up as %v", best)
	}
}
