package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// plainBuf is the reference's copy buffer, io.Copy's size.
const plainBuf = 32 << 10

// plainRelayCommand is "chainbench plainrelay -listen ADDR -to ADDR": one
// hop of the reference, the plainest relay there is. For each connection
// it dials -to and copies both ways with read and write through a 32 KiB
// buffer per direction (no splice, no multiplexing, no TLS, no log): what
// any user-space relay costs at least on this machine.
func plainRelayCommand(ctx context.Context, args []string) error {
	return relayCommand(ctx, "plainrelay", args, plainCopy)
}

// relayCommand is the command line of a reference relay: "chainbench NAME
// -listen ADDR -to ADDR", relaying each connection with copy each way.
func relayCommand(ctx context.Context, name string, args []string, copy func(dst, src net.Conn)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	to := fs.String("to", "", "address to relay to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" {
		return fmt.Errorf("%s: -to is required", name)
	}
	ln, err := listenRole(*listen)
	if err != nil {
		return err
	}
	return serve(ctx, ln, func(ctx context.Context, c net.Conn) { relay(ctx, c, *to, copy) })
}

// relay relays c to a new connection to addr, with copy each way, until
// both directions ended; serve closes c.
func relay(ctx context.Context, c net.Conn, addr string, copy func(dst, src net.Conn)) {
	d, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return
	}
	defer d.Close()
	stop := context.AfterFunc(ctx, func() { d.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { copy(d, c) })
	wg.Go(func() { copy(c, d) })
	wg.Wait()
}

// plainCopy copies src to dst. At src's EOF it half-closes dst; on any
// other error it closes both, so that the other direction ends too.
func plainCopy(dst, src net.Conn) {
	buf := make([]byte, plainBuf)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				dst.Close()
				return
			}
		}
		if errors.Is(err, io.EOF) {
			if closeWrite(dst) != nil {
				src.Close()
			}
			return
		}
		if err != nil {
			src.Close()
			dst.Close()
			return
		}
	}
}
