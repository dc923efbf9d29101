package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ConfigError is one problem in a configuration file. Its message is
//
//	FILE:LINE: KEY: problem
//
// with ":LINE" left out when the line is unknown (0) and "KEY: " left out
// when the problem is not about one key (a syntax error, an empty file).
type ConfigError struct {
	File string // file name as given to LoadFile
	Line int    // 1-based line, 0 if unknown
	Key  string // dotted path such as "links[1].dial", empty if none
	Err  error  // the problem itself
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the problem, so errors.Is and errors.As see through.
func (e *ConfigError) Unwrap() error { return e.Err }

// ErrEmptyConfig is the problem reported for a configuration file that holds
// no YAML document (empty, only comments, or only "~"). Every daemon needs at
// least its label, so an empty file is always a mistake.
var ErrEmptyConfig = errors.New("configuration is empty")

// LoadFile reads the YAML file path and decodes it strictly into dst, a
// pointer to a struct already filled with defaults. See Load.
func LoadFile(path string, dst any) (*Positions, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &ConfigError{File: path, Err: fmt.Errorf("cannot read: %w", err)}
	}
	return Load(path, data, dst)
}

// Load decodes the YAML document data, read from file name, strictly into
// dst, a pointer to a struct already filled with defaults: keys absent from
// data keep their defaults. It rejects, each as a *ConfigError naming the
// file, line and key:
//
//   - YAML syntax errors,
//   - an empty document (ErrEmptyConfig) and a second document,
//   - keys that dst has no field for, and duplicate keys,
//   - values of the wrong type, including a time.Duration written as a bare
//     number (durations are written "10s", never 10).
//
// All type and key problems are returned at once, joined with errors.Join.
// On success it returns the Positions of the document, for Validate.
func Load(name string, data []byte, dst any) (pos *Positions, err error) {
	defer func() {
		// yaml.v3 reports some errors by panicking inside and recovers
		// them itself; this only guards against a bug on odd input.
		if r := recover(); r != nil {
			pos, err = nil, &ConfigError{File: name, Err: fmt.Errorf("cannot parse: %v", r)}
		}
	}()
	root, err := parseDocument(name, data)
	if err != nil {
		return nil, err
	}
	pos = &Positions{file: name, root: root}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil {
		return nil, pos.convert(err)
	}
	return pos, nil
}

// parseDocument parses data into a node tree and makes sure it holds
// exactly one non-empty document.
func parseDocument(name string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ConfigError{File: name, Err: ErrEmptyConfig}
		}
		return nil, syntaxError(name, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, syntaxError(name, err)
	default:
		return nil, &ConfigError{File: name, Line: max(extra.Line, 1), Err: errors.New("a second YAML document is not allowed")}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, &ConfigError{File: name, Line: root.Line, Err: ErrEmptyConfig}
	}
	return root, nil
}

// Why the decode errors below are matched by their text, against our own
// rule: yaml.v3 (v3.0.1) gives nothing better. A syntax error is a plain
// error whose text is "yaml: line N: ...", and the decode problems
// (unknown key, duplicate key, wrong type) come only as a *yaml.TypeError
// whose Errors field is a []string of "line N: ..." texts, with no
// structured line, key or value, and no sentinel to compare with
// errors.Is. The only way around would be to decode the yaml.Node tree
// ourselves, type by type, which is the library's whole decoder. So the
// texts are matched here and nowhere else; a text these patterns do not
// know is passed on unchanged (typeProblem's default, syntaxError's
// fallback), so a new wording in yaml.v3 loses the key, never the problem;
// and the tests of this package and e2e's TestCheck pin the messages.
var (
	reSyntax = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	reLine   = regexp.MustCompile(`^line (\d+): (.*)$`)
)

func syntaxError(name string, err error) error {
	msg := err.Error()
	if m := reSyntax.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &ConfigError{File: name, Line: line, Err: errors.New(m[2])}
	}
	return &ConfigError{File: name, Err: errors.New(strings.TrimPrefix(msg, "yaml: "))}
}

// convert turns a decode error of yaml.v3 into ConfigErrors.
func (p *Positions) convert(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return syntaxError(p.file, err)
	}
	ms := p.members()
	errs := make([]error, 0, len(te.Errors))
	for _, s := range te.Errors {
		errs = append(errs, p.typeProblem(ms, s))
	}
	return errors.Join(errs...)
}

var (
	reUnknown   = regexp.MustCompile(`^field (.+) not found in type \S+$`)
	reDupKey    = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	reDupField  = regexp.MustCompile(`^field (.+) already set in type \S+$`)
	reUnmarshal = regexp.MustCompile("^cannot unmarshal (\\S+)(?: `(.*)`)? into (\\S+)$")
)

// typeProblem converts one line of a yaml.TypeError ("line N: ...").
// ms are the document's members, from p.members.
func (p *Positions) typeProblem(ms []member, s string) error {
	m := reLine.FindStringSubmatch(s)
	if m == nil {
		return &ConfigError{File: p.file, Err: errors.New(s)}
	}
	line, _ := strconv.Atoi(m[1])
	msg := m[2]
	e := &ConfigError{File: p.file, Line: line}
	switch {
	case reUnknown.MatchString(msg):
		key := reUnknown.FindStringSubmatch(msg)[1]
		e.Key = keyAt(ms, line, key)
		e.Err = errors.New("unknown key")
	case reDupKey.MatchString(msg):
		mm := reDupKey.FindStringSubmatch(msg)
		e.Key = keyAt(ms, line, mm[1])
		e.Err = fmt.Errorf("duplicate key (first at line %s)", mm[2])
	case reDupField.MatchString(msg):
		e.Key = keyAt(ms, line, reDupField.FindStringSubmatch(msg)[1])
		e.Err = errors.New("duplicate key")
	case reUnmarshal.MatchString(msg):
		mm := reUnmarshal.FindStringSubmatch(msg)
		tag, val, typ := mm[1], mm[2], mm[3]
		e.Key = valueAt(ms, line, tag, val)
		switch {
		case typ == "time.Duration" && (tag == "!!int" || tag == "!!float"):
			e.Err = fmt.Errorf("duration %s has no unit: write it like \"%ss\"", val, val)
		case typ == "time.Duration":
			e.Err = fmt.Errorf("invalid duration %s: write it like \"10s\" or \"1m30s\"", describe(tag, val))
		default:
			e.Err = fmt.Errorf("cannot use %s as %s", describe(tag, val), typ)
		}
	default:
		e.Err = errors.New(msg)
	}
	return e
}

func describe(tag, val string) string {
	kind := map[string]string{
		"!!str": "string", "!!int": "integer", "!!float": "number", "!!bool": "boolean",
		"!!seq": "a list", "!!map": "a mapping", "!!null": "null",
	}[tag]
	if kind == "" {
		kind = tag
	}
	if val == "" {
		return kind
	}
	return kind + " " + strconv.Quote(val)
}

// Problems collects configuration problems so that Validate reports them all
// at once. The zero value works (errors then carry no line); set Pos to the
// Positions from Load to get lines.
//
//	ps := daemon.Problems{Pos: pos}
//	ps.Check("label", mux.CheckLabel(c.Label))
//	if c.Dial == "" && c.Listen == "" {
//		ps.Errorf("parent", "needs dial or listen")
//	}
//	return ps.Err()
type Problems struct {
	Pos  *Positions
	errs []error
}

// Add records err; nil is ignored.
func (ps *Problems) Add(err error) {
	if err != nil {
		ps.errs = append(ps.errs, err)
	}
}

// Errorf records the problem "FILE:LINE: PATH: message" (see Positions.Errorf).
func (ps *Problems) Errorf(path, format string, args ...any) {
	ps.Add(ps.Pos.Errorf(path, format, args...))
}

// Check records err as a problem of path if it is not nil, keeping err in
// the chain. Made for the Check* validators:
//
//	ps.Check("links[1].dial", daemon.CheckDialAddr(l.Dial))
func (ps *Problems) Check(path string, err error) {
	if err != nil {
		ps.Add(ps.Pos.Errorf(path, "%w", err))
	}
}

// Len returns how many problems were recorded.
func (ps *Problems) Len() int { return len(ps.errs) }

// Err returns nil when nothing was recorded, else all problems in the order
// they were recorded, joined with errors.Join (one per line).
func (ps *Problems) Err() error {
	return errors.Join(ps.errs...)
}
