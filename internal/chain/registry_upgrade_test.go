package chain

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// A successor's keeper binds the port_map ports on the sockets the
// running epproxy hands over, while that one still holds them: the port
// of an endpoint in the registry is taken from the inherited sockets, and
// answers on after the running node lets its copy go; an inherited port
// that no endpoint has any more is left to closeUnused, which frees it.
func TestRegistryKeeperAdoptsHandedOverPorts(t *testing.T) {
	dir := t.TempDir()
	lo := freeRange(t, 2)
	cfg := keeperConfig(t, dir, lo, 2)
	root := mux.Config{Label: "epp", Role: mux.RoleRoot, Tuning: muxtest.FastTuning()}
	var stopOld func()
	old := muxtest.StartNode(t, root, muxtest.WithStop(&stopOld))
	k1, err := newRegistryKeeper(cfg, old, muxtest.Log(t))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	old.LoadEndpoints([]mux.Endpoint{{Addr: netip.MustParseAddr("10.0.0.5"), Label: "gwp-a", First: now, Last: now}})
	k1.sync()
	files, err := old.ListenerFiles()
	if err != nil {
		t.Fatal(err)
	}
	inherited := map[string]net.Listener{}
	for _, f := range files {
		ln, err := net.FileListener(f.File)
		_ = f.File.Close()
		if err != nil {
			t.Fatal(err)
		}
		inherited[f.Addr] = ln
	}
	held := "127.0.0.1:" + strconv.Itoa(lo)
	if inherited[held] == nil {
		t.Fatalf("the running node handed over %v, not its port_map port %s", files, held)
	}
	// A port the running node had and the registry file no longer assigns.
	stale := "127.0.0.1:" + strconv.Itoa(lo+1)
	sl, err := net.Listen("tcp", stale)
	if err != nil {
		t.Fatal(err)
	}
	inherited[stale] = sl

	succ := muxtest.StartNode(t, root)
	k2, err := newRegistryKeeper(cfg, succ, muxtest.Log(t))
	if err != nil {
		t.Fatal(err)
	}
	rest := k2.adopt(inherited)
	if succ.EntryAddr("legacy:"+strconv.Itoa(lo)) == nil {
		t.Fatalf("the successor has no entry on %s", held)
	}
	if len(rest) != 1 || rest[stale] == nil {
		t.Fatalf("left over %v; want the stale port %s alone", rest, stale)
	}
	closeUnused(rest, cfg)
	if ln, err := net.Listen("tcp", stale); err != nil {
		t.Errorf("the stale port is still held: %v", err)
	} else {
		_ = ln.Close()
	}

	// The running node lets its copy go: the port is still the same
	// socket, accepting for the successor (which has no route to the
	// endpoint here, and resets the connection, possibly before the dial
	// returns; a port nobody listens on refuses it instead).
	stopOld()
	c, err := net.DialTimeout("tcp", held, 10*time.Second)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("%s after the running node stopped: %v", held, err)
	}
	if c != nil {
		_ = c.Close()
	}
}
