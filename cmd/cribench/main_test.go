package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for cribench when it re-executes
// itself as the peer or the floor.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && isRole(os.Args[1]) {
		if err := serveRole(os.Args[1], os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "cribench %s: %v\n", os.Args[1], err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// buildFakecontainerd builds the binary under test into a temp dir.
func buildFakecontainerd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fakecontainerd")
	build := exec.Command("go", "build", "-o", bin, "github.com/fakecontainerd/fakecontainerd/cmd/fakecontainerd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build fakecontainerd: %v\n%s", err, out)
	}
	return bin
}

// TestSmoke runs the whole benchmark at a tiny size (two counts, a few
// calls each) so that it does not rot: every server starts, every metric is
// measured and reported in the table and in the JSON. The figures
// themselves are not checked; `make bench` is where they mean something.
func TestSmoke(t *testing.T) {
	bin := buildFakecontainerd(t)
	var progress bytes.Buffer
	o := &options{
		fakecontainerd: bin, ns: []int{20, 45}, perPod: 10, iters: 4, clients: 3, clientIters: 2,
		statusIters: 4, filterIters: 4, lifecyclePods: 3, workers: 3, progress: &progress,
		self: []string{os.Args[0]},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	res, err := run(ctx, o)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, progress.String())
	}
	t.Logf("ran in %v", time.Since(start).Round(time.Millisecond))

	perN := []string{mListP50, mListFloor, mListP99, fmt.Sprintf(mListConcP50, o.clients), fmt.Sprintf(mListConcP99, o.clients),
		mPodsP50, mPodsP99, fmt.Sprintf(mPodsConcP50, o.clients), fmt.Sprintf(mPodsConcP99, o.clients),
		mStatusP50, mFilterScan, mFilterIndex, mLifeUp, mLifeDown, mLife, mRSS, mHWM, mFill, mRespSize}
	has := func(n int, metric string) *row {
		for i, r := range res.Rows {
			if r.N == n && r.Metric == metric {
				return &res.Rows[i]
			}
		}
		return nil
	}
	for _, n := range o.ns {
		for _, m := range perN {
			r := has(n, m)
			if r == nil {
				t.Errorf("N=%d: no row %q", n, m)
				continue
			}
			if r.Ours == nil || *r.Ours <= 0 {
				t.Errorf("N=%d %q: no figure for fakecontainerd", n, m)
			}
			if m != mRespSize && (r.Peer == nil || *r.Peer <= 0) {
				t.Errorf("N=%d %q: no figure for the peer", n, m)
			}
		}
		if r := has(n, mListP50); r != nil && r.Floor == nil {
			t.Errorf("N=%d: no floor figure for %q", n, mListP50)
		}
		if r, l := has(n, mListFloor), has(n, mListP50); r != nil && l != nil && l.Floor != nil && math.Abs(*r.Ours - *l.Ours / *l.Floor) > 1e-9 {
			t.Errorf("N=%d: %q is %v, want %v", n, mListFloor, *r.Ours, *l.Ours / *l.Floor)
		}
	}
	growth := has(0, fmt.Sprintf(mFilterGrowth, "45", "20"))
	if growth == nil || growth.Met == nil {
		t.Errorf("no list_index growth row with a target: %+v", growth)
	}
	// The lifecycle target applies at every count.
	if r := has(20, mLife); r == nil || r.Met == nil {
		t.Errorf("lifecycle row has no target: %+v", r)
	}

	var table bytes.Buffer
	if err := writeTable(&table, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| N | metric | fakecontainerd | peer | floor | ours/peer | target | met? |", mListP50, mFilterIndex, "targets met:"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var js bytes.Buffer
	if err := writeJSON(&js, res); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Rows []map[string]any `json:"rows"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON output does not decode: %v\n%s", err, js.String())
	}
	if len(back.Rows) != len(res.Rows) {
		t.Errorf("JSON has %d rows, want %d", len(back.Rows), len(res.Rows))
	}
	for _, k := range []string{"n", "metric", "unit", "fakecontainerd", "peer", "floor", "ratio", "met"} {
		if _, ok := back.Rows[0][k]; !ok {
			t.Errorf("JSON rows lack %q: %v", k, back.Rows[0])
		}
	}
	if t.Failed() {
		t.Logf("table:\n%s\nprogress:\n%s", table.String(), progress.String())
	}
}
