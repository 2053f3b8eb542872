package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-client/pkg/logs"
)

// TestProcessModel puts containers that do what their command says through
// the binary with process-mode shims (the output crosses from the shim
// process to the daemon through FIFOs), read back as crictl does.
func TestProcessModel(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, "--shim-mode", "process", "--time-scale", "0.01")
	d.pull("busybox")
	pc := d.podConfig("model", filepath.Join(d.dir, "pod-logs", "model"))
	podID := d.runp(pc)

	// crictl logs: the container's output as cri-client's reader parses it.
	crictlLogs := func(id string) (string, string) {
		t.Helper()
		st := d.inspect(id)
		var stdout, stderr bytes.Buffer
		if err := logs.ReadLogs(d.ctx(), st.LogPath, st.Id, &logs.LogOptions{}, d.rt, &stdout, &stderr); err != nil {
			t.Fatalf("crictl logs %s: %v", id, err)
		}
		return stdout.String(), stderr.String()
	}

	// A Job: exits by itself with its script's status, its output logged.
	job := d.containerConfig("job", nil)
	job.Command = []string{"sh", "-c", "echo hi; echo bye >&2; exit 3"}
	jobID := d.create(podID, job, pc)
	d.startContainer(jobID)
	if st := d.waitState(jobID, runtime.ContainerState_CONTAINER_EXITED, time.Minute); st.ExitCode != 3 || st.Reason != "Error" {
		t.Errorf("job: exit %d reason %q, want 3 Error", st.ExitCode, st.Reason)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		stdout, stderr := crictlLogs(jobID)
		// The configured log_lines are written at start, beside the output.
		if strings.Contains(stdout, "hi\n") && stderr == "bye\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job's logs: stdout %q stderr %q", stdout, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A probe target: exec sees what the container wrote; a slow exec is
	// cut by its timeout.
	app := d.containerConfig("app", nil)
	app.Command = []string{"sh", "-c", "echo ok > /tmp/healthy; while true; do date; sleep 1; done"}
	appID := d.create(podID, app, pc)
	d.startContainer(appID)
	deadline = time.Now().Add(30 * time.Second)
	for {
		stdout, _, err := d.rt.ExecSync(d.ctx(), appID, []string{"cat", "/tmp/healthy"}, 5*time.Second)
		if err == nil && string(stdout) == "ok\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exec probe cat /tmp/healthy: %q, %v", stdout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// cri-client, as kubelet, reads the DeadlineExceeded answer as a timeout.
	if _, _, err := d.rt.ExecSync(d.ctx(), appID, []string{"sleep", "10"}, time.Second); err == nil || !strings.Contains(err.Error(), `"sleep 10" timed out after 1s`) {
		t.Errorf("sleep 10 with a 1 s timeout: %v", err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		stdout, _ := crictlLogs(appID)
		if strings.Count(stdout, " UTC ") >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("date loop's log: %q", stdout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := d.rt.StopContainer(d.ctx(), appID, 0); err != nil {
		t.Fatal(err)
	}
	if st := d.inspect(appID); st.ExitCode != 137 {
		t.Errorf("stopped loop: exit %d, want 137", st.ExitCode)
	}
	if entries, err := os.ReadDir(filepath.Join(d.dir, "pod-logs", "model")); err != nil || len(entries) != 2 {
		t.Errorf("pod log directory: %v, %v", entries, err)
	}
	if err := d.rt.StopPodSandbox(d.ctx(), podID); err != nil {
		t.Fatal(err)
	}
	if err := d.rt.RemovePodSandbox(d.ctx(), podID); err != nil {
		t.Fatal(err)
	}
}
