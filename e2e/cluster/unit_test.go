package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The parts of fakecluster that need no cluster.

func TestHistogramQuantile(t *testing.T) {
	metrics := func(counts ...int) string {
		les := []string{"0.005", "0.01", "0.1", "1", "+Inf"}
		var b strings.Builder
		b.WriteString("# HELP kubelet_pleg_relist_duration_seconds x\n")
		for i, le := range les {
			b.WriteString(`kubelet_pleg_relist_duration_seconds_bucket{le="` + le + `"} ` + strconv.Itoa(counts[i]) + "\n")
		}
		b.WriteString(`kubelet_pleg_relist_interval_seconds_bucket{le="+Inf"} 7` + "\n")
		return b.String()
	}
	before, err := parseHistogram(strings.NewReader(metrics(10, 10, 10, 10, 10)), "kubelet_pleg_relist_duration_seconds_bucket")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		after   []int
		q, want float64
	}{
		{"all fast", []int{110, 110, 110, 110, 110}, 0.99, 0.005},
		{"one slow in 100", []int{109, 110, 110, 110, 110}, 0.99, 0.005},
		{"two slow in 100", []int{108, 108, 109, 110, 110}, 0.99, 0.1},
		{"past the last bound", []int{10, 10, 10, 10, 110}, 0.99, math.Inf(1)},
		{"nothing new", []int{10, 10, 10, 10, 10}, 0.99, math.NaN()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := parseHistogram(strings.NewReader(metrics(c.after...)), "kubelet_pleg_relist_duration_seconds_bucket")
			if err != nil {
				t.Fatal(err)
			}
			got := h.quantile(before, c.q)
			if got != c.want && !(math.IsNaN(got) && math.IsNaN(c.want)) {
				t.Errorf("p%.0f = %v, want %v", 100*c.q, got, c.want)
			}
		})
	}
	if _, err := parseHistogram(strings.NewReader("up 1\n"), "kubelet_pleg_relist_duration_seconds_bucket"); err == nil {
		t.Error("parseHistogram of metrics without the histogram: no error")
	}
}

func TestSelectNodes(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"fk-1", "fk-2", "fk-10", "fk-3"} {
		if err := os.MkdirAll(filepath.Join(dir, "nodes", n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c := &cluster{runDir: dir}
	cases := []struct {
		sel     string
		want    []string
		wantErr string
	}{
		{"all", []string{"fk-1", "fk-2", "fk-3", "fk-10"}, ""},
		{"", []string{"fk-1", "fk-2", "fk-3", "fk-10"}, ""},
		{"count:2", []string{"fk-1", "fk-2"}, ""},
		{"count:9", []string{"fk-1", "fk-2", "fk-3", "fk-10"}, ""},
		{"fk-10,fk-2", []string{"fk-10", "fk-2"}, ""},
		{"count:0", nil, "count must be a positive number"},
		{"count:x", nil, "count must be a positive number"},
		{"fk-4", nil, `no node "fk-4"`},
	}
	for _, tc := range cases {
		t.Run(tc.sel, func(t *testing.T) {
			got, err := selectNodes(t.Context(), c, tc.sel)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("selectNodes(%q) = %v, %v; want error %q", tc.sel, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("selectNodes(%q) = %v, %v; want %v", tc.sel, got, err, tc.want)
			}
		})
	}
}

func TestCompareNodes(t *testing.T) {
	for _, names := range [][]string{
		{"fk-1", "fk-2", "fk-9", "fk-10", "fk-11"},
		{"127.0.1.1", "127.0.1.2", "127.0.1.9", "127.0.1.10", "127.0.1.250"},
	} {
		shuffled := slices.Clone(names)
		slices.Reverse(shuffled)
		slices.SortFunc(shuffled, compareNodes)
		if !slices.Equal(shuffled, names) {
			t.Errorf("sorted %v, want %v", shuffled, names)
		}
	}
}

// TestWatcherWindows feeds observeNode the Node states the API shows in
// incident 1 and checks the NotReady window it records.
func TestWatcherWindows(t *testing.T) {
	w := newWatcher(&cluster{runDir: t.TempDir()}, []string{"fk-1"})
	base := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	node := func(status, msg string, transition time.Time, taints ...string) apiNode {
		var n apiNode
		n.Metadata.Name = "fk-1"
		n.Status.Conditions = []condition{{Type: "Ready", Status: status, Reason: "KubeletNotReady", Message: msg, LastTransitionTime: transition}}
		for _, tt := range taints {
			k, e, _ := strings.Cut(tt, ":")
			n.Spec.Taints = append(n.Spec.Taints, taint{Key: k, Effect: e})
		}
		return n
	}
	st := w.state["fk-1"]
	msg1 := "PLEG is not healthy: pleg was last seen active 3m1s ago; threshold is 3m0s"
	msg2 := "PLEG is not healthy: pleg was last seen active 3m11s ago; threshold is 3m0s"
	steps := []apiNode{
		node("True", "kubelet is posting ready status", base),
		node("False", msg1, base.Add(180*time.Second)),
		node("False", msg1, base.Add(180*time.Second), "node.kubernetes.io/not-ready:NoSchedule"),
		node("False", msg2, base.Add(180*time.Second), "node.kubernetes.io/not-ready:NoSchedule", "node.kubernetes.io/not-ready:NoExecute"),
		node("True", "kubelet is posting ready status", base.Add(242*time.Second)),
	}
	for i, n := range steps {
		w.observeNode(st, n, base.Add(time.Duration(i)*time.Second))
	}
	wins := w.notReady("fk-1", base)
	if len(wins) != 1 {
		t.Fatalf("windows %+v, want one", wins)
	}
	got := wins[0]
	if got.status != "False" || !got.from.Equal(base.Add(180*time.Second)) || !got.to.Equal(base.Add(242*time.Second)) ||
		got.firstMsg != msg1 || got.lastMsg != msg2 {
		t.Errorf("window %+v; want False from +180s to +242s, first %q, last %q", got, msg1, msg2)
	}
	_, taints := w.current("fk-1")
	want := []string{"none", "node.kubernetes.io/not-ready:NoSchedule", "node.kubernetes.io/not-ready:NoSchedule,node.kubernetes.io/not-ready:NoExecute", "none"}
	if !slices.Equal(taints, want) {
		t.Errorf("taints seen %q, want %q", taints, want)
	}
	if len(w.notReady("fk-1", base.Add(200*time.Second))) != 0 {
		t.Error("notReady since after the window began still lists it")
	}
}

// TestWatcherPods: pod changes on watched nodes go on the timeline, a
// deleted pod shows Terminating, and one that leaves the API is reported
// gone and dropped from the node's pods.
func TestWatcherPods(t *testing.T) {
	w := newWatcher(&cluster{runDir: t.TempDir()}, []string{"fk-1"})
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	pod := func(name, node, phase string, deleting bool) apiPod {
		var p apiPod
		p.Metadata.Name, p.Metadata.Namespace, p.Spec.NodeName, p.Status.Phase = name, "default", node, phase
		p.Status.Conditions = []condition{{Type: "Ready", Status: "True"}}
		if deleting {
			p.Metadata.DeletionTimestamp = &now
		}
		return p
	}
	polls := [][]apiPod{
		{pod("web-a", "fk-1", "Running", false), pod("web-b", "fk-2", "Running", false)},
		{pod("web-a", "fk-1", "Running", true), pod("web-b", "fk-2", "Running", false)},
		{pod("web-b", "fk-2", "Running", false)},
	}
	for i, pods := range polls {
		w.observePods(pods, now.Add(time.Duration(i)*time.Second))
	}
	tl := w.timeline(now)
	for _, want := range []string{"pod web-a: phase Running, Ready=True, restarts 0\n", "pod web-a: phase Running, Ready=True, restarts 0, Terminating", "pod web-a: gone from the API"} {
		if !strings.Contains(tl, want) {
			t.Errorf("timeline lacks %q:\n%s", want, tl)
		}
	}
	if strings.Contains(tl, "web-b") {
		t.Errorf("timeline shows a pod of an unwatched node:\n%s", tl)
	}
	if pods := w.podsOn("fk-1"); len(pods) != 0 {
		t.Errorf("fk-1 still has pods %v after web-a left the API", pods)
	}
}

// TestFleetRow: medians over the nodes, the worst node's RSS and relist,
// CPU as a mean, and a row with as many cells as the header.
func TestFleetRow(t *testing.T) {
	const m = 1 << 20
	node := func(name string, kRSS, fRSS, fPSS int64, kCPU, fCPU, relist float64, pods int) nodeStat {
		return nodeStat{node: name, kubelet: procStat{rss: kRSS * m, cpu: kCPU}, fake: procStat{rss: fRSS * m, pss: fPSS * m, cpu: fCPU}, relistP99: relist, pods: pods}
	}
	s := &stats{
		control: []procStat{{name: "etcd", rss: 100 * m}},
		nodes: []nodeStat{
			node("a", 90, 30, 10, 1, 0.2, 0.1, 5),
			node("b", 100, 40, 12, 2, 0.4, 0.5, 5),
			node("c", 110, 35, 11, 3, 0.6, math.NaN(), 5),
		},
	}
	f, ok := s.fleet()
	if !ok {
		t.Fatal("no fleet from three nodes")
	}
	if f.kubeletRSS != 100 || f.fakeRSS != 35 || f.fakeRSSMax != 40 || f.fakePSS != 11 || f.pods != 5 {
		t.Errorf("fleet %+v: want medians kubelet 100, fake 35 (max 40, PSS 11), 5 pods", f)
	}
	if math.Abs(f.kubeletCPU-2) > 1e-9 || math.Abs(f.fakeCPU-0.4) > 1e-9 || f.worstRelist != 0.5 {
		t.Errorf("fleet %+v: want CPU 2 + 0.4, worst relist 0.5 (NaN skipped)", f)
	}
	if f.total != (100+90+30+100+40+110+35)*m {
		t.Errorf("total %d, want every process's RSS", f.total)
	}
	row := s.Row()
	header := strings.SplitN(fleetHeader, "\n", 2)[0]
	if got, want := strings.Count(row, "|"), strings.Count(header, "|"); got != want {
		t.Errorf("row has %d cell bars, header %d:\n%s%s", got, want, fleetHeader, row)
	}
	if !strings.HasPrefix(row, "| 3 | 5 | 100 MiB | 35.0 MiB (40.0; 11.0) |") {
		t.Errorf("row %q", row)
	}
	if (&stats{}).Row() != "" {
		t.Error("a row without nodes")
	}
}
