package eventse2e

import (
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// TestEventSessionLogged: an event session is logged like any other
// session: the eventsink logs it opened and closed with its id at level 3,
// and every hop to the epproxy's event service, the epproxy included,
// logs it closed with that id and the same payload bytes.
func TestEventSessionLogged(t *testing.T) {
	c := newChain(t, chainOpts{})
	startEventServer(t, c.Addr(e2etest.PortEvents))
	c.StartAll()
	lines := c.Addr(e2etest.PortLinesTCP)
	e2etest.WaitListening(t, lines, 10*time.Second)
	sink := c.Proc("es-site-a")
	sink.WaitLog(t, 0, 20*time.Second, `3 link: link up \[.*l=gwp-site-a`)
	off := sink.LogSize()

	conn, err := net.DialTimeout("tcp", lines, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte(eventText(numEIF, 1) + "\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()

	end := sink.WaitLog(t, off, 30*time.Second, `3 session: closed \[.*service=events`)
	var id string
	var want map[string]string
	for _, l := range strings.Split(sink.LogSince(off)[:end-off], "\n") {
		if strings.Contains(l, "3 session: closed [") {
			want = e2etest.LogFields(l)
			id = want["id"]
		}
	}
	if id == "" || want["up"] == "0" || want["down"] == "0" {
		t.Fatalf("the eventsink's closed line has no id or no bytes: %v", want)
	}
	if len(sink.SessionLines(off, id)) < 2 || !strings.Contains(sink.SessionLines(off, id)[0], "3 session: opened [") {
		t.Errorf("the eventsink did not log the session opened at level 3 with its id:\n%s", strings.Join(sink.SessionLines(off, id), "\n"))
	}
	for _, h := range []string{"gwp-site-a", "relay-dmz2", "relay-dmz1", "epp-main"} {
		p := c.Proc(h)
		p.WaitLog(t, 0, 20*time.Second, `3 session: (closed|aborted) \[.*id=`+regexp.QuoteMeta(id)+` `)
		var got map[string]string
		for _, l := range p.SessionLines(0, id) {
			if strings.Contains(l, "3 session: closed [") {
				got = e2etest.LogFields(l)
			}
		}
		if got == nil || got["up"] != want["up"] || got["down"] != want["down"] {
			t.Errorf("%s: closed line %v, want up=%s down=%s; its lines:\n%s", h, got, want["up"], want["down"], strings.Join(p.SessionLines(0, id), "\n"))
		}
	}
}
