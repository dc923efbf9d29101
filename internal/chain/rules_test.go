package chain

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/relaychain/relaychain/mux"
)

const rulesGWProxy = `label: gwp
parents:
  - label: r1
    dial: 127.0.0.1:7103
    source: 127.0.0.1:40103
    insecure_plaintext: true
children:
  - label: es
    listen: [127.0.0.1:7201, 127.0.0.2:7201]
    insecure_plaintext: true
services:
  - name: endpoint
    addrs: [10.1.2.3:9495, 10.1.2.4:9495]
    source: 10.1.2.1
    allow: [epp]
    rules:
      - action: deny
        nets: [10.1.2.4]
      - action: allow
        origins: ["es*"]
        ports: [9495, 9000-9999]
entries:
  - name: upcall
    listen:
      - 127.0.0.1:9494
      - "[::1]:9494"
    dest: epp
    service: gateway
    rules:
      - action: deny
        sources: [192.0.2.0/24]
      - action: allow
        dests: [epp]
        services: [gate*]
`

func TestLoadRulesSourcesAndListenLists(t *testing.T) {
	path := writeConfig(t, "gwproxy.yaml", rulesGWProxy)
	c, err := Load(GWProxy, path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := c.Entries[0].Listen; !reflect.DeepEqual(got, Addrs{"127.0.0.1:9494", "[::1]:9494"}) {
		t.Errorf("entry listen %v", got)
	}
	mc := c.MuxConfig(nil)
	var parent, child mux.LinkConfig
	for _, l := range mc.Links {
		if l.Parent {
			parent = l
		} else {
			child = l
		}
	}
	if parent.Source != "127.0.0.1:40103" || child.Listen != "127.0.0.1:7201" || !reflect.DeepEqual(child.ListenAlso, []string{"127.0.0.2:7201"}) {
		t.Errorf("links: parent %+v, child %+v", parent, child)
	}
	svc := mc.Services["endpoint"]
	if svc.Source != "10.1.2.1" || len(svc.Rules) != 2 {
		t.Fatalf("service %+v", svc)
	}
	want := mux.ACLRule{Allow: false, Nets: []netip.Prefix{netip.MustParsePrefix("10.1.2.4/32")}, Where: path + ":17"}
	if !reflect.DeepEqual(svc.Rules[0], want) {
		t.Errorf("rule 0 = %+v, want %+v", svc.Rules[0], want)
	}
	if r := svc.Rules[1]; !r.Allow || r.Where != path+":19" || !reflect.DeepEqual(r.Ports, [][2]uint16{{9495, 9495}, {9000, 9999}}) {
		t.Errorf("rule 1 = %+v", r)
	}
	entry := c.rules("entries[0].rules", c.Entries[0].Rules, true)
	if len(entry) != 2 || entry[1].Where != path+":32" || !reflect.DeepEqual(entry[1].Services, []string{"gate*"}) {
		t.Errorf("entry rules %+v", entry)
	}
	if allow, rule := entry.Decide(mux.ACLRequest{Source: netip.MustParseAddr("192.0.2.9"), Dest: "epp", Service: "gateway"}, true); allow || rule != 0 {
		t.Errorf("a client in 192.0.2.0/24: %v by rule %d", allow, rule)
	}
}

func TestLoadRulesRejects(t *testing.T) {
	edit := func(old, new string) string {
		if !strings.Contains(rulesGWProxy, old) {
			t.Fatalf("no %q to edit", old)
		}
		return strings.Replace(rulesGWProxy, old, new, 1)
	}
	for _, tc := range []struct {
		name, yaml string
		want       []problem
	}{
		{"bad action", edit("action: deny\n        nets", "action: drop\n        nets"),
			[]problem{{17, "services[0].rules[0]", `action "drop": want allow or deny`}}},
		{"a source at a service", edit("nets: [10.1.2.4]", "sources: [10.1.2.4]"),
			[]problem{{18, "services[0].rules[0].sources", "a service sees no client address"}}},
		{"a net at a static entry", edit("sources: [192.0.2.0/24]", "nets: [192.0.2.0/24]"),
			[]problem{{30, "entries[0].rules[0]", "match it with dests and services"}}},
		{"host bits in a prefix", edit("sources: [192.0.2.0/24]", "sources: [192.0.2.1/24]"),
			[]problem{{30, "entries[0].rules[0]", "did you mean 192.0.2.0/24"}}},
		{"a bad port range", edit("9000-9999", "9999-9000"),
			[]problem{{19, "services[0].rules[1]", "backwards"}}},
		{"a shadowed rule", strings.Replace(edit("nets: [10.1.2.4]", "nets: [10.1.0.0/16]"), `origins: ["es*"]`, "nets: [10.1.2.0/24]", 1),
			[]problem{{19, "services[0].rules[1]", "can never match: services[0].rules[0] (line 17)"}}},
		{"a rule after one without conditions", edit("      - action: deny\n        sources: [192.0.2.0/24]", "      - action: deny"),
			[]problem{{31, "entries[0].rules[1]", "can never match: entries[0].rules[0] (line 30)"}}},
		{"a source name", edit("source: 10.1.2.1", "source: gwp.example"),
			[]problem{{14, "services[0].source", "want IP or IP:PORT"}}},
		{"a source host name with a port", edit("source: 10.1.2.1", "source: gwp.example:1"),
			[]problem{{14, "services[0].source", "is not an IP address"}}},
		{"a source on a listened link", edit("    listen: [127.0.0.1:7201, 127.0.0.2:7201]\n", "    listen: [127.0.0.1:7201, 127.0.0.2:7201]\n    source: 127.0.0.1\n"),
			[]problem{{10, "children[0].source", "only a dialled link has a source address"}}},
		{"a bad address in a listen list", edit(`"[::1]:9494"`, `"[::1]:x"`),
			[]problem{{26, "entries[0].listen[1]", `port "x"`}}},
		{"an address listed twice", edit(`"[::1]:9494"`, `127.0.0.1:9494`),
			[]problem{{26, "entries[0].listen[1]", "127.0.0.1:9494 is listed twice"}}},
		{"a listen list clashes with an entry", edit("127.0.0.2:7201]", "127.0.0.1:9494]"),
			[]problem{{25, "entries[0].listen[0]", "port clash: 127.0.0.1:9494 is also used at children[0].listen[1]"}}},
		{"a pinned source on a listened port", edit("source: 127.0.0.1:40103", "source: 127.0.0.1:7201"),
			[]problem{{9, "children[0].listen[0]", "port clash: 127.0.0.1:7201 is also used at parents[0].source"}}},
		{"a pinned source twice", edit("source: 10.1.2.1", "source: 127.0.0.1:40103"),
			[]problem{{14, "services[0].source", "port clash: 127.0.0.1:40103 is also used at parents[0].source"}}},
		{"a map for listen", edit("listen: [127.0.0.1:7201, 127.0.0.2:7201]", "listen: {a: 1}"),
			[]problem{{9, "children[0].listen", "cannot use a mapping as chain.Addrs"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, "gwproxy.yaml", tc.yaml)
			_, err := Load(GWProxy, path)
			checkProblems(t, path, err, tc.want)
		})
	}
}

func TestSetCheckListenList(t *testing.T) {
	dir := writeChain(t, smallChain, map[string][]string{
		"r1/relay.yaml": {"listen: 0.0.0.0:7103", "listen: [192.168.9.1:7103, 10.0.2.1:7103, 10.0.3.1:7104]"},
	})
	s, err := LoadSet(dir)
	if err != nil {
		t.Fatalf("LoadSet: %v", err)
	}
	cs, err := s.Crossings()
	if err != nil {
		t.Fatal(err)
	}
	var got *Crossing
	for i := range cs {
		if cs[i].Port == 7103 {
			got = &cs[i]
		}
	}
	if got == nil || got.Listen != "10.0.2.1:7103" || got.Dest != "10.0.2.1:7103" {
		t.Errorf("crossing of port 7103: %+v, want the listen address the gwproxy dials", got)
	}

	dir = writeChain(t, smallChain, map[string][]string{
		"r1/relay.yaml": {"listen: 0.0.0.0:7103", "listen: [10.0.2.1:7105, 10.0.3.1:7104]"},
	})
	s, err = LoadSet(dir)
	if err != nil {
		t.Fatalf("LoadSet: %v", err)
	}
	_, err = s.Crossings()
	checkChainProblems(t, dir, err, []chainProblem{
		{"gwp/gwproxy.yaml", 5, "parents[0].dial", "gwp dials r1 at port 7103, but r1 listens for it on port 7105, 7104"},
	})
}
