package daemon

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Positions maps dotted key paths of a loaded document to line numbers, so
// Validate can name the line of a bad value. A nil *Positions is valid: it
// knows no lines, and its errors carry only the key.
type Positions struct {
	file string
	root *yaml.Node
}

// NewPositions returns Positions for a document parsed elsewhere (root may be
// a document node or its content), for configurations not read by Load.
func NewPositions(file string, root *yaml.Node) *Positions {
	if root != nil && root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	return &Positions{file: file, root: root}
}

// File returns the file name the document was loaded from.
func (p *Positions) File() string {
	if p == nil {
		return ""
	}
	return p.file
}

// Line returns the line of path, or 0 if the document does not contain it.
// A path is a dotted list of keys with optional sequence indexes:
// "log.level", "parents[0].dial", "entries[2].listen"; "" is the document.
// For a key the line is the key's own; for a sequence item, the item's.
func (p *Positions) Line(path string) int {
	line, exact := p.lookup(path)
	if !exact {
		return 0
	}
	return line
}

// Has reports whether the document sets path, which tells an absent key
// (default kept) from one written with the zero value.
func (p *Positions) Has(path string) bool {
	_, exact := p.lookup(path)
	return exact
}

// Errorf returns a *ConfigError "FILE:LINE: PATH: message" for path. The line
// is the key's, or, when the key is missing, that of its nearest parent
// that exists. Wrap with %w in format to keep an error in the chain.
func (p *Positions) Errorf(path, format string, args ...any) error {
	line, _ := p.lookup(path)
	return &ConfigError{File: p.File(), Line: line, Key: path, Err: fmt.Errorf(format, args...)}
}

// lookup returns the line of path or, if it does not exist, of its nearest
// existing parent, and whether path itself exists.
func (p *Positions) lookup(path string) (line int, exact bool) {
	if p == nil || p.root == nil {
		return 0, false
	}
	steps, ok := parsePath(path)
	if !ok {
		return p.root.Line, false
	}
	n, line := p.root, p.root.Line
	for _, st := range steps {
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		var next *yaml.Node
		var at int
		switch {
		case st.key != "" && n.Kind == yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == st.key {
					next, at = n.Content[i+1], n.Content[i].Line
				}
			}
		case st.key == "" && n.Kind == yaml.SequenceNode && st.index < len(n.Content):
			next = n.Content[st.index]
			at = next.Line
		}
		if next == nil {
			return line, false
		}
		n, line = next, at
	}
	return line, true
}

type pathStep struct {
	key   string // mapping key, or "" for a sequence index
	index int
}

// parsePath splits "a.b[1][2].c" into steps.
func parsePath(path string) ([]pathStep, bool) {
	var steps []pathStep
	if path == "" {
		return nil, true
	}
	for _, part := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key == "" && len(steps) == 0 && rest == "" {
			return nil, false
		}
		if key != "" {
			steps = append(steps, pathStep{key: key})
		}
		if rest == "" {
			continue
		}
		for _, ix := range strings.Split(strings.TrimSuffix(rest, "]"), "][") {
			i, err := strconv.Atoi(ix)
			if err != nil || i < 0 {
				return nil, false
			}
			steps = append(steps, pathStep{index: i})
		}
	}
	return steps, true
}

// member is one key or sequence item of the document, in document order.
type member struct {
	path  string
	key   *yaml.Node // nil for a sequence item
	value *yaml.Node
}

func (p *Positions) members() []member {
	var out []member
	var walk func(prefix string, n *yaml.Node, depth int)
	walk = func(prefix string, n *yaml.Node, depth int) {
		if n == nil || depth > 100 {
			return
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				path := k.Value
				if prefix != "" {
					path = prefix + "." + k.Value
				}
				out = append(out, member{path: path, key: k, value: v})
				walk(path, v, depth+1)
			}
		case yaml.SequenceNode:
			for i, v := range n.Content {
				path := fmt.Sprintf("%s[%d]", prefix, i)
				out = append(out, member{path: path, value: v})
				walk(path, v, depth+1)
			}
		}
	}
	if p != nil && p.root != nil {
		out = append(out, member{value: p.root})
		walk("", p.root, 0)
	}
	return out
}

// keyAt returns the path of the key named name on line, or "".
func keyAt(ms []member, line int, name string) string {
	for _, m := range ms {
		if m.key != nil && m.key.Line == line && m.key.Value == name {
			return m.path
		}
	}
	return ""
}

// valueAt returns the path of the value on line that yaml.v3 described as
// tag and val (val cut to 7 characters and "..." when longer than 10), or of
// the first value on line, or "". The document itself has the path "".
func valueAt(ms []member, line int, tag, val string) string {
	first, found := "", false
	for _, m := range ms {
		v := m.value
		if v.Line != line {
			continue
		}
		if !found {
			first, found = m.path, true
		}
		switch tag {
		case "!!seq":
			if v.Kind == yaml.SequenceNode {
				return m.path
			}
		case "!!map":
			if v.Kind == yaml.MappingNode {
				return m.path
			}
		default:
			if v.Kind != yaml.ScalarNode {
				continue
			}
			if v.Value == val {
				return m.path
			}
			if short, ok := strings.CutSuffix(val, "..."); ok && len(v.Value) > 10 && strings.HasPrefix(v.Value, short) {
				return m.path
			}
		}
	}
	return first
}
