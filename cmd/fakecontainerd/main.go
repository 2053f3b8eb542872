// Command fakecontainerd is an instrumented fake containerd: a CRI server a
// real kubelet or crictl can run pods on, whose locks, shim calls and
// deadlines mirror containerd's so that its stalls can be reproduced.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/fakecontainerd/fakecontainerd/server"
)

func main() {
	app := newApp()
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "fakecontainerd: %v\n", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	serve := serveCommand()
	app := &cli.App{
		Name:    "fakecontainerd",
		Usage:   "an instrumented fake containerd for reproducing kubelet PLEG stalls",
		Version: server.Version,
		// A bare `fakecontainerd` serves, like `containerd`.
		Flags:    serve.Flags,
		Action:   serve.Action,
		Commands: append([]*cli.Command{serve, configCommand(), faultCommand(), killCommand(), fixCommand(), blameCommand(), shimCommand()}, scenarioCommands()...),
		// Unknown flags and bad values are reported by name, and exit 1.
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return fmt.Errorf("%w (see fakecontainerd --help)", err)
		},
	}
	shortUsageErrors(app.Name, app.Commands)
	return app
}

// shortUsageErrors makes every command answer a bad flag with one line that
// names it and points to the command's --help, instead of urfave/cli's
// "Incorrect Usage" followed by the whole help.
func shortUsageErrors(parent string, cmds []*cli.Command) {
	for _, cmd := range cmds {
		name := parent + " " + cmd.Name
		if cmd.OnUsageError == nil {
			cmd.OnUsageError = func(c *cli.Context, err error, isSubcommand bool) error {
				return fmt.Errorf("%s: %w (see %s --help)", strings.TrimPrefix(name, "fakecontainerd "), err, name)
			}
		}
		shortUsageErrors(name, cmd.Subcommands)
	}
}
