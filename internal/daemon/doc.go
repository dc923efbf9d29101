// Package daemon is the plumbing every relaychain daemon (epproxy, gwproxy,
// relay, eventsink) shares: the command line, strict YAML configuration
// loading with file:line:key errors, validators, and logging with numeric
// levels, size-based rotation and run-time level changes.
//
// Typical usage (Example in example_test.go holds this code and checks a
// configuration with it), a daemon's configuration:
//
//	type Config struct {
//		Label  string           `yaml:"label"`
//		Listen string           `yaml:"listen"`
//		Idle   time.Duration    `yaml:"idle_timeout"` // written "90s"
//		Log    daemon.LogConfig `yaml:"log"`
//	}
//
//	func (c *Config) Logging() daemon.LogConfig { return c.Log }
//
//	func Default() *Config {
//		return &Config{Idle: 90 * time.Second, Log: daemon.DefaultLogConfig()}
//	}
//
//	func Load(path string) (*Config, error) {
//		c := Default()
//		pos, err := daemon.LoadFile(path, c) // unknown keys, bad types, ... -> FILE:LINE: KEY: problem
//		if err != nil {
//			return nil, err
//		}
//		ps := daemon.Problems{Pos: pos}
//		ps.Check("label", mux.CheckLabel(c.Label))
//		ps.Check("listen", daemon.CheckListenAddr(c.Listen, false))
//		if c.Idle <= 0 {
//			ps.Errorf("idle_timeout", "must be positive")
//		}
//		c.Log.Validate(&ps, "log")
//		return c, ps.Err() // every problem at once
//	}
//
// and its main:
//
//	func main() {
//		daemon.Main(daemon.Spec[*Config]{
//			Name:  "relay",
//			Usage: "forward sessions between a parent and its children",
//			Load:  Load,
//			Run: func(ctx context.Context, cfg *Config, log *logrus.Logger, lv *daemon.Level) error {
//				srv := New(cfg, daemon.Component(log, "relay"))
//				return srv.Serve(ctx) // returns nil once ctx is done and it has shut down
//			},
//		})
//	}
//
// That binary then understands
//
//	relay -v                         relay 1.2.0 (commit 3f2a9c1, built ..., go1.26.8 linux/amd64)
//	relay --config relay.yaml        run in the foreground
//	relay --log-level 4 -c relay.yaml
//	relay check --config relay.yaml  relay.yaml: configuration OK
//	relay pki ca --out ca            a CA for the links' mutual TLS (package pki)
//	relay pki issue --ca ca --label relay-dmz1 --out relay-dmz1
//	relay completion                 a bash completion script
//	relay ...                        Spec.Commands: the chain daemons add "chain" (package chain)
//
// and, while it runs, SIGUSR1 / SIGUSR2 (one level up / down) and SIGHUP
// (with Spec.Apply: the whole file loaded, checked and applied, log
// settings included; else Spec.Reload, then the level re-read from the
// file). Log lines look like
//
//	26/11/21 10:04:05 3 routing: WHO command received [l=relay-dmz1]
package daemon
