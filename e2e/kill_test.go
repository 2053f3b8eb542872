package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

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
	d.pull("busybox")
	pc := d.podConfig("kill-pod", filepath.Join(d.dir, "pod-logs"))
	pod := d.runp(pc)
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
