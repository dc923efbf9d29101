package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"sync"
	"time"
)

// spliceRelayCommand is "chainbench splicerelay -listen ADDR -to ADDR": one
// hop of the splice reference, the issue's "two plain splice relays (no
// mux)". For each connection it dials -to and copies both ways with
// io.Copy between the two TCP connections, which on Linux moves the bytes
// with splice(2) through a pipe (TCPConn.ReadFrom) and never copies them
// into the process: the least a relay in user space can cost.
func spliceRelayCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("splicerelay", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	to := fs.String("to", "", "address to relay to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" {
		return errors.New("splicerelay: -to is required")
	}
	ln, err := listenRole(*listen)
	if err != nil {
		return err
	}
	return serve(ctx, ln, func(ctx context.Context, c net.Conn) { spliceRelay(ctx, c, *to) })
}

// spliceRelay relays c to a new connection to addr until both directions
// ended; serve closes c.
func spliceRelay(ctx context.Context, c net.Conn, addr string) {
	d, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return
	}
	defer d.Close()
	stop := context.AfterFunc(ctx, func() { d.Close() })
	defer stop()
	dt, ok1 := d.(*net.TCPConn)
	ct, ok2 := c.(*net.TCPConn)
	if !ok1 || !ok2 {
		return // never: both are loopback TCP
	}
	var wg sync.WaitGroup
	wg.Go(func() { spliceCopy(dt, ct) })
	wg.Go(func() { spliceCopy(ct, dt) })
	wg.Wait()
}

// spliceCopy copies src to dst with splice. At src's EOF it half-closes
// dst; on any other error it closes both, so that the other direction
// ends too.
func spliceCopy(dst, src *net.TCPConn) {
	if _, err := io.Copy(dst, src); err != nil {
		src.Close()
		dst.Close()
		return
	}
	if dst.CloseWrite() != nil {
		src.Close()
	}
}
