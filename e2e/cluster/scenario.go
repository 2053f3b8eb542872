package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"sigs.k8s.io/yaml"
)

// A cluster scenario: the scenario file format of configs/scenarios
// (TOML, real-world durations, expectations), said "on the cluster":
// nodes with their arms and labels, pods as Kubernetes manifests, faults
// armed on nodes picked by label or count, and expectations evaluated from
// what the API server shows. README "Writing a cluster scenario" documents
// every key; `fakecluster run FILE...` runs one or several at once on one
// cluster.

// scenarioLabel marks every node and object a scenario made, so that its
// selectors stay within its own nodes and pods when several run at once.
const scenarioLabel = "fakecontainerd.io/scenario"

// nameLabel carries a scenario node's name of the file's own.
const nameLabel = "fakecontainerd.io/node-name"

type clusterScenario struct {
	Name        string `toml:"name"`
	Summary     string `toml:"summary"`
	Description string `toml:"description"`
	// Cluster must be true: it is what says "on the cluster" (the
	// in-process runner refuses such a file, this one any other).
	Cluster bool `toml:"cluster"`
	// Duration runs from time zero (the pods' creation) to the checks.
	Duration duration `toml:"duration"`
	// Settle is how long after Duration to wait for every node to be
	// Ready and every pod phase expectation to hold.
	Settle duration `toml:"settle"`

	Nodes      []scenarioNode `toml:"nodes"`
	Pods       []scenarioPod  `toml:"pods"`
	Faults     []clusterFault `toml:"faults"`
	CPUManager *cpuManager    `toml:"cpu_manager"`
	Show       []show         `toml:"show"`
	Expect     clusterExpect  `toml:"expect"`

	path string // the file, for relative manifest and config paths
	// names are the cluster nodes this scenario's nodes run on, in order.
	names []string
}

// scenarioNode is one node (or Count identical ones).
type scenarioNode struct {
	// Name, optional, lets the file's selectors pick the node by it
	// (nodes = "evict,spare"); the node carries it as nameLabel.
	Name string `toml:"name"`
	// Arm is cluster.sh's: baseline, or fixes joined by +, optionally
	// @FILE (a fakecontainerd config, relative to the scenario file).
	Arm    string            `toml:"arm"`
	Count  int               `toml:"count"`
	Labels map[string]string `toml:"labels"`
}

// scenarioPod is one or more Kubernetes objects (any kind kubectl creates).
type scenarioPod struct {
	// Manifest is a YAML file, relative to the scenario; YAML is inline.
	// Either may hold several documents (---).
	Manifest string `toml:"manifest"`
	YAML     string `toml:"yaml"`
	// PerNode makes one copy per selected node: the name gets "-<node>",
	// a Pod gets spec.nodeName, anything with a pod template gets it in
	// the template.
	PerNode string   `toml:"per_node"`
	At      duration `toml:"at"`

	objects []map[string]any
}

// clusterFault is one thing done to nodes at At and undone at ClearAt
// (0: at the end of the run). Exactly one of Point, Fix, Kubelet, Cordon.
type clusterFault struct {
	Name  string `toml:"name"`
	Nodes string `toml:"nodes"`
	// Point, Target, Spec: a fakecontainerd fault (`fakecontainerd fault
	// points`), armed through each node's admin socket.
	Point  string `toml:"point"`
	Target string `toml:"target"`
	Spec   string `toml:"spec"`
	// Fix: a fix toggle switched on at At, off at ClearAt.
	Fix string `toml:"fix"`
	// Kubelet "freeze": the node's kubelet process is stopped (SIGSTOP)
	// at At and continued (SIGCONT) at ClearAt: a hung kubelet.
	Kubelet string `toml:"kubelet"`
	// Cordon: spec.unschedulable from At to ClearAt, as kubectl cordon.
	Cordon  bool     `toml:"cordon"`
	At      duration `toml:"at"`
	ClearAt duration `toml:"clear_at"`
}

func (f clusterFault) kind() string {
	switch {
	case f.Point != "":
		return "fault"
	case f.Fix != "":
		return "fix"
	case f.Kubelet != "":
		return "kubelet"
	case f.Cordon:
		return "cordon"
	}
	return ""
}

func (f clusterFault) String() string {
	switch f.kind() {
	case "fault":
		return fmt.Sprintf("fault %s %s on %s", f.Point, f.Spec, f.targetOrAll())
	case "fix":
		return "fix " + f.Fix
	case "kubelet":
		return "kubelet " + f.Kubelet + " (SIGSTOP)"
	}
	return "cordon"
}

func (f clusterFault) targetOrAll() string {
	if f.Target == "" {
		return "all"
	}
	return f.Target
}

// cpuManager plays the older kubelet's CPU manager over each node's CRI
// socket: UpdateContainerResources on every running container of the
// matching pods, at a fixed rate, each call with a deadline.
type cpuManager struct {
	Nodes   string   `toml:"nodes"`
	Pods    string   `toml:"pods"`
	Period  duration `toml:"period"`
	Timeout duration `toml:"timeout"`
}

// show prints `kubectl ARGS` at a time into the report: what a user sees.
type show struct {
	At      duration `toml:"at"`
	Kubectl string   `toml:"kubectl"`
}

type clusterExpect struct {
	Nodes  []nodeExpect  `toml:"nodes"`
	Pods   []podExpect   `toml:"pods"`
	Events []eventExpect `toml:"events"`
}

// nodeExpect holds for every selected node.
type nodeExpect struct {
	Nodes string `toml:"nodes"`
	// ReadyThroughout: no window with Ready other than True.
	ReadyThroughout bool `toml:"ready_throughout"`
	// NotReady: some window matches it.
	NotReady *notReadyExpect `toml:"not_ready"`
	// NeverStatus: the Ready condition never had this status.
	NeverStatus string `toml:"never_status"`
	// Taints must each be seen in some taint set (key:Effect).
	Taints []string `toml:"taints"`
	// HeartbeatStale and LeaseStale bound the longest time the Ready
	// condition's lastHeartbeatTime, and the node Lease's renewTime, lagged
	// behind the clock.
	HeartbeatStale span `toml:"heartbeat_stale"`
	LeaseStale     span `toml:"lease_stale"`
	// ListContainers bounds the longest list of the runner's own lister.
	ListContainers span `toml:"list_containers"`
}

type notReadyExpect struct {
	Status string `toml:"status"` // False or Unknown
	// Message is a regular expression on the window's first message.
	Message string `toml:"message"`
	// At bounds when the window began, For how long it lasted (to the
	// end of the run if it did not end).
	At       span  `toml:"at"`
	For      span  `toml:"for"`
	Recovers *bool `toml:"recovers"`
	// HeartbeatLag and LeaseLag bound how far the Ready condition's
	// lastHeartbeatTime and the Lease's renewTime lagged during the
	// window: a kubelet that posts its status keeps the first small
	// (1.36 posts a changed condition at once, an unchanged one only
	// every 5 min: nodeStatusReportFrequency), a live kubelet keeps the
	// second at about 10 s (its Lease renew interval).
	HeartbeatLag span `toml:"heartbeat_lag"`
	LeaseLag     span `toml:"lease_lag"`
}

// podExpect holds for every pod of the scenario its selector matches
// (label selector; pods that left the API count with their last state).
type podExpect struct {
	Pods string `toml:"pods"`
	// On keeps the pods whose (last) node this node selector picks.
	On string `toml:"on"`
	// Phase is every matching pod's phase at the end (pods still there).
	Phase string `toml:"phase"`
	// Restarts bounds each pod's restarts at the end.
	Restarts *int `toml:"restarts"`
	// ReadyThroughout: once Ready, never seen Ready=False (until deleted).
	ReadyThroughout bool `toml:"ready_throughout"`
	// NotReadySeen: some pod was seen Ready=False after being Ready.
	NotReadySeen bool `toml:"not_ready_seen"`
	// Terminating bounds how long deleted pods stayed in the API.
	Terminating span `toml:"terminating"`
	// Running is how many matching pods run and are Ready at the end,
	// on the nodes RunningOn picks (a node selector) if set.
	Running   *int   `toml:"running"`
	RunningOn string `toml:"running_on"`
}

// eventExpect: events of the scenario's nodes and pods.
type eventExpect struct {
	Reason  string `toml:"reason"`
	Message string `toml:"message"` // regular expression
	Kind    string `toml:"kind"`    // Node or Pod; empty: either
	Count   counts `toml:"count"`   // bounds on how many (min defaults to 1)
	At      span   `toml:"at"`      // when the first one was recorded
}

// span bounds a duration or a count; either end may be left out.
type span struct {
	Min *duration `toml:"min"`
	Max *duration `toml:"max"`
}

func (s span) set() bool { return s.Min != nil || s.Max != nil }

// check says how v misses the bounds, "" if it does not.
func (s span) check(v time.Duration) string {
	if s.Min != nil && v < s.Min.D() {
		return fmt.Sprintf("%v, want at least %v", v.Round(100*time.Millisecond), s.Min.D())
	}
	if s.Max != nil && v > s.Max.D() {
		return fmt.Sprintf("%v, want at most %v", v.Round(100*time.Millisecond), s.Max.D())
	}
	return ""
}

func (s span) String() string {
	switch {
	case s.Min != nil && s.Max != nil:
		return fmt.Sprintf("[%v, %v]", s.Min.D(), s.Max.D())
	case s.Min != nil:
		return fmt.Sprintf(">= %v", s.Min.D())
	case s.Max != nil:
		return fmt.Sprintf("<= %v", s.Max.D())
	}
	return "any"
}

// counts bounds a number of things.
type counts struct {
	Min *int `toml:"min"`
	Max *int `toml:"max"`
}

func (c counts) check(n int) string {
	lo := 1
	if c.Min != nil {
		lo = *c.Min
	}
	if n < lo {
		return fmt.Sprintf("%d, want at least %d", n, lo)
	}
	if c.Max != nil && n > *c.Max {
		return fmt.Sprintf("%d, want at most %d", n, *c.Max)
	}
	return ""
}

// duration is a non-negative Go duration ("90s").
type duration time.Duration

func (d duration) D() time.Duration { return time.Duration(d) }

func (d *duration) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case string:
		p, err := time.ParseDuration(x)
		if err != nil {
			return fmt.Errorf("%w (want a duration such as \"30s\" or \"2m\")", err)
		}
		if p < 0 {
			return fmt.Errorf("duration %q: must not be negative", x)
		}
		*d = duration(p)
	default:
		return fmt.Errorf("want a duration string such as \"30s\", got %T", v)
	}
	return nil
}

// loadScenario reads and checks a cluster scenario file; errors name the
// field.
func loadScenario(path string) (*clusterScenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster scenario: %w", err)
	}
	s, err := parseScenario(data, path)
	if err != nil {
		return nil, fmt.Errorf("cluster scenario %s: %w", path, err)
	}
	return s, nil
}

var labelKey = regexp.MustCompile(`^([a-z0-9]([a-z0-9.-]*[a-z0-9])?/)?[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$`)

var labelValue = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$`)

func parseScenario(data []byte, path string) (*clusterScenario, error) {
	var s clusterScenario
	md, err := toml.Decode(string(data), &s)
	if err != nil {
		return nil, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("%s: unknown key", und[0])
	}
	s.path = path
	dir := filepath.Dir(path)
	if !s.Cluster {
		return nil, errors.New("cluster: want cluster = true (this runner runs cluster scenarios; `fakecontainerd ab --scenario` runs the others)")
	}
	if s.Name == "" || !labelValue.MatchString(s.Name) {
		return nil, fmt.Errorf("name %q: want a label value (letters, digits, -, _, .; at most 63)", s.Name)
	}
	if s.Duration <= 0 {
		return nil, errors.New("duration: want a positive duration")
	}
	if s.Settle == 0 {
		s.Settle = duration(3 * time.Minute)
	}
	if len(s.Nodes) == 0 {
		return nil, errors.New("nodes: want at least one [[nodes]]")
	}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		field := fmt.Sprintf("nodes[%d]", i)
		if n.Count == 0 {
			n.Count = 1
		}
		if n.Count < 0 || n.Count > 250 {
			return nil, fmt.Errorf("%s.count: want 1..250, got %d", field, n.Count)
		}
		if n.Name != "" {
			if !labelValue.MatchString(n.Name) || strings.Contains(n.Name, ":") {
				return nil, fmt.Errorf("%s.name %q: want a label value", field, n.Name)
			}
			if n.Count != 1 {
				return nil, fmt.Errorf("%s.name %q: a named entry is one node (count = 1)", field, n.Name)
			}
			if slices.Contains(s.nodeNames(), n.Name) && slices.Index(s.nodeNames(), n.Name) < i {
				return nil, fmt.Errorf("%s.name %q: used twice", field, n.Name)
			}
		}
		if n.Arm == "" {
			n.Arm = "baseline"
		}
		if strings.ContainsAny(n.Arm, ", ") {
			return nil, fmt.Errorf("%s.arm %q: one arm per node entry (fixes joined by +)", field, n.Arm)
		}
		if fixes, file, ok := strings.Cut(n.Arm, "@"); ok {
			if !filepath.IsAbs(file) {
				file = filepath.Join(dir, file)
			}
			if _, err := os.Stat(file); err != nil {
				return nil, fmt.Errorf("%s.arm: config %w", field, err)
			}
			abs, _ := filepath.Abs(file)
			n.Arm = fixes + "@" + abs
		}
		for k, v := range n.Labels {
			if k == scenarioLabel || k == nameLabel || k == "fakecontainerd.io/arm" {
				return nil, fmt.Errorf("%s.labels: %s is set by the runner", field, k)
			}
			if !labelValue.MatchString(v) {
				return nil, fmt.Errorf("%s.labels.%s: %q is not a label value", field, k, v)
			}
		}
	}
	for i := range s.Pods {
		p := &s.Pods[i]
		field := fmt.Sprintf("pods[%d]", i)
		if (p.Manifest == "") == (p.YAML == "") {
			return nil, fmt.Errorf("%s: want exactly one of manifest (a file) and yaml (inline)", field)
		}
		src := []byte(p.YAML)
		if p.Manifest != "" {
			file := p.Manifest
			if !filepath.IsAbs(file) {
				file = filepath.Join(dir, file)
			}
			if src, err = os.ReadFile(file); err != nil {
				return nil, fmt.Errorf("%s.manifest: %w", field, err)
			}
		}
		if p.objects, err = parseManifests(src); err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		if err := checkSelector(p.PerNode, false); err != nil {
			return nil, fmt.Errorf("%s.per_node: %w", field, err)
		}
	}
	names := map[string]bool{}
	for i, f := range s.Faults {
		field := fmt.Sprintf("faults[%d]", i)
		if f.Name != "" {
			if names[f.Name] {
				return nil, fmt.Errorf("%s.name %q: used twice", field, f.Name)
			}
			names[f.Name] = true
		}
		n := 0
		for _, set := range []bool{f.Point != "", f.Fix != "", f.Kubelet != "", f.Cordon} {
			if set {
				n++
			}
		}
		if n != 1 {
			return nil, fmt.Errorf("%s: want exactly one of point, fix, kubelet and cordon", field)
		}
		if f.Point != "" && f.Spec == "" {
			return nil, fmt.Errorf("%s.spec: a fault at point %s needs a spec (e.g. \"block\")", field, f.Point)
		}
		if f.Point == "" && (f.Spec != "" || f.Target != "") {
			return nil, fmt.Errorf("%s: spec and target go with point", field)
		}
		if f.Kubelet != "" && f.Kubelet != "freeze" {
			return nil, fmt.Errorf("%s.kubelet %q: want \"freeze\"", field, f.Kubelet)
		}
		if f.ClearAt != 0 && f.ClearAt <= f.At {
			return nil, fmt.Errorf("%s.clear_at %v: must be after at (%v)", field, f.ClearAt.D(), f.At.D())
		}
		if err := checkSelector(f.Nodes, false); err != nil {
			return nil, fmt.Errorf("%s.nodes: %w", field, err)
		}
	}
	if m := s.CPUManager; m != nil {
		if err := checkSelector(m.Nodes, false); err != nil {
			return nil, fmt.Errorf("cpu_manager.nodes: %w", err)
		}
		if err := checkSelector(m.Pods, true); err != nil || m.Pods == "" {
			return nil, fmt.Errorf("cpu_manager.pods: want a pod label selector (%v)", err)
		}
		if m.Period == 0 {
			m.Period = duration(10 * time.Second)
		}
		if m.Timeout == 0 {
			m.Timeout = duration(2 * time.Minute)
		}
	}
	for i, sh := range s.Show {
		if strings.TrimSpace(sh.Kubectl) == "" {
			return nil, fmt.Errorf("show[%d].kubectl: want kubectl's arguments, e.g. \"get pods -o wide\"", i)
		}
		if sh.At > s.Duration {
			return nil, fmt.Errorf("show[%d].at %v: after the duration (%v)", i, sh.At.D(), s.Duration.D())
		}
	}
	for i, e := range s.Expect.Nodes {
		field := fmt.Sprintf("expect.nodes[%d]", i)
		if err := checkSelector(e.Nodes, false); err != nil {
			return nil, fmt.Errorf("%s.nodes: %w", field, err)
		}
		if nr := e.NotReady; nr != nil {
			if nr.Status != "" && nr.Status != "False" && nr.Status != "Unknown" {
				return nil, fmt.Errorf("%s.not_ready.status %q: want False or Unknown", field, nr.Status)
			}
			if _, err := regexp.Compile(nr.Message); err != nil {
				return nil, fmt.Errorf("%s.not_ready.message: %w", field, err)
			}
		}
		for _, t := range e.Taints {
			if !strings.Contains(t, ":") {
				return nil, fmt.Errorf("%s.taints %q: want key:Effect", field, t)
			}
		}
	}
	for i, e := range s.Expect.Pods {
		field := fmt.Sprintf("expect.pods[%d]", i)
		if err := checkSelector(e.Pods, true); err != nil {
			return nil, fmt.Errorf("%s.pods: %w", field, err)
		}
		if err := checkSelector(e.On, false); err != nil {
			return nil, fmt.Errorf("%s.on: %w", field, err)
		}
		if err := checkSelector(e.RunningOn, false); err != nil {
			return nil, fmt.Errorf("%s.running_on: %w", field, err)
		}
	}
	for i, e := range s.Expect.Events {
		field := fmt.Sprintf("expect.events[%d]", i)
		if e.Reason == "" {
			return nil, fmt.Errorf("%s.reason: want the event's reason, e.g. TaintManagerEviction", field)
		}
		if e.Kind != "" && e.Kind != "Node" && e.Kind != "Pod" {
			return nil, fmt.Errorf("%s.kind %q: want Node or Pod", field, e.Kind)
		}
		if _, err := regexp.Compile(e.Message); err != nil {
			return nil, fmt.Errorf("%s.message: %w", field, err)
		}
	}
	return &s, nil
}

// parseManifests reads YAML documents into JSON objects for kubectl.
func parseManifests(src []byte) ([]map[string]any, error) {
	var out []map[string]any
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(src), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("manifest document %d: %w", i+1, err)
		}
		var obj map[string]any
		if err := json.Unmarshal(js, &obj); err != nil || obj == nil {
			return nil, fmt.Errorf("manifest document %d: not an object", i+1)
		}
		if obj["kind"] == nil || obj["apiVersion"] == nil {
			return nil, fmt.Errorf("manifest document %d: want apiVersion and kind", i+1)
		}
		if meta, _ := obj["metadata"].(map[string]any); meta == nil || meta["name"] == nil {
			return nil, fmt.Errorf("manifest document %d (%v): want metadata.name", i+1, obj["kind"])
		}
		out = append(out, obj)
	}
	if len(out) == 0 {
		return nil, errors.New("no manifest in it")
	}
	return out, nil
}

// checkSelector: "", all, count:N or a label selector (K=V, K!=V, K,
// comma-joined); the file's own node names are label-selector-shaped.
// Cluster node names (fk-3) mean nothing in a file: which cluster node a
// scenario node lands on depends on what else runs.
func checkSelector(sel string, labelsOnly bool) error {
	if sel == "" || (!labelsOnly && sel == "all") {
		return nil
	}
	if n, ok := strings.CutPrefix(sel, "count:"); ok && !labelsOnly {
		var c int
		if _, err := fmt.Sscanf(n, "%d", &c); err != nil || c < 1 {
			return fmt.Errorf("%q: count must be a positive number", sel)
		}
		return nil
	}
	_, err := parseLabelSelector(sel)
	return err
}

type labelReq struct {
	key, value string
	op         string // "=", "!=", "exists"
}

func parseLabelSelector(sel string) ([]labelReq, error) {
	var reqs []labelReq
	for _, part := range strings.Split(sel, ",") {
		part = strings.TrimSpace(part)
		var r labelReq
		switch {
		case strings.Contains(part, "!="):
			r.key, r.value, _ = strings.Cut(part, "!=")
			r.op = "!="
		case strings.Contains(part, "="):
			r.key, r.value, _ = strings.Cut(part, "=")
			r.key, r.value = strings.TrimSuffix(r.key, "="), strings.TrimPrefix(r.value, "=")
			r.op = "="
		default:
			r.key, r.op = part, "exists"
		}
		r.key, r.value = strings.TrimSpace(r.key), strings.TrimSpace(r.value)
		if !labelKey.MatchString(r.key) || (r.value != "" && !labelValue.MatchString(r.value)) {
			return nil, fmt.Errorf("%q: want a label selector (K=V, K!=V or K, comma-joined)", sel)
		}
		reqs = append(reqs, r)
	}
	return reqs, nil
}

// matchLabels: labels satisfy every requirement of sel ("" matches all).
func matchLabels(sel string, labels map[string]string) bool {
	if sel == "" {
		return true
	}
	reqs, err := parseLabelSelector(sel)
	if err != nil {
		return false
	}
	for _, r := range reqs {
		v, ok := labels[r.key]
		switch r.op {
		case "=":
			if !ok || v != r.value {
				return false
			}
		case "!=":
			if ok && v == r.value {
				return false
			}
		case "exists":
			if !ok {
				return false
			}
		}
	}
	return true
}

// nodeNames is the names of the file's named node entries, in order
// (one per entry, "" for unnamed ones).
func (s *clusterScenario) nodeNames() []string {
	var out []string
	for _, nd := range s.Nodes {
		out = append(out, nd.Name)
	}
	return out
}

// byName is sel as a label selector on nameLabel if every part of it is
// a node name the file declares (evict,spare), "" if not.
func (s *clusterScenario) byName(sel string) []string {
	if sel == "" {
		return nil
	}
	var out []string
	for _, part := range strings.Split(sel, ",") {
		part = strings.TrimSpace(part)
		if part == "" || !slices.Contains(s.nodeNames(), part) {
			return nil
		}
		out = append(out, part)
	}
	return out
}

// nodeCount is how many cluster nodes the scenario declares.
func (s *clusterScenario) nodeCount() int {
	n := 0
	for _, nd := range s.Nodes {
		n += nd.Count
	}
	return n
}

// arms is the scenario's nodes' arms, one per node, in order.
func (s *clusterScenario) arms() []string {
	var out []string
	for _, nd := range s.Nodes {
		for range nd.Count {
			out = append(out, nd.Arm)
		}
	}
	return out
}

// nodeLabels is the labels the runner puts on scenario node i.
func (s *clusterScenario) nodeLabels(i int) map[string]string {
	for _, nd := range s.Nodes {
		if i < nd.Count {
			l := map[string]string{scenarioLabel: s.Name}
			for k, v := range nd.Labels {
				l[k] = v
			}
			if nd.Name != "" {
				l[nameLabel] = nd.Name
			}
			return l
		}
		i -= nd.Count
	}
	return nil
}

// objectsFor is pod entry p's objects, copied per node if PerNode, with
// the scenario's label on them and on their pod templates.
func (s *clusterScenario) objectsFor(p scenarioPod, nodes []string) ([]map[string]any, error) {
	var out []map[string]any
	copyObj := func(o map[string]any) map[string]any {
		var c map[string]any
		data, _ := json.Marshal(o)
		_ = json.Unmarshal(data, &c)
		return c
	}
	targets := []string{""}
	if p.PerNode != "" {
		targets = nodes
	}
	for _, node := range targets {
		for _, o := range p.objects {
			c := copyObj(o)
			meta := c["metadata"].(map[string]any)
			addLabel(meta, scenarioLabel, s.Name)
			spec, _ := c["spec"].(map[string]any)
			tmpl, _ := spec["template"].(map[string]any)
			if tmpl != nil {
				tm, _ := tmpl["metadata"].(map[string]any)
				if tm == nil {
					tm = map[string]any{}
					tmpl["metadata"] = tm
				}
				addLabel(tm, scenarioLabel, s.Name)
			}
			if node != "" {
				meta["name"] = fmt.Sprint(meta["name"]) + "-" + node
				switch {
				case c["kind"] == "Pod" && spec != nil:
					spec["nodeName"] = node
				case tmpl != nil:
					ts, _ := tmpl["spec"].(map[string]any)
					if ts == nil {
						return nil, fmt.Errorf("%v %v: per_node needs a pod template spec", c["kind"], meta["name"])
					}
					ts["nodeName"] = node
				default:
					return nil, fmt.Errorf("%v %v: per_node works on Pods and objects with a pod template", c["kind"], meta["name"])
				}
			}
			out = append(out, c)
		}
	}
	return out, nil
}

func addLabel(meta map[string]any, k, v string) {
	l, _ := meta["labels"].(map[string]any)
	if l == nil {
		l = map[string]any{}
		meta["labels"] = l
	}
	l[k] = v
}

// manifestJSON is objects as one kubectl List.
func manifestJSON(objs []map[string]any) []byte {
	items := slices.Clone(objs)
	var b bytes.Buffer
	_ = json.NewEncoder(&b).Encode(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	return b.Bytes()
}
