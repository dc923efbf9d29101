package admin

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relaychain/relaychain/mux"
)

// maxEndpointLines is how many endpoints the summary lists; --json has
// them all.
const maxEndpointLines = 200

// writeEndpoints writes the endpoint registry of st as a table: address,
// the gwproxy that serves it, first and last seen, its port_map ports.
func writeEndpoints(b *strings.Builder, st mux.NodeStatus) {
	if len(st.Endpoints) == 0 && st.EndpointsRefused == 0 && st.PortMapFull == 0 {
		return
	}
	active := 0
	for _, e := range st.Endpoints {
		if e.Active {
			active++
		}
	}
	fmt.Fprintf(b, "endpoints: %d registered, %d announced now", len(st.Endpoints), active)
	if st.EndpointsRefused > 0 {
		fmt.Fprintf(b, ", %d refused (a cap reached)", st.EndpointsRefused)
	}
	if st.PortMapFull > 0 {
		fmt.Fprintf(b, ", %d without a port (port_map full)", st.PortMapFull)
	}
	b.WriteString("\n")
	if len(st.Endpoints) == 0 {
		return
	}
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  ADDRESS\tGWPROXY\tFIRST SEEN\tLAST SEEN\tPORTS\n")
	for i, e := range st.Endpoints {
		if i == maxEndpointLines {
			fmt.Fprintf(tw, "  ... %d more (status --json lists them all)\n", len(st.Endpoints)-i)
			break
		}
		last := e.Last.UTC().Format(time.RFC3339)
		if e.Active {
			last = "now (announced)"
		}
		var ports []string
		for name, p := range e.Ports {
			ports = append(ports, fmt.Sprintf("%s:%d", name, p))
		}
		sort.Strings(ports)
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", e.Addr, e.Label, e.First.UTC().Format(time.RFC3339), last, strings.Join(ports, ","))
	}
	_ = tw.Flush()
}
