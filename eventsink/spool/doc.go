// Package spool is the eventsink's durable, bounded, on-disk queue of events.
//
// An event counts as received once Append has returned: it is then written to
// a segment file in the spool directory (and, under the Always sync policy,
// flushed to stable storage). Each record gets a sequence number, one more than
// the previous record's; numbers survive restarts and never repeat for a spool
// directory, even when records are dropped or every segment was deleted.
//
// # On disk
//
// The directory holds segment files named after the sequence number of their
// first record ("00000000000000000001.seg"), an "ack" file, and a "lock" file
// that keeps a second process out. The ack file holds the highest
// acknowledged sequence number and a reservation: numbering goes on above it
// after a crash, so that the number of a record that was written but lost
// from the page cache (and perhaps already forwarded) is never used again. A
// segment is a series of records:
//
//	u32 body length (little endian)
//	u32 CRC-32C (Castagnoli) of the body
//	body: u64 seq | i64 received time, Unix ns | u8 framing | u16 source length | source | data
//
// Sequence numbers are consecutive inside a segment. Open checks every record;
// the first record that is cut short, fails its CRC or is out of sequence ends
// its segment: the file is truncated there, the records before it are kept and
// the TornTruncated counter is incremented. This is what a kill -9 or a power
// loss in the middle of a write leaves behind. The ack file is replaced
// atomically (write a temporary file, fsync, rename, fsync the directory), and
// a segment is deleted only once all its records are acknowledged (or dropped
// by the DropOldest policy).
//
// # Bounds
//
// The total size of the segment files is bounded by Options.MaxBytes. When an
// append would pass it, the Full policy decides: Refuse makes Append return
// ErrFull; DropOldest deletes whole segments, oldest first, counting the
// unacknowledged records they held as dropped. Keep SegmentSize a small part
// of MaxBytes (the default is 1/64) so that a drop loses little.
//
// # Reading
//
// The forwarder keeps its own "next to send" position. Read returns the
// records from a position on (skipping acknowledged and dropped ones, so a
// gap in the returned sequence numbers means records were dropped), Wait
// blocks until there is something to read, and Ack records what the other end
// acknowledged. After a reconnect, the forwarder starts again from
// Stats().Acked+1.
//
// Typical usage:
//
//	sp, err := spool.Open(dir, spool.Options{Sync: spool.Interval(200 * time.Millisecond), Log: log})
//	if err != nil { ... }
//	defer sp.Close()
//
//	// intake callback
//	_, err = sp.Append(events.EIF, conn.RemoteAddr().String(), event)
//
//	// forwarder
//	next := sp.Stats().Acked + 1
//	for {
//		if err := sp.Wait(ctx, next); err != nil { return err }
//		recs, err := sp.Read(next, 512, 1<<20)
//		if err != nil { return err }
//		send(recs) // then wait for the ack
//		next = recs[len(recs)-1].Seq + 1
//		if err := sp.Ack(ackedUpTo); err != nil { return err }
//	}
package spool
