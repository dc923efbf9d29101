package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/relaychain/relaychain/mux"
)

// HTTP is a node's optional HTTP listener: /metrics (Prometheus),
// /healthz, /readyz and, when asked, /debug/pprof/. Nothing is
// authenticated: bind it to loopback or a management network.
type HTTP struct {
	ln  net.Listener
	srv *http.Server
}

// ListenHTTP binds addr and builds the handlers; status is asked on every
// scrape and readiness check.
func ListenHTTP(addr string, status func() mux.NodeStatus, withPProf bool) (*HTTP, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	return &HTTP{ln: ln, srv: &http.Server{
		Handler:           Handler(status, withPProf),
		ReadHeaderTimeout: 10 * time.Second,
	}}, nil
}

// Addr returns the bound address.
func (h *HTTP) Addr() net.Addr { return h.ln.Addr() }

// Serve serves until Shutdown; it returns nil then.
func (h *HTTP) Serve() error {
	if err := h.srv.Serve(h.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops the listener and waits for the requests in progress
// until ctx ends.
func (h *HTTP) Shutdown(ctx context.Context) error { return h.srv.Shutdown(ctx) }

// Handler serves /metrics, /healthz, /readyz and, with withPProf,
// /debug/pprof/. /healthz answers 200 while the node serves; /readyz
// answers 200 at the root, or when the path to the root is up, else 503.
func Handler(status func() mux.NodeStatus, withPProf bool) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&nodeCollector{status: status})
	m := http.NewServeMux()
	m.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = fmt.Fprintln(w, "ok")
	})
	m.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		st := status()
		if st.Role == mux.RoleRoot.String() || len(st.PathToRoot) > 0 {
			_, _ = fmt.Fprintln(w, "ready")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintln(w, "not ready: no path to the root")
	})
	if withPProf {
		m.HandleFunc("/debug/pprof/", pprof.Index)
		m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		m.HandleFunc("/debug/pprof/profile", pprof.Profile)
		m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return m
}

var (
	descLinkUp = prometheus.NewDesc("relaychain_link_up",
		"1 while the link to the peer is up, 0 while it is down.", []string{"peer", "side"}, nil)
	descLinkRTT = prometheus.NewDesc("relaychain_link_rtt_seconds",
		"The last keepalive round trip on the link, while it is up.", []string{"peer"}, nil)
	descLinkBytes = prometheus.NewDesc("relaychain_link_bytes_total",
		"Bytes read (in) and written (out) on the link's current or last connection, under yamux; starts again at 0 when the link reconnects.",
		[]string{"peer", "direction"}, nil)
	descLinkSessions = prometheus.NewDesc("relaychain_link_sessions",
		"Sessions active that arrived through the link.", []string{"peer"}, nil)
	descSessions = prometheus.NewDesc("relaychain_sessions_active",
		"Sessions the node carries now.", nil, nil)
	descRoutes = prometheus.NewDesc("relaychain_routes",
		"Labels in the routing table: the nodes below this one.", nil, nil)
	descPathUp = prometheus.NewDesc("relaychain_path_to_root_up",
		"1 when the node is the root or has a path to it, else 0.", nil, nil)
	descRefused = prometheus.NewDesc("relaychain_refused_total",
		"Refusals since the node started: link connections, announcements, forged origins, destinations not served, sessions denied by rules, networks outside a child link's accepted networks.", []string{"what"}, nil)
	descHellos = prometheus.NewDesc("relaychain_hellos_in_progress",
		"Link connections in their TLS handshake or hello.", nil, nil)
	descUptime = prometheus.NewDesc("relaychain_uptime_seconds",
		"Seconds since the node started.", nil, nil)
	descEnded = prometheus.NewDesc("relaychain_sessions_ended_total",
		"Sessions that ended on the node, by outcome: closed, aborted, or refused at the open with the status no_route, refused, denied, timeout or failed.",
		[]string{"outcome"}, nil)
)

// nodeCollector turns a node's status into metrics at each scrape.
type nodeCollector struct{ status func() mux.NodeStatus }

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLinkUp, descLinkRTT, descLinkBytes, descLinkSessions, descSessions,
		descRoutes, descPathUp, descRefused, descHellos, descUptime, descEnded} {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for _, l := range st.Links {
		gauge(descLinkUp, b2f(l.Up), l.Peer, l.Side)
		if l.Up {
			gauge(descLinkRTT, l.RTT.Seconds(), l.Peer)
		}
		counter(descLinkBytes, float64(l.BytesIn), l.Peer, "in")
		counter(descLinkBytes, float64(l.BytesOut), l.Peer, "out")
		gauge(descLinkSessions, float64(l.Sessions), l.Peer)
	}
	gauge(descSessions, float64(st.Sessions))
	gauge(descRoutes, float64(st.Routes))
	gauge(descPathUp, b2f(st.Role == mux.RoleRoot.String() || len(st.PathToRoot) > 0))
	counter(descRefused, float64(st.Stats.RefusedConnections), "link_connections")
	counter(descRefused, float64(st.Stats.RefusedAnnouncements), "announcements")
	counter(descRefused, float64(st.Stats.ForgedOrigins), "forged_origins")
	counter(descRefused, float64(st.Stats.DeniedByRules), "denied_by_rules")
	counter(descRefused, float64(st.Stats.DeniedDestinations), "denied_destinations")
	counter(descRefused, float64(st.Stats.RefusedNetworks), "networks")
	counter(descRefused, float64(st.Stats.RefusedLabels), "labels")
	counter(descRefused, float64(st.Stats.DeniedResolved), "denied_resolved")
	gauge(descHellos, float64(st.Hellos))
	gauge(descUptime, st.Uptime.Seconds())
	// Every outcome is there from the start, at 0, so that a rate over
	// it is defined before the first session of that outcome.
	for _, outcome := range mux.SessionOutcomes() {
		if _, ok := st.Ended[outcome]; !ok {
			counter(descEnded, 0, outcome)
		}
	}
	for outcome, v := range st.Ended {
		counter(descEnded, float64(v), outcome)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
