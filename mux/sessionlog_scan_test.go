package mux

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestFrameScan: a relay follows the frames of a stream cut into chunks of
// any size: it counts the payload and the data frames, and sees the end
// frame and the who of an abort frame.
func TestFrameScan(t *testing.T) {
	var stream bytes.Buffer
	var payload, frames int64
	for _, n := range []int{1, 10, 3, 4, 600, 70000, 2} {
		b := make([]byte, frameHeaderLen+n)
		putFrameHeader(b, frameData, n)
		stream.Write(b)
		payload += int64(n)
		frames++
	}
	end := make([]byte, frameHeaderLen)
	putFrameHeader(end, frameEnd, 0)
	stream.Write(end)
	stream.Write(encodeAbort("shutdown:relay-dmz1"))
	all := stream.Bytes()

	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 50; round++ {
		var s frameScan
		for p := all; len(p) > 0; {
			k := min(len(p), 1+rng.IntN(9000))
			if round == 0 {
				k = 1 // a byte at a time
			}
			s.scan(p[:k])
			p = p[k:]
		}
		if s.payload != payload || s.frames != frames || !s.ended || s.who != "shutdown:relay-dmz1" || !s.between() {
			t.Fatalf("round %d: payload %d frames %d ended %v who %q between %v; want %d %d true shutdown:relay-dmz1 true",
				round, s.payload, s.frames, s.ended, s.who, s.between(), payload, frames)
		}
	}

	// Ends that stream abort frames through a relay do not make it hold
	// their text: it keeps the first reason and stops following.
	var ab frameScan
	for i := 0; i < 1000; i++ {
		ab.scan(encodeAbort("client"))
	}
	if ab.who != "client" || !ab.bad || cap(ab.text) > maxReason {
		t.Fatalf("after 1000 abort frames: who %q bad %v, %d bytes of text held", ab.who, ab.bad, cap(ab.text))
	}

	var s frameScan
	s.scan([]byte{9, 0, 0, 1, 'x'})
	if !s.bad || s.between() {
		t.Fatalf("an unknown frame type was followed: %+v", s)
	}
}

// BenchmarkFrameScan is what a relay spends following the frames of a
// bulk transfer: 64 KiB chunks of 64 KiB data frames.
func BenchmarkFrameScan(b *testing.B) {
	const n = 64 << 10
	chunk := make([]byte, frameHeaderLen+n)
	putFrameHeader(chunk, frameData, n)
	var s frameScan
	b.SetBytes(int64(len(chunk)))
	for i := 0; i < b.N; i++ {
		s.scan(chunk)
	}
	if s.payload != int64(b.N)*n {
		b.Fatalf("payload %d, want %d", s.payload, int64(b.N)*n)
	}
}
