package main

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestParseFlags: every bad flag is refused with a message naming it, and
// good ones are honoured.
func TestParseFlags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "fakecontainerd")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string // empty: must parse
		check   func(t *testing.T, o *options)
	}{
		{name: "defaults", args: nil, check: func(t *testing.T, o *options) {
			if !slices.Equal(o.ns, []int{1000, 10000}) || o.clients != 16 || o.perPod != 10 || o.json {
				t.Errorf("defaults: ns %v clients %d per-pod %d json %v", o.ns, o.clients, o.perPod, o.json)
			}
		}},
		{name: "counts with separators", args: []string{"--n", "1_000, 50"}, check: func(t *testing.T, o *options) {
			if !slices.Equal(o.ns, []int{1000, 50}) {
				t.Errorf("ns %v, want [1000 50]", o.ns)
			}
		}},
		{name: "quiet and json", args: []string{"--quiet", "--json"}, check: func(t *testing.T, o *options) {
			if o.progress != io.Discard || !o.json {
				t.Errorf("--quiet --json: progress %v json %v", o.progress, o.json)
			}
		}},
		{name: "fakecontainerd flags", args: []string{"--fcd-args", "--debug-address 127.0.0.1:6060"}, check: func(t *testing.T, o *options) {
			if !slices.Equal(o.fcdArgs, []string{"--debug-address", "127.0.0.1:6060"}) {
				t.Errorf("fcdArgs %q", o.fcdArgs)
			}
		}},
		{name: "count not a number", args: []string{"--n", "1000,ten"}, wantErr: `--n: "ten"`},
		{name: "count zero", args: []string{"--n", "0"}, wantErr: "--n"},
		{name: "no count", args: []string{"--n", ","}, wantErr: "--n"},
		{name: "zero iterations", args: []string{"--iters", "0"}, wantErr: "--iters 0"},
		{name: "negative clients", args: []string{"--clients", "-2"}, wantErr: "--clients -2"},
		{name: "zero workers", args: []string{"--workers", "0"}, wantErr: "--workers"},
		{name: "missing binary", args: []string{"--fakecontainerd", filepath.Join(t.TempDir(), "nope")}, wantErr: "--fakecontainerd"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
		{name: "unknown flag", args: []string{"--fast"}, wantErr: "fast"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if !slices.Contains(args, "--fakecontainerd") {
				args = append([]string{"--fakecontainerd", bin}, args...)
			}
			o, err := parseFlags(args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseFlags(%q) = %v, want an error containing %q", tc.args, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tc.args, err)
			}
			tc.check(t, o)
		})
	}
}
