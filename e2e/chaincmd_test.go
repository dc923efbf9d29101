package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// readmeTable returns the first Markdown table after the first line of
// the file path that holds marker, each line ending in a newline.
func readmeTable(t *testing.T, path, marker string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, marker)
	if i < 0 {
		t.Fatalf("%s: no %q", path, marker)
	}
	var out strings.Builder
	for _, l := range strings.Split(doc[i:], "\n")[1:] {
		if strings.HasPrefix(l, "|") {
			out.WriteString(l + "\n")
		} else if out.Len() > 0 {
			break
		}
	}
	return out.String()
}

// TestChainFirewall runs "chain firewall" of every binary on the example
// chain: the table is README.md's, and the nftables and iptables rules
// are one per crossing.
func TestChainFirewall(t *testing.T) {
	root := e2etest.ModuleRoot(t)
	example := filepath.Join(root, "configs", "example")
	want := readmeTable(t, filepath.Join(root, "README.md"), "relay chain firewall configs/example")
	if strings.Count(want, "\n") != 6 {
		t.Fatalf("README.md's firewall table has %d lines, want a header, a rule line and 4 rows:\n%s", strings.Count(want, "\n"), want)
	}
	for _, d := range e2etest.Daemons {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := e2etest.RunCommand(t, t.TempDir(), e2etest.Bin(t, d), "chain", "firewall", example)
			if code != 0 || stdout != want || stderr != "" {
				t.Fatalf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, stderr, stdout, want)
			}
		})
	}
	for format, prefix := range map[string]string{"nftables": "add rule inet filter forward ", "iptables": "iptables -A FORWARD "} {
		stdout, stderr, code := e2etest.RunCommand(t, root, e2etest.Bin(t, "relay"), "chain", "firewall", "--format", format, "configs/example")
		if code != 0 || stderr != "" {
			t.Fatalf("--format %s: exit %d, stderr %q", format, code, stderr)
		}
		var rules []string
		for _, l := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
			if !strings.HasPrefix(l, "#") {
				rules = append(rules, l)
			}
		}
		ports := []string{"17101", "17102", "17103", "17201"}
		if len(rules) != len(ports) {
			t.Fatalf("--format %s: %d rules, want %d:\n%s", format, len(rules), len(ports), stdout)
		}
		for i, r := range rules {
			if !strings.HasPrefix(r, prefix) || !strings.Contains(r, " "+ports[i]+" ") && !strings.Contains(r, "--dport "+ports[i]+" ") {
				t.Errorf("--format %s: rule %d %q, want %q... for port %s", format, i, r, prefix, ports[i])
			}
		}
	}
}

// TestChainCheck runs "chain check" on the example chain as shipped, on
// the harness's copy of it (its ports moved, its certificates made), and
// on a copy whose links disagree.
func TestChainCheck(t *testing.T) {
	root := e2etest.ModuleRoot(t)
	relay := e2etest.Bin(t, "relay")
	for _, dir := range []string{
		filepath.Join(root, "configs", "example"),
		e2etest.NewChain(t, e2etest.Options{}).Dir,
	} {
		stdout, stderr, code := e2etest.RunCommand(t, t.TempDir(), relay, "chain", "check", dir)
		if want := dir + ": 6 nodes, 5 links: the configurations agree\n"; code != 0 || stdout != want || stderr != "" {
			t.Errorf("chain check %s: exit %d, stdout %q, stderr %q; want %q", dir, code, stdout, stderr, want)
		}
	}

	bad := filepath.Join(t.TempDir(), "example")
	if err := os.CopyFS(bad, os.DirFS(filepath.Join(root, "configs", "example"))); err != nil {
		t.Fatal(err)
	}
	edit := func(file, old, new string) {
		t.Helper()
		path := filepath.Join(bad, file)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), old) {
			t.Fatalf("%s: no %q", file, old)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit("relay-dmz1/relay.yaml", "listen: 127.0.0.1:17101", "listen: 127.0.0.1:17109") // wrong port
	edit("gwp-site-b/gwproxy.yaml", "dial: 127.0.0.1:17103", "listen: 127.0.0.1:17103") // both listen
	if err := os.RemoveAll(filepath.Join(bad, "es-site-a")); err != nil {               // no counterpart
		t.Fatal(err)
	}
	stdout, stderr, code := e2etest.RunCommand(t, t.TempDir(), relay, "chain", "check", bad)
	want := []string{
		bad + "/epp-main/epproxy.yaml:16: children[0].dial: epp-main dials relay-dmz1 at port 17101, but relay-dmz1 listens for it on port 17109 (" +
			bad + "/relay-dmz1/relay.yaml:15: parents[0].listen)",
		bad + "/gwp-site-a/gwproxy.yaml:19: children[0].label: es-site-a has no configuration in the chain given",
		bad + "/gwp-site-b/gwproxy.yaml:16: parents[0].listen: gwp-site-b and relay-dmz2 both listen for this link (" +
			bad + "/relay-dmz2/relay.yaml:25: children[1].listen): one end must dial",
		"relay: 3 problems in " + bad,
	}
	if code != 1 || stdout != "" || stderr != strings.Join(want, "\n")+"\n" {
		t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 1 and:\n%s", code, stdout, stderr, strings.Join(want, "\n"))
	}
}

// TestChainFirewallNftParses checks the nftables rules with nft itself
// (nft -c: parsed and checked, nothing applied), where nft is installed
// and may talk to the kernel.
func TestChainFirewallNftParses(t *testing.T) {
	nft, err := exec.LookPath("nft")
	if err != nil {
		t.Skip("nft is not installed: the nftables rules are not checked by it")
	}
	root := e2etest.ModuleRoot(t)
	rules, stderr, code := e2etest.RunCommand(t, root, e2etest.Bin(t, "relay"), "chain", "firewall", "--format", "nftables", "configs/example")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// The table and chain the rules go in, as nftables.conf has them.
	file := filepath.Join(t.TempDir(), "rules.nft")
	setup := "add table inet filter\nadd chain inet filter forward { type filter hook forward priority 0; policy accept; }\n"
	if err := os.WriteFile(file, []byte(setup+rules), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nft, "-c", "-f", file).CombinedOutput()
	if err != nil && strings.Contains(string(out), "Operation not permitted") {
		t.Skipf("nft -c may not talk to the kernel here: %s", out)
	}
	if err != nil {
		t.Fatalf("nft -c -f: %v\n%s\n%s", err, out, setup+rules)
	}
}
