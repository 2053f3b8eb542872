package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/e2e/kubelet/incident"
)

// scenarioRun runs one or more cluster scenarios at once on one cluster:
// each on its own nodes, all from one time zero, so their waits overlap.
type scenarioRun struct {
	c         *cluster
	scenarios []*clusterScenario
	out       func(string)

	t0      time.Time
	watch   *watcher
	labels  map[string]map[string]string // node -> labels, after labelling
	lists   map[string]*incident.Lister
	updates map[string]*callLog
	events  []apiEvent

	mu    sync.Mutex
	shows []shown
	undo  []func(context.Context) error // what the end of the run clears, in order
	log   []string                      // the actions taken, for the report
}

type shown struct {
	scenario string
	at       time.Duration
	cmd, out string
}

// expectResult is one expectation's verdict.
type expectResult struct {
	what, detail string
	ok           bool
}

// scenarioResult is one scenario's report and verdicts.
type scenarioResult struct {
	s       *clusterScenario
	report  string
	results []expectResult
}

func (r scenarioResult) failed() int {
	n := 0
	for _, e := range r.results {
		if !e.ok {
			n++
		}
	}
	return n
}

// assignNodes maps every scenario's nodes onto the cluster's, in order,
// and checks that each runs the arm the scenario declares.
func assignNodes(c *cluster, all []string, scenarios []*clusterScenario) error {
	i := 0
	for _, s := range scenarios {
		s.names = nil
		for _, arm := range s.arms() {
			if i >= len(all) {
				return fmt.Errorf("the scenarios need %d nodes, the cluster in %s has %d", totalNodes(scenarios), c.runDir, len(all))
			}
			if got := c.arm(all[i]); got != arm {
				return fmt.Errorf("scenario %s: node %s runs arm %q, the scenario wants %q (bring the cluster down, or let `fakecluster run` bring one up)", s.Name, all[i], got, arm)
			}
			s.names = append(s.names, all[i])
			i++
		}
	}
	return nil
}

func totalNodes(scenarios []*clusterScenario) int {
	n := 0
	for _, s := range scenarios {
		n += s.nodeCount()
	}
	return n
}

// allArms is every scenario's arms, in node order, for cluster.sh up.
func allArms(scenarios []*clusterScenario) []string {
	var out []string
	for _, s := range scenarios {
		out = append(out, s.arms()...)
	}
	return out
}

// nodesOf resolves a selector within scenario s's own nodes.
func (r *scenarioRun) nodesOf(s *clusterScenario, sel string) []string {
	switch {
	case sel == "" || sel == "all":
		return slices.Clone(s.names)
	case strings.HasPrefix(sel, "count:"):
		n, _ := strconv.Atoi(strings.TrimPrefix(sel, "count:"))
		return slices.Clone(s.names[:min(n, len(s.names))])
	}
	var out []string
	names := s.byName(sel)
	for _, n := range s.names {
		if names != nil {
			if slices.Contains(names, r.labels[n][nameLabel]) {
				out = append(out, n)
			}
		} else if matchLabels(sel, r.labels[n]) {
			out = append(out, n)
		}
	}
	return out
}

func (r *scenarioRun) note(format string, args ...any) {
	line := fmt.Sprintf("%+7.1fs  ", time.Since(r.t0).Seconds()) + fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.log = append(r.log, line)
	r.mu.Unlock()
	r.out(line + "\n")
}

// runScenarios runs the scenarios on the running cluster c.
func runScenarios(ctx context.Context, c *cluster, scenarios []*clusterScenario, out func(string)) ([]scenarioResult, string, error) {
	all, err := selectNodes(ctx, c, "all")
	if err != nil {
		return nil, "", err
	}
	if err := assignNodes(c, all, scenarios); err != nil {
		return nil, "", err
	}
	r := &scenarioRun{c: c, scenarios: scenarios, out: out, labels: map[string]map[string]string{},
		lists: map[string]*incident.Lister{}, updates: map[string]*callLog{}}
	nodes, err := c.nodes(ctx, "")
	if err != nil {
		return nil, "", err
	}
	previous := map[string]string{}
	for _, n := range nodes {
		previous[n.Metadata.Name] = n.Metadata.Annotations[labelsAnnotation]
	}
	var used []string
	for _, s := range scenarios {
		for i, n := range s.names {
			if err := c.patch(ctx, "/api/v1/nodes/"+n, labelPatch(previous[n], s.nodeLabels(i))); err != nil {
				return nil, "", fmt.Errorf("scenario %s: label node %s: %w", s.Name, n, err)
			}
		}
		used = append(used, s.names...)
	}
	if nodes, err = c.nodes(ctx, ""); err != nil {
		return nil, "", err
	}
	for _, n := range nodes {
		r.labels[n.Metadata.Name] = n.Metadata.Labels
	}
	// Every object of every scenario, created at its time; checked now.
	// At one time, faults go before pods and pods before shows: what a
	// scenario arms at 0s is in place when its workload arrives.
	type timed struct {
		at   time.Duration
		prio int
		s    *clusterScenario
		do   func(context.Context) error
		why  string
	}
	var plan []timed
	for _, s := range scenarios {
		for i, p := range s.Pods {
			objs, err := s.objectsFor(p, r.nodesOf(s, p.PerNode))
			if err != nil {
				return nil, "", fmt.Errorf("scenario %s: pods[%d]: %w", s.Name, i, err)
			}
			if p.PerNode != "" && len(objs) == 0 {
				return nil, "", fmt.Errorf("scenario %s: pods[%d].per_node %q matches none of its nodes", s.Name, i, p.PerNode)
			}
			plan = append(plan, timed{p.At.D(), 1, s, func(ctx context.Context) error { return r.kubectl(ctx, manifestJSON(objs), "create", "-f", "-") },
				fmt.Sprintf("create %s", describeObjects(objs))})
		}
		for i, f := range s.Faults {
			sel := r.nodesOf(s, f.Nodes)
			if len(sel) == 0 {
				return nil, "", fmt.Errorf("scenario %s: faults[%d].nodes %q matches none of its nodes", s.Name, i, f.Nodes)
			}
			f := f
			plan = append(plan, timed{f.At.D(), 0, s, func(ctx context.Context) error { return r.arm(ctx, f, sel) },
				fmt.Sprintf("%s on %s", f, strings.Join(sel, ","))})
		}
		for _, sh := range s.Show {
			sh := sh
			plan = append(plan, timed{sh.At.D(), 2, s, func(ctx context.Context) error { return r.show(ctx, s, sh) }, ""})
		}
	}
	slices.SortStableFunc(plan, func(a, b timed) int {
		if a.at != b.at {
			return int(a.at - b.at)
		}
		return a.prio - b.prio
	})

	// Watch, list and play the CPU manager from time zero.
	r.t0 = time.Now()
	r.watch = newWatcher(c, used)
	var wg sync.WaitGroup
	wctx, stop := context.WithCancel(ctx)
	defer func() { stop(); wg.Wait() }()
	r.watch.run(wctx, &wg)
	for _, n := range used {
		conn, err := grpc.NewClient("unix://"+c.criSocket(n), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, "", fmt.Errorf("node %s: CRI client: %w", n, err)
		}
		defer conn.Close()
		rs := cri.NewRuntimeServiceClient(conn)
		r.lists[n] = &incident.Lister{CRI: rs}
		r.lists[n].Run(wctx, &wg)
		r.updates[n] = &callLog{}
		for _, s := range scenarios {
			m := s.CPUManager
			if m == nil || !slices.Contains(r.nodesOf(s, m.Nodes), n) {
				continue
			}
			node, sel := n, m.Pods+","+scenarioLabel+"="+s.Name
			standInCPUManager(wctx, &wg, rs, m.Period.D(), m.Timeout.D(), r.updates[n], func() []apiPod {
				pods, err := c.podsOn(wctx, node, sel)
				if err != nil {
					return nil
				}
				return pods
			})
		}
	}
	out(fmt.Sprintf("cluster scenarios %s on %d nodes, time zero %s\n", scenarioNames(scenarios), len(used), r.t0.Format("15:04:05")))

	var runErr error
	defer func() {
		// Undo what is still armed, whatever happened: thaw kubelets
		// first, so the cluster can go down.
		uctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		r.undoAll(uctx)
	}()
	for _, p := range plan {
		if err := sleepUntil(ctx, r.t0.Add(p.at)); err != nil {
			return nil, "", err
		}
		if p.why != "" {
			r.note("%s: %s", p.s.Name, p.why)
		}
		if err := p.do(ctx); err != nil {
			return nil, "", fmt.Errorf("scenario %s at %v: %s: %w", p.s.Name, p.at, p.why, err)
		}
	}
	var end, settle time.Duration
	for _, s := range scenarios {
		end, settle = max(end, s.Duration.D()), max(settle, s.Settle.D())
	}
	if err := sleepUntil(ctx, r.t0.Add(end)); err != nil {
		return nil, "", err
	}
	r.undoAll(ctx)
	// Settle: every node Ready, every phase expectation met, no pod of
	// the scenarios Terminating.
	serr := poll(ctx, settle, func() error {
		for _, n := range used {
			if rd, _ := r.watch.current(n); rd.Status != "True" {
				return fmt.Errorf("node %s is Ready=%s", n, rd.Status)
			}
		}
		return r.phasesHold()
	})
	if serr != nil {
		r.note("did not settle: %v", serr)
	}
	if r.events, err = c.events(ctx); err != nil {
		runErr = fmt.Errorf("events: %w", err)
	}
	stop()
	wg.Wait()
	var results []scenarioResult
	for _, s := range scenarios {
		results = append(results, r.evaluate(s))
	}
	return results, r.timeline(), runErr
}

// labelsAnnotation lists the label keys a run put on a node, so that the
// next run on the same cluster removes those it does not set again.
const labelsAnnotation = "fakecontainerd.io/scenario-labels"

// labelPatch sets labels and removes the earlier run's (previous: its
// comma-joined keys) that labels leaves out.
func labelPatch(previous string, labels map[string]string) map[string]any {
	set := map[string]any{}
	for _, k := range strings.Split(previous, ",") {
		if k != "" {
			set[k] = nil
		}
	}
	keys := make([]string, 0, len(labels))
	for k, v := range labels {
		set[k] = v
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return map[string]any{"metadata": map[string]any{
		"labels":      set,
		"annotations": map[string]any{labelsAnnotation: strings.Join(keys, ",")},
	}}
}

func scenarioNames(ss []*clusterScenario) string {
	var n []string
	for _, s := range ss {
		n = append(n, s.Name)
	}
	return strings.Join(n, ", ")
}

func describeObjects(objs []map[string]any) string {
	var d []string
	for _, o := range objs {
		d = append(d, fmt.Sprintf("%v/%v", strings.ToLower(fmt.Sprint(o["kind"])), o["metadata"].(map[string]any)["name"]))
	}
	return strings.Join(d, " ")
}

func sleepUntil(ctx context.Context, t time.Time) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(t)):
		return nil
	}
}

// kubectl runs the cluster's kubectl with the admin kubeconfig.
func (r *scenarioRun) kubectl(ctx context.Context, stdin []byte, args ...string) error {
	_, err := kubectlOut(ctx, r.c, stdin, args...)
	return err
}

func kubectlOut(ctx context.Context, c *cluster, stdin []byte, args ...string) (string, error) {
	if c.env["KUBECTL"] == "" {
		return "", fmt.Errorf("%s/cluster.env names no KUBECTL", c.runDir)
	}
	cmd := exec.CommandContext(ctx, c.env["KUBECTL"], append([]string{"--kubeconfig", filepath.Join(c.runDir, "admin.kubeconfig")}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func (r *scenarioRun) show(ctx context.Context, s *clusterScenario, sh show) error {
	args := strings.Fields(sh.Kubectl)
	out, err := kubectlOut(ctx, r.c, nil, args...)
	if err != nil {
		out = err.Error()
	}
	r.mu.Lock()
	r.shows = append(r.shows, shown{scenario: s.Name, at: time.Since(r.t0), cmd: sh.Kubectl, out: out})
	r.mu.Unlock()
	return nil
}

// arm does fault f on the nodes and records how to undo it.
func (r *scenarioRun) arm(ctx context.Context, f clusterFault, nodes []string) error {
	for _, n := range nodes {
		n := n
		var undo func(context.Context) error
		switch f.kind() {
		case "fault":
			var info struct {
				ID      string `json:"id"`
				Warning string `json:"warning"`
			}
			req := map[string]any{"point": f.Point, "target": f.targetOrAll(), "spec": f.Spec}
			if err := r.admin(ctx, n, http.MethodPost, "/v1/faults", req, &info); err != nil {
				return err
			}
			undo = func(ctx context.Context) error {
				return r.admin(ctx, n, http.MethodDelete, "/v1/faults?id="+url.QueryEscape(info.ID), nil, nil)
			}
		case "fix":
			if err := r.admin(ctx, n, http.MethodPost, "/v1/fixes", map[string]any{"fix": f.Fix, "on": true}, nil); err != nil {
				return err
			}
			undo = func(ctx context.Context) error {
				return r.admin(ctx, n, http.MethodPost, "/v1/fixes", map[string]any{"fix": f.Fix, "on": false}, nil)
			}
		case "kubelet":
			if err := r.signalKubelet(n, syscall.SIGSTOP); err != nil {
				return err
			}
			undo = func(context.Context) error { return r.signalKubelet(n, syscall.SIGCONT) }
		case "cordon":
			if err := r.c.patch(ctx, "/api/v1/nodes/"+n, map[string]any{"spec": map[string]any{"unschedulable": true}}); err != nil {
				return err
			}
			undo = func(ctx context.Context) error {
				return r.c.patch(ctx, "/api/v1/nodes/"+n, map[string]any{"spec": map[string]any{"unschedulable": nil}})
			}
		}
		r.watch.note(time.Now(), n, "%s armed", f)
		what := fmt.Sprintf("%s on %s", f, n)
		once := sync.OnceValue(func() error {
			err := undo(context.Background())
			r.watch.note(time.Now(), n, "%s cleared", f)
			return err
		})
		r.mu.Lock()
		r.undo = append(r.undo, func(ctx context.Context) error {
			if err := once(); err != nil {
				return fmt.Errorf("clear %s: %w", what, err)
			}
			return nil
		})
		r.mu.Unlock()
		if f.ClearAt > 0 {
			at := r.t0.Add(f.ClearAt.D())
			go func() {
				if sleepUntil(ctx, at) == nil {
					r.note("clear %s", what)
					if err := once(); err != nil {
						r.note("clear %s: %v", what, err)
					}
				}
			}()
		}
	}
	return nil
}

// undoAll clears every fault still armed; kubelets first.
func (r *scenarioRun) undoAll(ctx context.Context) {
	r.mu.Lock()
	undo := slices.Clone(r.undo)
	r.mu.Unlock()
	for _, u := range undo {
		if err := u(ctx); err != nil {
			r.note("%v", err)
		}
	}
}

// admin calls a node's fakecontainerd admin API (its CRI socket + .admin).
func (r *scenarioRun) admin(ctx context.Context, node, method, path string, body, out any) error {
	sock := r.c.criSocket(node) + ".admin"
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	var rd *bytes.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://fakecontainerd"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("node %s: admin %s %s: %w", node, method, path, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("node %s: admin %s %s: %s: %s", node, method, path, resp.Status, strings.TrimSpace(buf.String()))
	}
	if out != nil {
		if err := json.Unmarshal(buf.Bytes(), out); err != nil {
			return fmt.Errorf("node %s: admin %s %s: decode: %w", node, method, path, err)
		}
	}
	return nil
}

// signalKubelet sends sig to the node's kubelet, by the pid cluster.sh
// recorded, and only if that pid's command line names the run dir.
func (r *scenarioRun) signalKubelet(node string, sig syscall.Signal) error {
	data, err := os.ReadFile(filepath.Join(r.c.runDir, "pids", node+".kubelet.pid"))
	if err != nil {
		return fmt.Errorf("node %s: kubelet pid: %w", node, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return fmt.Errorf("node %s: kubelet pid %q: %w", node, data, err)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(r.c.runDir)) {
		return fmt.Errorf("node %s: pid %d is not this cluster's kubelet", node, pid)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return fmt.Errorf("node %s: signal kubelet %d: %w", node, pid, err)
	}
	return nil
}

// phasesHold: every pod phase expectation holds now.
func (r *scenarioRun) phasesHold() error {
	hist := r.watch.history()
	for _, s := range r.scenarios {
		for _, e := range s.Expect.Pods {
			if e.Phase == "" {
				continue
			}
			for key, h := range scenarioPods(s, e.Pods, hist) {
				if h.goneAt.IsZero() && h.last.phase != e.Phase {
					return fmt.Errorf("pod %s is %s, want %s", key, h.last.phase, e.Phase)
				}
			}
		}
	}
	return nil
}

// scenarioPods is the pods of scenario s that sel matches.
func scenarioPods(s *clusterScenario, sel string, hist map[string]podHist) map[string]podHist {
	out := map[string]podHist{}
	for k, h := range hist {
		if h.labels[scenarioLabel] == s.Name && matchLabels(sel, h.labels) {
			out[k] = h
		}
	}
	return out
}

// timeline is every node's events, the API's Events of the scenarios'
// nodes and pods, and the runner's actions, in time order.
func (r *scenarioRun) timeline() string {
	hist := r.watch.history()
	for _, e := range r.events {
		node := ""
		switch e.InvolvedObject.Kind {
		case "Node":
			if !r.watch.nodes[e.InvolvedObject.Name] {
				continue
			}
			node = e.InvolvedObject.Name
		case "Pod":
			h, ok := hist[e.InvolvedObject.Namespace+"/"+e.InvolvedObject.Name]
			if !ok {
				continue
			}
			node = h.last.node
			if routineEvents[e.Reason] {
				continue
			}
		default:
			continue
		}
		if e.at().Before(r.t0.Add(-time.Second)) {
			continue
		}
		r.watch.note(e.at(), node, "event %s %s/%s: %s", e.Reason, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Message)
	}
	return r.watch.timeline(r.t0)
}

// routineEvents are the pod events of every start, left off the timeline.
var routineEvents = map[string]bool{"Scheduled": true, "Pulling": true, "Pulled": true, "Created": true, "Started": true, "MissingClusterDNS": true}

// podsOn is the pods on node matching a label selector.
func (c *cluster) podsOn(ctx context.Context, node, selector string) ([]apiPod, error) {
	var list struct {
		Items []apiPod `json:"items"`
	}
	q := url.Values{"fieldSelector": {"spec.nodeName=" + node}, "labelSelector": {selector}}
	err := c.do(ctx, http.MethodGet, "/api/v1/pods?"+q.Encode(), nil, &list)
	return list.Items, err
}

// deleteObjects removes what the scenarios created (a rerun on the same
// cluster creates them again).
func deleteObjects(ctx context.Context, c *cluster, scenarios []*clusterScenario) error {
	var errs []error
	for _, s := range scenarios {
		var objs []map[string]any
		for _, p := range s.Pods {
			o, err := s.objectsFor(p, s.names)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			objs = append(objs, o...)
		}
		if len(objs) == 0 {
			continue
		}
		if _, err := kubectlOut(ctx, c, manifestJSON(objs), "delete", "--ignore-not-found", "--wait=false", "--grace-period=0", "-f", "-"); err != nil {
			errs = append(errs, fmt.Errorf("scenario %s: %w", s.Name, err))
		}
	}
	return errors.Join(errs...)
}
