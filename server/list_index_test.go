package server

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/faults"
	containerstore "github.com/fakecontainerd/fakecontainerd/store/container"
)

// TestListIndexFix: kubelet lists one pod's containers by the pod UID
// label. As in containerd, that list reads every container's status before
// filtering, so it waits on another pod's container whose status write lock
// is held (here an UpdateContainerResources stuck in the checkpoint's
// fsync); with list_index the filter picks the pod's containers through an
// index and only their statuses are read. The unfiltered list waits either
// way, and both give the same containers.
func TestListIndexFix(t *testing.T) {
	ts := newTestServer(t, 1, nil)
	start := func(pod string) (podID, ctrID string) {
		podID, pc := ts.runPod(pod)
		cfg := containerConfig("main", nil)
		cfg.Labels[containerstore.PodUIDLabel] = pc.Metadata.Uid
		resp, err := ts.rt.CreateContainer(ts.ctx(time.Minute), &runtime.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pc})
		if err != nil {
			t.Fatalf("create in %s: %v", pod, err)
		}
		if _, err := ts.rt.StartContainer(ts.ctx(time.Minute), &runtime.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
			t.Fatalf("start in %s: %v", pod, err)
		}
		return podID, resp.ContainerId
	}
	podA, ctrA := start("a")
	_, ctrB := start("b")
	_, ctrC := start("c")
	c := ts.srv.cri
	byUID := func(uid string) *runtime.ListContainersRequest {
		return &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{LabelSelector: map[string]string{containerstore.PodUIDLabel: uid}}}
	}
	ids := func(resp *runtime.ListContainersResponse) []string {
		var out []string
		for _, cntr := range resp.GetContainers() {
			out = append(out, cntr.Id)
		}
		slices.Sort(out)
		return out
	}
	sorted := func(s ...string) []string { slices.Sort(s); return s }

	// Without the stall, both paths give the same answers.
	for _, on := range []bool{false, true} {
		if err := c.toggles.Set(faults.FixListIndex, on); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			req  *runtime.ListContainersRequest
			want []string
		}{
			{byUID("a-uid"), []string{ctrA}},
			{byUID("nobody"), nil},
			{&runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{PodSandboxId: podA[:12]}}, []string{ctrA}},
			{&runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{Id: ctrB[:12]}}, []string{ctrB}},
			{&runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{Id: "ffffffffffff"}}, nil},
			{&runtime.ListContainersRequest{}, sorted(ctrA, ctrB, ctrC)},
		} {
			resp, err := ts.rt.ListContainers(ts.ctx(time.Minute), tc.req)
			if err != nil {
				t.Fatalf("list_index=%v: ListContainers(%v): %v", on, tc.req.Filter, err)
			}
			if got := ids(resp); !slices.Equal(got, tc.want) {
				t.Errorf("list_index=%v: ListContainers(%v) = %v, want %v", on, tc.req.Filter, got, tc.want)
			}
		}
	}

	// Pod b's container: its update holds the status write lock across a
	// checkpoint fsync that blocks until released.
	f, err := c.faults.Add(faults.PointStatusFsync, faults.Selector{ID: ctrB}, "block", "test")
	if err != nil {
		t.Fatal(err)
	}
	updated := make(chan error, 1)
	go func() {
		_, err := ts.rt.UpdateContainerResources(ts.ctx(time.Minute), &runtime.UpdateContainerResourcesRequest{
			ContainerId: ctrB, Linux: &runtime.LinuxContainerResources{CpuShares: 512},
		})
		updated <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for blocked(c, f.ID) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the update never reached the checkpoint's fsync")
		}
		time.Sleep(5 * time.Millisecond)
	}
	released := false
	release := func() {
		if !released {
			released = true
			if _, err := c.faults.Clear(f.ID); err != nil {
				t.Error(err)
			}
		}
	}
	defer release()

	listWithin := func(req *runtime.ListContainersRequest, d time.Duration) (*runtime.ListContainersResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return ts.rt.ListContainers(ctx, req)
	}
	const short = 300 * time.Millisecond
	if err := c.toggles.Set(faults.FixListIndex, false); err != nil {
		t.Fatal(err)
	}
	if _, err := listWithin(byUID("a-uid"), short); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("list_index off: pod a's list = %v, want DeadlineExceeded: it reads pod b's status", err)
	}
	if err := c.toggles.Set(faults.FixListIndex, true); err != nil {
		t.Fatal(err)
	}
	resp, err := listWithin(byUID("a-uid"), 5*time.Second)
	if err != nil {
		t.Fatalf("list_index on: pod a's list: %v, want an answer while pod b's status is locked", err)
	}
	if got := ids(resp); !slices.Equal(got, []string{ctrA}) {
		t.Errorf("list_index on: pod a's list = %v, want [%s]", got, ctrA)
	}
	// Lists that do need pod b's container still wait for it.
	if _, err := listWithin(byUID("b-uid"), short); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("list_index on: pod b's list = %v, want DeadlineExceeded", err)
	}
	if _, err := listWithin(&runtime.ListContainersRequest{}, short); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("list_index on: the full list = %v, want DeadlineExceeded", err)
	}

	release()
	select {
	case err := <-updated:
		if err != nil {
			t.Errorf("UpdateContainerResources after the release: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("UpdateContainerResources did not finish after the release")
	}
}

// blocked is how many calls the fault holds now.
func blocked(c *criService, id string) int {
	for _, i := range c.faults.List() {
		if i.ID == id {
			return i.Blocked
		}
	}
	return 0
}
