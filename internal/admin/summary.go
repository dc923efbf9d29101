package admin

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relaychain/relaychain/mux"
)

// WriteSummary writes st for a person: the node, its links as a table,
// its routes, sessions, refusals and recent errors.
func WriteSummary(w io.Writer, st mux.NodeStatus) error {
	now := time.Now()
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s)", st.Label, st.Role)
	if st.Version != "" {
		fmt.Fprintf(&b, " %s", st.Version)
	}
	fmt.Fprintf(&b, ", up %s since %s\n", st.Uptime.Round(time.Second), st.Started.Format(time.RFC3339))
	switch {
	case st.Role == "root":
		fmt.Fprintf(&b, "path to the root: (this is the root)\n")
	case len(st.PathToRoot) == 0:
		fmt.Fprintf(&b, "path to the root: none (no parent link is up)\n")
	default:
		fmt.Fprintf(&b, "path to the root: %s\n", strings.Join(st.PathToRoot, " > "))
	}
	if st.ParentSelection != "" && st.ParentSelection != "ordered" {
		fmt.Fprintf(&b, "parent selection: %s, active parent %s\n", st.ParentSelection, orDash(st.ActiveParent))
	}
	b.WriteString("\nlinks:\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PEER\tSIDE\tSTATE\tSINCE\tRTT\tIN\tOUT\tSESSIONS\tADDR\tLAST ERROR")
	for _, l := range st.Links {
		state := "down"
		if l.Up {
			state = "up"
		}
		if l.Suppressed {
			state += ",suppressed"
		}
		since := "never up"
		if !l.Since.IsZero() {
			since = now.Sub(l.Since).Round(time.Second).String() + " ago"
		}
		rtt := "-"
		if l.Up && l.RTT > 0 {
			rtt = l.RTT.Round(10 * time.Microsecond).String()
		}
		dir := "listen "
		if l.Dialled {
			dir = "dial "
		}
		lastErr := l.LastErr
		if lastErr == "" {
			lastErr = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", l.Peer, l.Side, state, since, rtt,
			bytesString(l.BytesIn), bytesString(l.BytesOut), l.Sessions, dir+l.Addr, lastErr)
	}
	_ = tw.Flush()
	fmt.Fprintf(&b, "\nroutes: %d labels below this node\n", st.Routes)
	if st.Networks > 0 {
		fmt.Fprintf(&b, "networks: %d served here and below", st.Networks)
		if len(st.Serves) > 0 {
			fmt.Fprintf(&b, " (this node: %s)", strings.Join(st.Serves, ", "))
		}
		b.WriteString("\n")
	}
	writeEndpoints(&b, st)
	fmt.Fprintf(&b, "sessions: %d active%s\n", st.Sessions, endedString(st.Ended))
	fmt.Fprintf(&b, "refused: %d link connections, %d announcements, %d forged origins, %d denied by rules; %d hellos in progress\n",
		st.Stats.RefusedConnections, st.Stats.RefusedAnnouncements, st.Stats.ForgedOrigins, st.Stats.DeniedByRules, st.Hellos)
	if st.Stats.RefusedNetworks > 0 {
		fmt.Fprintf(&b, "refused networks: %d announced by children outside their link's accept_networks (see the log)\n", st.Stats.RefusedNetworks)
	}
	if st.Stats.RefusedLabels > 0 {
		fmt.Fprintf(&b, "refused labels: %d announced by children outside their link's accept_labels (see the log)\n", st.Stats.RefusedLabels)
	}
	if st.Stats.DeniedResolved > 0 {
		fmt.Fprintf(&b, "refused resolved addresses: %d sessions to a name that resolved where serves_rules do not allow (see the log)\n", st.Stats.DeniedResolved)
	}
	if len(st.Errors) == 0 {
		b.WriteString("recent errors: none\n")
	} else {
		b.WriteString("recent errors:\n")
		errs := append([]mux.ErrorRecord(nil), st.Errors...)
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Time.After(errs[j].Time) })
		for _, e := range errs {
			peer := ""
			if e.Peer != "" {
				peer = e.Peer + ": "
			}
			fmt.Fprintf(&b, "  %s  %s%s\n", e.Time.Format("2006-01-02 15:04:05"), peer, e.Msg)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func bytesString(n uint64) string {
	const k = 1024
	switch {
	case n < k:
		return fmt.Sprintf("%dB", n)
	case n < k*k:
		return fmt.Sprintf("%.1fKiB", float64(n)/k)
	case n < k*k*k:
		return fmt.Sprintf("%.1fMiB", float64(n)/(k*k))
	}
	return fmt.Sprintf("%.1fGiB", float64(n)/(k*k*k))
}

// endedString is "; ended: 3 closed, 1 aborted, ..." for the outcomes
// counted, or "" when no session ended.
func endedString(ended map[string]uint64) string {
	var parts []string
	for _, o := range sortOutcomes(ended) {
		parts = append(parts, fmt.Sprintf("%d %s", ended[o], o))
	}
	if len(parts) == 0 {
		return ""
	}
	return "; ended: " + strings.Join(parts, ", ")
}

// sortOutcomes lists the outcomes in ended: the carried ones first (closed,
// aborted), then the refusals by name.
func sortOutcomes(ended map[string]uint64) []string {
	out := make([]string, 0, len(ended))
	for o := range ended {
		out = append(out, o)
	}
	rank := func(o string) int {
		switch o {
		case mux.OutcomeClosed:
			return 0
		case mux.OutcomeAborted:
			return 1
		}
		return 2
	}
	sort.Slice(out, func(i, j int) bool {
		if ri, rj := rank(out[i]), rank(out[j]); ri != rj {
			return ri < rj
		}
		return out[i] < out[j]
	})
	return out
}

// orDash is s, or "-" when empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
