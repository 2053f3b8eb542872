package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/configs"
)

// TestCPUWaitInBlame: on a one-core node busy with an exec, a dying
// container's shim Delete holds its process lock while its runc delete
// waits for the core, and blame says so.
func TestCPUWaitInBlame(t *testing.T) {
	ts := newTestServer(t, 0.01, func(c *configs.Config) {
		c.Plugins.Fake.CPU.Cores = 1
		c.Plugins.Fake.CPU.RuncExec = configs.Duration(time.Hour)
		c.Plugins.Fake.CPU.RuncDelete = configs.Duration(30 * time.Second)
	})
	podID, pc := ts.runPod("cpu")
	busy := ts.startContainer(podID, pc, "busy", nil)
	dying := ts.startContainer(podID, pc, "dying", nil)
	go func() {
		_, _ = ts.rt.ExecSync(ts.ctx(10*time.Minute), &runtime.ExecSyncRequest{ContainerId: busy, Cmd: []string{"/bin/true"}})
	}()
	for deadline := time.Now().Add(10 * time.Second); ts.srv.CPULoad().Runnable == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the exec never reached the run queue")
		}
	}
	go func() {
		_, _ = ts.rt.StopContainer(ts.ctx(10*time.Minute), &runtime.StopContainerRequest{ContainerId: dying})
	}()
	want := "runc delete waits for CPU: 1 cores busy, 1 runnable"
	h, ok := ts.findHolder(10*time.Second, func(lock string, h UseEntry) bool {
		return h.Op == "shim Delete" && strings.Contains(lock, dying[:8]) && h.Detail != ""
	})
	if !ok || h.Detail != want {
		t.Fatalf("shim Delete's detail = %q (found %v), want %q", h.Detail, ok, want)
	}
	if l := ts.srv.CPULoad(); l.Cores != 1 || l.Runnable != 2 {
		t.Errorf("load = %+v, want 1 core, 2 runnable (the exec and the delete)", l)
	}
	// Sharing the core with the exec, the 30 s delete would take 60 s: the
	// exit handler's 10 s deadline ends it first (runc killed with its
	// context, the work lost) and the container stays RUNNING while the
	// backoff queue retries, each retry again with 10 s.
	_ = ts.clock.Sleep(context.Background(), 15*time.Second)
	if st := ts.containerState(dying); st != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container after its exit handler's deadline is %v, want RUNNING (the delete did not get its CPU)", st)
	}
}

// TestDeleteAfterDeadline3244: a task delete that needs more CPU than its
// exit handler's 10 s deadline. With containerd 1.6's shim runc dies with
// the deadline and the process stays stopped, so kubelet's SIGKILL finds
// it NotFound and StopContainer waits for an exit handling that never
// gets its CPU. With containerd 1.2's shim (before #3244) the shim
// finishes the delete anyway and its deleted process answers the SIGKILL
// with an error that is not NotFound.
func TestDeleteAfterDeadline3244(t *testing.T) {
	for _, tc := range []struct {
		name     string
		v1       bool
		wantCode codes.Code
		wantMsg  string
	}{
		{"containerd 1.6", false, codes.DeadlineExceeded, ""},
		{"containerd 1.2 shim", true, codes.Unknown, "cannot kill a deleted process"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, 0.01, func(c *configs.Config) {
				c.Plugins.Fake.CPU.Cores = 1
				c.Plugins.Fake.CPU.RuncDelete = configs.Duration(15 * time.Second)
				c.Plugins.Fake.ShimV1DeletedState = tc.v1
			})
			podID, pc := ts.runPod("stop")
			id := ts.startContainer(podID, pc, "app", nil)
			_, err := ts.rt.StopContainer(ts.ctx(40*time.Second), &runtime.StopContainerRequest{ContainerId: id, Timeout: 2})
			if status.Code(err) != tc.wantCode || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("StopContainer = %v, want %v %q", err, tc.wantCode, tc.wantMsg)
			}
			if st := ts.containerState(id); st != runtime.ContainerState_CONTAINER_RUNNING {
				t.Errorf("container is %v, want RUNNING (its exit never handled)", st)
			}
		})
	}
}
