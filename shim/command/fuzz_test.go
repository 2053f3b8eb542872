package command

import (
	"context"
	"slices"
	"strings"
	"testing"
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
