package e2e

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
)

// busyboxPod pulls busybox and runs a pod named name, logging under the
// daemon's dir: the start of a crictl session.
func (d *daemon) busyboxPod(name string) (string, *runtime.PodSandboxConfig) {
	d.t.Helper()
	d.pull("busybox")
	pc := d.podConfig(name, filepath.Join(d.dir, "pod-logs"))
	return d.runp(pc), pc
}

// TestKillCommand is the field's recipe step `kill -9 $CNTR_PID` as a
// user runs it: `fakecontainerd kill ID` (a prefix, as crictl takes) and
// crictl then sees the container EXITED with 137; a process that ignores
// SIGTERM keeps running; --exit-code exits with that status.
func TestKillCommand(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"inprocess", "process"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testKillCommand(t, newDaemon(t, "--shim-mode", mode))
		})
	}
}

func testKillCommand(t *testing.T, d *daemon) {
	pod, pc := d.busyboxPod("kill-pod")
	start := func(name string, annotations map[string]string) string {
		id := d.create(pod, d.containerConfig(name, annotations), pc)
		d.startContainer(id)
		return id
	}
	kill := func(want string, args ...string) {
		t.Helper()
		out, code := fcd(t, 20*time.Second, append([]string{"kill", "--address", d.sock}, args...)...)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("fakecontainerd kill %s: exit %d, want 0 and %q:\n%s", strings.Join(args, " "), code, want, out)
		}
	}
	exited := func(id string, status int32) {
		t.Helper()
		st := d.waitState(id, runtime.ContainerState_CONTAINER_EXITED, 20*time.Second)
		if st.GetExitCode() != status || st.GetReason() != "Error" || st.GetFinishedAt() == 0 {
			t.Errorf("crictl inspect %s: exit code %d reason %q finished %d; want %d, Error, a time", id[:13], st.GetExitCode(), st.GetReason(), st.GetFinishedAt(), status)
		}
	}

	loop := start("loop", nil)
	kill("exits with status 137", loop[:8])
	exited(loop, 137)

	stubborn := start("stubborn", map[string]string{"fakecontainerd.io/stop-grace": "never"})
	kill("ignored", "--signal", "TERM", stubborn[:8])
	time.Sleep(500 * time.Millisecond)
	if st := d.inspect(stubborn); st.GetState() != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("after an ignored SIGTERM: %v, want CONTAINER_RUNNING", st.GetState())
	}
	kill("exits with status 137", "--signal", "9", stubborn[:8])
	exited(stubborn, 137)

	quitter := start("quitter", nil)
	kill("exits with status 3", "--exit-code", "3", quitter)
	exited(quitter, 3)

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"ffffffffffff"}, "no container or sandbox"},
		{[]string{loop}, "no such process"},
		{[]string{"--signal", "BOGUS", quitter}, `signal "BOGUS"`},
		{[]string{}, "exactly one container ID"},
	} {
		out, code := fcd(t, 20*time.Second, append([]string{"kill", "--address", d.sock}, c.args...)...)
		if code == 0 || !strings.Contains(out, c.want) {
			t.Errorf("fakecontainerd kill %s: exit %d, want non-zero and %q:\n%s", strings.Join(c.args, " "), code, c.want, out)
		}
	}
}

// TestFieldRecipe is incident 1 reproduced as the field did, with the
// field's numbers: strace's delay_enter=60s on umount2 (here `fault set
// --point shim.umount2 'delay(60s)'`), `kill -9` of the container's
// process (`fakecontainerd kill`), then kubelet's UpdateContainerResources
// on the dying container. runc's shim calls umount2 twice, so Delete holds
// the process lock 120 s and the update, holding the status lock, waits
// that long, then fails with the field's "cannot update a deleted process".
// At 1/100 speed: 120 scenario seconds are 1.2 s.
func TestFieldRecipe(t *testing.T) {
	t.Parallel()
	const scale = 0.01
	d := newDaemon(t, "--time-scale", "0.01")
	pod, pc := d.busyboxPod("job")
	ctr := d.create(pod, d.containerConfig("loop", nil), pc)
	d.startContainer(ctr)

	out, code := fcd(t, 20*time.Second, "fault", "set", "--address", d.sock, "--point", "shim.umount2", "--target", "id="+ctr[:8], "delay(60s)")
	if code != 0 || strings.Contains(out, "warning") {
		t.Fatalf("fault set: exit %d\n%s", code, out)
	}
	killed := time.Now()
	if out, code := fcd(t, 20*time.Second, "kill", "--address", d.sock, ctr[:8]); code != 0 {
		t.Fatalf("fakecontainerd kill: exit %d\n%s", code, out)
	}
	// The exit handler's Delete is in the first umount2 once it fired.
	fired := func() uint64 {
		var list []faultInfo
		d.adminCall(http.MethodGet, "/v1/faults", nil, &list)
		if len(list) != 1 {
			t.Fatalf("faults armed: %v, want the one", list)
		}
		return list[0].Fired
	}
	for deadline := time.Now().Add(20 * time.Second); fired() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the exit's Delete never reached umount2")
		}
	}
	// kubelet's update, with a deadline longer than the stall.
	rt, err := remote.NewRemoteRuntimeService(context.Background(), d.endpoint(), 5*time.Minute, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())
	err = rt.UpdateContainerResources(context.Background(), ctr, &runtime.ContainerResources{Linux: &runtime.LinuxContainerResources{CpuShares: 512}})
	returned := time.Since(killed)
	if err == nil || !strings.Contains(err.Error(), "cannot update a deleted process") {
		t.Fatalf("UpdateContainerResources during the stall: %v, want the field's cannot update a deleted process", err)
	}
	if stall := time.Duration(float64(120*time.Second) * scale); returned < stall {
		t.Errorf("the update returned %v after the kill, want at least %v (two umount2 calls of 60 scenario seconds)", returned, stall)
	}
	t.Logf("update returned %v after the kill (%.0f scenario seconds): %v", returned, returned.Seconds()/scale, err)
	st := d.waitState(ctr, runtime.ContainerState_CONTAINER_EXITED, 20*time.Second)
	if st.GetExitCode() != 137 {
		t.Errorf("exit code %d, want 137", st.GetExitCode())
	}
	if n := fired(); n != 2 {
		t.Errorf("umount2 fault fired %d times, want 2 (runc's UnmountAll: once to unmount, once to get EINVAL)", n)
	}
}
