package command

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// An interactive shell and the commands it runs share one stdin: the shell
// reads a command's line, the command reads what follows it.
func TestInteractiveSharedStdin(t *testing.T) {
	clk, err := clock.New(0.001)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, stdin, want string
		code              int
	}{
		{name: "read takes the next line", stdin: "read x\nhello\necho got $x\n", want: "got hello\n"},
		{name: "cat takes the rest", stdin: "cat\nrest of\ninput\n", want: "rest of\ninput\n"},
		{name: "exit after a read", stdin: "read a\none\necho $a\nexit 5\n", want: "one\n", code: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var out, errOut syncBuffer
			code, err := Parse([]string{"sh"}).Run(ctx, Env{Clock: clk, Stdin: strings.NewReader(tc.stdin), Stdout: &out, Stderr: &errOut})
			if err != nil {
				t.Fatalf("run: %v (stderr %q)", err, errOut.String())
			}
			if got := out.String(); got != tc.want || code != tc.code {
				t.Errorf("stdin %q: got %q exit %d, want %q exit %d (stderr %q)", tc.stdin, got, code, tc.want, tc.code, errOut.String())
			}
		})
	}
}
