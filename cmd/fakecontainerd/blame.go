package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/fakecontainerd/fakecontainerd/server"
)

// blameCommand prints the current wait-for chains in plain words, then
// every tracked lock and the longest recent waits.
func blameCommand() *cli.Command {
	return &cli.Command{
		Name:  "blame",
		Usage: "say who waits on whom in a running server, lock by lock",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the whole report as JSON"},
			&cli.BoolFlag{Name: "locks", Usage: "also list every tracked lock's holders and waiters"},
		}, adminFlags...),
		Action: func(c *cli.Context) error {
			a, err := newAdminClient(c)
			if err != nil {
				return err
			}
			var rep server.BlameReport
			if err := a.do(http.MethodGet, "/v1/blame", nil, nil, &rep); err != nil {
				return err
			}
			if c.Bool("json") {
				return json.NewEncoder(c.App.Writer).Encode(rep)
			}
			w := c.App.Writer
			if len(rep.Chains) == 0 {
				fmt.Fprintln(w, "Nothing waits on a tracked lock or inside a fault now.")
			}
			for _, chain := range rep.Chains {
				fmt.Fprintln(w, chain)
			}
			if c.Bool("locks") && len(rep.Locks) > 0 {
				fmt.Fprintln(w)
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "LOCK\tROLE\tOP\tFOR\tGOROUTINE\tDOING")
				for _, l := range rep.Locks {
					for _, h := range l.Holders {
						fmt.Fprintf(tw, "%s\tholds\t%s\t%s\t%d\t%s\n", l.Lock, h.Op, h.For.Round(1e6), h.Goroutine, doing(h))
					}
					for _, wt := range l.Waiters {
						fmt.Fprintf(tw, "%s\twaits\t%s\t%s\t%d\t%s\n", l.Lock, wt.Op, wt.For.Round(1e6), wt.Goroutine, doing(wt))
					}
				}
				tw.Flush()
			}
			if len(rep.Longest) > 0 {
				fmt.Fprintln(w, "\nLongest waits of the last 10 minutes:")
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				for _, l := range rep.Longest {
					fmt.Fprintf(tw, "  %s\t%s waited\t%s\tat %s\n", l.Lock, l.Op, l.Waited.Round(1e6), l.At.Format("15:04:05"))
				}
				tw.Flush()
			}
			return nil
		},
	}
}

// doing says what a lock's holder or waiter does: its own work, its call
// to a shim, and the fault that holds it, if any.
func doing(u server.UseEntry) string {
	var parts []string
	if u.Detail != "" {
		parts = append(parts, u.Detail)
	}
	if u.ShimCall != "" {
		parts = append(parts, "in shim call "+u.ShimCall)
	}
	if u.Fault != "" {
		parts = append(parts, "inside "+u.Fault)
	}
	return strings.Join(parts, "; ")
}
