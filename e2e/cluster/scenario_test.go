package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The cluster scenario format, without a cluster.

func TestClusterScenarioFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "configs", "scenarios", "cluster", "*.toml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("cluster scenarios: %v %v", files, err)
	}
	for _, f := range files {
		s, err := loadScenario(f)
		if err != nil {
			t.Error(err)
			continue
		}
		if len(s.Expect.Nodes)+len(s.Expect.Pods)+len(s.Expect.Events) == 0 {
			t.Errorf("%s: no expectations", f)
		}
	}
	s, err := loadScenario(filepath.Join("..", "..", "configs", "scenarios", "cluster", "incident1.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.arms(), ","); got != strings.Join(testArms, ",") {
		t.Errorf("incident1 arms %s, want %s (the A/B TestCluster ran before)", got, strings.Join(testArms, ","))
	}
	objs, err := s.objectsFor(s.Pods[0], []string{"fk-1", "fk-2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 4 {
		t.Fatalf("per_node over 2 nodes of 2 manifests: %d objects, want 4", len(objs))
	}
	meta := objs[2]["metadata"].(map[string]any)
	if meta["name"] != "dying-fk-2" || objs[2]["spec"].(map[string]any)["nodeName"] != "fk-2" {
		t.Errorf("third object %v on %v, want dying-fk-2 bound to fk-2", meta["name"], objs[2]["spec"].(map[string]any)["nodeName"])
	}
	if meta["labels"].(map[string]any)[scenarioLabel] != "incident1" {
		t.Errorf("object labels %v lack %s=incident1", meta["labels"], scenarioLabel)
	}
	ann := meta["annotations"].(map[string]any)
	if ann["fakecontainerd.io/dirty-bytes.work"] != "2700MiB" {
		t.Errorf("dying annotations %v", ann)
	}
}

var testArms = []string{"baseline", "volatile", "stopping_state", "stopping_state_refined"}

func TestClusterScenarioErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pod.yaml"), []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: busybox}]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := "name = \"t\"\ncluster = true\nduration = \"1m\"\n[[nodes]]\narm = \"baseline\"\n"
	cases := []struct {
		name, body, want string
	}{
		{"ok", base + "[[pods]]\nmanifest = \"pod.yaml\"\nper_node = \"all\"\n", ""},
		{"pods by count", base + "[[expect.pods]]\npods = \"count:1\"\n", "want a label selector"},
		{"not cluster", strings.Replace(base, "cluster = true", "", 1), "cluster: want cluster = true"},
		{"unknown key", base + "colour = 1\n", "colour: unknown key"},
		{"no nodes", "name = \"t\"\ncluster = true\nduration = \"1m\"\n", "nodes: want at least one"},
		{"bad duration", strings.Replace(base, "\"1m\"", "\"soon\"", 1), "duration"},
		{"manifest missing", base + "[[pods]]\nmanifest = \"nope.yaml\"\n", "pods[0].manifest"},
		{"manifest and yaml", base + "[[pods]]\nmanifest = \"pod.yaml\"\nyaml = \"x\"\n", "exactly one of manifest"},
		{"no kind", base + "[[pods]]\nyaml = \"metadata: {name: x}\"\n", "want apiVersion and kind"},
		{"fault two kinds", base + "[[faults]]\npoint = \"cri.Status.before\"\nspec = \"block\"\ncordon = true\n", "exactly one of point, fix, kubelet and cordon"},
		{"fault no spec", base + "[[faults]]\npoint = \"cri.Status.before\"\n", "faults[0].spec"},
		{"clear before at", base + "[[faults]]\ncordon = true\nat = \"1m\"\nclear_at = \"30s\"\n", "clear_at 30s: must be after at"},
		{"bad kubelet", base + "[[faults]]\nkubelet = \"kill\"\n", "want \"freeze\""},
		{"bad count", base + "[[faults]]\ncordon = true\nnodes = \"count:0\"\n", "count must be a positive number"},
		{"bad status", base + "[[expect.nodes]]\n[expect.nodes.not_ready]\nstatus = \"Maybe\"\n", "want False or Unknown"},
		{"bad regexp", base + "[[expect.events]]\nreason = \"X\"\nmessage = \"(\"\n", "expect.events[0].message"},
		{"runner label", base + "labels = { \"fakecontainerd.io/scenario\" = \"x\" }\n", "set by the runner"},
		{"arm list", strings.Replace(base, "\"baseline\"", "\"baseline,volatile\"", 1), "one arm per node entry"},
		{"show late", base + "[[show]]\nat = \"2m\"\nkubectl = \"get nodes\"\n", "after the duration"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseScenario([]byte(c.body), filepath.Join(dir, "s.toml"))
			if c.want == "" {
				if err != nil {
					t.Errorf("error %v, want none", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestMatchLabels(t *testing.T) {
	l := map[string]string{"fakecontainerd.io/arm": "baseline", "role": "evict"}
	cases := []struct {
		sel  string
		want bool
	}{
		{"", true},
		{"role=evict", true},
		{"role==evict", true},
		{"role=spare", false},
		{"role!=spare", true},
		{"role!=evict", false},
		{"fakecontainerd.io/arm=baseline,role=evict", true},
		{"fakecontainerd.io/arm=baseline,role!=evict", false},
		{"role", true},
		{"zone", false},
		{"zone!=a", true},
	}
	for _, c := range cases {
		if got := matchLabels(c.sel, l); got != c.want {
			t.Errorf("matchLabels(%q) = %v, want %v", c.sel, got, c.want)
		}
	}
}

func TestCheckNotReady(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	d := func(s string) *duration { v, _ := time.ParseDuration(s); x := duration(v); return &x }
	yes, no := true, false
	win := window{status: "False", from: t0.Add(230 * time.Second), to: t0.Add(290 * time.Second), firstMsg: "PLEG is not healthy: pleg was last seen active 3m5s ago; threshold is 3m0s"}
	open := window{status: "Unknown", from: t0.Add(80 * time.Second), firstMsg: "Kubelet stopped posting node status."}
	end := t0.Add(400 * time.Second)
	cases := []struct {
		name string
		nr   notReadyExpect
		wins []window
		ok   bool
	}{
		{"matches", notReadyExpect{Message: "^PLEG is not healthy", At: span{Min: d("3m30s"), Max: d("6m")}, For: span{Min: d("20s")}, Recovers: &yes}, []window{win}, true},
		{"too early bound", notReadyExpect{At: span{Min: d("4m")}}, []window{win}, false},
		{"too long", notReadyExpect{For: span{Max: d("30s")}}, []window{win}, false},
		{"message", notReadyExpect{Message: "runtime is down"}, []window{win}, false},
		{"status", notReadyExpect{Status: "Unknown"}, []window{win}, false},
		{"never", notReadyExpect{}, nil, false},
		{"second window matches", notReadyExpect{Status: "Unknown", Recovers: &no}, []window{win, open}, true},
		{"open lasts to the end", notReadyExpect{Status: "Unknown", For: span{Min: d("5m")}}, []window{open}, true},
		{"open does not recover", notReadyExpect{Status: "Unknown", Recovers: &yes}, []window{open}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nr := c.nr
			r := checkNotReady("node fk-1", &nr, c.wins, t0, end)
			if r.ok != c.ok {
				t.Errorf("ok = %v (%s: %s), want %v", r.ok, r.what, r.detail, c.ok)
			}
		})
	}
}

func TestCounts(t *testing.T) {
	two := 2
	cases := []struct {
		c    counts
		n    int
		fail bool
	}{
		{counts{}, 0, true}, // at least one by default
		{counts{}, 1, false},
		{counts{Min: &two, Max: &two}, 2, false},
		{counts{Min: &two, Max: &two}, 3, true},
		{counts{Min: &two}, 1, true},
	}
	for _, c := range cases {
		if got := c.c.check(c.n) != ""; got != c.fail {
			t.Errorf("%+v.check(%d) failed=%v, want %v", c.c, c.n, got, c.fail)
		}
	}
}

// TestAssignNodes: scenarios take the cluster's nodes in order, each
// checked against the arm it declares, and their selectors stay within
// their own nodes.
func TestAssignNodes(t *testing.T) {
	dir := t.TempDir()
	arms := map[string]string{"fk-1": "baseline", "fk-2": "volatile", "fk-3": "baseline"}
	for n, arm := range arms {
		if err := os.MkdirAll(filepath.Join(dir, "nodes", n), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "nodes", n, "arm"), []byte(arm+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := &cluster{runDir: dir}
	parse := func(name, nodes string) *clusterScenario {
		s, err := parseScenario([]byte("name = \""+name+"\"\ncluster = true\nduration = \"1m\"\n"+nodes), filepath.Join(dir, "s.toml"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a := parse("a", "[[nodes]]\narm = \"baseline\"\nlabels = { role = \"x\" }\n[[nodes]]\narm = \"volatile\"\nlabels = { role = \"y\" }\n")
	b := parse("b", "[[nodes]]\nlabels = { role = \"x\" }\n")
	all := []string{"fk-1", "fk-2", "fk-3"}
	if err := assignNodes(c, all, []*clusterScenario{a, b}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(a.names, ",") != "fk-1,fk-2" || strings.Join(b.names, ",") != "fk-3" {
		t.Fatalf("a on %v, b on %v; want fk-1,fk-2 and fk-3", a.names, b.names)
	}
	r := &scenarioRun{labels: map[string]map[string]string{}}
	for _, s := range []*clusterScenario{a, b} {
		for i, n := range s.names {
			r.labels[n] = s.nodeLabels(i)
		}
	}
	for _, tc := range []struct {
		s         *clusterScenario
		sel, want string
	}{
		{a, "role=x", "fk-1"}, // fk-3 is role=x too, but b's
		{b, "role=x", "fk-3"},
		{a, "all", "fk-1,fk-2"},
		{a, "count:1", "fk-1"},
		{a, "role!=x", "fk-2"},
		{a, scenarioLabel + "=b", ""},
	} {
		if got := strings.Join(r.nodesOf(tc.s, tc.sel), ","); got != tc.want {
			t.Errorf("scenario %s nodes %q = %q, want %q", tc.s.Name, tc.sel, got, tc.want)
		}
	}
	// A scenario whose arms do not match the running cluster is refused.
	if err := assignNodes(c, all, []*clusterScenario{b, a}); err == nil || !strings.Contains(err.Error(), `node fk-2 runs arm "volatile", the scenario wants "baseline"`) {
		t.Errorf("mismatched arms: %v", err)
	}
	if err := assignNodes(c, all, []*clusterScenario{a, b, b}); err == nil || !strings.Contains(err.Error(), "need 4 nodes") {
		t.Errorf("too few nodes: %v", err)
	}
}

func TestNodeNames(t *testing.T) {
	body := "name = \"t\"\ncluster = true\nduration = \"1m\"\n[[nodes]]\nname = \"evict\"\n[[nodes]]\nname = \"spare\"\n[[nodes]]\ncount = 2\n"
	s, err := parseScenario([]byte(body), "s.toml")
	if err != nil {
		t.Fatal(err)
	}
	s.names = []string{"fk-5", "fk-6", "fk-7", "fk-8"}
	r := &scenarioRun{labels: map[string]map[string]string{}}
	for i, n := range s.names {
		r.labels[n] = s.nodeLabels(i)
	}
	for sel, want := range map[string]string{"evict": "fk-5", "spare,evict": "fk-5,fk-6", "evict,other": "", nameLabel: "fk-5,fk-6", "all": "fk-5,fk-6,fk-7,fk-8"} {
		if got := strings.Join(r.nodesOf(s, sel), ","); got != want {
			t.Errorf("nodes %q = %q, want %q", sel, got, want)
		}
	}
	for _, bad := range []string{
		"[[nodes]]\nname = \"a\"\n[[nodes]]\nname = \"a\"\n",
		"[[nodes]]\nname = \"a\"\ncount = 2\n",
	} {
		if _, err := parseScenario([]byte("name = \"t\"\ncluster = true\nduration = \"1m\"\n"+bad), "s.toml"); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestLabelPatch(t *testing.T) {
	p := labelPatch("fakecontainerd.io/scenario,role", map[string]string{scenarioLabel: "b", nameLabel: "spare"})
	data, _ := json.Marshal(p)
	want := `{"metadata":{"annotations":{"fakecontainerd.io/scenario-labels":"fakecontainerd.io/node-name,fakecontainerd.io/scenario"},"labels":{"fakecontainerd.io/node-name":"spare","fakecontainerd.io/scenario":"b","role":null}}}`
	if string(data) != want {
		t.Errorf("patch %s\nwant  %s", data, want)
	}
}
