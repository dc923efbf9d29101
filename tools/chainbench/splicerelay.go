package main

import (
	"context"
	"io"
	"net"
)

// spliceRelayCommand is "chainbench splicerelay -listen ADDR -to ADDR": one
// hop of the splice reference, the issue's "two plain splice relays (no
// mux)". For each connection it dials -to and copies both ways with
// io.Copy between the two TCP connections, which on Linux moves the bytes
// with splice(2) through a pipe (TCPConn.ReadFrom) and never copies them
// into the process: the least a relay in user space can cost.
func spliceRelayCommand(ctx context.Context, args []string) error {
	return relayCommand(ctx, "splicerelay", args, spliceCopy)
}

// spliceCopy copies src to dst with io.Copy, which for two TCP connections
// is splice. At src's EOF it half-closes dst; on any other error it closes
// both, so that the other direction ends too.
func spliceCopy(dst, src net.Conn) {
	if _, err := io.Copy(dst, src); err != nil {
		src.Close()
		dst.Close()
		return
	}
	if closeWrite(dst) != nil {
		src.Close()
	}
}
