// White-box (package mux): the fuzzers call the unexported decoders of
// the tree query and its answer.
package mux

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func FuzzReadTreeQuery(f *testing.F) {
	f.Add(encodeTreeQuery(5*time.Second, 32)[1:])
	f.Add(encodeTreeQuery(0, 0)[1:])
	for _, s := range []string{"", "\x00", "\xff\xff\xff\xff\xff", "\x00\x00\x00\x01"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		budget, hops, err := readTreeQuery(bytes.NewReader(data))
		if err != nil {
			if len(data) >= 5 && !errors.Is(err, ErrBadControl) {
				t.Fatalf("a whole query's error does not match ErrBadControl: %v", err)
			}
			return
		}
		if budget <= 0 || hops < 0 || hops > 255 {
			t.Fatalf("budget %s, hops %d accepted", budget, hops)
		}
		if enc := encodeTreeQuery(budget, hops)[1:]; !bytes.Equal(enc, data[:5]) {
			t.Fatalf("re-encoding gives %q, read %q", enc, data[:5])
		}
	})
}

// answerStream is a tree stream seen from the asking side: the query
// written goes nowhere, the answer is read from r.
type answerStream struct {
	io.Reader
	io.Writer
}

func FuzzReadTreeAnswer(f *testing.F) {
	answer := func(code byte, body []byte) []byte {
		b := make([]byte, 5, 5+len(body))
		b[0] = code
		binary.BigEndian.PutUint32(b[1:], uint32(len(body)))
		return append(b, body...)
	}
	tree, _ := json.Marshal(TreeNode{Label: "relay1", State: TreeOK, Role: "relay",
		Children: []TreeNode{{Label: "leaf", State: TreeOK}}})
	f.Add(answer(treeAnswerOK, tree))
	f.Add(answer(treeAnswerRefused, []byte("tree queries are answered only from a parent")))
	f.Add(answer(treeAnswerOK, []byte("{")))
	f.Add(answer(treeAnswerRefused, []byte(strings.Repeat("r", 300))))
	f.Add([]byte("\x00\xff\xff\xff\xff"))
	f.Add([]byte("\x07\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		n := &Node{}
		n.tunp.Store(&Tuning{TreeAnswerMax: 4096})
		got, err := n.readTreeAnswer(answerStream{bytes.NewReader(data), io.Discard}, encodeTreeQuery(time.Second, 1))
		var tooLarge *treeTooLargeError
		var refused *treeRefusedError
		switch {
		case errors.As(err, &tooLarge):
			if tooLarge.size <= 4096 {
				t.Fatalf("%d bytes refused as too large", tooLarge.size)
			}
		case errors.As(err, &refused):
			if len(refused.reason) > maxReason {
				t.Fatalf("a refusal of %d bytes read", len(refused.reason))
			}
		case err != nil:
			if len(data) >= 5 && (data[0] > treeAnswerRefused) && !errors.Is(err, ErrBadControl) {
				t.Fatalf("unknown code: %v", err)
			}
		default:
			if len(data) < 5 || data[0] != treeAnswerOK || int(binary.BigEndian.Uint32(data[1:5])) > 4096 {
				t.Fatalf("answer %+v taken from %q", got, data)
			}
		}
	})
}

// A child's answer nested deeper than a session may travel is cut at the
// hop limit, so that this node's own answer stays decodable by its parent:
// a leaf cannot hide its parent's subtree behind an answer too deep for
// the root's decoder.
func TestTreeAnswerCutAtHopLimit(t *testing.T) {
	deep := TreeNode{Label: "leaf", State: TreeOK}
	for i := 0; i < 4999; i++ {
		deep = TreeNode{Label: "leaf", State: TreeOK, Children: []TreeNode{deep}}
	}
	body, err := json.Marshal(deep)
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 5, 5+len(body))
	msg[0] = treeAnswerOK
	binary.BigEndian.PutUint32(msg[1:], uint32(len(body)))
	msg = append(msg, body...)
	n := &Node{}
	n.tunp.Store(&Tuning{TreeAnswerMax: 1 << 20})
	got, err := n.readTreeAnswer(answerStream{bytes.NewReader(msg), io.Discard}, encodeTreeQuery(time.Second, 1))
	if err != nil {
		t.Fatal(err)
	}
	depth, last := 0, &got
	for len(last.Children) > 0 {
		last = &last.Children[0]
		depth++
	}
	if depth != defaultHops || !last.Truncated {
		t.Fatalf("answer kept %d levels (truncated %v), want %d and the cut marked", depth, last.Truncated, defaultHops)
	}
	// What this node sends on, nested under its own status, decodes.
	parent := TreeNode{Label: "relay", State: TreeOK, Children: []TreeNode{got}}
	again, err := json.Marshal(parent)
	if err != nil {
		t.Fatal(err)
	}
	var back TreeNode
	if err := json.Unmarshal(again, &back); err != nil {
		t.Fatalf("the relay's answer does not decode: %v", err)
	}
}
