package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/faults/clock"
	"github.com/fakecontainerd/fakecontainerd/server"
	"github.com/fakecontainerd/fakecontainerd/shim"
)

// gracefulTimeout is how long SIGTERM lets in-flight calls finish.
const gracefulTimeout = 10 * time.Second

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve the CRI on a unix socket (the default command)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "containerd-style config.toml; without it the embedded default is used"},
			&cli.StringFlag{Name: "address", Aliases: []string{"a"}, Usage: "CRI socket path (overrides [grpc] address)"},
			&cli.StringFlag{Name: "root", Usage: "persistent state directory (overrides root)"},
			&cli.StringFlag{Name: "state", Usage: "volatile state directory (overrides state)"},
			&cli.StringFlag{Name: "log-level", Aliases: []string{"l"}, Usage: "trace, debug, info, warn, error (overrides [debug] level)"},
			&cli.Float64Flag{Name: "time-scale", DefaultText: "the config's time_scale", Usage: "wall seconds per scenario second, e.g. 0.01 (overrides time_scale)"},
			&cli.StringFlag{Name: "shim-mode", Usage: `"inprocess" or "process" (overrides shim_mode)`},
			&cli.StringSliceFlag{Name: "fix", Usage: "switch a fix on (repeatable, or comma-separated): volatile, stopping_state, stopping_state_refined, update_outside_lock, shim_update_nowait, list_index, split_disk"},
			&cli.StringFlag{Name: "metrics-address", Usage: "serve Prometheus metrics (/v1/metrics, /metrics) on a unix socket path or loopback host:port (overrides [metrics] address)"},
			&cli.StringFlag{Name: "debug-address", Usage: "serve /debug/pprof on a unix socket path or loopback host:port (overrides [debug] address)"},
		},
		Action: serve,
	}
}

// loadConfig reads the config file (or the embedded default) and applies
// the flags on top, then validates the result as a whole.
func loadConfig(c *cli.Context, log *logrus.Logger) (*configs.Config, error) {
	var (
		cfg    *configs.Config
		report configs.Report
		err    error
	)
	if path := c.String("config"); path != "" {
		cfg, report, err = configs.Load(path)
	} else {
		cfg, err = configs.Default()
	}
	if err != nil {
		return nil, err
	}
	if v := c.String("address"); v != "" {
		cfg.GRPC.Address = v
	}
	if v := c.String("root"); v != "" {
		cfg.Root = v
	}
	if v := c.String("state"); v != "" {
		cfg.State = v
	}
	// Flag values are checked here so a bad one is reported by the flag's
	// name, not the config key it overrides.
	if v := c.String("log-level"); v != "" {
		if _, err := logrus.ParseLevel(v); err != nil {
			return nil, fmt.Errorf("--log-level %q: want trace, debug, info, warn, error, fatal or panic", v)
		}
		cfg.Debug.Level = strings.ToLower(v)
	}
	for _, f := range []struct {
		flag string
		to   *string
	}{{"metrics-address", &cfg.Metrics.Address}, {"debug-address", &cfg.Debug.Address}} {
		if v := c.String(f.flag); v != "" {
			if err := configs.CheckListenAddress(v); err != nil {
				return nil, fmt.Errorf("--%s: %w", f.flag, err)
			}
			*f.to = v
		}
	}
	if c.IsSet("time-scale") {
		v := c.Float64("time-scale")
		if _, err := clock.New(v); err != nil {
			return nil, fmt.Errorf("--time-scale: %w", err)
		}
		cfg.Plugins.Fake.TimeScale = v
	}
	if v := c.String("shim-mode"); v != "" {
		if v != configs.ShimModeInProcess && v != configs.ShimModeProcess {
			return nil, fmt.Errorf("--shim-mode %q: want %q or %q", v, configs.ShimModeInProcess, configs.ShimModeProcess)
		}
		cfg.Plugins.Fake.ShimMode = v
	}
	for _, v := range c.StringSlice("fix") {
		fixes, err := faults.ParseFixes(v)
		if err != nil {
			return nil, fmt.Errorf("--fix: %w", err)
		}
		for _, f := range fixes {
			cfg.Plugins.Fake.Fixes = append(cfg.Plugins.Fake.Fixes, string(f))
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	level, _ := logrus.ParseLevel(cfg.Debug.Level)
	log.SetLevel(level)
	// A key neither containerd nor the fake knows is most likely a typo
	// that leaves a default in place (SystemdCgrup): warn, one line per
	// key, in containerd 2.x's words (1.6 says nothing). Keys containerd
	// has and the fake does not model stay at debug.
	for _, u := range report.Unknown {
		log.WithFields(logrus.Fields{"file": c.String("config"), "key": u.Key}).Warn("Ignoring unknown key in TOML" + didYouMean(u))
	}
	for _, w := range report.Warnings {
		log.WithField("file", c.String("config")).Warn(w)
	}
	for _, k := range report.Undecoded {
		log.WithField("key", k).Debug("config key is not modelled by fakecontainerd; ignored")
	}
	return cfg, nil
}

func newLogger() *logrus.Logger {
	log := logrus.New()
	log.SetOutput(os.Stderr)
	log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: time.RFC3339Nano})
	return log
}

func serve(c *cli.Context) error {
	if c.Args().Present() {
		return fmt.Errorf("unexpected argument %q (see --help)", c.Args().First())
	}
	log := newLogger()
	cfg, err := loadConfig(c, log)
	if err != nil {
		return err
	}
	// Before anything is written there: refuse a real containerd's dirs.
	if err := server.CheckDirs(cfg.Root, cfg.State); err != nil {
		return err
	}
	clk, err := stateClock(cfg.State, cfg.Plugins.Fake.TimeScale)
	if err != nil {
		return err
	}
	// SIGUSR1 dumps every goroutine, as containerd does; without this
	// handler it would kill the process.
	stopDumps := dumpStacksOnSIGUSR1(logrus.NewEntry(log), cfg.State, "fakecontainerd")
	defer stopDumps()
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable for process-mode shims: %w", err)
	}
	entry := logrus.NewEntry(log)
	shim.RouteLibraryLog(entry)
	if cfg.Plugins.Fake.ShimMode == configs.ShimModeInProcess && cfg.Plugins.Fake.ShimRuntimeSettings {
		shim.TuneRuntime(c.Context, false)
	}
	srv, err := server.New(c.Context, server.Options{
		Config: cfg, Clock: clk, Log: entry, Executable: exe,
		ShimArgs: []string{"shim", "--log-level", cfg.Debug.Level},
	})
	if err != nil {
		return err
	}
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	errCh := make(chan error, 1)
	go func() { errCh <- srv.Serve() }()
	entry.WithFields(logrus.Fields{"address": srv.Address(), "root": cfg.Root, "state": cfg.State, "time_scale": cfg.Plugins.Fake.TimeScale}).
		Info("fakecontainerd serving the CRI")
	select {
	case err := <-errCh:
		srv.Close()
		return err
	case sig := <-signals:
		entry.WithField("signal", sig).Info("shutting down; a second signal exits at once")
		done := make(chan struct{})
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), gracefulTimeout)
			defer cancel()
			srv.Shutdown(ctx)
			close(done)
		}()
		select {
		case <-done:
		case <-signals:
			srv.Close()
			return errors.New("second signal: exited at once")
		}
		return <-errCh
	}
}
