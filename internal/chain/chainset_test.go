package chain

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/relaychain/relaychain/internal/daemon"
)

// exampleDir is the example chain, seen from this package.
const exampleDir = samplesDir + "/example"

// The example chain's crossings, as its README describes them.
var exampleCrossings = []Crossing{
	{Port: 17101, Dest: "127.0.0.1:17101", Listener: "relay-dmz1", Listen: "127.0.0.1:17101", Dialers: []string{"epp-main"}, Sources: []string{""}, Outwards: true},
	{Port: 17102, Dest: "127.0.0.1:17102", Listener: "relay-dmz2", Listen: "127.0.0.1:17102", Dialers: []string{"relay-dmz1"}, Sources: []string{""}, Outwards: true},
	{Port: 17103, Dest: "127.0.0.1:17103", Listener: "relay-dmz2", Listen: "127.0.0.1:17103", Dialers: []string{"gwp-site-a", "gwp-site-b"}, Sources: []string{"", ""}},
	{Port: 17201, Dest: "127.0.0.1:17201", Listener: "gwp-site-a", Listen: "127.0.0.1:17201", Dialers: []string{"es-site-a"}, Sources: []string{""}},
}

// TestExampleChainIsConsistent checks that the example chain under
// configs/example fits together (Set.Check: every link has its
// counterpart on the neighbour, one side dialling the port the other
// listens on, parent and child the right way round; every entry names a
// node that offers its service) and needs the crossings its README shows.
// Its TLS files are not there: they are made by scripts/demo.sh.
func TestExampleChainIsConsistent(t *testing.T) {
	for _, args := range [][]string{
		{exampleDir},
		instanceDirs(t, exampleDir),
		{exampleDir, exampleDir + "/relay-dmz1"}, // a folder named twice counts once
	} {
		s, err := LoadSet(args...)
		if err != nil {
			t.Fatalf("LoadSet(%q): %v", args, err)
		}
		if len(s.Nodes) != 6 {
			t.Errorf("LoadSet(%q): %d nodes, want 6", args, len(s.Nodes))
		}
		if err := s.Check(); err != nil {
			t.Errorf("Check(%q):\n%v", args, err)
		}
		cs, err := s.Crossings()
		if err != nil || !reflect.DeepEqual(cs, exampleCrossings) {
			t.Errorf("Crossings(%q) = %+v, %v\nwant %+v", args, cs, err, exampleCrossings)
		}
	}
}

// instanceDirs returns the folders of dir.
func instanceDirs(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

const exampleTable = `| port | listener | dialled by | opened by | rule |
|---|---|---|---|---|
| 17101/tcp | relay-dmz1 (127.0.0.1:17101) | epp-main | the parent | allow epp-main -> 127.0.0.1:17101/tcp |
| 17102/tcp | relay-dmz2 (127.0.0.1:17102) | relay-dmz1 | the parent | allow relay-dmz1 -> 127.0.0.1:17102/tcp |
| 17103/tcp | relay-dmz2 (127.0.0.1:17103) | gwp-site-a, gwp-site-b | the children | allow gwp-site-a, gwp-site-b -> 127.0.0.1:17103/tcp |
| 17201/tcp | gwp-site-a (127.0.0.1:17201) | es-site-a | the child | allow es-site-a -> 127.0.0.1:17201/tcp |
`

// TestCLIChainFirewall runs "chain firewall" on the example chain in
// every format, from every chain daemon's command line.
func TestCLIChainFirewall(t *testing.T) {
	nftHead := "#!/usr/sbin/nft -f\n# Firewall rules of the relay chain, made from its configurations: 4 rules,\n"
	nft := []string{
		`add rule inet filter forward ip daddr 127.0.0.1 tcp dport 17101 ct state new accept comment "relaychain: epp-main -> relay-dmz1"`,
		`add rule inet filter forward ip daddr 127.0.0.1 tcp dport 17102 ct state new accept comment "relaychain: relay-dmz1 -> relay-dmz2"`,
		`add rule inet filter forward ip daddr 127.0.0.1 tcp dport 17103 ct state new accept comment "relaychain: gwp-site-a,gwp-site-b -> relay-dmz2"`,
		`add rule inet filter forward ip daddr 127.0.0.1 tcp dport 17201 ct state new accept comment "relaychain: es-site-a -> gwp-site-a"`,
	}
	iptHead := "#!/bin/sh\n# Firewall rules of the relay chain, made from its configurations: 4 rules,\n"
	ipt := []string{
		`iptables -A FORWARD -p tcp -d 127.0.0.1 --dport 17101 -m conntrack --ctstate NEW -m comment --comment "relaychain: epp-main -> relay-dmz1" -j ACCEPT`,
		`iptables -A FORWARD -p tcp -d 127.0.0.1 --dport 17102 -m conntrack --ctstate NEW -m comment --comment "relaychain: relay-dmz1 -> relay-dmz2" -j ACCEPT`,
		`iptables -A FORWARD -p tcp -d 127.0.0.1 --dport 17103 -m conntrack --ctstate NEW -m comment --comment "relaychain: gwp-site-a,gwp-site-b -> relay-dmz2" -j ACCEPT`,
		`iptables -A FORWARD -p tcp -d 127.0.0.1 --dport 17201 -m conntrack --ctstate NEW -m comment --comment "relaychain: es-site-a -> gwp-site-a" -j ACCEPT`,
	}
	for _, k := range Kinds {
		out, errOut, err := runCLI(t, k, "chain", "firewall", exampleDir)
		if err != nil || out != exampleTable || errOut != "" {
			t.Errorf("%s chain firewall: err %v, stderr %q, stdout:\n%s\nwant:\n%s", k.Name, err, errOut, out, exampleTable)
		}
	}
	for _, tc := range []struct {
		format, head string
		rules        []string
	}{{"nftables", nftHead, nft}, {"iptables", iptHead, ipt}} {
		out, errOut, err := runCLI(t, Relay, "chain", "firewall", "--format", tc.format, exampleDir)
		if err != nil || errOut != "" {
			t.Fatalf("--format %s: %v\n%s", tc.format, err, errOut)
		}
		var rules []string
		for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if !strings.HasPrefix(l, "#") {
				rules = append(rules, l)
			}
		}
		if !strings.HasPrefix(out, tc.head) || !reflect.DeepEqual(rules, tc.rules) {
			t.Errorf("--format %s:\n%s\nwant the header %q and the rules\n%s", tc.format, out, tc.head, strings.Join(tc.rules, "\n"))
		}
	}
	out, _, err := runCLI(t, Relay, "chain", "firewall", "--format", "pf", exampleDir)
	if err == nil || err.Error() != `--format "pf": want table, nftables, iptables` || out != "" {
		t.Errorf("--format pf: %v, stdout %q", err, out)
	}
	if _, _, err := runCLI(t, Relay, "chain", "firewall"); err == nil || !strings.HasPrefix(err.Error(), "no DIR given") {
		t.Errorf("no DIR: %v", err)
	}
}

// TestReadmeFirewallTables checks that the firewall tables of README.md
// and configs/example/README.md are what "chain firewall configs/example"
// prints, so that they cannot go stale.
func TestReadmeFirewallTables(t *testing.T) {
	out, errOut, err := runCLI(t, Relay, "chain", "firewall", exampleDir)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	for _, readme := range []string{"../../README.md", exampleDir + "/README.md"} {
		b, err := os.ReadFile(readme)
		if err != nil {
			t.Fatal(err)
		}
		if got := tableAfter(string(b), "relay chain firewall configs/example"); got != out {
			t.Errorf("%s: the table after \"relay chain firewall configs/example\" is\n%s\nthe command prints\n%s", readme, got, out)
		}
	}
}

// tableAfter returns the first Markdown table (its lines, each ending in a
// newline) after the first line of doc that holds marker.
func tableAfter(doc, marker string) string {
	i := strings.Index(doc, marker)
	if i < 0 {
		return ""
	}
	var b strings.Builder
	in := false
	for _, l := range strings.Split(doc[i:], "\n")[1:] {
		if strings.HasPrefix(l, "|") {
			in = true
			b.WriteString(l + "\n")
		} else if in {
			break
		}
	}
	return b.String()
}

// A small chain of every kind, its links over TLS whose files are not
// there: an epproxy, a relay, a gwproxy and its eventsink.
var smallChain = map[string]string{
	"epp/epproxy.yaml": `label: epp
tls: {cert: epp.crt, key: epp.key, ca: ca.crt}
children:
  - label: r1
    dial: 10.0.1.2:7101
    accept_labels: [gwp, es]
services:
  - name: gateway
    addrs: [127.0.0.1:9494]
entries:
  - name: down
    listen: 127.0.0.1:9501
    dest: gwp
    service: endpoint
events:
  server: 127.0.0.1:9800
`,
	"r1/relay.yaml": `label: r1
tls: {cert: r1.crt, key: r1.key, ca: ca.crt}
parents:
  - label: epp
    listen: 0.0.0.0:7101
children:
  - label: gwp
    listen: 0.0.0.0:7103
    accept_labels: es
`,
	"gwp/gwproxy.yaml": `label: gwp
tls: {cert: gwp.crt, key: gwp.key, ca: ca.crt}
parents:
  - label: r1
    dial: 10.0.2.1:7103
children:
  - label: es
    listen: 127.0.0.1:7201
services:
  - name: endpoint
    addrs: [127.0.0.1:9701]
entries:
  - name: up
    listen: 127.0.0.1:9601
    dest: epp
    service: gateway
`,
	"es/eventsink.yaml": `label: es
tls: {cert: es.crt, key: es.key, ca: ca.crt}
parents:
  - label: gwp
    dial: 127.0.0.1:7201
events:
  dest: epp
  spool:
    dir: spool
  listeners:
    - name: eif
      listen: 127.0.0.1:9810
      framing: eif
`,
}

// writeChain writes the files of chain, each edited by the replacements
// in edits (FILE -> old, new, old, new...), into a fresh folder, and
// returns the folder.
func writeChain(t *testing.T, chain map[string]string, edits map[string][]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range chain {
		e := edits[name]
		for i := 0; i+1 < len(e); i += 2 {
			if !strings.Contains(content, e[i]) {
				t.Fatalf("%s: no %q to edit", name, e[i])
			}
			content = strings.Replace(content, e[i], e[i+1], 1)
		}
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// chainProblem is an expected problem of a chain: the file (below the
// chain's folder), the line, the key and a part of the message.
type chainProblem struct {
	file string
	line int
	key  string
	msg  string
}

// checkChainProblems fails the test unless err holds exactly want, in
// order, each a *daemon.ConfigError.
func checkChainProblems(t *testing.T, dir string, err error, want []chainProblem) {
	t.Helper()
	if err == nil {
		t.Fatalf("no problem; want %+v", want)
	}
	got := leaves(err)
	for i, e := range got {
		var ce *daemon.ConfigError
		if !errors.As(e, &ce) {
			t.Errorf("problem %d is %T, not a *daemon.ConfigError: %v", i, e, e)
			continue
		}
		if i >= len(want) {
			continue
		}
		w := want[i]
		file := filepath.Join(dir, w.file)
		if ce.File != file || ce.Line != w.line || ce.Key != w.key || !strings.Contains(ce.Err.Error(), w.msg) {
			t.Errorf("problem %d:\n got %s\nwant %s:%d: %s: ...%s...", i, e, file, w.line, w.key, w.msg)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(got), len(want), err)
	}
}

func TestSetCheckSmallChain(t *testing.T) {
	dir := writeChain(t, smallChain, nil)
	s, err := LoadSet(dir)
	if err != nil {
		t.Fatalf("LoadSet: %v", err)
	}
	cs, err := s.Crossings()
	none := []string{""}
	want := []Crossing{
		{Port: 7101, Dest: "10.0.1.2:7101", Listener: "r1", Listen: "0.0.0.0:7101", Dialers: []string{"epp"}, Sources: none, Outwards: true},
		{Port: 7103, Dest: "10.0.2.1:7103", Listener: "r1", Listen: "0.0.0.0:7103", Dialers: []string{"gwp"}, Sources: none},
		{Port: 7201, Dest: "127.0.0.1:7201", Listener: "gwp", Listen: "127.0.0.1:7201", Dialers: []string{"es"}, Sources: none},
	}
	if err != nil || !reflect.DeepEqual(cs, want) {
		t.Fatalf("Crossings = %+v, %v\nwant %+v", cs, err, want)
	}

	// A pinned source goes into the crossing, and its rule.
	dir = writeChain(t, smallChain, map[string][]string{"gwp/gwproxy.yaml": {"    dial: 10.0.2.1:7103\n", "    dial: 10.0.2.1:7103\n    source: 10.0.2.9:40103\n"}})
	if s, err = LoadSet(dir); err != nil {
		t.Fatalf("LoadSet: %v", err)
	}
	cs, err = s.Crossings()
	if err != nil || len(cs) != 3 || !reflect.DeepEqual(cs[1].Sources, []string{"10.0.2.9:40103"}) {
		t.Fatalf("Crossings with a pinned source = %+v, %v", cs, err)
	}
	var b strings.Builder
	if err := WriteFirewall(&b, cs, FormatNftables); err != nil {
		t.Fatal(err)
	}
	if want := `add rule inet filter forward ip saddr 10.0.2.9 ip daddr 10.0.2.1 tcp sport 40103 tcp dport 7103 ct state new accept comment "relaychain: gwp -> r1"`; !strings.Contains(b.String(), want+"\n") {
		t.Fatalf("nftables rules:\n%s\nwant the line\n%s", b.String(), want)
	}
}

// TestSetCheckDisagreements edits one file (or two) of the small chain so
// that the two ends of a link, or an entry and its destination, disagree,
// and checks the problem reported: the file, line and key at fault.
func TestSetCheckDisagreements(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edits map[string][]string
		want  []chainProblem
	}{
		{"wrong port", map[string][]string{"gwp/gwproxy.yaml": {"dial: 10.0.2.1:7103", "dial: 10.0.2.1:7104"}},
			[]chainProblem{{"gwp/gwproxy.yaml", 5, "parents[0].dial",
				"gwp dials r1 at port 7104, but r1 listens for it on port 7103 (DIR/r1/relay.yaml:8: children[0].listen)"}}},
		{"both dial", map[string][]string{"r1/relay.yaml": {"listen: 0.0.0.0:7101", "dial: 10.0.1.1:7101"}},
			[]chainProblem{{"epp/epproxy.yaml", 5, "children[0].dial",
				"epp and r1 both dial this link (DIR/r1/relay.yaml:5: parents[0].dial): one end must listen"}}},
		{"both listen", map[string][]string{"epp/epproxy.yaml": {"dial: 10.0.1.2:7101", "listen: 0.0.0.0:7101"}},
			[]chainProblem{{"epp/epproxy.yaml", 5, "children[0].listen",
				"epp and r1 both listen for this link (DIR/r1/relay.yaml:5: parents[0].listen): one end must dial"}}},
		{"both parents", map[string][]string{"r1/relay.yaml": {
			"parents:\n  - label: epp\n    listen: 0.0.0.0:7101\nchildren:\n  - label: gwp\n",
			"parents:\n  - label: epp\n    listen: 0.0.0.0:7101\n  - label: gwp\n", "    accept_labels: es\n", ""}},
			[]chainProblem{{"gwp/gwproxy.yaml", 4, "parents[0]",
				"gwp and r1 each take the other for its parent (DIR/r1/relay.yaml:6: parents[1]): one lists the other under children"}}},
		{"both children", map[string][]string{"r1/relay.yaml": {
			"parents:\n  - label: epp\n    listen: 0.0.0.0:7101\nchildren:\n",
			"parents:\n  - label: x\n    dial: 10.9.9.9:1\nchildren:\n  - label: epp\n    listen: 0.0.0.0:7101\n"}},
			[]chainProblem{
				{"epp/epproxy.yaml", 4, "children[0]",
					"epp and r1 each take the other for its child (DIR/r1/relay.yaml:7: children[0]): one lists the other under parents"},
				{"r1/relay.yaml", 4, "parents[0].label", "x has no configuration in the chain given"}}},
		{"missing node", map[string][]string{"gwp/gwproxy.yaml": {"  - label: es\n", "  - label: es2\n"}},
			[]chainProblem{
				{"es/eventsink.yaml", 4, "parents[0]", "gwp (DIR/gwp/gwproxy.yaml) has no link to es: add one under its children"},
				{"gwp/gwproxy.yaml", 7, "children[0].label", "es2 has no configuration in the chain given"}}},
		{"missing link", map[string][]string{"r1/relay.yaml": {"children:\n  - label: gwp\n    listen: 0.0.0.0:7103\n    accept_labels: es\n", ""}},
			[]chainProblem{{"gwp/gwproxy.yaml", 4, "parents[0]", "r1 (DIR/r1/relay.yaml) has no link to gwp: add one under its children"}}},
		{"plaintext at one end", map[string][]string{"gwp/gwproxy.yaml": {"    listen: 127.0.0.1:7201\n", "    listen: 127.0.0.1:7201\n    insecure_plaintext: true\n"}},
			[]chainProblem{{"gwp/gwproxy.yaml", 9, "children[0].insecure_plaintext",
				"gwp carries this link in the clear, es over TLS (DIR/es/eventsink.yaml:4: parents[0]): set both ends alike"}}},
		{"label used twice", map[string][]string{"es/eventsink.yaml": {"label: es\n", "label: r1\n"}},
			[]chainProblem{
				{"r1/relay.yaml", 1, "label", "r1 is also the label of DIR/es/eventsink.yaml: labels are unique in a chain"},
				{"gwp/gwproxy.yaml", 7, "children[0].label", "es has no configuration in the chain given"}}},
		{"entry to no node", map[string][]string{"epp/epproxy.yaml": {"dest: gwp", "dest: gwp9"}},
			[]chainProblem{{"epp/epproxy.yaml", 13, "entries[0].dest", "gwp9 has no configuration in the chain given"}}},
		{"entry to no service", map[string][]string{"gwp/gwproxy.yaml": {"service: gateway", "service: gw"}},
			[]chainProblem{{"gwp/gwproxy.yaml", 16, "entries[0].service", "epp (DIR/epp/epproxy.yaml) offers no service gw (it offers: gateway, events)"}}},
		{"events to a relay", map[string][]string{"es/eventsink.yaml": {"dest: epp", "dest: r1"}},
			[]chainProblem{{"es/eventsink.yaml", 7, "events.dest", "r1 (DIR/r1/relay.yaml) is not an epproxy with an events section"}}},
		{"events service", map[string][]string{"es/eventsink.yaml": {"  dest: epp\n", "  dest: epp\n  service: ev\n"}},
			[]chainProblem{{"es/eventsink.yaml", 8, "events.service", "epp (DIR/epp/epproxy.yaml) offers its event service as events, not ev"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeChain(t, smallChain, tc.edits)
			s, err := LoadSet(dir)
			if err != nil {
				t.Fatalf("LoadSet: %v", err)
			}
			for i := range tc.want {
				tc.want[i].msg = strings.ReplaceAll(tc.want[i].msg, "DIR/", dir+"/")
			}
			checkChainProblems(t, dir, s.Check(), tc.want)
			if cs, err := s.Crossings(); err == nil || cs != nil {
				t.Errorf("Crossings = %+v, %v; want the problems", cs, err)
			}
		})
	}
}

// TestLoadSetRejects: what LoadSet is given must name configurations,
// each of which must load.
func TestLoadSetRejects(t *testing.T) {
	dir := writeChain(t, smallChain, map[string][]string{"r1/relay.yaml": {"label: r1\n", "label: r1\nbogus: 1\n"}})
	two := filepath.Join(dir, "two")
	if err := os.MkdirAll(two, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"relay.yaml", "gwproxy.yaml"} {
		if err := os.WriteFile(filepath.Join(two, f), []byte("label: x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	empty := t.TempDir()
	other := filepath.Join(empty, "notes.txt")
	if err := os.WriteFile(other, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"no configuration given: name the instance folders of the chain, or the folder that holds them"}},
		{[]string{filepath.Join(dir, "r1")}, []string{filepath.Join(dir, "r1", "relay.yaml") + ":2: bogus: unknown key"}},
		{[]string{dir}, []string{two + ": holds relay.yaml, gwproxy.yaml: an instance folder holds one node's configuration"}},
		{[]string{empty}, []string{empty + ": no configuration (epproxy.yaml, relay.yaml, gwproxy.yaml, eventsink.yaml) in it or in its folders"}},
		{[]string{other, empty + "/none"}, []string{
			other + ": not a configuration: its name is not epproxy.yaml, relay.yaml, gwproxy.yaml, eventsink.yaml",
			empty + "/none: cannot read: no such file or directory"}},
	} {
		s, err := LoadSet(tc.args...)
		var got []string
		for _, e := range leaves(err) {
			got = append(got, e.Error())
		}
		if s != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("LoadSet(%q) = %v, problems\n%s\nwant\n%s", tc.args, s, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
}

// TestCLIChainCheck runs "chain check" on a chain that agrees and on one
// that does not, with real files in a temporary folder.
func TestCLIChainCheck(t *testing.T) {
	dir := writeChain(t, smallChain, nil)
	for _, k := range Kinds {
		out, errOut, err := runCLI(t, k, "chain", "check", dir)
		if want := dir + ": 4 nodes, 3 links: the configurations agree\n"; err != nil || out != want || errOut != "" {
			t.Errorf("%s chain check: err %v, stdout %q, stderr %q; want %q", k.Name, err, out, errOut, want)
		}
	}
	out, errOut, err := runCLI(t, Relay, "chain", "check", filepath.Join(dir, "epp"), filepath.Join(dir, "r1"), filepath.Join(dir, "gwp"))
	want := filepath.Join(dir, "gwp", "gwproxy.yaml") + ":7: children[0].label: es has no configuration in the chain given\n"
	if out != "" || errOut != want {
		t.Errorf("a node left out: stdout %q, stderr %q; want %q", out, errOut, want)
	}
	var le *daemon.LoadError
	if !errors.As(err, &le) || len(le.Problems) != 1 || err.Error() != "1 problem in "+filepath.Join(dir, "epp")+" and 2 more" {
		t.Errorf("err = %v, want a *daemon.LoadError of 1 problem", err)
	}

	bad := writeChain(t, smallChain, map[string][]string{
		"gwp/gwproxy.yaml":  {"dial: 10.0.2.1:7103", "listen: 0.0.0.0:7103"},
		"es/eventsink.yaml": {"dial: 127.0.0.1:7201", "dial: 127.0.0.1:7202"},
	})
	for _, cmd := range []string{"check", "firewall"} {
		out, errOut, err := runCLI(t, Relay, "chain", cmd, bad)
		want := []string{
			filepath.Join(bad, "es", "eventsink.yaml") + ":5: parents[0].dial: es dials gwp at port 7202, but gwp listens for it on port 7201 (" +
				filepath.Join(bad, "gwp", "gwproxy.yaml") + ":8: children[0].listen)",
			filepath.Join(bad, "gwp", "gwproxy.yaml") + ":5: parents[0].listen: gwp and r1 both listen for this link (" +
				filepath.Join(bad, "r1", "relay.yaml") + ":8: children[0].listen): one end must dial",
		}
		if out != "" || errOut != strings.Join(want, "\n")+"\n" || err == nil || err.Error() != "2 problems in "+bad {
			t.Errorf("chain %s: err %v, stdout %q, stderr:\n%s\nwant:\n%s", cmd, err, out, errOut, strings.Join(want, "\n"))
		}
	}
}

// TestWriteFirewallAddresses: an IPv6 destination takes the IPv6 tools, a
// host name the IPv4 ones (the tool resolves it); several dialling nodes
// share one rule; each direction has its rows; a pinned source address
// (and port) gets a rule of its own, narrowed to it.
func TestWriteFirewallAddresses(t *testing.T) {
	cs := []Crossing{
		{Port: 7101, Dest: "[2001:db8::1]:7101", Listener: "r1", Listen: "[::]:7101", Dialers: []string{"epp"}, Outwards: true},
		{Port: 7103, Dest: "relay.example:7103", Listener: "r1", Listen: ":7103", Dialers: []string{"gwp-a", "gwp-b"}},
		// Pinned sources: a rule each, narrowed to the address (and port).
		{Port: 7104, Dest: "10.0.0.1:7104", Listener: "r2", Listen: ":7104", Dialers: []string{"gwp-c", "gwp-d", "gwp-e", "gwp-f"},
			Sources: []string{"10.0.3.5:40104", "", "10.0.3.6", ""}},
		{Port: 7105, Dest: "relay.example:7105", Listener: "r2", Listen: ":7105", Dialers: []string{"gwp-g"}, Sources: []string{"[2001:db8::7]:40105"}},
	}
	for _, tc := range []struct {
		format string
		want   []string
	}{
		{FormatNftables, []string{
			`add rule inet filter forward ip6 daddr 2001:db8::1 tcp dport 7101 ct state new accept comment "relaychain: epp -> r1"`,
			`add rule inet filter forward ip daddr relay.example tcp dport 7103 ct state new accept comment "relaychain: gwp-a,gwp-b -> r1"`,
			`add rule inet filter forward ip saddr 10.0.3.5 ip daddr 10.0.0.1 tcp sport 40104 tcp dport 7104 ct state new accept comment "relaychain: gwp-c -> r2"`,
			`add rule inet filter forward ip daddr 10.0.0.1 tcp dport 7104 ct state new accept comment "relaychain: gwp-d,gwp-f -> r2"`,
			`add rule inet filter forward ip saddr 10.0.3.6 ip daddr 10.0.0.1 tcp dport 7104 ct state new accept comment "relaychain: gwp-e -> r2"`,
			`add rule inet filter forward ip6 saddr 2001:db8::7 ip6 daddr relay.example tcp sport 40105 tcp dport 7105 ct state new accept comment "relaychain: gwp-g -> r2"`,
		}},
		{FormatIptables, []string{
			`ip6tables -A FORWARD -p tcp -d 2001:db8::1 --dport 7101 -m conntrack --ctstate NEW -m comment --comment "relaychain: epp -> r1" -j ACCEPT`,
			`iptables -A FORWARD -p tcp -d relay.example --dport 7103 -m conntrack --ctstate NEW -m comment --comment "relaychain: gwp-a,gwp-b -> r1" -j ACCEPT`,
			`iptables -A FORWARD -p tcp -s 10.0.3.5 -d 10.0.0.1 --sport 40104 --dport 7104 -m conntrack --ctstate NEW -m comment --comment "relaychain: gwp-c -> r2" -j ACCEPT`,
			`iptables -A FORWARD -p tcp -d 10.0.0.1 --dport 7104 -m conntrack --ctstate NEW -m comment --comment "relaychain: gwp-d,gwp-f -> r2" -j ACCEPT`,
			`iptables -A FORWARD -p tcp -s 10.0.3.6 -d 10.0.0.1 --dport 7104 -m conntrack --ctstate NEW -m comment --comment "relaychain: gwp-e -> r2" -j ACCEPT`,
			`ip6tables -A FORWARD -p tcp -s 2001:db8::7 -d relay.example --sport 40105 --dport 7105 -m conntrack --ctstate NEW -m comment --comment "relaychain: gwp-g -> r2" -j ACCEPT`,
		}},
		{FormatTable, []string{
			"| port | listener | dialled by | opened by | rule |",
			"|---|---|---|---|---|",
			"| 7101/tcp | r1 ([::]:7101) | epp | the parent | allow epp -> [2001:db8::1]:7101/tcp |",
			"| 7103/tcp | r1 (:7103) | gwp-a, gwp-b | the children | allow gwp-a, gwp-b -> relay.example:7103/tcp |",
			"| 7104/tcp | r2 (:7104) | gwp-c, gwp-d, gwp-e, gwp-f | the children | allow gwp-c (from 10.0.3.5:40104), gwp-d, gwp-e (from 10.0.3.6), gwp-f -> 10.0.0.1:7104/tcp |",
			"| 7105/tcp | r2 (:7105) | gwp-g | the child | allow gwp-g (from [2001:db8::7]:40105) -> relay.example:7105/tcp |",
		}},
	} {
		var b strings.Builder
		if err := WriteFirewall(&b, cs, tc.format); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
			if !strings.HasPrefix(l, "#") {
				got = append(got, l)
			}
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.format, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
	if err := WriteFirewall(&strings.Builder{}, cs, "pf"); err == nil {
		t.Error("format pf accepted")
	}
}
