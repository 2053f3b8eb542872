package scenario

import (
	"context"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestKubelet136InspectsAFailedPodOnce: 1.36's relist reconciles each pod
// once, so a pod whose inspection failed is inspected once per relist
// (1.19 inspects it twice: TestFailedInspectionIsRetriedTwice).
func TestKubelet136InspectsAFailedPodOnce(t *testing.T) {
	var last Relist
	timeout := 80 * time.Millisecond
	fake, d, _ := startFake(t, DriverConfig{RuntimeRequestTimeout: timeout, Kubelet: Kubelet136}, Hooks{Relist: func(r Relist) { last = r }})
	fake.addPod("ok", map[string]runtime.ContainerState{"c": running})
	fake.addPod("stuck", map[string]runtime.ContainerState{"app": running})
	fake.mu.Lock()
	fake.stuck["stuck-app"] = true
	fake.mu.Unlock()
	ctx := context.Background()
	for i, want := range []int{1, 2, 3} {
		d.relist(ctx)
		if got := fake.statusCalls("stuck-app"); got != want {
			t.Errorf("relist %d: %d calls to the stuck container in all, want %d", i+1, got, want)
		}
		if last.FailedInspections != 1 {
			t.Errorf("relist %d = %+v, want one failed inspection", i+1, last)
		}
	}
	// A per-pod relist inspects the pod marked for reinspection.
	d.relistPod(ctx, "uid-stuck")
	if got := fake.statusCalls("stuck-app"); got != 4 {
		t.Errorf("per-pod relist: %d calls in all, want 4", got)
	}
	fake.mu.Lock()
	fake.stuck["stuck-app"] = false
	fake.mu.Unlock()
	d.relist(ctx)
	d.relist(ctx)
	if last.Changed != 0 || last.Reinspected != 0 || last.FailedInspections != 0 {
		t.Errorf("after recovery: relist %+v, want nothing left to inspect", last)
	}
}

// TestStaticCPUManager: 1.36 updates a container only when its wanted
// cpuset differs from the last one applied; admitting a pod with
// exclusive CPUs shrinks the shared pool and so updates every shared
// container.
func TestStaticCPUManager(t *testing.T) {
	fake, d, _ := startFake(t, DriverConfig{RuntimeRequestTimeout: time.Second, Kubelet: Kubelet136, CPUs: 8}, Hooks{})
	fake.addPod("a", map[string]runtime.ContainerState{"c": running})
	fake.addPod("b", map[string]runtime.ContainerState{"c": running, "done": exited})
	ctx := context.Background()
	d.relist(ctx)
	// A container created by this driver is recorded with its cpuset.
	d.setLast("uid-b", "c", "0-7")
	rounds := []struct {
		name   string
		before func()
		want   string // updated containers and their cpusets
	}{
		{name: "unknown to the CPU manager (as after a restart)", want: "a-c=0-7"},
		{name: "nothing changed", want: ""},
		{name: "two CPUs allocated", before: func() {
			if _, err := d.allocateCPUs("uid-x", 2); err != nil {
				t.Fatal(err)
			}
		}, want: "a-c=0-5,b-c=0-5"},
		{name: "failures are retried", before: func() {
			if _, err := d.allocateCPUs("uid-y", 1); err != nil {
				t.Fatal(err)
			}
			fake.mu.Lock()
			fake.stuck["a-c"] = true
			fake.mu.Unlock()
		}, want: "a-c=0-4,b-c=0-4"},
		{name: "the failed one again", before: func() {
			fake.mu.Lock()
			fake.stuck["a-c"] = false
			fake.mu.Unlock()
		}, want: "a-c=0-4"},
	}
	for _, r := range rounds {
		if r.before != nil {
			r.before()
		}
		got := reconcileRound(ctx, fake, d)
		if strings.Join(got, ",") != r.want {
			t.Errorf("%s: updated %v, want %q", r.name, got, r.want)
		}
	}
	if _, err := d.allocateCPUs("uid-z", 5); err == nil {
		t.Error("allocating all of the shared pool succeeded; want an admission error")
	}
}

// reconcileRound runs one CPU manager round and returns its updates as
// "container=cpuset".
func reconcileRound(ctx context.Context, fake *fakeCRI, d *Driver) []string {
	fake.mu.Lock()
	fake.updates = nil
	fake.mu.Unlock()
	d.reconcileCPUs136(ctx)
	fake.mu.Lock()
	defer fake.mu.Unlock()
	var got []string
	for _, u := range fake.updates {
		got = append(got, u.ContainerId+"="+u.GetLinux().GetCpusetCpus())
	}
	return got
}

func TestCPUList(t *testing.T) {
	for _, c := range []struct {
		cpus []int
		want string
	}{
		{nil, ""}, {[]int{0}, "0"}, {[]int{0, 1, 2, 3}, "0-3"}, {[]int{6, 0, 1, 3}, "0-1,3,6"}, {[]int{1, 2, 4, 5, 7}, "1-2,4-5,7"},
	} {
		if got := cpuList(c.cpus); got != c.want {
			t.Errorf("cpuList(%v) = %q, want %q", c.cpus, got, c.want)
		}
	}
}

// TestCompletedPodsAreStopped: with StopCompletedPods, the pod worker of a
// pod whose containers have all exited stops its sandbox, once; a pod with
// a running container is left alone.
func TestCompletedPodsAreStopped(t *testing.T) {
	fake, d, _ := startFake(t, DriverConfig{RuntimeRequestTimeout: time.Second, StopCompletedPods: true}, Hooks{})
	fake.addPod("done", map[string]runtime.ContainerState{"a": exited, "b": exited})
	fake.addPod("half", map[string]runtime.ContainerState{"a": exited, "b": running})
	ctx := context.Background()
	d.relist(ctx)
	d.workers.Wait()
	// The next inspection of the pod finds it being stopped: no second call.
	d.updateCache(ctx, "uid-done", d.records["uid-done"].old)
	d.workers.Wait()
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if got := strings.Join(fake.stopped, ","); got != "sb-done" {
		t.Errorf("StopPodSandbox calls = %q, want sb-done once", got)
	}
}

// TestGetPodStatusLists: 1.19's GetPodStatus lists the pod's sandboxes and
// containers by its uid label before their statuses; 1.36's inspects
// those the relist found and lists nothing (kuberuntime GetPodStatus at
// v1.36.3 takes the relisted *kubecontainer.Pod).
func TestGetPodStatusLists(t *testing.T) {
	for _, c := range []struct {
		kubelet string
		lists   int // ListPodSandbox and ListContainers calls each
	}{{Kubelet119, 1}, {Kubelet136, 0}} {
		t.Run(c.kubelet, func(t *testing.T) {
			fake, d, _ := startFake(t, DriverConfig{RuntimeRequestTimeout: time.Second, Kubelet: c.kubelet}, Hooks{})
			fake.addPod("a", map[string]runtime.ContainerState{"c": running, "d": exited})
			ctx := context.Background()
			pods, err := d.getPods(ctx)
			if err != nil {
				t.Fatal(err)
			}
			before := d.Stats(false).Calls
			st, err := d.getPodStatus(ctx, pods["uid-a"])
			if err != nil {
				t.Fatal(err)
			}
			after := d.Stats(false).Calls
			for _, m := range []string{"ListPodSandbox", "ListContainers"} {
				if got := after[m].Calls - before[m].Calls; got != c.lists {
					t.Errorf("%s calls = %d, want %d", m, got, c.lists)
				}
			}
			if len(st.containers) != 2 || fake.statusCalls("a-c") != 1 || fake.statusCalls("a-d") != 1 {
				t.Errorf("status = %+v, ContainerStatus calls %d, %d; want both containers inspected once", st, fake.statusCalls("a-c"), fake.statusCalls("a-d"))
			}
		})
	}
}

// TestRelistPodOfAGonePod: GetPod finds nothing (ErrPodNotFound): the
// per-pod relist changes nothing and leaves the pod to the global relist.
func TestRelistPodOfAGonePod(t *testing.T) {
	_, d, _ := startFake(t, DriverConfig{RuntimeRequestTimeout: time.Second, Kubelet: Kubelet136}, Hooks{})
	old := &kubePod{uid: "uid-gone", containers: []kubeContainer{{id: "gone-c", state: plegRunning}}}
	d.records["uid-gone"] = &podRecord{old: old}
	d.relistPod(context.Background(), "uid-gone")
	if r := d.records["uid-gone"]; r == nil || r.old != old || r.current != nil {
		t.Errorf("record after a per-pod relist of a gone pod = %+v, want it untouched", r)
	}
}

// TestAddContainerRecordsExclusiveOnly: AddContainer records the applied
// cpuset only for a container with CPUs of its own, so the next reconcile
// updates a new shared container once and leaves an exclusive one alone
// (as kubelet v1.36.3 did in e2e/kubelet's TestCPUManagerStatic).
func TestAddContainerRecordsExclusiveOnly(t *testing.T) {
	fake, d, _ := startFake(t, DriverConfig{RuntimeRequestTimeout: time.Second, Kubelet: Kubelet136, CPUs: 4}, Hooks{})
	fake.addPod("shared", map[string]runtime.ContainerState{"c": running})
	fake.addPod("excl", map[string]runtime.ContainerState{"c": running})
	if _, err := d.allocateCPUs("uid-excl", 1); err != nil {
		t.Fatal(err)
	}
	d.addContainer136("uid-shared", "c", d.wantedCPUSet("uid-shared"))
	d.addContainer136("uid-excl", "c", d.wantedCPUSet("uid-excl"))
	ctx := context.Background()
	d.relist(ctx)
	for i, want := range []string{"shared-c=0-2", ""} {
		got := reconcileRound(ctx, fake, d)
		if strings.Join(got, ",") != want {
			t.Errorf("round %d: updated %v, want %q", i+1, got, want)
		}
	}
}
