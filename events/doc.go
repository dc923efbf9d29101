// Package events carries events from an eventsink to the epproxy and on to
// the event server.
//
// The eventsink sends batches of spooled events, with their sequence
// numbers, over a routed session (a byte stream with half-close) to the
// epproxy's event service; the epproxy delivers them to the event server and
// acknowledges only after the write succeeded and its deduplication state was
// persisted. The wire format is written down in PROTOCOL.md: length-prefixed
// binary messages, Batch one way and Ack the other, with strict bounds
// (Limits, MaxLabelLen, MaxSourceLen) and sentinel errors (errors.go).
//
// Typical usage on the eventsink (forwarder):
//
//	b := &events.Batch{Sink: label, Events: evs} // from spool records
//	if err := events.WriteBatch(stream, b, lim); err != nil { ... }
//	ack, err := events.ReadAck(stream)
//	if err != nil { ... }
//	sp.Ack(ack.UpTo)
//
// and on the epproxy (event service), one session:
//
//	dd, err := events.OpenDedup(filepath.Join(stateDir, "events-dedup.json"))
//	out := events.NewDeliverer(eventServerConn) // or events.NewJSONWriter(file)
//	for {
//		b, err := events.ReadBatch(stream, lim)
//		if err == io.EOF { return nil } // the sink closed the session
//		if err != nil { return err }
//		ack, err := dd.Process(b, out.Deliver) // filter, deliver, commit
//		if err != nil { return err }           // no ack: the sink sends again
//		if err := events.WriteAck(stream, ack); err != nil { return err }
//	}
package events
