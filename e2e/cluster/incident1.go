package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/e2e/kubelet/incident"
)

// Incident 1 on every node of the cluster at once, the workload of package
// incident, as e2e/kubelet's TestIncident1 runs it on a standalone kubelet:
// a "dying" pod whose container exits 0 with its unmount taking
// incident.UnmountTime without volatile, a "long" pod beside it, and a
// stand-in for the older kubelet's CPU manager calling
// UpdateContainerResources on the dying pod's running containers every
// 10 s with a 2 min deadline. What the cluster sees comes from the API: the
// Node's Ready condition, its taints, the pods.
const (
	observeFor = incident.ObserveFor
	podImage   = "busybox:latest"
)

func incident1Pod(name, node, restartPolicy, container string, annotations map[string]string) map[string]any {
	return map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata":   map[string]any{"name": name, "annotations": annotations, "labels": map[string]string{"fakecontainerd.io/incident": "1"}},
		"spec": map[string]any{
			"nodeName":                      node,
			"restartPolicy":                 restartPolicy,
			"terminationGracePeriodSeconds": 5,
			"containers": []map[string]any{{
				"name": container, "image": podImage, "imagePullPolicy": "IfNotPresent",
				"command": []string{"sh", "-c", "while true; do sleep 1; done"},
			}},
		},
	}
}

// incident1Node is one node's run: its CRI client, the CPU manager
// stand-in's calls and the timed lists.
type incident1Node struct {
	name, arm  string
	dying      string // pod names
	long       string
	cri        cri.RuntimeServiceClient
	workID     string
	exit       time.Time
	updates    callLog
	lists      *incident.Lister
	finalDying apiPod
}

// callLog is the CPU manager stand-in's calls on one node, timed.
type callLog struct {
	mu    sync.Mutex
	calls []incident.Call
}

func (l *callLog) add(c incident.Call) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, c)
}

func (l *callLog) snapshot() []incident.Call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]incident.Call(nil), l.calls...)
}

// callSummary: calls, errors, how many took over slow, the longest.
func callSummary(calls []incident.Call, slow time.Duration) (n, errs, over int, longest time.Duration) {
	_, _, longest, over = incident.Stalls(calls, slow)
	for _, c := range calls {
		if c.Err != nil {
			errs++
		}
	}
	return len(calls), errs, over, longest
}

type incident1Options struct {
	nodes   []string
	observe time.Duration
	out     func(string)
}

type incident1Result struct {
	t0      time.Time // when the pods were created
	nodes   []*incident1Node
	watch   *watcher
	summary string
}

// runIncident1 arms incident 1 on every given node, watches until the
// unmount is over and every node is Ready again (or maxWait), and returns
// the per-node report and the one timeline.
func runIncident1(ctx context.Context, c *cluster, opt incident1Options) (*incident1Result, error) {
	res := &incident1Result{t0: time.Now()}
	res.watch = newWatcher(c, opt.nodes)
	var wg sync.WaitGroup
	wctx, stop := context.WithCancel(ctx)
	defer func() { stop(); wg.Wait() }()
	res.watch.run(wctx, &wg)

	for _, name := range opt.nodes {
		conn, err := grpc.NewClient("unix://"+c.criSocket(name), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, fmt.Errorf("node %s: CRI client: %w", name, err)
		}
		defer conn.Close()
		rs := cri.NewRuntimeServiceClient(conn)
		n := &incident1Node{name: name, arm: c.arm(name), dying: "dying-" + name, long: "long-" + name, cri: rs, lists: &incident.Lister{CRI: rs}}
		res.nodes = append(res.nodes, n)
		dying := incident1Pod(n.dying, name, "Never", incident.Container, incident.DyingAnnotations())
		for _, p := range []map[string]any{dying, incident1Pod(n.long, name, "Always", "main", nil)} {
			if err := c.createPod(ctx, "default", p); err != nil {
				return nil, fmt.Errorf("node %s: create pod: %w (an earlier run's pods? kubectl delete pods -l fakecontainerd.io/incident=1)", name, err)
			}
		}
	}
	opt.out(fmt.Sprintf("incident 1 armed on %d nodes at %s: dying-<node> exits 0 %v after it starts, its unmount takes %v without volatile; CPU manager stand-in every 10s (2 min deadline)\n",
		len(res.nodes), res.t0.Format("15:04:05"), incident.DyingExitAfter, incident.UnmountTime))

	// Every dying container running, as kubelet reports it to the API.
	for _, n := range res.nodes {
		err := poll(ctx, 3*time.Minute, func() error {
			p, err := c.pod(ctx, "default", n.dying)
			if err != nil {
				return err
			}
			for _, s := range p.Status.ContainerStatuses {
				if s.State.Running != nil && s.runtimeID() != "" {
					n.workID = s.runtimeID()
					return nil
				}
			}
			return fmt.Errorf("%s is %s", n.dying, p.Status.Phase)
		})
		if err != nil {
			return nil, fmt.Errorf("node %s: waiting for %s to run: %w", n.name, n.dying, err)
		}
		res.watch.note(time.Now(), n.name, "%s/work %.12s running (arm %s)", n.dying, n.workID, n.arm)
	}
	for _, n := range res.nodes {
		n.run(wctx, &wg, c)
	}

	// Observe the whole unmount from the last exit, then until every
	// node is Ready and every dying pod has ended.
	deadline := time.Now().Add(incident.DyingExitAfter + time.Minute)
	for _, n := range res.nodes {
		err := poll(ctx, time.Until(deadline), func() error {
			n.exit = exitTime(filepath.Join(c.runDir, "logs", n.name, "fakecontainerd.log"), n.workID)
			if n.exit.IsZero() {
				return errors.New("no exit yet")
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("node %s: the dying container's exit: %w", n.name, err)
		}
		res.watch.note(n.exit, n.name, "%s/work exits 0; the shim's Delete starts its unmount", n.dying)
	}
	lastExit := res.nodes[0].exit
	for _, n := range res.nodes {
		if n.exit.After(lastExit) {
			lastExit = n.exit
		}
	}
	observe := opt.observe
	if observe == 0 {
		observe = observeFor
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(time.Until(lastExit.Add(observe))):
	}
	err := poll(ctx, 3*time.Minute, func() error {
		for _, n := range res.nodes {
			if r, _ := res.watch.current(n.name); r.Status != "True" {
				return fmt.Errorf("node %s is Ready=%s", n.name, r.Status)
			}
			p, err := c.pod(ctx, "default", n.dying)
			if err != nil {
				return err
			}
			n.finalDying = p
			if p.Status.Phase != "Succeeded" && p.Status.Phase != "Failed" {
				return fmt.Errorf("%s is %s", n.dying, p.Status.Phase)
			}
		}
		return nil
	})
	stop()
	wg.Wait()
	res.summary = res.report()
	if err != nil {
		return res, fmt.Errorf("after the window: %w", err)
	}
	return res, nil
}

// run starts the node's CPU manager stand-in and its timed lister.
func (n *incident1Node) run(ctx context.Context, wg *sync.WaitGroup, c *cluster) {
	standInCPUManager(ctx, wg, n.cri, 10*time.Second, 2*time.Minute, &n.updates, func() []apiPod {
		p, err := c.pod(ctx, "default", n.dying)
		if err != nil {
			return nil
		}
		return []apiPod{p}
	})
	n.lists.Run(ctx, wg)
}

// standInCPUManager plays the older kubelet's CPU manager: at a fixed rate,
// as a time.Ticker (a pass that overruns is followed at once by the next),
// UpdateContainerResources with a deadline on every container of pods()
// that the API (kubelet's own status) reports running.
func standInCPUManager(ctx context.Context, wg *sync.WaitGroup, rs cri.RuntimeServiceClient, period, timeout time.Duration, log *callLog, pods func() []apiPod) {
	cpus := fmt.Sprintf("0-%d", runtime.NumCPU()-1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			for _, p := range pods() {
				for _, s := range p.Status.ContainerStatuses {
					if s.State.Running == nil || s.runtimeID() == "" {
						continue
					}
					cctx, cancel := context.WithTimeout(ctx, timeout)
					start := time.Now()
					_, uerr := rs.UpdateContainerResources(cctx, &cri.UpdateContainerResourcesRequest{
						ContainerId: s.runtimeID(), Linux: &cri.LinuxContainerResources{CpusetCpus: cpus},
					})
					cancel()
					if ctx.Err() != nil {
						return
					}
					log.add(incident.Call{ID: s.runtimeID(), Start: start, Took: time.Since(start), Err: uerr})
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// fakeTime is fakecontainerd's logrus timestamp.
var fakeTime = regexp.MustCompile(`^time="([^"]+)"`)

// exitTime is when fakecontainerd's exit monitor received the container's
// exit, from its log; zero if not yet.
func exitTime(logPath, id string) time.Time {
	f, err := os.Open(logPath)
	if err != nil {
		return time.Time{}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "received exit event") || !strings.Contains(line, "id="+id) {
			continue
		}
		if m := fakeTime.FindStringSubmatch(line); m != nil {
			if t, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
				return t
			}
		}
	}
	return time.Time{}
}

// poll calls cond every second until it returns nil or within is over.
func poll(ctx context.Context, within time.Duration, cond func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", within.Round(time.Second), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// report is the per-node account: times are seconds from that node's
// container exit.
func (r *incident1Result) report() string {
	var b strings.Builder
	for _, n := range r.nodes {
		fmt.Fprintf(&b, "node %s (arm %s), times from its container's exit at %s:\n", n.name, n.arm, n.exit.Format("15:04:05"))
		b.WriteString(r.watch.summary(n.name, r.t0, n.exit))
		ln, lerr, lslow, llong := callSummary(n.lists.Calls(), 2*time.Second)
		un, uerr, uslow, ulong := callSummary(n.updates.snapshot(), 2*time.Second)
		fmt.Fprintf(&b, "  runtime: ListContainers %d calls, %d over 2s, longest %.1fs, %d errors; UpdateContainerResources %d calls, %d over 2s, longest %.1fs, %d errors\n",
			ln, lslow, llong.Seconds(), lerr, un, uslow, ulong.Seconds(), uerr)
		if cs := n.finalDying.Status.ContainerStatuses; len(cs) > 0 && cs[0].State.Terminated != nil {
			fmt.Fprintf(&b, "  %s ended %s: %s exit %d, restarts %d\n", n.dying, n.finalDying.Status.Phase, cs[0].State.Terminated.Reason, cs[0].State.Terminated.ExitCode, cs[0].RestartCount)
		}
	}
	return b.String()
}
