package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The cluster suite: one cluster from cluster.sh (a real control plane and
// eight nodes, each a real kubelet on its own fakecontainerd with its own
// fix set), then pods on it, then the cluster scenario files
// configs/scenarios/cluster/incident1.toml (incident 1 on four nodes, one
// per arm) and node-lifecycle.toml (eviction, runtime down, a hung
// kubelet) at once, on their own nodes, so their waits overlap; each
// expectation of theirs is a check here. `make e2e-cluster` runs it; it
// needs bin/fakecontainerd ($FAKECONTAINERD) and builds or finds the
// Kubernetes binaries through build-kubelet.sh. Logs stay in _logs/.
var ciScenarios = []string{"incident1.toml", "node-lifecycle.toml"}

func TestCluster(t *testing.T) {
	var scenarios []*clusterScenario
	for _, f := range ciScenarios {
		s, err := loadScenario(filepath.Join("..", "..", "configs", "scenarios", "cluster", f))
		if err != nil {
			t.Fatal(err)
		}
		scenarios = append(scenarios, s)
	}
	arms := allArms(scenarios)
	c := clusterUp(t, len(arms), strings.Join(arms, ","))
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	t.Run("pods", func(t *testing.T) { testPods(ctx, t, c) })
	if t.Failed() {
		return
	}
	t.Run("scenarios", func(t *testing.T) {
		results, timeline, err := runScenarios(ctx, c, scenarios, func(s string) { t.Log(strings.TrimSuffix(s, "\n")) })
		text := reportText(results, timeline)
		t.Logf("the cluster scenarios:\n%s", text)
		_ = os.WriteFile(filepath.Join(c.runDir, "logs", "scenario.txt"), []byte(text), 0o644)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range results {
			for _, e := range r.results {
				if !e.ok {
					t.Errorf("scenario %s: %s: %s", r.s.Name, e.what, e.detail)
				}
			}
		}
	})
}

// clusterUp runs `cluster.sh up` (with extra arguments) in a short temp
// run dir (unix socket paths), and `down` at the end, pass or fail, keeping
// the logs in _logs.
func clusterUp(t *testing.T, nodes int, arms string, extra ...string) *cluster {
	t.Helper()
	fake := os.Getenv("FAKECONTAINERD")
	if fake == "" {
		fake, _ = filepath.Abs(filepath.Join("..", "..", "bin", "fakecontainerd"))
	}
	if _, err := os.Stat(fake); err != nil {
		t.Fatalf("fakecontainerd binary: %v (make e2e-cluster builds it)", err)
	}
	// A short run dir (kubelet's unix socket paths); CLUSTER_TEST_TMPDIR
	// picks where, PORT_BASE the first port.
	runDir, err := os.MkdirTemp(os.Getenv("CLUSTER_TEST_TMPDIR"), "fkc-")
	if err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Abs(filepath.Join("_logs", t.Name()))
	portBase := os.Getenv("PORT_BASE") // one per worker on a shared machine
	if portBase == "" {
		portBase = "26000"
	}
	sh := func(args ...string) error {
		cmd := exec.Command("./cluster.sh", args...)
		cmd.Env = append(os.Environ(), "RUN_DIR="+runDir, "FAKECONTAINERD="+fake, "PORT_BASE="+portBase)
		out, err := cmd.CombinedOutput()
		t.Logf("cluster.sh %s:\n%s", strings.Join(args, " "), out)
		if err != nil {
			return fmt.Errorf("cluster.sh %s: %w", strings.Join(args, " "), err)
		}
		return nil
	}
	t.Cleanup(func() {
		if err := sh("down"); err != nil {
			t.Error(err)
		}
		_ = os.RemoveAll(logs)
		_ = os.MkdirAll(filepath.Dir(logs), 0o755)
		if err := os.Rename(filepath.Join(runDir, "logs"), logs); err != nil {
			t.Logf("keep logs: %v", err)
		} else {
			t.Logf("logs in %s", logs)
		}
		if err := os.RemoveAll(runDir); err != nil {
			t.Logf("remove %s: %v", runDir, err)
		}
	})
	if err := sh(append([]string{"up", "--nodes", fmt.Sprint(nodes), "--arms", arms}, extra...)...); err != nil {
		t.Fatal(err)
	}
	c, err := openCluster(runDir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testPods: a pod bound to a node and one the scheduler places run, and a
// Deployment rolls out across the nodes.
func testPods(ctx context.Context, t *testing.T, c *cluster) {
	pod := func(name, node string) map[string]any {
		spec := map[string]any{
			"terminationGracePeriodSeconds": 1,
			"containers":                    []map[string]any{{"name": "main", "image": podImage, "command": []string{"sleep", "3600"}}},
		}
		if node != "" {
			spec["nodeName"] = node
		}
		return map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": name}, "spec": spec}
	}
	for name, node := range map[string]string{"bound": "fk-2", "scheduled": ""} {
		if err := c.createPod(ctx, "default", pod(name, node)); err != nil {
			t.Fatal(err)
		}
		err := poll(ctx, 2*time.Minute, func() error {
			p, err := c.pod(ctx, "default", name)
			if err != nil {
				return err
			}
			if p.Status.Phase != "Running" || p.readyCond() != "True" {
				return fmt.Errorf("pod %s on %q is %s, Ready=%s", name, p.Spec.NodeName, p.Status.Phase, p.readyCond())
			}
			if node != "" && p.Spec.NodeName != node {
				return fmt.Errorf("pod %s runs on %s, want %s", name, p.Spec.NodeName, node)
			}
			t.Logf("pod %s Running and Ready on %s", name, p.Spec.NodeName)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	const replicas = 8
	deploy := map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "rollout"},
		"spec": map[string]any{
			"replicas": replicas,
			"selector": map[string]any{"matchLabels": map[string]string{"app": "rollout"}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]string{"app": "rollout"}},
				"spec":     pod("", "")["spec"],
			},
		},
	}
	if err := c.do(ctx, http.MethodPost, "/apis/apps/v1/namespaces/default/deployments", deploy, nil); err != nil {
		t.Fatal(err)
	}
	err := poll(ctx, 3*time.Minute, func() error {
		var d struct {
			Status struct {
				UpdatedReplicas   int `json:"updatedReplicas"`
				AvailableReplicas int `json:"availableReplicas"`
			} `json:"status"`
		}
		if err := c.do(ctx, http.MethodGet, "/apis/apps/v1/namespaces/default/deployments/rollout", nil, &d); err != nil {
			return err
		}
		if d.Status.AvailableReplicas != replicas || d.Status.UpdatedReplicas != replicas {
			return fmt.Errorf("deployment rollout: %d updated, %d available of %d", d.Status.UpdatedReplicas, d.Status.AvailableReplicas, replicas)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := c.pods(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	spread := map[string]int{}
	for _, p := range pods {
		if strings.HasPrefix(p.Metadata.Name, "rollout-") {
			spread[p.Spec.NodeName]++
		}
	}
	t.Logf("deployment rollout rolled out: %d replicas available, per node %v", replicas, spread)
	if len(spread) < 2 {
		t.Errorf("deployment rollout's pods all on %v; the scheduler should spread them", spread)
	}
	// Leave the nodes as incident 1 expects them: only its own pods.
	if err := c.do(ctx, http.MethodDelete, "/apis/apps/v1/namespaces/default/deployments/rollout?propagationPolicy=Foreground", nil, nil); err != nil {
		t.Error(err)
	}
	for _, name := range []string{"bound", "scheduled"} {
		if err := c.deletePod(ctx, "default", name); err != nil {
			t.Error(err)
		}
	}
	err = poll(ctx, 2*time.Minute, func() error {
		pods, err := c.pods(ctx, "default")
		if err != nil {
			return err
		}
		if len(pods) > 0 {
			return fmt.Errorf("%d pods still there, e.g. %s (%s)", len(pods), pods[0].Metadata.Name, pods[0].Status.Phase)
		}
		return nil
	})
	if err != nil {
		t.Errorf("pods of this test not gone: %v", err)
	}
}
