package eventse2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaychain/relaychain/e2e/e2etest"
)

// The events the senders send. Each carries its sender's id and a counter
// from 1; the text is a function of both, so the event server can tell a
// whole event from a fragment or from anything else.
//
// Senders 0..6 send EIF events over TCP, 7..13 lines over TCP, 14..19
// lines over UDP (one event per datagram).
const (
	numSenders = 20
	numEIF     = 7
	numLinesTC = 7
)

type senderKind int

const (
	kindEIF senderKind = iota
	kindLinesTCP
	kindUDP
)

func (k senderKind) String() string {
	return [...]string{"eif/tcp", "lines/tcp", "lines/udp"}[k]
}

func kindOf(sender int) senderKind {
	switch {
	case sender < numEIF:
		return kindEIF
	case sender < numEIF+numLinesTC:
		return kindLinesTCP
	}
	return kindUDP
}

// eventText is the event as the event server receives it (without the
// newline).
func eventText(sender, n int) string {
	pad := "abcdefghijklmnopqrstuvwxyz0123456789"[n%26:][:10]
	if kindOf(sender) == kindEIF {
		return fmt.Sprintf("E2E_Event;sender=%02d;n=%07d;origin='site a %s';severity=WARNING;END", sender, n, pad)
	}
	return fmt.Sprintf("<13>Nov 21 07:46:48 host-a e2e[42]: sender=%02d n=%07d text=%s end", sender, n, pad)
}

// parseEvent returns the sender and counter of an event text, and false for
// anything that is not exactly a whole event.
func parseEvent(s string) (sender, n int, ok bool) {
	i := strings.Index(s, "sender=")
	if i < 0 || len(s) < i+len("sender=00;n=0000000") {
		return 0, 0, false
	}
	sender, err1 := strconv.Atoi(s[i+7 : i+9])
	n, err2 := strconv.Atoi(s[i+12 : i+19])
	if err1 != nil || err2 != nil || sender < 0 || sender >= numSenders || n <= 0 || eventText(sender, n) != s {
		return 0, 0, false
	}
	return sender, n, true
}

// record is one event the server received.
type record struct {
	sender, n int
}

// eventServer stands in for the event server: it records every line it
// reads, in order of arrival, across its connections. It can go down (stop
// listening and close its connections) and come back on the same address.
type eventServer struct {
	t    testing.TB
	addr string

	mu      sync.Mutex
	ln      net.Listener
	conns   map[net.Conn]bool
	recs    []record
	maxN    [numSenders]int // highest counter received per sender
	count   [numSenders]int // records per sender
	other   []string        // whole lines that are not events
	torn    []string        // partial lines at the end of a connection
	accepts int
	wg      sync.WaitGroup
}

func startEventServer(t testing.TB, addr string) *eventServer {
	t.Helper()
	s := &eventServer{t: t, addr: addr, conns: map[net.Conn]bool{}}
	s.up()
	t.Cleanup(func() {
		s.down()
		s.wg.Wait()
	})
	return s
}

// up listens on the server's address.
func (s *eventServer) up() {
	s.t.Helper()
	var ln net.Listener
	var err error
	for range 200 { // the address may be in use for a moment after down
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("event server: %v", err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.wg.Add(1)
	go s.acceptLoop(ln)
}

// down stops listening and closes every connection, and waits until their
// readers ended. The caller makes sure nothing is in flight (a server that
// goes down with unread bytes loses them: the event server protocol has
// no acknowledgement).
func (s *eventServer) down() {
	s.mu.Lock()
	ln := s.ln
	s.ln = nil
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	s.waitNoConns(10 * time.Second)
}

// waitNoConns waits until every connection has been read to its end.
func (s *eventServer) waitNoConns(d time.Duration) {
	s.t.Helper()
	e2etest.Eventually(s.t, d, "the event server's connections to end", func() error {
		if n := s.openConns(); n > 0 {
			return fmt.Errorf("%d open", n)
		}
		return nil
	})
}

func (s *eventServer) openConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *eventServer) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.accepts++
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go s.read(c)
	}
}

func (s *eventServer) read(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	r := bufio.NewReaderSize(c, 64<<10)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if len(line) > 0 && !errors.Is(err, net.ErrClosed) {
				s.mu.Lock()
				s.torn = append(s.torn, line)
				s.mu.Unlock()
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.t.Logf("event server: read: %v", err)
			}
			return
		}
		line = line[:len(line)-1]
		sender, n, ok := parseEvent(line)
		s.mu.Lock()
		if ok {
			s.recs = append(s.recs, record{sender, n})
			s.maxN[sender] = max(s.maxN[sender], n)
			s.count[sender]++
		} else {
			s.other = append(s.other, line)
		}
		s.mu.Unlock()
	}
}

// snapshot returns what the server received so far.
func (s *eventServer) snapshot() (recs []record, other, torn []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]record(nil), s.recs...), append([]string(nil), s.other...), append([]string(nil), s.torn...)
}

// received returns the number of events received.
func (s *eventServer) received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

// maxCounters returns the highest counter received per sender.
func (s *eventServer) maxCounters() [numSenders]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxN
}

// counts returns the number of events received per sender.
func (s *eventServer) counts() [numSenders]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}
