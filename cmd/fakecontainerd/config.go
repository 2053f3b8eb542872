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
				Usage:     "load a config file and report problems, unknown keys (typos) and unmodelled keys",
				ArgsUsage: "FILE",
				Flags: []cli.Flag{&cli.BoolFlag{
					Name:  "strict",
					Usage: "exit non-zero when the file has keys neither containerd nor fakecontainerd knows",
				}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return fmt.Errorf("config check takes exactly one FILE argument")
					}
					_, report, err := configs.Load(c.Args().First())
					if err != nil {
						return err
					}
					// An unknown key is a warning, as containerd's own
					// config commands do not fail on one; --strict makes
					// it an error for CI.
					for _, u := range report.Unknown {
						fmt.Fprintf(c.App.Writer, "unknown key (ignored): %s%s\n", u.Key, didYouMean(u))
					}
					for _, w := range report.Warnings {
						fmt.Fprintf(c.App.Writer, "warning: %s\n", w)
					}
					for _, k := range report.Undecoded {
						fmt.Fprintf(c.App.Writer, "not modelled (ignored): %s\n", k)
					}
					if n := len(report.Unknown); n > 0 && c.Bool("strict") {
						return fmt.Errorf("%s: %d unknown key(s) (--strict)", c.Args().First(), n)
					}
					fmt.Fprintln(c.App.Writer, "ok")
					return nil
				},
			},
		},
	}
}

// didYouMean is the hint of an unknown key's line: " (did you mean
// KEY?)", or "" when no known key is close.
func didYouMean(u configs.UnknownKey) string {
	if u.Suggestion == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", u.Suggestion)
}
