package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/faults/clock"
	"github.com/fakecontainerd/fakecontainerd/shim"
)

// shimCommand is the body of a process-mode shim, started by the server
// as containerd starts containerd-shim-runc-v2.
func shimCommand() *cli.Command {
	return &cli.Command{
		Name:   "shim",
		Usage:  "run one sandbox's shim (started by the server in shim_mode = \"process\")",
		Hidden: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "group", Required: true, Usage: "sandbox id the shim serves"},
			&cli.StringFlag{Name: "state", Required: true, Usage: "the server's state directory"},
			&cli.StringFlag{Name: "events-address", Required: true, Usage: "the server's ttrpc events socket"},
			&cli.Float64Flag{Name: "time-scale", Value: 1},
			&cli.Int64Flag{Name: "clock-origin", Usage: "unix nanoseconds at which virtual and wall time coincide"},
			&cli.Int64Flag{Name: "write-rate"},
			&cli.Int64Flag{Name: "dirty-limit"},
			&cli.Int64Flag{Name: "disk-throughput"},
			&cli.DurationFlag{Name: "stop-grace"},
			&cli.BoolFlag{Name: "ignore-sigterm"},
			&cli.StringFlag{Name: "log-level", Value: "info"},
			&cli.StringSliceFlag{Name: "fix", Usage: "a fix toggle on in this shim (shim_update_nowait is the one the shim reads)"},
		},
		Action: runShim,
	}
}

func runShim(c *cli.Context) error {
	log := newLogger()
	level, err := logrus.ParseLevel(c.String("log-level"))
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log.SetLevel(level)
	shim.RouteLibraryLog(logrus.NewEntry(log))
	origin := time.Now()
	if c.IsSet("clock-origin") {
		origin = time.Unix(0, c.Int64("clock-origin"))
	}
	clk, err := clock.NewAt(c.Float64("time-scale"), origin)
	if err != nil {
		return fmt.Errorf("--time-scale: %w", err)
	}
	toggles := faults.NewToggles()
	for _, v := range c.StringSlice("fix") {
		fixes, err := faults.ParseFixes(v)
		if err != nil {
			return fmt.Errorf("--fix: %w", err)
		}
		for _, f := range fixes {
			_ = toggles.Set(f, true)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	shim.TuneRuntime(ctx, true)
	entry := log.WithFields(logrus.Fields{"sandbox": c.String("group"), "shim_pid": os.Getpid()})
	entry.Info("shim starting")
	// SIGUSR1 dumps the shim's goroutines next to its socket and log.
	stopDumps := dumpStacksOnSIGUSR1(entry, filepath.Dir(shim.SocketPath(c.String("state"), c.String("group"))), "fakecontainerd-shim")
	defer stopDumps()
	return shim.Run(ctx, shim.ServerConfig{
		Group: c.String("group"), StateDir: c.String("state"), EventsAddress: c.String("events-address"), Clock: clk,
		Defaults: shim.Defaults{
			Disk:       shim.DiskModel{WriteRate: c.Int64("write-rate"), DirtyLimit: c.Int64("dirty-limit"), Throughput: c.Int64("disk-throughput")},
			StopGrace:  c.Duration("stop-grace"),
			IgnoreTerm: c.Bool("ignore-sigterm"),
		},
		Log:     entry,
		Toggles: toggles,
	})
}
