package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDensitySmoke runs `cribench density` at a few pods: every figure is
// read, the goroutines grow with the pods, the profiles are written and the
// table names each row. The figures themselves are `make bench`'s.
func TestDensitySmoke(t *testing.T) {
	bin := buildFakecontainerd(t)
	keep := t.TempDir()
	o, err := parseDensityFlags([]string{"--fakecontainerd", bin, "--pods", "3", "--settle", "0s", "--keep", keep, "--quiet"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := runDensity(ctx, o)
	if err != nil {
		t.Fatalf("runDensity: %v", err)
	}
	for name, v := range map[string]float64{"RSS": res.RSS, "RSS empty": res.RSSEmpty, "anonymous": res.RSSAnon, "file": res.RSSFile,
		"peak": res.HWM, "heap in use": res.HeapInuse, "stacks": res.StackInuse} {
		if v <= 0 {
			t.Errorf("%s = %v, want > 0", name, v)
		}
	}
	// Each pod has at least its shim's accept loop and task connection.
	if res.Goroutines < res.GoroEmpty+3*2 {
		t.Errorf("goroutines %d with 3 pods, %d empty: the pods' shims are not counted", res.Goroutines, res.GoroEmpty)
	}
	for _, f := range []string{"heap.pb.gz", "goroutine.txt"} {
		if st, err := os.Stat(filepath.Join(keep, f)); err != nil || st.Size() == 0 {
			t.Errorf("profile %s: %v", f, err)
		}
	}
	var table bytes.Buffer
	if err := writeDensityTable(&table, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| RSS |", "| Go heap in use |", "| goroutines |", "≤ 30 MiB"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// TestParseDensityFlags: bad values are refused, naming the flag.
func TestParseDensityFlags(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "fakecontainerd")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--pods", "0"}, "--pods 0"},
		{[]string{"--per-pod", "-1"}, "--per-pod -1"},
		{[]string{"--settle", "-1s"}, "--settle"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"--fakecontainerd", filepath.Join(t.TempDir(), "none")}, "--fakecontainerd"},
	} {
		args := append([]string{"--fakecontainerd", bin}, tc.args...)
		_, err := parseDensityFlags(args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%q: err %v, want one naming %q", tc.args, err, tc.wantErr)
		}
	}
	o, err := parseDensityFlags([]string{"--fakecontainerd", bin}, io.Discard)
	if err != nil || o.pods != 110 || o.perPod != 1 {
		t.Errorf("defaults: %+v, %v; want 110 pods of 1", o, err)
	}
}
