package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// TestUpgradePortMap upgrades epp-main while an endpoint that made an
// upcall (127.0.3.7, registered by gwp-site-b) is reached through its
// port_map port: a session held open across the upgrade completes with
// every byte (SHA-256 both ways); sessions through the port succeed
// before, during and right after the upgrade, none refused; and the new
// process listens on the very socket the old one listened on (handed over
// with the other listening sockets, not bound again once the old one let
// it go).
func TestUpgradePortMap(t *testing.T) {
	const grace = 5 * time.Second // shutdown_grace of configs/example
	gateway := startSiteEndpoint(t, "127.0.0.1", "gateway")
	ep := startTargetAt(t, "127.0.3.7", "endpoint-3-7")
	c := startRegistryChain(t, int(gateway.port), ep.port())
	upcallFrom(t, c.Addr(e2etest.PortUpB), "127.0.3.7")
	pm := entryRoute{"port_map downcall-legacy", "127.0.0.1:" + strconv.Itoa(c.Port(examplePortMap)), ep}
	e2etest.Eventually(t, 20*time.Second, "the endpoint through its port_map port", func() error {
		return probeSession(t, pm)
	})
	// The new process learns the port from the registry file.
	reg := filepath.Join(c.NodeDir("epp-main"), "registry.json")
	e2etest.Eventually(t, 10*time.Second, "the endpoint's port in "+reg, func() error {
		b, err := os.ReadFile(reg)
		if err != nil || !strings.Contains(string(b), `"127.0.3.7": `+strconv.Itoa(c.Port(examplePortMap))) {
			return fmt.Errorf("%s: %s, %v", reg, b, err)
		}
		return nil
	})
	before, ok := e2etest.ListeningSocket(c.Proc("epp-main").Pid(), pm.entry)
	if !ok {
		t.Fatalf("epp-main does not listen on %s", pm.entry)
	}

	held := startHeld(t, pm)
	newPid := upgradeNode(t, c, e2etest.Node{Name: "epp-main", Daemon: "epproxy"}, grace, []*heldSession{held}, []entryRoute{pm})
	after, ok := e2etest.ListeningSocket(newPid, pm.entry)
	if !ok || after.Inode != before.Inode {
		t.Errorf("the new epp-main listens on %s with socket %d (found %v); the old one listened with socket %d", pm.entry, after.Inode, ok, before.Inode)
	}
}

// TestUpgradeDuringReloadDrain removes relay-dmz2's link to gwp-site-b by
// a reload (SIGHUP) while a downcall to site B is held open on it, and
// upgrades relay-dmz2 while that link still drains: the held session goes
// on through the old process and completes with every byte (SHA-256 both
// ways); sessions to and from site A succeed before, during and after the
// upgrade; the old process exits 0 within its shutdown_grace of the
// upgrade, having aborted nothing; and site B stays cut off, as the new
// configuration says.
func TestUpgradeDuringReloadDrain(t *testing.T) {
	const grace = 20 * time.Second // the removed link drains for as long
	tg := startTargets(t)
	c := startChain(t, tg)
	routes := entryRoutes(c, tg)
	upA, upB, downA, downB := routes[0], routes[1], routes[2], routes[3]
	relay := c.Proc("relay-dmz2")
	held := startHeld(t, downB)

	b, err := os.ReadFile(relay.Conf)
	if err != nil {
		t.Fatal(err)
	}
	// The child's item: its label line and every line indented below it.
	siteB := regexp.MustCompile(`(?m)^  - label: gwp-site-b\n(?:    [^\n]*\n)*`)
	next := siteB.ReplaceAllString(string(b), "")
	next = strings.Replace(next, "shutdown_grace: 5s", fmt.Sprintf("shutdown_grace: %s", grace), 1)
	if next == string(b) || !strings.Contains(next, "shutdown_grace: "+grace.String()) {
		t.Fatalf("no child gwp-site-b or no shutdown_grace in %s:\n%s", relay.Conf, b)
	}
	if err := os.WriteFile(relay.Conf, []byte(next), 0o644); err != nil {
		t.Fatal(err)
	}
	skip := relay.LogSize()
	relay.Signal(t, syscall.SIGHUP)
	relay.WaitLog(t, skip, 10*time.Second, `config: link to gwp-site-b removed`, `config: configuration reloaded from `)
	if relay.Exited() {
		t.Fatalf("relay-dmz2 exited on the reload: %v", relay.Err())
	}

	upgradeNode(t, c, e2etest.Node{Name: "relay-dmz2", Daemon: "relay"}, grace, []*heldSession{held}, []entryRoute{upA, downA})
	if strings.Contains(relay.LogSince(skip), "removed link closed: aborting") {
		t.Errorf("the removed link's session was aborted:\n%s", relay.LogSince(skip))
	}
	for _, r := range []entryRoute{upB, downB} {
		if err := routeSession(t, r); err == nil {
			t.Errorf("%s: a session went through the removed link", r.name)
		}
	}
}
