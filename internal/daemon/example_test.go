package daemon_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaychain/relaychain/internal/daemon"
	"github.com/relaychain/relaychain/mux"
)

// Config is a daemon's configuration.
type Config struct {
	Label  string           `yaml:"label"`
	Listen string           `yaml:"listen"`
	Idle   time.Duration    `yaml:"idle_timeout"` // written "90s"
	Log    daemon.LogConfig `yaml:"log"`
}

func (c *Config) Logging() daemon.LogConfig { return c.Log }

func Default() *Config {
	return &Config{Idle: 90 * time.Second, Log: daemon.DefaultLogConfig()}
}

func Load(path string) (*Config, error) {
	c := Default()
	pos, err := daemon.LoadFile(path, c) // unknown keys, bad types, ... -> FILE:LINE: KEY: problem
	if err != nil {
		return nil, err
	}
	ps := daemon.Problems{Pos: pos}
	ps.Check("label", mux.CheckLabel(c.Label))
	ps.Check("listen", daemon.CheckListenAddr(c.Listen, false))
	if c.Idle <= 0 {
		ps.Errorf("idle_timeout", "must be positive")
	}
	c.Log.Validate(&ps, "log")
	return c, ps.Err() // every problem at once
}

// Server stands for the daemon's own code.
type Server struct{ log *logrus.Entry }

func New(cfg *Config, log *logrus.Entry) *Server { return &Server{log: log} }

// Serve returns nil once ctx is done and it has shut down.
func (s *Server) Serve(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// A daemon's configuration, loaded strictly and validated with every
// problem at once, and its whole main; "relay check" on a configuration
// with two problems prints both, with their lines.
func Example() {
	spec := daemon.Spec[*Config]{
		Name:  "relay",
		Usage: "forward sessions between a parent and its children",
		Load:  Load,
		Run: func(ctx context.Context, cfg *Config, log *logrus.Logger, lv *daemon.Level) error {
			srv := New(cfg, daemon.Component(log, "relay"))
			return srv.Serve(ctx) // returns nil once ctx is done and it has shut down
		},
	}
	main := func() { daemon.Main(spec) }
	_ = main

	app := daemon.App(spec)
	app.Writer, app.ErrWriter = os.Stdout, os.Stdout
	err := app.Run([]string{"relay", "check", "--config", "testdata/example.yaml"})
	fmt.Println(err)
	// Output:
	// testdata/example.yaml:1: label: label "-relay" must start with a letter or digit
	// testdata/example.yaml:3: idle_timeout: must be positive
	// 2 problems in testdata/example.yaml
}
