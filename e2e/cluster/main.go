// Command fakecluster drives a cluster that cluster.sh brought up (a real
// control plane, every node a real kubelet on its own fakecontainerd):
//
//	fakecluster run [-keep] FILE...        run cluster scenarios (one cluster, one time zero);
//	                                       brings a cluster up (and down) if none is up
//	fakecluster incident1 [-nodes SEL]     arm incident 1 on the nodes, report each from the API
//	fakecluster watch -for 5m [-nodes SEL] every node's Ready/taints/pods on one timeline
//	fakecluster stats [-interval 30s] [-row] RSS, PSS and CPU per process and node, kubelet relist p99
//
// SEL picks nodes: all (default), count:N (the first N), KEY=VALUE (a node
// label, e.g. fakecontainerd.io/arm=baseline) or NAME[,NAME...]. Arm a
// fault or fix on many nodes at once with `cluster.sh fault|fix SEL ...`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fakecluster:", err)
		os.Exit(1)
	}
}

func usage() error {
	return errors.New("usage: fakecluster run|incident1|watch|stats [-run-dir DIR] [flags] (-h for each)")
}

func run(args []string) error {
	if len(args) == 0 {
		return usage()
	}
	cmd := args[0]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	runDir := fs.String("run-dir", defaultRunDir(), "the cluster's run dir (cluster.sh's RUN_DIR)")
	sel := fs.String("nodes", "all", "nodes: all, count:N, KEY=VALUE (label) or NAME[,NAME...]")
	observe := fs.Duration("observe", observeFor, "incident1: how long to watch after the last container exit")
	watchFor := fs.Duration("for", 5*time.Minute, "watch: how long to watch")
	interval := fs.Duration("interval", 30*time.Second, "stats: the interval CPU and relists are measured over")
	keep := fs.Bool("keep", false, "run: leave the scenarios' objects, and a cluster it brought up, in place")
	clusterSh := fs.String("cluster-sh", "cluster.sh", "run: cluster.sh, to bring a cluster up when none is")
	row := fs.Bool("row", false, "stats: also print the fleet as a markdown table row (make bench's fleet row)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if cmd == "run" {
		ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer cancel()
		return runCommand(ctx, *runDir, *clusterSh, *keep, fs.Args(), func(s string) { fmt.Print(s) })
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", cmd, fs.Arg(0))
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	c, err := openCluster(*runDir)
	if err != nil {
		return err
	}
	nodes, err := selectNodes(ctx, c, *sel)
	if err != nil {
		return err
	}
	out := func(s string) { fmt.Print(s) }
	switch cmd {
	case "incident1":
		if *observe <= 0 {
			return fmt.Errorf("incident1: -observe must be positive, got %v", *observe)
		}
		res, err := runIncident1(ctx, c, incident1Options{nodes: nodes, observe: *observe, out: out})
		if res != nil {
			text := res.summary + "\ntimeline (all nodes; seconds from arming):\n" + res.watch.timeline(res.t0)
			out(text)
			_ = os.WriteFile(filepath.Join(c.runDir, "logs", "incident1.txt"), []byte(text), 0o644)
		}
		return err
	case "watch":
		if *watchFor <= 0 {
			return fmt.Errorf("watch: -for must be positive, got %v", *watchFor)
		}
		t0 := time.Now()
		w := newWatcher(c, nodes)
		wctx, stop := context.WithTimeout(ctx, *watchFor)
		defer stop()
		var wg sync.WaitGroup
		w.run(wctx, &wg) // polls until the watch is over
		wg.Wait()
		for _, n := range nodes {
			out(fmt.Sprintf("node %s (arm %s):\n%s", n, c.arm(n), w.summary(n, t0, t0)))
		}
		out("\ntimeline (all nodes; seconds from the start of the watch):\n" + w.timeline(t0))
		return nil
	case "stats":
		if *interval <= 0 {
			return fmt.Errorf("stats: -interval must be positive, got %v", *interval)
		}
		s, err := measure(ctx, c, nodes, *interval)
		if err != nil {
			return err
		}
		out(s.String())
		if *row {
			out("\n" + fleetHeader + s.Row())
		}
		return nil
	}
	return usage()
}

func defaultRunDir() string {
	if d := os.Getenv("RUN_DIR"); d != "" {
		return d
	}
	// go run from e2e/cluster: the checkout's .run/cluster.
	if abs, err := filepath.Abs(filepath.Join("..", "..", ".run", "cluster")); err == nil {
		return abs
	}
	return ".run/cluster"
}

// selectNodes resolves a selector to node names, in node order.
func selectNodes(ctx context.Context, c *cluster, sel string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(c.runDir, "nodes"))
	if err != nil {
		return nil, fmt.Errorf("nodes of %s: %w", c.runDir, err)
	}
	var all []string
	for _, e := range entries {
		all = append(all, e.Name())
	}
	slices.SortFunc(all, compareNodes)
	var out []string
	switch {
	case sel == "" || sel == "all":
		out = all
	case strings.HasPrefix(sel, "count:"):
		n, err := strconv.Atoi(strings.TrimPrefix(sel, "count:"))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-nodes %s: count must be a positive number", sel)
		}
		out = all[:min(n, len(all))]
	case strings.Contains(sel, "="):
		nodes, err := c.nodes(ctx, sel)
		if err != nil {
			return nil, fmt.Errorf("-nodes %s: %w", sel, err)
		}
		for _, n := range nodes {
			out = append(out, n.Metadata.Name)
		}
		slices.SortFunc(out, compareNodes)
	default:
		for _, n := range strings.Split(sel, ",") {
			if !slices.Contains(all, n) {
				return nil, fmt.Errorf("-nodes %s: no node %q in %s (nodes: %s)", sel, n, c.runDir, strings.Join(all, ", "))
			}
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-nodes %s matches no node", sel)
	}
	return out, nil
}

// compareNodes orders fk-2 before fk-10, and 127.0.1.2 before 127.0.1.10:
// by the number after the last "-" or ".".
func compareNodes(a, b string) int {
	ia, ea := strconv.Atoi(a[strings.LastIndexAny(a, "-.")+1:])
	ib, eb := strconv.Atoi(b[strings.LastIndexAny(b, "-.")+1:])
	if ea == nil && eb == nil && ia != ib {
		return ia - ib
	}
	return strings.Compare(a, b)
}

// runCommand is `fakecluster run`: load the scenarios, bring a cluster up
// for them unless one is up, run them, report, and fail if any
// expectation failed.
func runCommand(ctx context.Context, runDir, clusterSh string, keep bool, files []string, out func(string)) (err error) {
	if len(files) == 0 {
		return errors.New("run: usage: fakecluster run [-keep] SCENARIO.toml... (cluster scenarios, e.g. configs/scenarios/cluster/incident1.toml)")
	}
	var scenarios []*clusterScenario
	seen := map[string]bool{}
	for _, f := range files {
		s, err := loadScenario(f)
		if err != nil {
			return err
		}
		if seen[s.Name] {
			return fmt.Errorf("run: scenario %s given twice", s.Name)
		}
		seen[s.Name] = true
		scenarios = append(scenarios, s)
	}
	if _, serr := os.Stat(filepath.Join(runDir, "cluster.env")); serr != nil {
		arms := allArms(scenarios)
		out(fmt.Sprintf("no cluster in %s: bringing up %d nodes (arms %s)\n", runDir, len(arms), strings.Join(arms, ",")))
		if o, err := runClusterSh(clusterSh, runDir, nil, "up", "--nodes", strconv.Itoa(len(arms)), "--arms", strings.Join(arms, ",")); err != nil {
			return fmt.Errorf("run: %w\n%s", err, o)
		}
		if !keep {
			defer func() {
				o, derr := runClusterSh(clusterSh, runDir, nil, "down")
				if derr != nil {
					err = errors.Join(err, fmt.Errorf("run: %w\n%s", derr, o))
				}
			}()
		}
	}
	c, err := openCluster(runDir)
	if err != nil {
		return err
	}
	results, timeline, err := runScenarios(ctx, c, scenarios, out)
	if !keep {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if derr := deleteObjects(dctx, c, scenarios); derr != nil {
			out(fmt.Sprintf("cleanup: %v\n", derr))
		}
	}
	if err != nil {
		return err
	}
	text := reportText(results, timeline)
	out(text)
	_ = os.WriteFile(filepath.Join(c.runDir, "logs", "scenario.txt"), []byte(text), 0o644)
	failed := 0
	for _, r := range results {
		failed += r.failed()
	}
	if failed > 0 {
		return fmt.Errorf("run: %d expectations failed", failed)
	}
	return nil
}

// reportText is every scenario's report, then the one timeline.
func reportText(results []scenarioResult, timeline string) string {
	var b strings.Builder
	for _, r := range results {
		b.WriteString(r.report)
		b.WriteString("\n")
	}
	b.WriteString("timeline (all nodes; seconds from time zero):\n")
	b.WriteString(timeline)
	return b.String()
}

// runClusterSh runs cluster.sh with RUN_DIR set.
func runClusterSh(script, runDir string, env []string, args ...string) ([]byte, error) {
	script, err := filepath.Abs(script)
	if err == nil {
		_, err = os.Stat(script)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster.sh: %w (run from e2e/cluster or give -cluster-sh)", err)
	}
	cmd := exec.Command(script, args...)
	cmd.Env = append(append(os.Environ(), "RUN_DIR="+runDir), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("cluster.sh %s: %w", strings.Join(args, " "), err)
	}
	return out, nil
}
