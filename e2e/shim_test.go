package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podShims are the live shim processes of one pod of d.
func (d *daemon) podShims(podID string) []proc {
	var out []proc
	for _, p := range shimProcesses(d.state) {
		if flagValue(p.args, "--group") == podID {
			out = append(out, p)
		}
	}
	return out
}

// ppid is a process's parent pid, or 0.
func ppid(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	var state string
	var parent int
	if i < 0 {
		return 0
	}
	if _, err := fmt.Sscanf(s[i+1:], " %s %d", &state, &parent); err != nil {
		return 0
	}
	return parent
}

// TestProcessShimMode runs a pod with shim_mode "process": its shim is a
// separate `fakecontainerd shim` process that outlives a kill -9 of the
// server, the restarted server reconnects to it, and it exits when the pod
// is removed.
func TestProcessShimMode(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, "--shim-mode", "process")
	pc := d.podConfig("shimmed", d.dir+"/pod-logs")
	d.pull("busybox")
	podID := d.runp(pc)
	ctrID := d.create(podID, d.containerConfig("busybox", nil), pc)
	d.startContainer(ctrID)
	startedAt := d.inspect(ctrID).StartedAt

	shims := d.podShims(podID)
	if len(shims) != 1 {
		t.Fatalf("shim processes for pod %s: %v, want exactly one `fakecontainerd shim --group %s`", podID, shims, podID)
	}
	shim := shims[0]
	t.Logf("shim pid %d: %s", shim.pid, strings.Join(shim.args, " "))
	if shim.pid == d.pid() {
		t.Fatalf("the shim is the server itself")
	}
	if all := shimProcesses(d.state); len(all) != 1 {
		t.Errorf("shim processes for this server: %v, want one (one shim per pod)", all)
	}

	serverPid := d.pid()
	d.kill()
	// Give a shim that would die with its server the time to do so.
	time.Sleep(200 * time.Millisecond)
	if !alive(shim.pid) {
		t.Fatalf("shim %d died with the server; process-mode shims must outlive it", shim.pid)
	}
	if p := ppid(shim.pid); p == serverPid {
		t.Errorf("shim %d still has the dead server %d as parent", shim.pid, serverPid)
	}

	d.start()
	if shims := d.podShims(podID); len(shims) != 1 || shims[0].pid != shim.pid {
		t.Fatalf("after the restart the pod's shims are %v, want the same process %d (no new shim)", shims, shim.pid)
	}
	st := d.inspect(ctrID)
	if st.State != runtime.ContainerState_CONTAINER_RUNNING || st.StartedAt != startedAt {
		t.Fatalf("after the restart the container is %v (started %d), want still RUNNING since %d", st.State, st.StartedAt, startedAt)
	}
	if p := d.inspectp(podID); p.State != runtime.PodSandboxState_SANDBOX_READY {
		t.Errorf("after the restart the pod is %v, want READY", p.State)
	}
	if s, err := d.rt.ContainerStats(d.ctx(), ctrID); err != nil || s.GetMemory().GetWorkingSetBytes().GetValue() == 0 {
		t.Errorf("stats through the reconnected shim: %v, %v", s, err)
	}

	if err := d.rt.StopContainer(d.ctx(), ctrID, 0); err != nil {
		t.Fatalf("crictl stop after the restart: %v", err)
	}
	if st := d.inspect(ctrID); st.State != runtime.ContainerState_CONTAINER_EXITED {
		t.Fatalf("after crictl stop: %v, want EXITED", st.State)
	}
	if err := d.rt.RemoveContainer(d.ctx(), ctrID); err != nil {
		t.Fatalf("crictl rm: %v", err)
	}
	if err := d.rt.StopPodSandbox(d.ctx(), podID); err != nil {
		t.Fatalf("crictl stopp: %v", err)
	}
	if !alive(shim.pid) {
		t.Errorf("shim exited at stopp; like containerd's it should serve until the sandbox is removed")
	}
	if err := d.rt.RemovePodSandbox(d.ctx(), podID); err != nil {
		t.Fatalf("crictl rmp: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(shim.pid) {
		if time.Now().After(deadline) {
			t.Fatalf("shim %d still running 5s after crictl rmp", shim.pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if left := shimProcesses(d.state); len(left) != 0 {
		t.Errorf("shim processes left after rmp: %v", left)
	}
	d.stop()
}
