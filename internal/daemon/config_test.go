package daemon

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaychain/relaychain/mux"
)

// sampleConfig is a small daemon configuration, used by the config, CLI and
// fuzz tests.
type sampleConfig struct {
	Label   string        `yaml:"label"`
	Parents []sampleLink  `yaml:"parents"`
	Idle    time.Duration `yaml:"idle_timeout"`
	Log     LogConfig     `yaml:"log"`
}

type sampleLink struct {
	Dial   string `yaml:"dial"`
	Listen string `yaml:"listen"`
}

func (c *sampleConfig) Logging() LogConfig { return c.Log }

func defaultSample() *sampleConfig {
	return &sampleConfig{Idle: 90 * time.Second, Log: DefaultLogConfig()}
}

func (c *sampleConfig) validate(pos *Positions) error {
	ps := Problems{Pos: pos}
	ps.Check("label", mux.CheckLabel(c.Label))
	if len(c.Parents) == 0 {
		ps.Errorf("parents", "at least one parent is required")
	}
	for i, p := range c.Parents {
		switch {
		case p.Dial != "" && p.Listen != "":
			ps.Errorf(indexKey("parents", i), "set dial or listen, not both")
		case p.Dial != "":
			ps.Check(indexKey("parents", i)+".dial", CheckDialAddr(p.Dial))
		case p.Listen != "":
			ps.Check(indexKey("parents", i)+".listen", CheckListenAddr(p.Listen, false))
		default:
			ps.Errorf(indexKey("parents", i)+".dial", "dial or listen is required")
		}
	}
	if c.Idle <= 0 {
		ps.Errorf("idle_timeout", "must be positive")
	}
	c.Log.Validate(&ps, "log")
	return ps.Err()
}

func indexKey(k string, i int) string { return k + "[" + string(rune('0'+i)) + "]" }

func loadSample(path string) (*sampleConfig, error) {
	c := defaultSample()
	pos, err := LoadFile(path, c)
	if err != nil {
		return nil, err
	}
	if err := c.validate(pos); err != nil {
		return nil, err
	}
	return c, nil
}

// writeFile writes a configuration into a temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const goodSample = `# a relay
label: relay-dmz1
parents:
  - dial: 127.0.0.1:7000
  - listen: ":7001"
idle_timeout: 2m
log:
  level: 4
  format: json
`

func TestLoadFileGood(t *testing.T) {
	path := writeFile(t, "relay.yaml", goodSample)
	c := defaultSample()
	pos, err := LoadFile(path, c)
	if err != nil {
		t.Fatal(err)
	}
	if c.Label != "relay-dmz1" || len(c.Parents) != 2 || c.Parents[1].Listen != ":7001" || c.Idle != 2*time.Minute {
		t.Fatalf("decoded %+v", c)
	}
	// Defaults kept where the file is silent.
	if c.Log.Level != 4 || c.Log.Format != "json" || c.Log.MaxSizeMB != 10 || c.Log.MaxBackups != 5 {
		t.Fatalf("log %+v", c.Log)
	}
	if err := c.validate(pos); err != nil {
		t.Fatal(err)
	}
	if pos.File() != path {
		t.Fatalf("File %q", pos.File())
	}
}

func TestPositionsLine(t *testing.T) {
	doc := `label: a
parents:
  - dial: h:1
    listen: h:2
  -
    dial: h:3
log: {level: 3,
  format: text}
list: [[1, 2], [3]]
`
	pos, err := Load("p.yaml", []byte(doc), &map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]int{
		"":                  1,
		"label":             1,
		"parents":           2,
		"parents[0]":        3,
		"parents[0].dial":   3,
		"parents[0].listen": 4,
		"parents[1]":        6, // the item's mapping starts on its first key
		"parents[1].dial":   6,
		"log":               7,
		"log.level":         7,
		"log.format":        8,
		"list[1][0]":        9,
		"missing":           0,
		"parents[2]":        0,
		"parents[0].nope":   0,
		"label.sub":         0,
		"parents[x]":        0,
	}
	for path, want := range cases {
		if got := pos.Line(path); got != want {
			t.Errorf("Line(%q) = %d, want %d", path, got, want)
		}
	}
	if !pos.Has("parents[1].dial") || pos.Has("parents[1].listen") {
		t.Error("Has wrong")
	}
	// Errorf falls back to the nearest existing parent.
	for path, want := range map[string]string{
		"parents[1].listen": "p.yaml:6: parents[1].listen: bad",
		"parents[0].listen": "p.yaml:4: parents[0].listen: bad",
		"log.file":          "p.yaml:7: log.file: bad",
		"nothing.at.all":    "p.yaml:1: nothing.at.all: bad",
	} {
		if got := pos.Errorf(path, "bad").Error(); got != want {
			t.Errorf("Errorf(%q) = %q, want %q", path, got, want)
		}
	}
	var none *Positions
	if none.Line("a") != 0 || none.Errorf("a", "x %d", 1).Error() != ": a: x 1" {
		t.Error("nil Positions")
	}
}

// TestLoadErrors checks that each kind of mistake names the file, the line
// and the key.
func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want []string // each problem, in order
	}{
		{"unknown key", "label: a\nparents:\n  - dial: h:1\n    dail: h:2\n", []string{
			"F:4: parents[0].dail: unknown key"}},
		{"unknown nested", "label: a\nlog:\n  levle: 3\n", []string{
			"F:3: log.levle: unknown key"}},
		{"wrong type", "label: a\nlog:\n  level: loud\n", []string{
			`F:3: log.level: cannot use string "loud" as int`}},
		{"long value", "label: a\nlog:\n  level: averyveryloudlevel\n", []string{
			`F:3: log.level: cannot use string "averyve..." as int`}},
		{"flow mapping", "label: a\nlog: {level: 3, format: [x]}\n", []string{
			"F:2: log.format: cannot use a list as string"}},
		{"sequence item", "label: a\nparents: [x]\n", []string{
			`F:2: parents[0]: cannot use string "x" as daemon.sampleLink`}},
		{"wrong type list", "label: [a]\n", []string{
			"F:1: label: cannot use a list as string"}},
		{"duplicate key", "label: a\nidle_timeout: 1s\nlabel: b\n", []string{
			"F:3: label: duplicate key (first at line 1)"}},
		{"integer duration", "label: a\nidle_timeout: 10\n", []string{
			`F:2: idle_timeout: duration 10 has no unit: write it like "10s"`}},
		{"bad duration", "label: a\nidle_timeout: soon\n", []string{
			`F:2: idle_timeout: invalid duration string "soon": write it like "10s" or "1m30s"`}},
		{"several at once", "label: a\nlabl: b\nlog:\n  level: x\n  colour: red\n", []string{
			"F:2: labl: unknown key",
			`F:4: log.level: cannot use string "x" as int`,
			"F:5: log.colour: unknown key"}},
		{"syntax", "label: a\nparents: x: y\n", []string{
			"F:2: mapping values are not allowed in this context"}},
		// yaml.v3 names the line where the enclosing block starts.
		{"syntax block", "label: a\nparents:\n  - dial: h:1\n   listen: x\n", []string{
			"F:2: did not find expected '-' indicator"}},
		{"tab", "label: a\n\tlog: 1\n", []string{"F:2: "}},
		{"empty", "", []string{"F: configuration is empty"}},
		{"only comments", "# nothing\n\n", []string{"F: configuration is empty"}},
		{"null", "~\n", []string{"F:1: configuration is empty"}},
		{"two documents", "label: a\n---\nlabel: b\n", []string{
			"F:2: a second YAML document is not allowed"}},
		{"not a mapping", "- a\n- b\n", []string{"F:1: cannot use a list as daemon.sampleConfig"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("F", []byte(tc.doc), defaultSample())
			if err == nil {
				t.Fatal("no error")
			}
			errs := flatten(err)
			if len(errs) != len(tc.want) {
				t.Fatalf("got %d problems %q, want %q", len(errs), err, tc.want)
			}
			for i, e := range errs {
				if !strings.HasPrefix(e.Error(), tc.want[i]) {
					t.Errorf("problem %d: %q, want prefix %q", i, e, tc.want[i])
				}
				var ce *ConfigError
				if !errors.As(e, &ce) {
					t.Errorf("problem %d is %T, not *ConfigError", i, e)
				}
			}
		})
	}
}

func TestLoadEmptyIsSentinel(t *testing.T) {
	_, err := Load("F", nil, defaultSample())
	if !errors.Is(err, ErrEmptyConfig) {
		t.Fatalf("got %v", err)
	}
}

func TestLoadFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.yaml")
	_, err := LoadFile(path, defaultSample())
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), path+": cannot read: ") {
		t.Fatalf("got %v", err)
	}
}

func TestValidateReportsEverything(t *testing.T) {
	path := writeFile(t, "bad.yaml", `label: -bad
parents:
  - dial: 127.0.0.1
  - listen: ":70000"
  - dial: "h:1"
    listen: ":2"
  - {}
idle_timeout: -1s
log:
  level: 7
`)
	_, err := loadSample(path)
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		path + `:1: label: label "-bad" must start with a letter or digit`,
		path + `:3: parents[0].dial: address "127.0.0.1": missing port in address`,
		path + `:4: parents[1].listen: address ":70000": port 70000 out of range 1..65535`,
		path + `:5: parents[2]: set dial or listen, not both`,
		path + `:7: parents[3].dial: dial or listen is required`,
		path + `:8: idle_timeout: must be positive`,
		path + `:10: log.level: must be 0..5, not 7`,
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("got %d problems:\n%s", len(got), err)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d:\n got %q\nwant %q", i, got[i], want[i])
		}
	}
}

func TestProblems(t *testing.T) {
	var ps Problems
	if ps.Err() != nil || ps.Len() != 0 {
		t.Fatal("zero Problems not empty")
	}
	ps.Add(nil)
	ps.Check("a", nil)
	sentinel := errors.New("sentinel")
	ps.Check("a", sentinel)
	ps.Errorf("b", "second %d", 2)
	ps.Add(errors.New("third"))
	if ps.Len() != 3 {
		t.Fatalf("Len %d", ps.Len())
	}
	err := ps.Err()
	if got, want := err.Error(), ": a: sentinel\n: b: second 2\nthird"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if !errors.Is(err, sentinel) {
		t.Fatal("Check lost the error chain")
	}
}

func TestCheckAddr(t *testing.T) {
	dialOK := []string{"127.0.0.1:7000", "[::1]:7000", "localhost:7000", "gw.example.com:1", "h:65535", "[fe80::1%eth0]:80"}
	dialBad := []string{"", ":7000", "127.0.0.1", "::1:7000", "h:0", "h:65536", "h:-1", "h:+1", "h:http", "bad host:1", "-h:1", "999.1.1.1:80", "[nothost]:1"}
	for _, s := range dialOK {
		if err := CheckDialAddr(s); err != nil {
			t.Errorf("CheckDialAddr(%q): %v", s, err)
		}
	}
	for _, s := range dialBad {
		if err := CheckDialAddr(s); err == nil {
			t.Errorf("CheckDialAddr(%q) accepted", s)
		}
	}
	for _, s := range []string{":7000", "127.0.0.1:7000", "[::]:7000", "localhost:1"} {
		if err := CheckListenAddr(s, false); err != nil {
			t.Errorf("CheckListenAddr(%q): %v", s, err)
		}
	}
	if err := CheckListenAddr(":0", false); err == nil {
		t.Error("port 0 accepted without allowPortZero")
	}
	if err := CheckListenAddr("127.0.0.1:0", true); err != nil {
		t.Errorf("port 0 with allowPortZero: %v", err)
	}
	if err := CheckListenAddr("7000", true); err == nil {
		t.Error("bare port accepted")
	}
}

func FuzzLoad(f *testing.F) {
	for _, s := range []string{goodSample, "", "label: [", "a: &x [*x]", "log:\n  level: 10\n", "---\n---\n", "label: a\nlabel: b\n",
		"parents:\n- {dial: 1, listen: [2]}\n", "idle_timeout: 10\n", "<<: {label: a}\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := defaultSample()
		pos, err := Load("fuzz.yaml", data, c)
		if err != nil {
			for _, e := range flatten(err) {
				if !strings.HasPrefix(e.Error(), "fuzz.yaml") {
					t.Fatalf("problem without file name: %q", e)
				}
			}
			return
		}
		_ = c.validate(pos)
		for _, p := range []string{"", "label", "parents[0].dial", "log.level", "a[1][2].b"} {
			_ = pos.Line(p)
		}
	})
}
