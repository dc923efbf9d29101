package e2etest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux/muxtest"
)

// Node is an instance of configs/example: its directory there, which is
// also its label, and its daemon.
type Node struct{ Name, Daemon string }

// The nodes of configs/example, in start order: listeners first, so that
// the dialling sides find them at once (the order does not matter for
// correctness, only for speed).
var (
	// SessionNodes carry the sessions between the gateway and the
	// endpoints of sites A and B.
	SessionNodes = []Node{
		{"relay-dmz2", "relay"},
		{"relay-dmz1", "relay"},
		{"gwp-site-a", "gwproxy"},
		{"gwp-site-b", "gwproxy"},
		{"epp-main", "epproxy"},
	}
	// EventNodes carry the events of site A to the event server.
	EventNodes = []Node{
		{"relay-dmz2", "relay"},
		{"relay-dmz1", "relay"},
		{"gwp-site-a", "gwproxy"},
		{"es-site-a", "eventsink"},
		{"epp-main", "epproxy"},
	}
)

// The ports of configs/example, by role (see its README.md). A Chain runs
// on other ports: Chain.Port and Chain.Addr translate.
const (
	PortDMZ1      = 17101 // relay-dmz1's parent link (epp-main dials)
	PortDMZ2      = 17102 // relay-dmz2's parent link (relay-dmz1 dials)
	PortDMZ2Out   = 17103 // relay-dmz2's children (the gwproxies dial)
	PortSinkLink  = 17201 // gwp-site-a's child link (es-site-a dials)
	PortGateway   = 19494 // the gateway: epp-main's service "gateway"
	PortDownA     = 19501 // epp-main's downcall entries
	PortDownB     = 19502
	PortSOCKS     = 19510 // epp-main's socks5 entry (downcalls by address)
	PortConnect   = 19511 // epp-main's http_connect entry
	PortUpA       = 19601 // gwp-site-a's upcall entry
	PortUpB       = 19602 // gwp-site-b's upcall entry
	PortEndpointA = 19701 // an endpoint of site A: gwp-site-a's service "endpoint"
	PortEndpointB = 19702
	PortEvents    = 19800 // the event server
	PortEIF       = 19810 // es-site-a: EIF over TCP
	PortSyslogUDP = 19811 // es-site-a: lines over UDP
	PortLinesTCP  = 19812 // es-site-a: lines over TCP
)

// The link settings of FastTuning.
const (
	FastKeepalive    = 500 * time.Millisecond
	FastWriteTimeout = 5 * time.Second
)

// FastTuning makes faults visible quickly and links come back fast; the
// tests append it to the configurations (Options.Tuning), which have no
// tuning section of their own.
//
// write_timeout also bounds a keepalive's round trip, and yamux queues the
// ping's answer behind the data frames already waiting on the link (up to
// 64 frames of 64KiB, see configs/relay.yaml) and the loopback socket
// buffers: more than 10MB when the tests stream flat out both ways. On a
// loaded 2-core machine running -race test binaries beside the daemons,
// that can take over a second to drain, and a 1s write_timeout then
// killed healthy links (keepalive failed: i/o deadline reached) in the
// middle of streaming sessions. 5s leaves room for that and still notices
// a frozen peer within a few seconds.
var FastTuning = fmt.Sprintf(`
# Added by the e2e tests: faults noticed fast, links back fast.
tuning:
  keepalive_interval: %s
  write_timeout: %s
  hello_timeout: 2s
  reconnect_min: 50ms
  reconnect_max: 500ms
`, FastKeepalive, FastWriteTimeout)

// Options shape a Chain.
type Options struct {
	// Nodes are the instances Start may start, in StartAll's order, and
	// whose logs are shown when the test fails. Nil: SessionNodes.
	Nodes []Node
	// Fixed maps example ports to the ports of this run that are already
	// taken, by in-test servers standing for the gateway, say. Every
	// other example port gets a FreePort.
	Fixed map[int]int
	// Edit, when not nil, may change the text of each configuration
	// (node is the instance's directory name), after its ports were
	// rewritten.
	Edit func(node, text string) string
	// Tuning is appended to every configuration after Edit: FastTuning,
	// or "" to leave the files as they are.
	Tuning string
	// Prepare, when not nil, runs for each instance directory once its
	// configuration is written and before any daemon starts: it may
	// write more files there (keys and certificates, say). An error
	// fails the test.
	Prepare func(node, dir string) error
}

// issueCertificates makes a CA for the chain and, with each node's own
// binary ("NAME pki issue"), the certificate and key its configuration
// names (LABEL.crt, LABEL.key and ca.crt: the instance directories of
// configs/example are named for their labels), so that the chain runs on
// TLS as shipped.
func (c *Chain) issueCertificates(instances []string) {
	t := c.t
	t.Helper()
	caDir := filepath.Join(c.Dir, "ca")
	if _, errOut, code := RunCommand(t, c.Dir, Bin(t, "epproxy"), "pki", "ca", "--out", caDir); code != 0 {
		t.Fatalf("epproxy pki ca: exit %d\n%s", code, errOut)
	}
	daemons := map[string]string{}
	for _, n := range append(slices.Clone(SessionNodes), EventNodes...) {
		daemons[n.Name] = n.Daemon
	}
	for _, node := range instances {
		d := daemons[node]
		if d == "" {
			continue
		}
		if _, errOut, code := RunCommand(t, c.Dir, Bin(t, d), "pki", "issue", "--ca", caDir, "--label", node, "--out", c.NodeDir(node)); code != 0 {
			t.Fatalf("%s pki issue --label %s: exit %d\n%s", d, node, code, errOut)
		}
	}
}

// Chain is a copy of configs/example on ports of its own, and the
// daemons started from it. Its methods fail the test they were made for.
type Chain struct {
	// Dir holds one instance directory per node of configs/example.
	Dir string

	t     testing.TB
	nodes []Node
	ports map[int]int // example port -> port of this run
	procs map[string]*Process
}

var reAddr = regexp.MustCompile(`127\.0\.0\.1:(\d+)(?:-(\d+))?`)

// NewChain copies configs/example into a new temporary directory and
// rewrites every 127.0.0.1:PORT in its YAML files, to o.Fixed[PORT] when
// given, else to a FreePort, the same one for the same PORT in every file,
// so that the links still match; a range 127.0.0.1:LOW-HIGH (a port_map
// entry) to as many free ports in a row, Port(LOW) the first. It starts nothing. It skips the test
// with -short (see BinDir).
func NewChain(t testing.TB, o Options) *Chain {
	t.Helper()
	BinDir(t) // skip early, and build before the clock of any test runs
	if o.Nodes == nil {
		o.Nodes = SessionNodes
	}
	c := &Chain{t: t, Dir: t.TempDir(), nodes: o.Nodes, ports: map[int]int{}, procs: map[string]*Process{}}
	for k, v := range o.Fixed {
		c.ports[k] = v
	}
	src := filepath.Join(ModuleRoot(t), "configs", "example")
	mapPort := func(m string) string {
		sub := reAddr.FindStringSubmatch(m)
		p, _ := strconv.Atoi(sub[1])
		if sub[2] != "" { // a range LOW-HIGH: as many free ports in a row
			hi, _ := strconv.Atoi(sub[2])
			np, ok := c.ports[p]
			if !ok {
				np = muxtest.FreePortRange(t, hi-p+1)
				c.ports[p] = np
			}
			return "127.0.0.1:" + strconv.Itoa(np) + "-" + strconv.Itoa(np+hi-p)
		}
		np, ok := c.ports[p]
		if !ok {
			np = FreePort(t)
			c.ports[p] = np
		}
		return "127.0.0.1:" + strconv.Itoa(np)
	}
	var instances []string
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		out := filepath.Join(c.Dir, rel)
		if d.IsDir() {
			if rel != "." {
				instances = append(instances, rel)
			}
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".yaml") {
			text := reAddr.ReplaceAllStringFunc(string(b), mapPort)
			if o.Edit != nil {
				text = o.Edit(filepath.Dir(rel), text)
			}
			b = []byte(text + o.Tuning)
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy the example configurations: %v", err)
	}
	c.issueCertificates(instances)
	if o.Prepare != nil {
		for _, node := range instances {
			if err := o.Prepare(node, c.NodeDir(node)); err != nil {
				t.Fatalf("prepare %s: %v", node, err)
			}
		}
	}
	// Registered before any daemon starts, so it runs after they were
	// stopped: their logs go with the temporary directory.
	t.Cleanup(func() {
		if t.Failed() {
			showLogs(t, c.Procs(), 25)
		}
	})
	return c
}

// Port is this run's port for the example's port.
func (c *Chain) Port(examplePort int) int {
	p, ok := c.ports[examplePort]
	if !ok {
		c.t.Fatalf("port %d is not in configs/example", examplePort)
	}
	return p
}

// Addr is this run's loopback address for the example's port.
func (c *Chain) Addr(examplePort int) string {
	return "127.0.0.1:" + strconv.Itoa(c.Port(examplePort))
}

// NodeDir is the instance directory of node.
func (c *Chain) NodeDir(node string) string { return filepath.Join(c.Dir, node) }

// Start starts the daemon of node (again) from its instance directory; it
// fails the test when it already runs. The process is the node's Proc
// from now on.
func (c *Chain) Start(node string) *Process {
	c.t.Helper()
	if p := c.procs[node]; p != nil && !p.Exited() {
		c.t.Fatalf("%s is already running", node)
	}
	for _, n := range c.nodes {
		if n.Name == node {
			p := StartDaemon(c.t, n.Name, n.Daemon, c.NodeDir(n.Name))
			c.procs[node] = p
			return p
		}
	}
	c.t.Fatalf("%s is not one of the chain's nodes %v", node, c.nodes)
	return nil
}

// StartAll starts every node, in order.
func (c *Chain) StartAll() {
	c.t.Helper()
	for _, n := range c.nodes {
		c.Start(n.Name)
	}
}

// Proc is the node's latest process; it fails the test when the node was
// never started.
func (c *Chain) Proc(node string) *Process {
	c.t.Helper()
	p := c.procs[node]
	if p == nil {
		c.t.Fatalf("%s was never started", node)
	}
	return p
}

// Procs are the latest processes of the nodes started so far, in the
// order of the nodes.
func (c *Chain) Procs() []*Process {
	var out []*Process
	for _, n := range c.nodes {
		if p := c.procs[n.Name]; p != nil {
			out = append(out, p)
		}
	}
	return out
}
