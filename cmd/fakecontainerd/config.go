package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/fakecontainerd/fakecontainerd/configs"
)

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "information on fakecontainerd's configuration",
		Subcommands: []*cli.Command{
			{
				Name:  "default",
				Usage: "print the embedded default config",
				Action: func(c *cli.Context) error {
					_, err := fmt.Fprint(c.App.Writer, string(configs.DefaultTOML()))
					return err
				},
			},
			{
				Name:      "check",
				Usage:     "load a config file and report problems and unmodelled keys",
				ArgsUsage: "FILE",
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return fmt.Errorf("config check takes exactly one FILE argument")
					}
					_, report, err := configs.Load(c.Args().First())
					if err != nil {
						return err
					}
					for _, k := range report.Undecoded {
						fmt.Fprintf(c.App.Writer, "not modelled (ignored): %s\n", k)
					}
					fmt.Fprintln(c.App.Writer, "ok")
					return nil
				},
			},
		},
	}
}
