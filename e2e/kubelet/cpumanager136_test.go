package kubelet

import (
	"context"
	"fmt"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCPUManagerStatic checks the scenario driver's kubelet 1.36 CPU
// manager (scenario/kubelet136.go) against the real one: the static
// policy (reservedSystemCPUs "0", so CPU 1 can be given away) calls
// UpdateContainerResources only when a container's wanted cpuset differs
// from the last one it applied, every cpuManagerReconcilePeriod (10 s).
//
// What kubelet 1.36.3's source says (pkg/kubelet/cm/cpumanager), and
// this test asserts:
//   - AddContainer records the applied cpuset only for a container with
//     CPUs of its own; a shared-pool container starts with none recorded,
//     so the first reconcile after it runs updates it once, to the cpuset
//     it was created with;
//   - then nothing, period after period, while nothing changes;
//   - a Guaranteed pod with an integer CPU takes CPU 1 out of the shared
//     pool, so every shared container is updated once more, to "0"; the
//     Guaranteed container is created with "1" and never updated.
func TestCPUManagerStatic(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skipf("%d CPU: the static policy needs one to reserve and one to give away", runtime.NumCPU())
	}
	all := fmt.Sprintf("0-%d", runtime.NumCPU()-1)
	n := startNode(t, "cpu-static", testLogDir(t), nodeOptions{
		pods: []podManifest{{name: "shared", restartPolicy: "Always", containers: []string{"a", "b"}}},
		kubeletConfig: map[string]any{
			"cpuManagerPolicy":          "static",
			"reservedSystemCPUs":        "0",
			"cpuManagerReconcilePeriod": "10s",
		},
	})
	tl := n.timeline
	ids := n.waitRunning("shared", 2)
	// Three reconcile periods with nothing changing.
	settled := time.Now().Add(35 * time.Second)
	time.Sleep(time.Until(settled))
	first := n.cpusetUpdates()
	for name, id := range ids {
		got := first[id]
		tl.add(time.Now(), "shared/%s: updates so far %v", name, got)
		if len(got) != 1 || got[0] != all {
			n.errorf("shared/%s was updated with cpusets %v in its first 35 s, want once, to %s (no cpuset recorded at creation)", name, got, all)
		}
	}

	// A Guaranteed pod takes CPU 1.
	added := time.Now()
	n.addPod(podManifest{name: "exclusive", restartPolicy: "Always", containers: []string{"x"},
		resources: map[string]string{"cpu": "1", "memory": "64Mi"}})
	tl.add(added, "harness adds Guaranteed pod exclusive (cpu 1)")
	xid := n.waitRunning("exclusive", 1)["x"]
	time.Sleep(35 * time.Second)
	final := n.cpusetUpdates()
	for name, id := range ids {
		got := final[id]
		tl.add(time.Now(), "shared/%s: updates %v", name, got)
		if len(got) != 2 || got[1] != "0" {
			n.errorf("shared/%s was updated with cpusets %v, want %s then 0 (one update when CPU 1 left the shared pool)", name, got, all)
		}
		if set := n.cpusetOf(id); set != "0" {
			n.errorf("shared/%s runs on cpuset %q, want 0", name, set)
		}
	}
	if got := final[xid]; len(got) != 0 {
		n.errorf("exclusive/x was updated with cpusets %v, want never (created with its own CPU)", got)
	}
	if set := n.cpusetOf(xid); set != "1" {
		n.errorf("exclusive/x runs on cpuset %q, want 1", set)
	}
	if others := len(final) - len(ids); others > 0 {
		n.errorf("UpdateContainerResources on %d other containers: %v", others, final)
	}
	t.Logf("UpdateContainerResources cpusets by container: %v (exclusive/x %.12s)", final, xid)
	t.Logf("timeline:\n%s", tl)
}

// waitRunning waits for a static pod's want containers to run and returns
// their runtime ids by name.
func (n *node) waitRunning(pod string, want int) map[string]string {
	n.t.Helper()
	ids := map[string]string{}
	n.waitFor(pod+" to run", 2*time.Minute, func() error {
		p, err := n.pod(pod)
		if err != nil {
			return err
		}
		if len(p.Status.ContainerStatuses) != want {
			return fmt.Errorf("not all containers yet: %s", p)
		}
		for _, c := range p.Status.ContainerStatuses {
			if c.State.Running == nil {
				return fmt.Errorf("not running yet: %s", p)
			}
			ids[c.Name] = c.runtimeID()
		}
		return nil
	})
	return ids
}

// updateCpuset is the cpuset in fakecontainerd's UpdateContainerResources
// log line.
var updateCpuset = regexp.MustCompile(`UpdateContainerResources for \\?"([0-9a-f]+)\\?" with Linux: .*CpusetCpus:([0-9,-]*)`)

// cpusetUpdates is every UpdateContainerResources call fakecontainerd
// logged, as container id -> cpusets in order.
func (n *node) cpusetUpdates() map[string][]string {
	out := map[string][]string{}
	for _, l := range n.fakeLogMatches("UpdateContainerResources for") {
		if strings.Contains(l.text, "returns successfully") || strings.Contains(l.text, "failed") {
			continue
		}
		if m := updateCpuset.FindStringSubmatch(l.text); m != nil {
			out[m[1]] = append(out[m[1]], strings.TrimSuffix(m[2], ","))
		}
	}
	return out
}

// cpusetOf is the cpuset the runtime reports for a container.
func (n *node) cpusetOf(id string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := n.cri.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		n.fatalf("ContainerStatus %s: %v", id, err)
	}
	return resp.GetStatus().GetResources().GetLinux().GetCpusetCpus()
}
