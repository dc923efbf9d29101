package chain

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/mux"
)

// Bounds of a batch, shared by the eventsink (what it may send) and the
// epproxy (what it accepts).
const (
	MaxBatchEvents = 4096
	MaxBatchBytes  = 4 << 20
	MaxEventBytes  = 1 << 20
)

// EventsConfig is the `events` section: on the epproxy, where delivered
// events go; on an eventsink, where events come from, how they are
// spooled and where they are sent.
type EventsConfig struct {
	// Service is the name of the epproxy's event service. Default "events".
	Service string `yaml:"service"`

	// epproxy only.

	// Server is the event server's HOST:PORT. Events are written to it in
	// the framing they arrived in.
	Server string `yaml:"server"`
	// File, when set, receives every delivered event as one JSON object per
	// line. At least one of Server and File is needed.
	File string `yaml:"file"`
	// State is the file that keeps the last sequence delivered per sink,
	// so a restart delivers nothing twice. Default "events-state.json"
	// beside the configuration file.
	State string `yaml:"state"`
	// WriteTimeout bounds a write to the event server. Default 10s.
	WriteTimeout time.Duration `yaml:"write_timeout"`

	// eventsink only.

	// Dest is the label of the epproxy. Required on an eventsink.
	Dest string `yaml:"dest"`
	// Spool is the on-disk spool.
	Spool SpoolConfig `yaml:"spool"`
	// MaxEventBytes is the largest event accepted. Default 64KiB.
	MaxEventBytes ByteSize `yaml:"max_event_bytes"`
	// BatchEvents and BatchBytes bound one batch sent up. Defaults 500 and 1MiB.
	BatchEvents int      `yaml:"batch_events"`
	BatchBytes  ByteSize `yaml:"batch_bytes"`
	// AckTimeout is how long a batch may wait for its acknowledgement
	// before the session is dropped and the batch re-sent. Default 30s.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// Listeners are the intake listeners.
	Listeners []EventListener `yaml:"listeners"`
}

// SpoolConfig is the eventsink's spool.
type SpoolConfig struct {
	// Dir holds the segment files. Required; relative to the configuration
	// file's directory.
	Dir string `yaml:"dir"`
	// MaxBytes bounds the spool. Default 256MiB.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// SegmentBytes is the size of one segment file. Default 8MiB.
	SegmentBytes ByteSize `yaml:"segment_bytes"`
	// Fsync is "always" (each event is synced before it counts as
	// received) or "interval" (synced at least every FsyncInterval).
	// Default "interval".
	Fsync string `yaml:"fsync"`
	// FsyncInterval bounds the time an event waits to be synced. Default 200ms.
	FsyncInterval time.Duration `yaml:"fsync_interval"`
	// WhenFull is "refuse" (new events are refused) or "drop-oldest".
	// Default "refuse".
	WhenFull string `yaml:"when_full"`
}

// EventListener is one intake listener of an eventsink.
type EventListener struct {
	// Name appears in the logs. Required.
	Name string `yaml:"name"`
	// Protocol is "tcp" or "udp". Default "tcp".
	Protocol string `yaml:"protocol"`
	// Listen is the HOST:PORT senders send to.
	Listen string `yaml:"listen"`
	// Framing is "eif" (events ending in END) or "lines" (one event per
	// line: syslog or plain text). Required.
	Framing string `yaml:"framing"`
	// MaxConnsPerSource caps TCP connections from one address. Default 64.
	MaxConnsPerSource int `yaml:"max_conns_per_source"`
	// IdleTimeout closes a TCP sender silent this long. Default 5m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// DefaultEvents returns the events section's defaults.
func DefaultEvents() EventsConfig {
	return EventsConfig{
		Service:       "events",
		WriteTimeout:  10 * time.Second,
		MaxEventBytes: 64 << 10,
		BatchEvents:   500,
		BatchBytes:    1 << 20,
		AckTimeout:    30 * time.Second,
		Spool: SpoolConfig{
			MaxBytes:      256 << 20,
			SegmentBytes:  8 << 20,
			Fsync:         "interval",
			FsyncInterval: 200 * time.Millisecond,
			WhenFull:      "refuse",
		},
	}
}

// UnmarshalYAML fills the defaults before decoding the section.
func (e *EventsConfig) UnmarshalYAML(unmarshal func(any) error) error {
	type plain EventsConfig
	d := DefaultEvents()
	p := (*plain)(&d)
	if err := unmarshal(p); err != nil {
		return err
	}
	*e = d
	return nil
}

// UnmarshalYAML fills the defaults before decoding a listener.
func (l *EventListener) UnmarshalYAML(unmarshal func(any) error) error {
	type plain EventListener
	d := EventListener{Protocol: "tcp", MaxConnsPerSource: 64, IdleTimeout: 5 * time.Minute}
	if err := unmarshal((*plain)(&d)); err != nil {
		return err
	}
	*l = d
	return nil
}

func (e *EventsConfig) resolve(dir string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	e.File = abs(e.File)
	e.Spool.Dir = abs(e.Spool.Dir)
	if e.State == "" {
		e.State = "events-state.json"
	}
	e.State = abs(e.State)
}

func (e *EventsConfig) validate(ps *daemon.Problems, k Kind, listens []listenUse) {
	if err := mux.CheckLabel(e.Service); err != nil {
		ps.Errorf("events.service", "%v", err)
	}
	switch k.Name {
	case EPProxy.Name:
		if e.Server == "" && e.File == "" {
			ps.Errorf("events", "set server (the event server's HOST:PORT), file (a JSON lines file), or both")
		}
		if e.Server != "" {
			ps.Check("events.server", daemon.CheckDialAddr(e.Server))
		}
		if e.WriteTimeout <= 0 {
			ps.Errorf("events.write_timeout", "must be positive, like \"10s\"")
		}
		for _, key := range []string{"dest", "spool", "listeners", "max_event_bytes", "batch_events", "batch_bytes", "ack_timeout"} {
			if ps.Pos.Has("events." + key) {
				ps.Errorf("events."+key, "is an eventsink setting; the epproxy does not take it")
			}
		}
	case EventSink.Name:
		for _, key := range []string{"server", "file", "state", "write_timeout"} {
			if ps.Pos.Has("events." + key) {
				ps.Errorf("events."+key, "is an epproxy setting; the eventsink does not take it")
			}
		}
		if e.Dest == "" {
			ps.Errorf("events.dest", "missing: the epproxy's label")
		} else {
			ps.Check("events.dest", mux.CheckLabel(e.Dest))
		}
		if e.Spool.Dir == "" {
			ps.Errorf("events.spool.dir", "missing: the spool directory")
		}
		if e.Spool.MaxBytes < 1<<20 {
			ps.Errorf("events.spool.max_bytes", "at least 1MiB")
		}
		if e.Spool.SegmentBytes < 64<<10 || e.Spool.SegmentBytes > e.Spool.MaxBytes/2 {
			ps.Errorf("events.spool.segment_bytes", "must be at least 64KiB and at most half of max_bytes")
		}
		switch e.Spool.Fsync {
		case "always", "interval":
		default:
			ps.Errorf("events.spool.fsync", "%q: want \"always\" or \"interval\"", e.Spool.Fsync)
		}
		if e.Spool.FsyncInterval <= 0 {
			ps.Errorf("events.spool.fsync_interval", "must be positive, like \"200ms\"")
		}
		switch e.Spool.WhenFull {
		case "refuse", "drop-oldest":
		default:
			ps.Errorf("events.spool.when_full", "%q: want \"refuse\" or \"drop-oldest\"", e.Spool.WhenFull)
		}
		if e.MaxEventBytes < 256 || e.MaxEventBytes > MaxEventBytes {
			ps.Errorf("events.max_event_bytes", "must be between 256B and 1MiB")
		}
		if e.BatchEvents <= 0 || e.BatchEvents > MaxBatchEvents {
			ps.Errorf("events.batch_events", "must be between 1 and %d", MaxBatchEvents)
		}
		if e.BatchBytes < e.MaxEventBytes*2 || e.BatchBytes > MaxBatchBytes {
			ps.Errorf("events.batch_bytes", "must be at least twice max_event_bytes and at most 4MiB")
		}
		if e.AckTimeout <= 0 {
			ps.Errorf("events.ack_timeout", "must be positive")
		}
		if len(e.Listeners) == 0 {
			ps.Errorf("events.listeners", "missing: at least one intake listener")
		}
		names := map[string]bool{}
		for i, l := range e.Listeners {
			p := fmt.Sprintf("events.listeners[%d]", i)
			if l.Name == "" {
				ps.Errorf(p+".name", "missing: a name for the logs")
			} else if names[l.Name] {
				ps.Errorf(p+".name", "listener %s is defined twice", l.Name)
			}
			names[l.Name] = true
			switch l.Protocol {
			case "tcp", "udp":
			default:
				ps.Errorf(p+".protocol", "%q: want \"tcp\" or \"udp\"", l.Protocol)
			}
			switch l.Framing {
			case "eif", "lines":
			case "":
				ps.Errorf(p+".framing", "missing: \"eif\" or \"lines\"")
			default:
				ps.Errorf(p+".framing", "%q: want \"eif\" or \"lines\"", l.Framing)
			}
			if l.Listen == "" {
				ps.Errorf(p+".listen", "missing: the HOST:PORT senders send to")
			} else if err := daemon.CheckListenAddr(l.Listen, false); err != nil {
				ps.Check(p+".listen", err)
			}
			if l.MaxConnsPerSource <= 0 {
				ps.Errorf(p+".max_conns_per_source", "must be positive")
			}
			if l.IdleTimeout <= 0 {
				ps.Errorf(p+".idle_timeout", "must be positive")
			}
		}
	default:
		ps.Errorf("events", "%s has no events section", k.withArticle())
	}
}

// eventListens returns the intake listen addresses for clash checks.
func (e *EventsConfig) eventListens() []listenUse {
	var out []listenUse
	for i, l := range e.Listeners {
		if l.Listen != "" {
			out = append(out, listenUse{addr: l.Listen, path: fmt.Sprintf("events.listeners[%d].listen", i), udp: l.Protocol == "udp"})
		}
	}
	return out
}
