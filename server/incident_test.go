package server

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/shim"
)

// timedCall is one CRI call's outcome in scenario time.
type timedCall struct {
	took time.Duration
	err  error
}

func (ts *testServer) timed(f func() error) timedCall {
	start := ts.clock.Now()
	err := f()
	return timedCall{took: ts.clock.Since(start), err: err}
}

// TestIncident1 reproduces INCIDENTS.md incident 1 and the field's strace
// table: a container exits; its shim's Delete holds the process lock across
// a 120 s unmount; an UpdateContainerResources in flight holds the status
// write lock while its shim Update waits for that lock; ListContainers and
// ContainerStatus, which take the status read lock with no timeout, stall
// with it while ListPodSandbox does not. With a volatile overlay the
// unmount has nothing to sync and nothing stalls. Nothing here sleeps on
// purpose inside the server: the durations come from the locks, the ttrpc
// deadlines and the unmount's sync time, on the project clock at 1/100.
func TestIncident1(t *testing.T) {
	cases := []struct {
		name           string
		volatile       bool
		fixes          []faults.Fix
		updateDeadline time.Duration
		// Expected stall of ListContainers/ContainerStatus, in scenario time.
		wantStall   time.Duration
		wantUpdate  time.Duration
		wantUpdErr  string
		wantUpdCode codes.Code
		wantRunning bool // still RUNNING while the unmount runs
	}{
		// Row 1 of the field table: unmount 120 s, update deadline 300 s.
		// The update starts 12 s after the exit and the lists 15 s after.
		{name: "baseline", updateDeadline: 300 * time.Second, wantStall: 105 * time.Second, wantUpdate: 108 * time.Second,
			wantUpdErr: "cannot update a deleted process", wantUpdCode: codes.Unknown, wantRunning: true},
		// Row 4: the caller's deadline crosses ttrpc and ends the hold.
		{name: "short update deadline", updateDeadline: 5 * time.Second, wantStall: 2 * time.Second, wantUpdate: 5 * time.Second,
			wantUpdCode: codes.DeadlineExceeded, wantRunning: true},
		// The fix: a volatile overlay syncs nothing on unmount.
		{name: "volatile", volatile: true, updateDeadline: 300 * time.Second},
		// The field fix: the dying container is Stopping, the update is
		// refused at once, nothing waits on the shim.
		{name: "stopping_state", fixes: []faults.Fix{faults.FixStoppingState}, updateDeadline: 300 * time.Second,
			wantUpdErr: "is in removing or stopping state", wantUpdCode: codes.Unknown, wantRunning: true},
		// The refined variant: no shim call, and the caller sees success.
		{name: "stopping_state_refined", fixes: []faults.Fix{faults.FixStoppingStateRefined}, updateDeadline: 300 * time.Second,
			wantRunning: true},
		// Update outside the lock: the update itself still waits for the
		// unmount, but nobody waits for the update.
		{name: "update_outside_lock", fixes: []faults.Fix{faults.FixUpdateOutsideLock}, updateDeadline: 300 * time.Second,
			wantUpdate: 108 * time.Second, wantUpdErr: "cannot update a deleted process", wantUpdCode: codes.Unknown, wantRunning: true},
		// The shim answers Update at once; only the daemon's 2 s State cap
		// is left under the lock.
		{name: "shim_update_nowait", fixes: []faults.Fix{faults.FixShimUpdateNoWait}, updateDeadline: 300 * time.Second,
			wantStall: 0, wantUpdate: 2 * time.Second, wantRunning: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, 0.01, func(c *configs.Config) {
				if tc.volatile {
					c.Plugins.Overlay.MountOptions = []string{"volatile"}
				}
				for _, f := range tc.fixes {
					c.Plugins.Fake.Fixes = append(c.Plugins.Fake.Fixes, string(f))
				}
			})
			podID, pc := ts.runPod("job")
			// 1200 MiB dirty at 10 MiB/s: a 120 s sync on unmount.
			t0 := ts.clock.Now()
			id := ts.startContainer(podID, pc, "loop", map[string]string{
				shim.AnnotationExitAfter: "10s", shim.AnnotationExitCode: "137",
				shim.AnnotationDirtyBytes: "1200MiB", shim.AnnotationDiskThroughput: "10MiB",
			})
			other := ts.startContainer(podID, pc, "sidecar", nil)

			sleepUntil := func(d time.Duration) { _ = ts.clock.Sleep(context.Background(), d-ts.clock.Since(t0)) }
			sleepUntil(20 * time.Second)
			if got := ts.containerState(id); (got == runtime.ContainerState_CONTAINER_RUNNING) != tc.wantRunning {
				t.Errorf("state 10s after the exit = %v, want running=%v", got, tc.wantRunning)
			}

			var wg sync.WaitGroup
			var update timedCall
			wg.Add(1)
			go func() {
				defer wg.Done()
				update = ts.timed(func() error {
					_, err := ts.rt.UpdateContainerResources(ts.ctx(tc.updateDeadline), &runtime.UpdateContainerResourcesRequest{
						ContainerId: id, Linux: &runtime.LinuxContainerResources{CpuShares: 512},
					})
					return err
				})
			}()
			sleepUntil(25 * time.Second)
			if tc.wantStall >= time.Minute {
				// The lists must come after the update took the status
				// lock; on a starved machine its way there (the gRPC
				// call, the server's handler) can take longer than the
				// 5 s of scenario time allowed for it.
				ts.waitForHolder("UpdateContainerResources")
			}
			const listers = 3
			lists := make([]timedCall, listers)
			var statusCall, sandboxCall, otherCall timedCall
			for i := range listers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					lists[i] = ts.timed(func() error {
						_, err := ts.rt.ListContainers(ts.ctx(10*time.Minute), &runtime.ListContainersRequest{})
						return err
					})
				}()
			}
			wg.Add(3)
			go func() {
				defer wg.Done()
				statusCall = ts.timed(func() error {
					_, err := ts.rt.ContainerStatus(ts.ctx(10*time.Minute), &runtime.ContainerStatusRequest{ContainerId: id})
					return err
				})
			}()
			go func() {
				defer wg.Done()
				sandboxCall = ts.timed(func() error {
					_, err := ts.rt.ListPodSandbox(ts.ctx(10*time.Minute), &runtime.ListPodSandboxRequest{})
					return err
				})
			}()
			go func() {
				defer wg.Done()
				otherCall = ts.timed(func() error {
					_, err := ts.rt.ContainerStatus(ts.ctx(10*time.Minute), &runtime.ContainerStatusRequest{ContainerId: other})
					return err
				})
			}()
			wg.Wait()

			t.Logf("update %v (%v); lists %v %v %v; status %v; other %v; sandboxes %v",
				update.took, update.err, lists[0].took, lists[1].took, lists[2].took, statusCall.took, otherCall.took, sandboxCall.took)
			// Scheduling noise is magnified 100x at this scale (10 ms of
			// wall time is 1 s here): allow 10% plus 6 s. A stall and its
			// absence still differ by an order of magnitude.
			near := func(got, want time.Duration) bool {
				slack := want/10 + 6*time.Second
				return got >= want-slack && got <= want+slack
			}
			for i, l := range lists {
				if l.err != nil {
					t.Errorf("ListContainers %d failed: %v", i, l.err)
				}
				if !near(l.took, tc.wantStall) {
					t.Errorf("ListContainers %d took %v, want about %v", i, l.took, tc.wantStall)
				}
			}
			if !near(statusCall.took, tc.wantStall) {
				t.Errorf("ContainerStatus of the dying container took %v, want about %v", statusCall.took, tc.wantStall)
			}
			if otherCall.took > 15*time.Second {
				t.Errorf("ContainerStatus of another container took %v: its status lock is its own", otherCall.took)
			}
			if sandboxCall.took > 15*time.Second {
				t.Errorf("ListPodSandbox took %v: sandbox status has its own lock and must not stall", sandboxCall.took)
			}
			if !near(update.took, tc.wantUpdate) {
				t.Errorf("UpdateContainerResources took %v, want about %v", update.took, tc.wantUpdate)
			}
			if tc.wantUpdCode == codes.OK {
				if update.err != nil {
					t.Errorf("UpdateContainerResources: %v, want success", update.err)
				}
			} else {
				if status.Code(update.err) != tc.wantUpdCode || !strings.Contains(update.err.Error(), tc.wantUpdErr) {
					t.Errorf("UpdateContainerResources error = %v, want code %v containing %q", update.err, tc.wantUpdCode, tc.wantUpdErr)
				}
			}
			// However it went, the exit is recorded in the end with the
			// process's code.
			ts.waitState(id, runtime.ContainerState_CONTAINER_EXITED, 5*time.Minute)
			resp, err := ts.rt.ContainerStatus(ts.ctx(time.Minute), &runtime.ContainerStatusRequest{ContainerId: id})
			if err != nil || resp.Status.ExitCode != 137 {
				t.Errorf("final status: %v, exit code %d; want 137", err, resp.GetStatus().GetExitCode())
			}
		})
	}
}
