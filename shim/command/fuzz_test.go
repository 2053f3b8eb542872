package command

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// FuzzParseScript: any sh -c script parses without a panic, into either a
// syntax error (which runs as sh's message and exit 2) or a program whose
// unknown commands are listed once each, sorted.
func FuzzParseScript(f *testing.F) {
	for _, seed := range []string{
		"while true; do date; sleep 1; done",
		"echo hi; exit 3",
		"cat /tmp/healthy",
		"if [ -f /x ]; then echo y; elif false; then :; else echo n; fi",
		"for i in 1 2; do echo $i | grep -q 1 && break; done",
		"X=${Y:-z}; echo \"$X\" > /tmp/o 2>&1",
		"f() { return 2; }; f || echo $?",
		"until false; do :; done",
		"echo 'unterminated",
		"$(",
		"case x in *) ;; esac",
		"cat <(echo x)",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, script string) {
		p := Parse([]string{"sh", "-c", script})
		if p.SyntaxError() != nil {
			if !p.Modelled() {
				t.Fatalf("%q: a syntax error lists unknown commands %q", script, p.Unknown())
			}
			var stderr strings.Builder
			code, err := p.Run(context.Background(), Env{Stderr: &stderr})
			if code != ExitSyntax || err != nil || !strings.HasPrefix(stderr.String(), "sh: -c: ") {
				t.Fatalf("%q: a syntax error ran as exit %d, %v, %q", script, code, err, stderr.String())
			}
			return
		}
		u := p.Unknown()
		if !slices.IsSorted(u) || len(slices.Compact(slices.Clone(u))) != len(u) {
			t.Fatalf("%q: unknown commands not sorted and unique: %q", script, u)
		}
	})
}

// FuzzRunScript: any script runs without a panic against an in-memory view
// (no mounts: nothing reaches the host), and ends when its context does.
func FuzzRunScript(f *testing.F) {
	for _, seed := range []string{
		"while true; do date; sleep 1; done",
		"echo hi | grep -q h && exit 3",
		"x=$((1/0))",
		"f() { f; }; f",
		"cat < /etc/hosts | tail -n 1 > /tmp/x; ls -l /tmp",
		"set -eu; echo ${nope}",
		"trap 'echo bye' EXIT; exit 1",
		"read x; echo $x",
		"printf '%d %s\\n' 1",
	} {
		f.Add(seed)
	}
	clk, err := clock.New(0.0001)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, script string) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		var out, errOut syncBuffer
		done := make(chan struct{})
		go func() {
			defer close(done)
			Parse([]string{"sh", "-c", script}).Run(ctx, Env{Clock: clk, Stdout: &out, Stderr: &errOut})
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%q still runs 30 s after its context ended", script)
		}
	})
}
