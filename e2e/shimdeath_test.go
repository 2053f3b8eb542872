package e2e

import (
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestShimDeath kill -9s a pod's `fakecontainerd shim` process while its
// containers run (shim_mode "process"). The server must stay up and report
// the pod's containers as containerd does when a task's Wait fails
// because its shim went away: EXITED with exit code 255 (unknownExitCode),
// the sandbox NOTREADY; and the pod must then stop and go away through
// the ordinary calls. Another pod, with its own shim, is not touched.
func TestShimDeath(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, "--shim-mode", "process", "--time-scale", "0.1")
	d.pull("busybox")
	logDir := d.dir + "/pod-logs"
	pc := d.podConfig("victim", logDir)
	podID := d.runp(pc)
	ctrs := []string{
		d.create(podID, d.containerConfig("a", nil), pc),
		d.create(podID, d.containerConfig("b", nil), pc),
	}
	for _, id := range ctrs {
		d.startContainer(id)
	}
	created := d.create(podID, d.containerConfig("never-started", nil), pc)
	otherPC := d.podConfig("bystander", logDir)
	other := d.runp(otherPC)
	otherCtr := d.create(other, d.containerConfig("c", nil), otherPC)
	d.startContainer(otherCtr)

	shims := d.podShims(podID)
	if len(shims) != 1 {
		t.Fatalf("shim processes of the pod: %v, want one", shims)
	}
	serverPid := d.pid()
	killPid(shims[0].pid)
	if alive(shims[0].pid) {
		t.Fatalf("shim %d survived SIGKILL", shims[0].pid)
	}

	// Within a few seconds, the exits are handled.
	deadline := time.Now().Add(10 * time.Second)
	for _, id := range ctrs {
		st := d.waitState(id, runtime.ContainerState_CONTAINER_EXITED, time.Until(deadline))
		if st.ExitCode != 255 || st.FinishedAt == 0 {
			t.Errorf("container %s after its shim died: exit code %d, finished %d; want 255 and a time", st.Metadata.Name, st.ExitCode, st.FinishedAt)
		}
	}
	for {
		if p := d.inspectp(podID); p.State == runtime.PodSandboxState_SANDBOX_NOTREADY {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod still %v 10s after its shim died, want NOTREADY", d.inspectp(podID).State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := d.inspect(created); st.State != runtime.ContainerState_CONTAINER_CREATED {
		t.Errorf("a container that was never started is %v, want still CREATED", st.State)
	}
	// The server is the same process, and still serves.
	if !d.running() || d.pid() != serverPid {
		t.Fatalf("the server died with the shim")
	}
	if _, err := d.rt.Version(d.ctx(), "v1"); err != nil {
		t.Fatalf("Version after the shim died: %v", err)
	}
	// The bystander pod and its shim are untouched.
	if st := d.inspect(otherCtr); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container of another pod is %v, want RUNNING", st.State)
	}
	if len(d.podShims(other)) != 1 {
		t.Errorf("the other pod's shim is gone")
	}
	// A new container in the dead pod is refused, as the sandbox is not
	// ready; starting the created one fails without hanging.
	if _, err := d.rt.CreateContainer(d.ctx(), podID, d.containerConfig("late", nil), pc); err == nil {
		t.Errorf("CreateContainer in a pod whose shim died: succeeded, want refused")
	}
	if err := d.rt.StartContainer(d.ctx(), created); err == nil {
		t.Errorf("StartContainer in a pod whose shim died: succeeded, want refused")
	}

	// kubelet's clean-up: everything succeeds.
	for _, id := range ctrs {
		if err := d.rt.StopContainer(d.ctx(), id, 2); err != nil {
			t.Errorf("StopContainer %s: %v", id, err)
		}
		if err := d.rt.RemoveContainer(d.ctx(), id); err != nil {
			t.Errorf("RemoveContainer %s: %v", id, err)
		}
	}
	if err := d.rt.StopPodSandbox(d.ctx(), podID); err != nil {
		t.Errorf("StopPodSandbox: %v", err)
	}
	if err := d.rt.RemovePodSandbox(d.ctx(), podID); err != nil {
		t.Errorf("RemovePodSandbox: %v", err)
	}
	for _, c := range d.psAll() {
		if c.PodSandboxId == podID {
			t.Errorf("container %s of the removed pod is still listed", c.Id)
		}
	}
	if len(d.podShims(podID)) != 0 {
		t.Errorf("a shim for the removed pod was started again")
	}

	// And the server restarts cleanly on this state.
	d.stop()
	defer func() {
		if err := d.rt.RemovePodSandbox(d.ctx(), other); err != nil {
			t.Errorf("RemovePodSandbox of the other pod: %v", err)
		}
		d.stop()
	}()
	d.start()
	if st := d.inspect(otherCtr); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("after a restart the other pod's container is %v, want RUNNING", st.State)
	}
	if err := syscall.Kill(serverPid, 0); err == nil && serverPid != d.pid() && alive(serverPid) {
		t.Errorf("the first server process %d is still alive", serverPid)
	}
}
