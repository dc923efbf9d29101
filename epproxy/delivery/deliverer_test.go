package delivery_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/relaychain/relaychain/epproxy/delivery"
	"github.com/relaychain/relaychain/events"
)

func TestDeliverer(t *testing.T) {
	var buf bytes.Buffer
	b := sampleBatch(t)
	if err := delivery.NewDeliverer(&buf).Deliver(b.Sink, b.Events); err != nil {
		t.Fatal(err)
	}
	want := "TEC_Event;msg='a;b';END\n<13>Jan  1 00:00:00 host app: hello\n"
	if buf.String() != want {
		t.Fatalf("wrote %q, want %q", buf.String(), want)
	}
	bad := []events.Event{{Seq: 1, Framing: events.Line, Data: []byte("a\nb")}}
	if err := delivery.NewDeliverer(&buf).Deliver("s", bad); !errors.Is(err, events.ErrMalformed) {
		t.Fatalf("Deliver of a line with a newline = %v", err)
	}
}
