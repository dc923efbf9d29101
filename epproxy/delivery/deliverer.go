package delivery

import (
	"fmt"
	"io"
	"sync"

	"github.com/relaychain/relaychain/events"
)

// Deliverer writes events to the event server connection in the framing they
// arrived in: an EIF event as-is (it ends in END) and a line, each followed by
// a newline. It is safe for concurrent use; each call is one Write.
type Deliverer struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

// NewDeliverer returns a Deliverer writing to w. The caller owns w (and sets
// its write deadlines).
func NewDeliverer(w io.Writer) *Deliverer { return &Deliverer{w: w} }

// Deliver writes events. Its signature fits Dedup.Process. On error, some of
// the events may have been written.
func (d *Deliverer) Deliver(sink string, evs []events.Event) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.buf = d.buf[:0]
	for i := range evs {
		if err := events.CheckEvent(&evs[i], 0); err != nil {
			return err
		}
		d.buf = append(d.buf, evs[i].Data...)
		d.buf = append(d.buf, '\n')
	}
	if _, err := d.w.Write(d.buf); err != nil {
		return fmt.Errorf("write events of %s: %w", sink, err)
	}
	return nil
}
