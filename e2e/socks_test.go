package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
	"github.com/relaychain/relaychain/mux"
	"github.com/relaychain/relaychain/mux/muxtest"
)

// The example chain's gwproxies serve 127.0.1.0/24 (site A) and
// 127.0.2.0/24 (site B); epp-main has a SOCKS5 and an HTTP CONNECT entry
// that route by those networks. These tests put endpoints on those
// addresses and reach them by address through the real binaries.

// siteEndpoint is an endpoint at one of the sites' addresses: it sends
// its name and a newline, then echoes what it reads until the client
// half-closes, then half-closes too; on "RST\n" it resets the
// connection. It reports how each connection's reading ended.
type siteEndpoint struct {
	name  string
	ln    net.Listener
	port  uint16
	ended chan error // per connection: nil for a clean end (FIN), else the read error
}

func startSiteEndpoint(t *testing.T, ip, name string) *siteEndpoint {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	e := &siteEndpoint{name: name, ln: ln, port: uint16(ln.Addr().(*net.TCPAddr).Port), ended: make(chan error, 64)}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(60 * time.Second))
				_, _ = io.WriteString(c, name+"\n")
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if string(buf[:n]) == "RST\n" {
							_ = c.(*net.TCPConn).SetLinger(0)
							e.ended <- errors.New("reset asked")
							return
						}
						if _, werr := c.Write(buf[:n]); werr != nil {
							e.ended <- werr
							return
						}
					}
					if err == io.EOF {
						_ = c.(*net.TCPConn).CloseWrite()
						e.ended <- nil
						return
					}
					if err != nil {
						e.ended <- err
						return
					}
				}
			}()
		}
	}()
	return e
}

// nextEnd waits for how the endpoint's next connection ended.
func (e *siteEndpoint) nextEnd(t *testing.T) error {
	t.Helper()
	select {
	case err := <-e.ended:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no connection ended within 30s", e.name)
		return nil
	}
}

// readLine reads one line, byte by byte.
func readLine(c net.Conn) (string, error) {
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	var b []byte
	one := make([]byte, 1)
	for len(b) < 128 {
		if _, err := io.ReadFull(c, one); err != nil {
			return string(b), err
		}
		if one[0] == '\n' {
			return string(b), nil
		}
		b = append(b, one[0])
	}
	return string(b), errors.New("line too long")
}

func TestSOCKSAndConnectByAddress(t *testing.T) {
	siteA := startSiteEndpoint(t, "127.0.1.7", "endpoint-a")
	siteB := startSiteEndpoint(t, "127.0.2.7", "endpoint-b")
	c := startChainWith(t, nil)
	socks, connect := c.Addr(e2etest.PortSOCKS), c.Addr(e2etest.PortConnect)
	// The networks come up the tree after the routes: wait until both
	// sites answer by address.
	for _, e := range []*siteEndpoint{siteA, siteB} {
		ip := e.ln.Addr().(*net.TCPAddr).IP.String()
		e2etest.Eventually(t, 20*time.Second, "the network of "+e.name+" at the root", func() error {
			conn, rep, err := muxtest.SOCKSConnect(socks, ip, e.port, "", "")
			if err != nil || rep != 0 {
				return fmt.Errorf("rep %d, %v", rep, err)
			}
			defer conn.Close()
			_, err = readLine(conn)
			_ = conn.(*net.TCPConn).CloseWrite()
			_, _ = io.Copy(io.Discard, conn)
			return err
		})
		if err := e.nextEnd(t); err != nil {
			t.Fatalf("%s: the probe ended with %v", e.name, err)
		}
	}
	base := e2etest.FDBaseline(t, c.Procs()...)

	for _, e := range []*siteEndpoint{siteA, siteB} {
		ip := e.ln.Addr().(*net.TCPAddr).IP.String()
		dials := []struct {
			name string
			dial func() (net.Conn, error)
		}{
			{"socks5", func() (net.Conn, error) {
				conn, rep, err := muxtest.SOCKSConnect(socks, ip, e.port, "", "")
				if err == nil && rep != 0 {
					err = fmt.Errorf("socks reply %d", rep)
				}
				return conn, err
			}},
			{"http_connect", func() (net.Conn, error) {
				conn, st, err := muxtest.HTTPConnect(connect, ip, e.port, "", "")
				if err == nil && st != 200 {
					err = fmt.Errorf("status %d", st)
				}
				return conn, err
			}},
		}
		for _, d := range dials {
			// Half-close: the last bytes written before the client's FIN
			// come back, then the endpoint's FIN, then a clean end there.
			conn, err := d.dial()
			if err != nil {
				t.Fatalf("%s to %s: %v", d.name, e.name, err)
			}
			if got, err := readLine(conn); err != nil || got != e.name {
				t.Fatalf("%s to %s:%d reached %q (%v), want %s", d.name, ip, e.port, got, err, e.name)
			}
			payload := strings.Repeat(d.name+" to "+e.name+"; ", 20000)
			go func() {
				_, _ = io.WriteString(conn, payload)
				_ = conn.(*net.TCPConn).CloseWrite()
			}()
			_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
			back, err := io.ReadAll(conn)
			if err != nil || string(back) != payload {
				t.Fatalf("%s to %s after half-close: %d of %d bytes back, %v", d.name, e.name, len(back), len(payload), err)
			}
			_ = conn.Close()
			if err := e.nextEnd(t); err != nil {
				t.Fatalf("%s to %s: the endpoint saw %v, want a clean end", d.name, e.name, err)
			}

			// Abort from the client: a reset, never a clean end, at the endpoint.
			conn, err = d.dial()
			if err != nil {
				t.Fatalf("%s to %s: %v", d.name, e.name, err)
			}
			if _, err := readLine(conn); err != nil {
				t.Fatal(err)
			}
			_ = conn.(*net.TCPConn).SetLinger(0)
			_ = conn.Close()
			if err := e.nextEnd(t); err == nil {
				t.Fatalf("%s to %s: the client's reset reached the endpoint as a clean end", d.name, e.name)
			}

			// Abort from the endpoint: a reset at the client.
			conn, err = d.dial()
			if err != nil {
				t.Fatalf("%s to %s: %v", d.name, e.name, err)
			}
			if _, err := readLine(conn); err != nil {
				t.Fatal(err)
			}
			_, _ = io.WriteString(conn, "RST\n")
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.ReadAll(conn); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("%s to %s: the endpoint's reset reached the client as %v, want a reset", d.name, e.name, err)
			}
			_ = conn.Close()
			_ = e.nextEnd(t)
		}
	}

	// Outside the networks the entries' rules allow (configs/example):
	// a default deny, not allowed by ruleset (2), 403. An allowed address
	// no node serves (3, 502): TestSOCKSRulesAtTheEPProxy.
	if _, rep, err := muxtest.SOCKSConnect(socks, "127.0.4.7", 22, "", ""); err != nil || rep != 2 {
		t.Fatalf("socks outside the networks: reply %d, %v; want 2", rep, err)
	}
	if _, st, err := muxtest.HTTPConnect(connect, "127.0.4.7", 22, "", ""); err != nil || st != 403 {
		t.Fatalf("connect outside the networks: %d, %v; want 403", st, err)
	}
	c.Proc("epp-main").WaitLog(t, 0, 10*time.Second, `127\.0\.4\.7:22 for client 127\.0\.0\.1 of entry downcall-socks: denied by default deny`)
	// In a served network, nothing listening: connection refused (5), 502.
	closed := uint16(e2etest.FreePort(t))
	if _, rep, err := muxtest.SOCKSConnect(socks, "127.0.1.7", closed, "", ""); err != nil || rep != 5 {
		t.Fatalf("socks to a closed port: reply %d, %v; want 5", rep, err)
	}
	c.Proc("gwp-site-a").WaitLog(t, 0, 10*time.Second, `refused: dial 127\.0\.1\.7:`)
	e2etest.CheckNoLeaks(t, base, 30*time.Second)
}

// A scripted parent (an in-process node with relay-dmz2's certificate)
// sends gwp-site-a a session whose destination is site B's address: the
// root would never route it there, and gwp-site-a's own networks refuse
// it, logged.
func TestForgedDestinationRefusedByGWProxy(t *testing.T) {
	siteA := startSiteEndpoint(t, "127.0.1.7", "endpoint-a")
	siteB := startSiteEndpoint(t, "127.0.2.7", "endpoint-b")
	c := e2etest.NewChain(t, e2etest.Options{Nodes: e2etest.SessionNodes, Tuning: e2etest.FastTuning})
	dir := c.NodeDir("relay-dmz2")
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "relay-dmz2.crt"), filepath.Join(dir, "relay-dmz2.key"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	tun := muxtest.FastTuning()
	peer := muxtest.StartNode(t, mux.Config{Label: "relay-dmz2", Role: mux.RoleRelay, Tuning: tun,
		TLS: &mux.StaticCredentials{Cert: cert, Roots: roots},
		Links: []mux.LinkConfig{
			{Peer: "relay-dmz1", Parent: true, Dial: c.Addr(e2etest.PortDMZ2)}, // nobody there
			{Peer: "gwp-site-a", Listen: c.Addr(e2etest.PortDMZ2Out), AcceptNetworks: []string{"127.0.1.0/24", "*.site-a.example"}},
		}})
	gwp := c.Start("gwp-site-a")
	muxtest.WaitFor(t, 20*time.Second, "gwp-site-a to link to the scripted parent", func() bool {
		return len(peer.Networks()) == 2
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = peer.OpenAddr(ctx, "gwp-site-a", "127.0.2.7", siteB.port)
	var se *mux.StatusError
	if !errors.As(err, &se) || se.Code != mux.StatusDenied || se.Node != "gwp-site-a" {
		t.Fatalf("forged destination: %v; want denied by gwp-site-a", err)
	}
	gwp.WaitLog(t, 0, 10*time.Second, `session refused: destination not served here`, `127\.0\.2\.7`)
	select {
	case err := <-siteB.ended:
		t.Fatalf("site B was dialled: %v", err)
	default:
	}
	// The same peer reaches what gwp-site-a serves.
	conn, err := peer.OpenAddr(ctx, "gwp-site-a", "127.0.1.7", siteA.port)
	if err != nil {
		t.Fatalf("open to site A: %v", err)
	}
	if got, err := readLine(conn); err != nil || got != "endpoint-a" {
		t.Fatalf("reached %q, %v", got, err)
	}
	_ = conn.Close()
}
