package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// The example chain's gwp-site-b learns its endpoints from its upcall
// entry (register_endpoints) and epp-main maps the ports 19520-19529
// (downcall-legacy, a port_map entry) to them. An endpoint at 127.0.3.7,
// outside every served network, is reachable by address once it has
// made an upcall, and stays so across a restart of epp-main, on the same
// port_map port.

const examplePortMap = 19520 // epp-main's downcall-legacy: 19520-19529

// upcallFrom makes an upcall through entry from the source address ip
// and checks that it reached the gateway.
func upcallFrom(t *testing.T, entry, ip string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 20 * time.Second}
	conn, err := d.Dial("tcp", entry)
	if err != nil {
		t.Skipf("cannot dial from %s: %v", ip, err)
	}
	defer conn.Close()
	if got, err := readLine(conn); err != nil || got != "gateway" {
		t.Fatalf("upcall from %s: read %q, %v; want the gateway's name", ip, got, err)
	}
}

// reachByName checks that a connection on conn reaches the endpoint
// name: its name first, then the echo of a line.
func reachByName(conn net.Conn, name string) error {
	defer conn.Close()
	got, err := readLine(conn)
	if err != nil || got != name {
		return fmt.Errorf("read %q, %v; want %q", got, err, name)
	}
	if _, err := io.WriteString(conn, "ping\n"); err != nil {
		return err
	}
	if got, err := readLine(conn); err != nil || got != "ping" {
		return fmt.Errorf("echo %q, %v", got, err)
	}
	return nil
}

func viaPortMap(addr, name string) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	return reachByName(conn, name)
}

func viaSOCKS(socks, ip string, port uint16, name string) error {
	conn, rep, err := muxtest.SOCKSConnect(socks, ip, port, "", "")
	if err != nil || rep != 0 {
		if conn != nil {
			_ = conn.Close()
		}
		return fmt.Errorf("socks reply %d, %v", rep, err)
	}
	return reachByName(conn, name)
}

func registryEntry(st mux.NodeStatus, addr string) (mux.EndpointStatus, bool) {
	for _, e := range st.Endpoints {
		if e.Addr == addr {
			return e, true
		}
	}
	return mux.EndpointStatus{}, false
}

// startRegistryChain starts the example chain with its gateway at
// gatewayPort and the port_map entry's endpoint port endpointPort, and
// waits until it is formed.
func startRegistryChain(t *testing.T, gatewayPort, endpointPort int) *e2etest.Chain {
	t.Helper()
	c := e2etest.NewChain(t, e2etest.Options{
		Nodes:  e2etest.SessionNodes,
		Fixed:  map[int]int{e2etest.PortGateway: gatewayPort},
		Tuning: e2etest.FastTuning,
		Edit: func(node, text string) string {
			return strings.ReplaceAll(text, "endpoint_port: 19703", "endpoint_port: "+strconv.Itoa(endpointPort))
		},
	})
	c.StartAll()
	waitFormed(t, c, 0)
	return c
}

func TestEndpointRegistryDowncalls(t *testing.T) {
	gateway := startSiteEndpoint(t, "127.0.0.1", "gateway")
	ep := startSiteEndpoint(t, "127.0.3.7", "endpoint-3-7")
	c := startRegistryChain(t, int(gateway.port), int(ep.port))
	socks := c.Addr(e2etest.PortSOCKS)
	pm := "127.0.0.1:" + strconv.Itoa(c.Port(examplePortMap))
	epp := e2etest.Node{Name: "epp-main", Daemon: "epproxy"}

	// Never seen: in no network, refused.
	if err := viaSOCKS(socks, "127.0.3.7", ep.port, ep.name); err == nil {
		t.Fatal("an endpoint never seen was reached")
	}

	upcallFrom(t, c.Addr(e2etest.PortUpB), "127.0.3.7")
	e2etest.Eventually(t, 20*time.Second, "the endpoint by SOCKS5 through the registry", func() error {
		return viaSOCKS(socks, "127.0.3.7", ep.port, ep.name)
	})
	e2etest.Eventually(t, 20*time.Second, "the endpoint through its port_map port", func() error {
		return viaPortMap(pm, ep.name)
	})
	c.Proc("gwp-site-b").WaitLog(t, 0, 10*time.Second, "endpoint registered")

	st, err := nodeStatus(t, c, epp)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := registryEntry(st, "127.0.3.7")
	if !ok || e.Label != "gwp-site-b" || !e.Active || e.Ports["downcall-legacy"] != c.Port(examplePortMap) || e.First.IsZero() {
		t.Fatalf("registry at epp-main: %+v", st.Endpoints)
	}
	out, errOut, code := e2etest.RunCommand(t, c.NodeDir("epp-main"), e2etest.Bin(t, "epproxy"), "status",
		"--config", filepath.Join(c.NodeDir("epp-main"), "epproxy.yaml"))
	if code != 0 || !strings.Contains(out, "endpoints: 1 registered, 1 announced now") ||
		!strings.Contains(out, "127.0.3.7") || !strings.Contains(out, "downcall-legacy:"+strconv.Itoa(c.Port(examplePortMap))) {
		t.Errorf("epproxy status (exit %d, %s):\n%s", code, errOut, out)
	}

	// A restart of epp-main: the registry file holds the endpoint; the
	// new process lists it with the same first seen, and binds the same
	// port to it once gwp-site-b announces it again.
	c.Proc("epp-main").Stop(t)
	b, err := os.ReadFile(filepath.Join(c.NodeDir("epp-main"), "registry.json"))
	if err != nil || !strings.Contains(string(b), `"127.0.3.7"`) {
		t.Fatalf("registry.json after the stop: %s, %v", b, err)
	}
	var file struct {
		Ports map[string]map[string]int `json:"ports"`
	}
	if err := json.Unmarshal(b, &file); err != nil || file.Ports["downcall-legacy"]["127.0.3.7"] != c.Port(examplePortMap) {
		t.Fatalf("registry.json ports: %+v, %v", file.Ports, err)
	}
	skip := c.Proc("epp-main").LogSize()
	c.Start("epp-main")
	waitFormed(t, c, skip)
	c.Proc("epp-main").WaitLog(t, skip, 10*time.Second, "registry: 1 endpoints loaded")
	e2etest.Eventually(t, 20*time.Second, "the endpoint through the same port_map port after the restart", func() error {
		return viaPortMap(pm, ep.name)
	})
	e2etest.Eventually(t, 20*time.Second, "the endpoint by SOCKS5 after the restart", func() error {
		return viaSOCKS(socks, "127.0.3.7", ep.port, ep.name)
	})
	st, err = nodeStatus(t, c, epp)
	if err != nil {
		t.Fatal(err)
	}
	e2, ok := registryEntry(st, "127.0.3.7")
	if !ok || !e2.First.Equal(e.First) || e2.Label != "gwp-site-b" || !e2.Active {
		t.Errorf("registry after the restart: %+v; before: %+v", e2, e)
	}

	// A restart of gwp-site-b: its registry file holds what it learnt;
	// the new process announces the endpoint again at once, so that it
	// is reached with no new upcall.
	c.Proc("gwp-site-b").Stop(t)
	b, err = os.ReadFile(filepath.Join(c.NodeDir("gwp-site-b"), "registry.json"))
	if err != nil || !strings.Contains(string(b), `"127.0.3.7"`) {
		t.Fatalf("gwp-site-b's registry.json after the stop: %s, %v", b, err)
	}
	skip = c.Proc("gwp-site-b").LogSize()
	c.Start("gwp-site-b")
	c.Proc("gwp-site-b").WaitLog(t, skip, 10*time.Second, "registry: 1 endpoints learnt before loaded")
	e2etest.Eventually(t, 20*time.Second, "the endpoint by SOCKS5 after gwp-site-b's restart, with no new upcall", func() error {
		return viaSOCKS(socks, "127.0.3.7", ep.port, ep.name)
	})
	if n := strings.Count(c.Proc("gwp-site-b").LogSince(skip), "endpoint registered"); n != 0 {
		t.Errorf("gwp-site-b registered the endpoint %d times after its restart: it was not known", n)
	}
}
