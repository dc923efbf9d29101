package eventse2e

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// TestSystemLoggerThroughChain sends syslog messages with the system's own
// logger (util-linux) to the real eventsink's lines listener over TCP,
// octet-counted (RFC 6587) and newline-framed, and finds them at the event
// server as sent: the count is no part of the event. It skips where
// logger, or its --octet-count, is not there.
func TestSystemLoggerThroughChain(t *testing.T) {
	logger, err := exec.LookPath("logger")
	if err != nil {
		t.Skip("logger (util-linux) is not installed: octet counting is not tried with a real sender")
	}
	if out, err := exec.Command(logger, "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "--octet-count") {
		t.Skipf("this logger has no --octet-count (util-linux logger 2.26 and later): %v", err)
	}
	c := newChain(t, chainOpts{})
	srv := startEventServer(t, c.Addr(e2etest.PortEvents))
	c.StartAll()
	lines := c.Addr(e2etest.PortLinesTCP)
	e2etest.WaitListening(t, lines, 10*time.Second)
	host, port, _ := net.SplitHostPort(lines)
	msgs := map[string][]string{
		"relay chain e2e octet-counted message":     {"--octet-count"},
		"relay chain e2e newline-framed message":    nil,
		"relay chain e2e octet-counted rfc3164 one": {"--octet-count", "--rfc3164"},
	}
	for msg, extra := range msgs {
		args := append([]string{"--tcp", "--server", host, "--port", port, "--tag", "rce2e", "--priority", "user.notice"}, extra...)
		if out, err := exec.Command(logger, append(args, msg)...).CombinedOutput(); err != nil {
			t.Fatalf("logger %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	e2etest.Eventually(t, 30*time.Second, "the logger's messages at the event server", func() error {
		_, other, _ := srv.snapshot()
		for msg := range msgs {
			found := false
			for _, l := range other {
				if strings.HasSuffix(l, msg) {
					found = true
					if !strings.HasPrefix(l, "<13>") || !strings.Contains(l, "rce2e") {
						return fmt.Errorf("event %q: want <13>...rce2e...%s", l, msg)
					}
				}
			}
			if !found {
				return fmt.Errorf("%q not received (received: %q)", msg, other)
			}
		}
		return nil
	})
}
