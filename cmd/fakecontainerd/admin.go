package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/server"
)

// adminFlags find the admin socket: --admin, or the CRI --address plus
// ".admin" (the server's default), or the default config's.
var adminFlags = []cli.Flag{
	&cli.StringFlag{Name: "address", Aliases: []string{"a"}, Usage: "the server's CRI socket; its admin socket is this plus \".admin\""},
	&cli.StringFlag{Name: "admin", Usage: "the admin socket itself (overrides --address)"},
}

type adminClient struct {
	path string
	http *http.Client
}

func newAdminClient(c *cli.Context) (*adminClient, error) {
	path := c.String("admin")
	if path == "" {
		cfg, err := configs.Default()
		if err != nil {
			return nil, err
		}
		if a := c.String("address"); a != "" {
			cfg.GRPC.Address = strings.TrimPrefix(a, "unix://")
		}
		path = server.AdminAddress(cfg)
	}
	return &adminClient{path: path, http: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}}, nil
}

// do sends a request and decodes the JSON answer into out.
func (a *adminClient) do(method, path string, query url.Values, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	u := "http://fakecontainerd" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin socket %s: %w (is the server running?)", a.path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e server.ErrorResponse
		if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Error != "" {
			return fmt.Errorf("%s", e.Error)
		}
		return fmt.Errorf("admin API: %s", resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func faultCommand() *cli.Command {
	return &cli.Command{
		Name:  "fault",
		Usage: "list, set, clear and release faults in a running server",
		Subcommands: []*cli.Command{
			{
				Name:  "points",
				Usage: "list the fault point names",
				Action: func(c *cli.Context) error {
					for _, p := range faults.Points() {
						fmt.Fprintln(c.App.Writer, p)
					}
					return nil
				},
			},
			{
				Name:  "list",
				Usage: "list armed faults with their firing counts",
				Flags: append([]cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}}, adminFlags...),
				Action: func(c *cli.Context) error {
					a, err := newAdminClient(c)
					if err != nil {
						return err
					}
					var list []faults.Info
					if err := a.do(http.MethodGet, "/v1/faults", nil, nil, &list); err != nil {
						return err
					}
					if c.Bool("json") {
						return json.NewEncoder(c.App.Writer).Encode(list)
					}
					w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
					fmt.Fprintln(w, "ID\tPOINT\tTARGET\tSPEC\tNOW\tFIRED\tBLOCKED\tSOURCE")
					for _, f := range list {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", f.ID, f.Point, f.Target, f.Spec, f.Current, f.Fired, f.Blocked, f.Source)
					}
					return w.Flush()
				},
			},
			{
				Name:      "set",
				Usage:     "arm a fault, e.g. fault set --point shim.umount2 --target pod=job 'delay(60s)'",
				ArgsUsage: "SPEC",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "point", Required: true, Usage: "the fault `POINT` (fakecontainerd fault points lists them)"},
					&cli.StringFlag{Name: "target", Value: "all", Usage: "all, or id=, pod=, namespace=, container=, label.K=, annotation.K= pairs"},
					&cli.BoolFlag{Name: "strict", Usage: "refuse a target that matches no container or pod that exists now, instead of arming it with a warning"},
				}, adminFlags...),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return fmt.Errorf("fault set takes exactly one SPEC argument, e.g. 'delay(2m)' or '2*error(Unavailable)->off'")
					}
					a, err := newAdminClient(c)
					if err != nil {
						return err
					}
					var info server.FaultResponse
					req := server.FaultRequest{Point: c.String("point"), Target: c.String("target"), Spec: c.Args().First(), Strict: c.Bool("strict")}
					if err := a.do(http.MethodPost, "/v1/faults", nil, req, &info); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "%s\t%s\t%s\t%s\n", info.ID, info.Point, info.Target, info.Spec)
					if info.Warning != "" {
						fmt.Fprintf(c.App.ErrWriter, "warning: %s\n", info.Warning)
					}
					return nil
				},
			},
			{
				Name:      "clear",
				Usage:     "disarm faults by id (all with --all), letting go of what they block",
				ArgsUsage: "[ID...]",
				Flags:     append([]cli.Flag{&cli.BoolFlag{Name: "all", Usage: "clear every fault"}}, adminFlags...),
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 && !c.Bool("all") {
						return fmt.Errorf("fault clear needs fault ids, or --all")
					}
					a, err := newAdminClient(c)
					if err != nil {
						return err
					}
					var removed []faults.Info
					if err := a.do(http.MethodDelete, "/v1/faults", url.Values{"id": c.Args().Slice()}, nil, &removed); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "cleared %d fault(s)\n", len(removed))
					return nil
				},
			},
			{
				Name:      "release",
				Usage:     "let go of the calls block faults hold now (all faults if no id)",
				ArgsUsage: "[ID...]",
				Flags:     adminFlags,
				Action: func(c *cli.Context) error {
					a, err := newAdminClient(c)
					if err != nil {
						return err
					}
					var resp server.ReleaseResponse
					if err := a.do(http.MethodPost, "/v1/faults/release", url.Values{"id": c.Args().Slice()}, nil, &resp); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "released %d call(s)\n", resp.Released)
					return nil
				},
			},
		},
	}
}

func fixCommand() *cli.Command {
	show := func(c *cli.Context, state map[string]bool) error {
		names := make([]string, 0, len(state))
		for n := range state {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			on := "off"
			if state[n] {
				on = "on"
			}
			fmt.Fprintf(c.App.Writer, "%s\t%s\n", n, on)
		}
		return nil
	}
	toggle := func(on bool) cli.ActionFunc {
		return func(c *cli.Context) error {
			if c.NArg() == 0 {
				return fmt.Errorf("name at least one fix: %v", faults.Fixes)
			}
			a, err := newAdminClient(c)
			if err != nil {
				return err
			}
			var state map[string]bool
			for _, name := range c.Args().Slice() {
				if err := a.do(http.MethodPost, "/v1/fixes", nil, server.FixRequest{Fix: name, On: on}, &state); err != nil {
					return err
				}
			}
			return show(c, state)
		}
	}
	return &cli.Command{
		Name:  "fix",
		Usage: "list and switch fix toggles in a running server",
		Subcommands: []*cli.Command{
			{Name: "list", Usage: "show every fix and whether it is on", Flags: adminFlags, Action: func(c *cli.Context) error {
				a, err := newAdminClient(c)
				if err != nil {
					return err
				}
				var state map[string]bool
				if err := a.do(http.MethodGet, "/v1/fixes", nil, nil, &state); err != nil {
					return err
				}
				return show(c, state)
			}},
			{Name: "enable", Usage: "switch fixes on", ArgsUsage: "FIX...", Flags: adminFlags, Action: toggle(true)},
			{Name: "disable", Usage: "switch fixes off", ArgsUsage: "FIX...", Flags: adminFlags, Action: toggle(false)},
		},
	}
}
