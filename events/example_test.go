package events_test

import (
	"bytes"
	"fmt"
	"time"

	"github.com/relaychain/relaychain/events"
)

// A batch and its ack over one stream, as an eventsink and the epproxy
// exchange them.
func Example() {
	var stream bytes.Buffer
	b := &events.Batch{Sink: "es-dmz1", Events: []events.Event{
		{Seq: 41, Time: time.Unix(1700000000, 0), Framing: events.EIF, Source: "10.1.2.3:5529", Data: []byte("TEC_Event;msg='disk full';END")},
		{Seq: 42, Framing: events.Line, Source: "10.1.2.4:514", Data: []byte("<13>Jan  2 03:04:05 host app: hello")},
	}}
	if err := events.WriteBatch(&stream, b, events.Limits{}); err != nil {
		fmt.Println(err)
		return
	}

	got, err := events.ReadBatch(&stream, events.Limits{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range got.Events {
		fmt.Printf("%s %d %s %s\n", got.Sink, e.Seq, e.Framing, e.Data)
	}
	if err := events.WriteAck(&stream, events.Ack{UpTo: got.LastSeq()}); err != nil {
		fmt.Println(err)
		return
	}

	ack, err := events.ReadAck(&stream)
	fmt.Println("acknowledged up to", ack.UpTo, err)
	// Output:
	// es-dmz1 41 eif TEC_Event;msg='disk full';END
	// es-dmz1 42 line <13>Jan  2 03:04:05 host app: hello
	// acknowledged up to 42 <nil>
}
