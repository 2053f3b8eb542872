package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// eachCommand calls f for the app and every command under it, with its
// command path and flags.
func eachCommand(app *cli.App, f func(path string, flags []cli.Flag)) {
	f(app.Name, app.Flags)
	var walk func(parent string, cmds []*cli.Command)
	walk = func(parent string, cmds []*cli.Command) {
		for _, c := range cmds {
			path := parent + " " + c.Name
			f(path, c.Flags)
			walk(path, c.Subcommands)
		}
	}
	walk(app.Name, app.Commands)
}

// sliceRepeat is urfave/cli's " [ --fix value ]" after a repeatable flag.
var sliceRepeat = regexp.MustCompile(` \[ .*\]$`)

// TestHelpFlagLines: every flag's help line has a one-word placeholder (a
// backquoted phrase in a usage becomes the placeholder, so `fakecontainerd
// scenario list` must not be backquoted) and says its default once.
func TestHelpFlagLines(t *testing.T) {
	n := 0
	eachCommand(newApp(), func(path string, flags []cli.Flag) {
		for _, f := range flags {
			n++
			line := cli.FlagStringer(f)
			names, _, _ := strings.Cut(line, "\t")
			for _, part := range strings.Split(sliceRepeat.ReplaceAllString(names, ""), ", ") {
				if fields := strings.Fields(part); len(fields) > 2 {
					t.Errorf("%s: flag line %q: placeholder %q is not one word", path, line, strings.Join(fields[1:], " "))
				}
			}
			if c := strings.Count(line, "(default:"); c > 1 {
				t.Errorf("%s: flag line %q says its default %d times", path, line, c)
			}
		}
	})
	if n < 20 {
		t.Fatalf("walked %d flags; the walk misses commands", n)
	}
}

// TestBadFlagIsOneLine: an unknown flag gets one line naming it and the
// command's --help, not the whole help.
func TestBadFlagIsOneLine(t *testing.T) {
	tests := []struct {
		args []string
		help string
	}{
		{[]string{"--bogus"}, "fakecontainerd --help"},
		{[]string{"serve", "--bogus"}, "fakecontainerd serve --help"},
		{[]string{"fault", "set", "--bogus", "block"}, "fakecontainerd fault set --help"},
		{[]string{"ab", "--bogus"}, "fakecontainerd ab --help"},
		{[]string{"pleg-watch", "--bogus"}, "fakecontainerd pleg-watch --help"},
		{[]string{"blame", "--bogus"}, "fakecontainerd blame --help"},
	}
	for _, tt := range tests {
		out, err := run(t, tt.args...)
		if err == nil {
			t.Errorf("%q: no error", tt.args)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "-bogus") || !strings.Contains(msg, "(see "+tt.help+")") || strings.Contains(msg, "\n") {
			t.Errorf("%q: error %q, want one line naming -bogus and pointing to %s", tt.args, msg, tt.help)
		}
		if out != "" {
			t.Errorf("%q: printed %q besides the error, want nothing", tt.args, out)
		}
	}
}
