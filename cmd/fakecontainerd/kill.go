package main

import (
	"fmt"
	"net/http"

	"github.com/urfave/cli/v2"

	"github.com/fakecontainerd/fakecontainerd/server"
)

// killCommand is the field's `kill -9 $CNTR_PID` against a fake container:
// its process dies now, outside containerd, and the exit flows through the
// shim and the server as any exit does.
func killCommand() *cli.Command {
	return &cli.Command{
		Name:      "kill",
		Usage:     "kill a container's process now, as kill on the node would (default SIGKILL: exit status 137)",
		ArgsUsage: "ID",
		Description: "ID is a container id or a unique prefix of one (or a sandbox's: its pause process).\n" +
			"SIGKILL ends the process at once (137); SIGTERM, SIGINT and SIGQUIT after its stop grace\n" +
			"(128 + the signal), unless it ignores SIGTERM (fakecontainerd.io/stop-grace: never);\n" +
			"other signals are delivered and ignored. --exit-code makes the process exit by itself.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "signal", Aliases: []string{"s"}, Usage: "signal name or number: KILL, TERM, INT, 9, 15, ... (default KILL)"},
			&cli.IntFlag{Name: "exit-code", DefaultText: "none", Usage: "exit by itself with this status (0 to 255) instead of dying of a signal"},
		}, adminFlags...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("kill takes exactly one container ID (or unique prefix), e.g. fakecontainerd kill 40585f73")
			}
			req := server.KillRequest{ID: c.Args().First(), Signal: c.String("signal")}
			if c.IsSet("exit-code") {
				if c.IsSet("signal") {
					return fmt.Errorf("--signal and --exit-code: give one of them")
				}
				code := c.Int("exit-code")
				if code < 0 || code > 255 {
					return fmt.Errorf("--exit-code %d: must be 0 to 255", code)
				}
				u := uint32(code)
				req.ExitCode = &u
			}
			a, err := newAdminClient(c)
			if err != nil {
				return err
			}
			var resp server.KillResponse
			if err := a.do(http.MethodPost, "/v1/kill", nil, req, &resp); err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, killOutcome(resp))
			return nil
		},
	}
}

// killOutcome says in words what the process does.
func killOutcome(r server.KillResponse) string {
	what := fmt.Sprintf("%s %s", r.Kind, shortID(r.ID))
	if r.Signal != "" {
		what += ": " + r.Signal
	}
	switch {
	case !r.Exits:
		return what + ": delivered and ignored by the process; it keeps running"
	case r.After > 0:
		return fmt.Sprintf("%s: the process exits with status %d after its stop grace (%s)", what, r.ExitStatus, r.After)
	}
	return fmt.Sprintf("%s: the process exits with status %d", what, r.ExitStatus)
}

func shortID(id string) string {
	if len(id) > 13 {
		return id[:13]
	}
	return id
}
