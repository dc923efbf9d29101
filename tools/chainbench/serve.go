package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// The roles chainbench starts as its own children (the backend, the plain
// relays) say where they listen in one line on standard output, and write
// nothing else there.
const listeningPrefix = "listening on "

// listenRole listens on addr and announces the address to the parent.
func listenRole(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := fmt.Fprintf(os.Stdout, "%s%s\n", listeningPrefix, ln.Addr()); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// serve accepts connections on ln until ctx ends and runs handle for each
// in its own goroutine; serve closes each connection when handle returns,
// or at once when ctx ends, and waits for every handler before it returns.
// An Accept error (out of descriptors, say) is retried with a backoff.
func serve(ctx context.Context, ln net.Listener, handle func(ctx context.Context, c net.Conn)) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	const minDelay, maxDelay = 5 * time.Millisecond, time.Second
	delay := minDelay
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			fmt.Fprintf(os.Stderr, "accept: %v; retrying in %s\n", err, delay)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(delay):
			}
			delay = min(2*delay, maxDelay)
			continue
		}
		delay = minDelay
		wg.Go(func() {
			stopClose := context.AfterFunc(ctx, func() { c.Close() })
			defer stopClose()
			defer c.Close()
			handle(ctx, c)
		})
	}
}

// closeWrite half-closes c (a FIN) when it can, else closes it.
func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}
