package e2etest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

// TestNewChain checks the copy of configs/example: every example port
// becomes the same new port in every file (so the links still match), the
// fixed ports are used as given, Edit and then Tuning change each
// configuration, and Prepare runs in every instance directory.
func TestNewChain(t *testing.T) {
	var prepared []string
	c := NewChain(t, Options{
		Fixed: map[int]int{PortGateway: 12345},
		Edit: func(node, text string) string {
			return text + "# edited for " + node + "\n"
		},
		Tuning: FastTuning,
		Prepare: func(node, dir string) error {
			prepared = append(prepared, node)
			return os.WriteFile(filepath.Join(dir, "extra.pem"), []byte(node), 0o600)
		},
	})
	read := func(node, daemon string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(c.NodeDir(node), daemon+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	nodes := append(slices.Clone(SessionNodes), Node{"es-site-a", "eventsink"})
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
		text := read(n.Name, n.Daemon)
		// Every port of this run is 12345 or at least 20000: no prefix
		// of one is an example port.
		for _, p := range []string{"17101", "17102", "17103", "17201", "19494", "19501", "19601", "19701", "19800", "19810"} {
			if strings.Contains(text, "127.0.0.1:"+p) {
				t.Errorf("%s still has the example's port %s", n.Name, p)
			}
		}
		edited := strings.Index(text, "# edited for "+n.Name+"\n")
		tuning := strings.Index(text, FastTuning)
		if edited < 0 || tuning < edited || !strings.HasSuffix(text, FastTuning) {
			t.Errorf("%s: want the edit (at %d), then the tuning at the end (at %d):\n%s", n.Name, edited, tuning, text)
		}
		b, err := os.ReadFile(filepath.Join(c.NodeDir(n.Name), "extra.pem"))
		if err != nil || string(b) != n.Name {
			t.Errorf("%s: the file Prepare wrote: %q, %v", n.Name, b, err)
		}
	}
	slices.Sort(names)
	slices.Sort(prepared)
	if !slices.Equal(prepared, names) {
		t.Errorf("Prepare ran for %v, want %v", prepared, names)
	}
	// Both ends of each link have the same new address.
	for _, link := range []struct {
		port int
		a, b Node // a dials, b listens
	}{
		{PortDMZ1, Node{"epp-main", "epproxy"}, Node{"relay-dmz1", "relay"}},
		{PortDMZ2, Node{"relay-dmz1", "relay"}, Node{"relay-dmz2", "relay"}},
		{PortDMZ2Out, Node{"gwp-site-b", "gwproxy"}, Node{"relay-dmz2", "relay"}},
		{PortSinkLink, Node{"es-site-a", "eventsink"}, Node{"gwp-site-a", "gwproxy"}},
	} {
		addr := c.Addr(link.port)
		if !strings.Contains(read(link.a.Name, link.a.Daemon), "dial: "+addr+"\n") ||
			!strings.Contains(read(link.b.Name, link.b.Daemon), "listen: "+addr+"\n") {
			t.Errorf("link on example port %d: %s should dial and %s listen on %s", link.port, link.a.Name, link.b.Name, addr)
		}
	}
	if got := c.Port(PortGateway); got != 12345 {
		t.Errorf("gateway port %d, want the fixed 12345", got)
	}
	if !strings.Contains(read("epp-main", "epproxy"), "addrs: [127.0.0.1:12345]") {
		t.Errorf("epp-main's gateway service is not at the fixed port:\n%s", read("epp-main", "epproxy"))
	}
}
