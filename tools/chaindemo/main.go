// Command chaindemo plays the parts around the relay chain in the demo and
// the end-to-end tests: a target service (the gateway, an endpoint, the
// event server) and a client that sends bytes through the chain and checks
// what comes back.
//
//	chaindemo serve -listen 127.0.0.1:19494 -name gateway
//	    greets each connection with "hello from NAME", then echoes
//	chaindemo send -addr 127.0.0.1:19601 -bytes 1048576
//	    sends random bytes, half-closes, checks the echo by SHA-256
//	chaindemo collect -listen 127.0.0.1:19800 -out FILE
//	    an event server: appends everything it receives to FILE
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(ctx, os.Args[2:])
	case "send":
		err = send(os.Args[2:])
	case "collect":
		err = collect(ctx, os.Args[2:])
	default:
		usage()
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaindemo:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: chaindemo serve|send|collect [flags]")
	os.Exit(2)
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	name := fs.String("name", "target", "name in the greeting")
	_ = fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Printf("%s: listening on %s\n", *name, ln.Addr())
	context.AfterFunc(ctx, func() { ln.Close() })
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			fmt.Fprintf(c, "hello from %s\n", *name)
			n, _ := io.Copy(c, c)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			fmt.Printf("%s: session from %s echoed %d bytes\n", *name, c.RemoteAddr(), n)
		}()
	}
}

func send(args []string) error {
	fs := flag.NewFlagSet("send", flag.ExitOnError)
	addr := fs.String("addr", "", "address to connect to")
	size := fs.Int64("bytes", 1<<20, "bytes to send")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	_ = fs.Parse(args)
	c, err := net.DialTimeout("tcp", *addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(*timeout))
	start := time.Now()
	hs := sha256.New()
	errc := make(chan error, 1)
	go func() {
		_, err := io.CopyN(io.MultiWriter(c, hs), rand.Reader, *size)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		errc <- err
	}()
	r := bufio.NewReader(c)
	greeting, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("no greeting: %w", err)
	}
	hr := sha256.New()
	n, err := io.Copy(hr, r)
	if err != nil {
		return fmt.Errorf("after %d bytes back: %w", n, err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("send: %w", err)
	}
	ok := bytes.Equal(hs.Sum(nil), hr.Sum(nil)) && n == *size
	fmt.Printf("%s -> %s: greeting %q, sent %d bytes, got %d back in %s, sha256 match: %v\n",
		c.LocalAddr(), *addr, greeting[:len(greeting)-1], *size, n, time.Since(start).Round(time.Millisecond), ok)
	if !ok {
		return errors.New("the bytes that came back differ from those sent")
	}
	return nil
}

func collect(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("collect", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	out := fs.String("out", "events.txt", "file to append what arrives to")
	_ = fs.Parse(args)
	f, err := os.OpenFile(*out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Printf("event server: listening on %s, writing to %s\n", ln.Addr(), *out)
	context.AfterFunc(ctx, func() { ln.Close() })
	var mu sync.Mutex
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			context.AfterFunc(ctx, func() { c.Close() })
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					mu.Lock()
					_, werr := f.Write(buf[:n])
					mu.Unlock()
					if werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}
