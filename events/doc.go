// Package events is the wire format between an eventsink and the epproxy's
// event service: Batch messages of numbered events one way, Ack messages
// the other, over a routed session (a byte stream with half-close).
//
// It holds only that format, written down in PROTOCOL.md: the messages and
// their encoding and decoding (wire.go), the framing code every event
// carries (framing.go), the bounds (Limits, MaxLabelLen, MaxSourceLen) and
// the sentinel errors (errors.go). The daemons' pieces live with the
// daemons: the eventsink's spool and forwarder send batches
// (eventsink/spool, eventsink/forwarder); the epproxy's event service
// (epproxy/delivery) drops what it already delivered, by sink and sequence
// number kept in its state file (events-state.json by default), writes the
// rest to the event server, and only then acknowledges.
//
// Typical usage on the eventsink, one batch:
//
//	b := &events.Batch{Sink: label, Events: evs} // from spool records
//	if err := events.WriteBatch(stream, b, lim); err != nil { ... }
//	ack, err := events.ReadAck(stream)
//	if err != nil { ... }
//	sp.Ack(ack.UpTo)
//
// and on the epproxy, one session:
//
//	for {
//		b, err := events.ReadBatch(stream, lim)
//		if err == io.EOF { return nil } // the sink closed the session
//		if err != nil { return err }
//		ack, err := deliver(b)        // filter, write, persist the marks
//		if err != nil { return err }  // no ack: the sink sends again
//		if err := events.WriteAck(stream, ack); err != nil { return err }
//	}
package events
