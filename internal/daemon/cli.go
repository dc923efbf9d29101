package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/relaychain/relaychain/internal/version"
)

// Config is what every daemon's configuration offers the shared plumbing:
// its `log` section. Name the struct field Log and the method Logging:
//
//	type Config struct {
//		Log daemon.LogConfig `yaml:"log"`
//		...
//	}
//	func (c *Config) Logging() daemon.LogConfig { return c.Log }
type Config interface {
	Logging() LogConfig
}

// Spec describes one daemon to App and Main.
type Spec[C Config] struct {
	// Name is the binary's name: "relay". It names the default
	// configuration file (./NAME.yaml) and prefixes error messages.
	Name string
	// Usage is a one-line description for --help.
	Usage string
	// Load reads and validates the configuration file path. Its error may
	// join several problems (errors.Join, Problems.Err); each is printed on
	// its own line. Load is called again on SIGHUP to re-read the log level.
	Load func(path string) (C, error)
	// Run runs the daemon in the foreground until ctx is done (SIGINT or
	// SIGTERM), then shuts down and returns nil. log is built from the
	// configuration's log section with --log-level applied; lv changes its
	// level, and already follows SIGUSR1, SIGUSR2 and SIGHUP.
	Run func(ctx context.Context, cfg C, log *logrus.Logger, lv *Level) error
	// Reload, when set and Apply is not, is called on SIGHUP, before the
	// level is re-read, with the configuration Run was given, to re-read
	// what it holds loaded. It logs its own outcome and runs beside Run.
	Reload func(cfg C, log *logrus.Logger)
	// Commands, when set, are more commands of the binary, beside check,
	// pki and completion (the chain daemons' "chain").
	Commands []*cli.Command

	// Apply, when set, makes SIGHUP reload the whole configuration (see
	// reload.go): the file is loaded and checked first, and one that does
	// not load is refused, each problem logged, nothing changed. Then
	// Apply is given the configuration Run was given and the new one, and
	// applies the difference; its error refuses the reload and keeps the
	// level. The log settings and the level are applied after it. Reload
	// is not called when Apply is set.
	Apply func(cfg, next C, log *logrus.Logger) error
}

// LoadError is returned by App when the configuration cannot be loaded. Its
// problems have already been written to the app's ErrWriter, one per line;
// its own message is a summary: "2 problems in relay.yaml". Path may name
// several files: "3 problems in configs/example" (see ReportProblems).
type LoadError struct {
	Path     string
	Problems []error
}

func (e *LoadError) Error() string {
	s := "s"
	if len(e.Problems) == 1 {
		s = ""
	}
	return fmt.Sprintf("%d problem%s in %s", len(e.Problems), s, e.Path)
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (e *LoadError) Unwrap() []error { return e.Problems }

// App returns the command line of the daemon spec describes:
//
//	NAME [--config FILE] [--log-level N]   run in the foreground
//	NAME check [--config FILE]             check the configuration, print "FILE: configuration OK"
//	NAME -v | --version                    print version.String(NAME)
//	NAME pki ca --out DIR                  make a CA for the links' TLS (see pkiCommand)
//	NAME pki issue --ca DIR --label LABEL --out DIR
//	                                       make a node's key and certificate
//	NAME completion [bash]                 print a bash completion script
//	NAME ...                               spec.Commands (the chain daemons' "chain")
//
// --config (-c) defaults to ./NAME.yaml; --log-level (0..5) overrides the
// file's log.level until the first SIGHUP, which reloads the file
// (Spec.Apply, or Spec.Reload) and re-reads the level from it (SIGUSR1/SIGUSR2 step from wherever it
// is). Configuration problems
// are written to the app's ErrWriter, one "FILE:LINE: KEY: problem" per
// line, and returned as a *LoadError. The app never exits the process: errors are returned
// (ExitCoder errors too), and Main turns them into the exit status.
func App[C Config](spec Spec[C]) *cli.App {
	configFlag := func() cli.Flag {
		return &cli.StringFlag{
			Name:    "config",
			Aliases: []string{"c"},
			Usage:   "configuration `FILE`",
			Value:   "./" + spec.Name + ".yaml",
		}
	}
	app := &cli.App{
		Name:            spec.Name,
		Usage:           spec.Usage,
		HideVersion:     true, // -v/--version is ours, without cli's global printer
		ExitErrHandler:  func(*cli.Context, error) {},
		HideHelpCommand: true,
		// "NAME ... --generate-bash-completion" lists what may come next;
		// "NAME completion" prints the script that asks it.
		EnableBashCompletion: true,
		Flags: []cli.Flag{
			configFlag(),
			&cli.StringFlag{
				Name:  "log-level",
				Usage: "log level `N` (0 silent .. 5 trace), overrides the configuration file",
			},
			&cli.BoolFlag{
				Name:    "version",
				Aliases: []string{"v"},
				Usage:   "print the version and exit",
			},
		},
		Action: func(c *cli.Context) error {
			if c.Bool("version") {
				_, err := fmt.Fprintln(c.App.Writer, version.String(spec.Name))
				return err
			}
			if c.Args().Present() {
				return fmt.Errorf("unexpected argument %q (see --help)", c.Args().First())
			}
			override := -1
			if c.IsSet("log-level") {
				n, err := parseLevel(c.String("log-level"))
				if err != nil {
					return err
				}
				override = n
			}
			return runDaemon(c, spec, configPath(c), override)
		},
		Commands: append([]*cli.Command{{
			Name:  "check",
			Usage: "check the configuration file and exit",
			Flags: []cli.Flag{configFlag()},
			Action: func(c *cli.Context) error {
				if c.Args().Present() {
					return fmt.Errorf("unexpected argument %q (see --help)", c.Args().First())
				}
				path := configPath(c)
				if _, err := load(c, spec, path); err != nil {
					return err
				}
				_, err := fmt.Fprintf(c.App.Writer, "%s: configuration OK\n", path)
				return err
			},
		}, pkiCommand(spec.Name)}, append(spec.Commands, completionCommand(spec.Name))...),
	}
	hideHelpCommands(app.Commands)
	return app
}

// hideHelpCommands leaves out the "help" subcommand that the CLI library
// adds to every command (--help stays), as the app itself does: it would
// be offered by completion where a file name is wanted.
func hideHelpCommands(cmds []*cli.Command) {
	for _, c := range cmds {
		c.HideHelpCommand = true
		hideHelpCommands(c.Subcommands)
	}
}

// Main runs the daemon's command line and is all a daemon's main needs:
//
//	func main() { daemon.Main(relaySpec) }
//
// SIGINT and SIGTERM cancel the context given to Spec.Run; a second one
// after that kills the process the default way. On error Main prints
// "NAME: error" to standard error and exits with status 1; it is the only
// place in the project that calls os.Exit.
func Main[C Config](spec Spec[C]) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	err := App(spec).RunContext(ctx, os.Args)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", spec.Name, err)
		os.Exit(1)
	}
}

func parseLevel(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < LevelSilent || n > MaxLevel {
		return 0, fmt.Errorf("--log-level %q: must be a number 0..%d", s, MaxLevel)
	}
	return n, nil
}

// ConfigPath returns --config as the app's commands read it (see
// configPath), for commands a daemon adds (Spec.Commands).
func ConfigPath(c *cli.Context) string { return configPath(c) }

// configPath returns --config from the nearest command that sets it
// ("NAME check -c F" and "NAME -c F check" both work), else the default.
func configPath(c *cli.Context) string {
	for _, cc := range c.Lineage() {
		for _, n := range cc.LocalFlagNames() {
			if n == "config" || n == "c" {
				return cc.String("config")
			}
		}
	}
	return c.String("config")
}

// load calls spec.Load and, on error, writes each problem on its own line
// to the app's ErrWriter and returns a *LoadError.
func load[C Config](c *cli.Context, spec Spec[C], path string) (C, error) {
	cfg, err := spec.Load(path)
	if err == nil {
		return cfg, nil
	}
	return cfg, ReportProblems(c.App.ErrWriter, path, err)
}

// ReportProblems writes each problem of err (an errors.Join tree, such as
// Problems.Err returns) on its own line to w and returns them as a
// *LoadError for what, the file or files they are in; Main then prints its
// summary, "NAME: 2 problems in WHAT", and exits 1. A command that loads
// configurations its own way (the chain daemons' "chain check") reports
// with it as "check" does.
func ReportProblems(w io.Writer, what string, err error) error {
	problems := flatten(err)
	for _, p := range problems {
		fmt.Fprintln(w, p)
	}
	return &LoadError{Path: what, Problems: problems}
}

// flatten expands errors.Join trees into their leaves, in order.
func flatten(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		if e != nil {
			out = append(out, flatten(e)...)
		}
	}
	return out
}

// runDaemon loads the configuration, builds the logger, starts the signal
// watcher and runs spec.Run. override is the --log-level, or -1.
func runDaemon[C Config](c *cli.Context, spec Spec[C], path string, override int) (err error) {
	cfg, err := load(c, spec, path)
	if err != nil {
		return err
	}
	lc := cfg.Logging()
	if override >= 0 {
		lc.Level = override
	}
	logger, closer, err := NewLogger(lc)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := closer.Close(); cerr != nil && !errors.Is(cerr, fs.ErrClosed) {
			err = errors.Join(err, fmt.Errorf("close log: %w", cerr))
		}
	}()
	lv := NewLevel(logger, lc.Level)
	reload := func() (int, error) {
		if spec.Apply != nil {
			return reloadAll(spec, cfg, path, logger, &lc, &closer)
		}
		if spec.Reload != nil {
			spec.Reload(cfg, logger)
		}
		next, err := spec.Load(path)
		if err != nil {
			return 0, err
		}
		return next.Logging().Level, nil
	}
	stop := WatchSignals(c.Context, lv, reload)
	defer stop()

	log := Component(logger, "main")
	log.WithFields(logrus.Fields{
		"version": version.Version,
		"commit":  version.Commit,
		"config":  path,
		"level":   lv.Get(),
	}).Info("starting")
	if err := spec.Run(c.Context, cfg, logger, lv); err != nil {
		log.WithError(err).Error("stopped")
		return err
	}
	log.Info("stopped")
	return nil
}
