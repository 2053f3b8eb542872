package server

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/shim"
)

// modelPod runs a pod with a log directory.
func (ts *testServer) modelPod(name string) (string, *runtime.PodSandboxConfig) {
	ts.t.Helper()
	if _, err := ts.img.PullImage(ts.ctx(time.Minute), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "busybox:latest"}}); err != nil {
		ts.t.Fatalf("pull: %v", err)
	}
	pc := podConfig(name)
	pc.LogDirectory = filepath.Join(ts.dir, "pods", name)
	return ts.criRunPodConfig(pc), pc
}

// startCommand starts a container running command, logging to
// <pod log dir>/<name>/0.log.
func (ts *testServer) startCommand(podID string, pc *runtime.PodSandboxConfig, name string, command []string, mutate func(*runtime.ContainerConfig)) (id, logPath string) {
	ts.t.Helper()
	cfg := containerConfig(name, nil)
	cfg.Command, cfg.LogPath = command, name+"/0.log"
	if mutate != nil {
		mutate(cfg)
	}
	id = ts.criCreate(podID, pc, cfg)
	if _, err := ts.rt.StartContainer(ts.ctx(time.Minute), &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		ts.t.Fatalf("start %s: %v", name, err)
	}
	return id, filepath.Join(pc.LogDirectory, cfg.LogPath)
}

// logEntry is one parsed CRI log entry.
type logEntry struct {
	at             time.Time
	stream, tag, s string
}

// readCRILog parses a CRI log file, failing on any malformed entry.
func readCRILog(t *testing.T, path string) []logEntry {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []logEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 4)
		if len(parts) != 4 || (parts[1] != "stdout" && parts[1] != "stderr") || (parts[2] != "F" && parts[2] != "P") {
			t.Fatalf("malformed CRI log entry %q", sc.Text())
		}
		at, err := time.Parse(time.RFC3339Nano, parts[0])
		if err != nil {
			t.Fatalf("CRI log entry %q: time: %v", sc.Text(), err)
		}
		out = append(out, logEntry{at, parts[1], parts[2], parts[3]})
	}
	return out
}

// waitLog polls the log (in scenario time) until ok accepts its entries.
func (ts *testServer) waitLog(path string, within time.Duration, ok func([]logEntry) bool) []logEntry {
	ts.t.Helper()
	deadline := ts.clock.Now().Add(within)
	for {
		lines := readCRILog(ts.t, path)
		if ok(lines) {
			return lines
		}
		if ts.clock.Now().After(deadline) {
			ts.t.Fatalf("log %s after %v: %+v", path, within, lines)
		}
		_ = ts.clock.Sleep(ts.ctx(time.Minute), 100*time.Millisecond)
	}
}

func dateLines(lines []logEntry) []logEntry {
	var out []logEntry
	for _, l := range lines {
		if strings.HasPrefix(l.s, "date=") {
			out = append(out, l)
		}
	}
	return out
}

// The field's pod: one date line per second of project time, streamed to
// the CRI log as it is printed; ReopenContainerLog moves the stream to the
// new file.
func TestModelDateLoopWritesOneLinePerSecond(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	podID, pc := ts.modelPod("field")
	start := ts.clock.Now()
	id, logPath := ts.startCommand(podID, pc, "date", []string{"sh", "-c", "while true; do echo date=$(date +%s); sleep 1; done"}, nil)
	const want = 5
	lines := dateLines(ts.waitLog(logPath, 10*time.Minute, func(l []logEntry) bool { return len(dateLines(l)) >= want }))
	elapsed := ts.clock.Since(start)
	// want lines take at least want-1 seconds: the loop cannot run faster
	// than its sleep, however busy the machine.
	if elapsed < (want-1)*time.Second {
		t.Errorf("%d date lines after %v of project time: faster than one a second", len(lines), elapsed)
	}
	prev := int64(0)
	for _, l := range lines {
		sec, err := strconv.ParseInt(strings.TrimPrefix(l.s, "date="), 10, 64)
		if err != nil || l.stream != "stdout" || l.tag != "F" {
			t.Fatalf("entry %+v", l)
		}
		if sec <= prev {
			t.Errorf("date %d after %d: two lines in one second", sec, prev)
		}
		if d := l.at.Sub(time.Unix(sec, 0)); d < 0 || d > time.Minute {
			t.Errorf("entry logged at %v for date %d: not the project clock's time", l.at, sec)
		}
		prev = sec
	}

	// kubelet rotates the log: rename, then ReopenContainerLog.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.rt.ReopenContainerLog(ts.ctx(time.Minute), &runtime.ReopenContainerLogRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	ts.waitLog(logPath, 10*time.Minute, func(l []logEntry) bool { return len(dateLines(l)) >= 2 })

	// The loop runs until stopped; SIGKILL after the (zero) grace ends it.
	ts.criStop(id, 0)
	if st := ts.criStatus(id); st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 {
		t.Errorf("stopped date loop: %v exit %d, want EXITED 137", st.State, st.ExitCode)
	}
}

// A Job's container exits by itself with its script's status, through the
// shim's exit like any other exit.
func TestModelJobExitsWithItsCode(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	podID, pc := ts.modelPod("job")
	id, logPath := ts.startCommand(podID, pc, "job", []string{"sh", "-c", "echo hi; echo oops >&2; exit 3"}, nil)
	ts.waitState(id, runtime.ContainerState_CONTAINER_EXITED, 5*time.Minute)
	if st := ts.criStatus(id); st.ExitCode != 3 || st.Reason != "Error" {
		t.Errorf("job: exit %d reason %q, want 3 Error", st.ExitCode, st.Reason)
	}
	ts.waitLog(logPath, time.Minute, func(lines []logEntry) bool {
		var out, errs bool
		for _, l := range lines {
			out = out || (l.stream == "stdout" && l.tag == "F" && l.s == "hi")
			errs = errs || (l.stream == "stderr" && l.tag == "F" && l.s == "oops")
		}
		return out && errs
	})

	// Annotations win over the model: exit-after ends this one with 0.
	scripted, _ := ts.startCommand(podID, pc, "scripted", []string{"sh", "-c", "exit 3"}, func(c *runtime.ContainerConfig) {
		c.Annotations = map[string]string{shim.AnnotationExitAfter: "2s"}
	})
	ts.waitState(scripted, runtime.ContainerState_CONTAINER_EXITED, 5*time.Minute)
	if st := ts.criStatus(scripted); st.ExitCode != 0 {
		t.Errorf("annotated container: exit %d, want the annotation's 0", st.ExitCode)
	}
}

func execSync(ts *testServer, id string, timeout int64, cmd ...string) (*runtime.ExecSyncResponse, error) {
	return ts.rt.ExecSync(ts.ctx(time.Hour), &runtime.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: timeout})
}

// An exec probe sees what the container's own process wrote.
func TestModelExecProbeSeesTheContainersFiles(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	podID, pc := ts.modelPod("probe")
	id, _ := ts.startCommand(podID, pc, "app", []string{"sh", "-c", "sleep 3; echo ok > /tmp/healthy; sleep infinity"}, nil)
	resp, err := execSync(ts, id, 10, "cat", "/tmp/healthy")
	if err != nil {
		t.Fatal(err)
	}
	if resp.ExitCode != 1 || !strings.Contains(string(resp.Stderr), "No such file or directory") {
		t.Errorf("probe before the file: exit %d stderr %q", resp.ExitCode, resp.Stderr)
	}
	deadline := ts.clock.Now().Add(10 * time.Minute)
	for {
		resp, err := execSync(ts, id, 10, "cat", "/tmp/healthy")
		if err != nil {
			t.Fatal(err)
		}
		if resp.ExitCode == 0 {
			if string(resp.Stdout) != "ok\n" {
				t.Errorf("probe stdout %q", resp.Stdout)
			}
			break
		}
		if ts.clock.Now().After(deadline) {
			t.Fatalf("probe still failing: %d %q", resp.ExitCode, resp.Stderr)
		}
		_ = ts.clock.Sleep(ts.ctx(time.Minute), 500*time.Millisecond)
	}
	// The exec's own environment and the pod's identity.
	resp, err = execSync(ts, id, 10, "sh", "-c", "hostname; cat /etc/hostname; echo $HOSTNAME")
	if err != nil || string(resp.Stdout) != "probe\nprobe\nprobe\n" {
		t.Errorf("hostname in exec: %q, %v", resp.GetStdout(), err)
	}
}

// A hostPath volume shows the host directory's files; a read-only one
// refuses writes as the kernel does.
func TestModelHostPathVolumeThroughExecSync(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	host := t.TempDir()
	for _, f := range []string{"b.conf", "a.conf"} {
		if err := os.WriteFile(filepath.Join(host, f), []byte(f+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	podID, pc := ts.modelPod("vol")
	id, _ := ts.startCommand(podID, pc, "app", []string{"sleep", "3600"}, func(c *runtime.ContainerConfig) {
		c.Mounts = []*runtime.Mount{{ContainerPath: "/etc/app", HostPath: host, Readonly: true}}
	})
	for _, tc := range []struct {
		cmd            []string
		stdout, stderr string
		code           int32
	}{
		{[]string{"ls", "/etc/app"}, "a.conf\nb.conf\n", "", 0},
		{[]string{"cat", "/etc/app/b.conf"}, "b.conf\n", "", 0},
		{[]string{"touch", "/etc/app/new"}, "", "touch: /etc/app/new: Read-only file system\n", 1},
		{[]string{"sh", "-c", "echo x > /etc/app/a.conf"}, "", "sh: can't create /etc/app/a.conf: Read-only file system\n", 1},
		{[]string{"test", "-f", "/etc/app/a.conf"}, "", "", 0},
	} {
		resp, err := execSync(ts, id, 10, tc.cmd...)
		if err != nil {
			t.Fatalf("%q: %v", tc.cmd, err)
		}
		if string(resp.Stdout) != tc.stdout || string(resp.Stderr) != tc.stderr || resp.ExitCode != tc.code {
			t.Errorf("%q: stdout %q stderr %q exit %d; want %q %q %d", tc.cmd, resp.Stdout, resp.Stderr, resp.ExitCode, tc.stdout, tc.stderr, tc.code)
		}
	}
}

// ExecSync's timeout kills the exec and fails the call as containerd does;
// a command the model does not know gets the canned result.
func TestModelExecSyncTimeoutAndUnknownCommands(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	podID, pc := ts.modelPod("timeout")
	id, _ := ts.startCommand(podID, pc, "app", []string{"sleep", "infinity"}, nil)
	_, err := execSync(ts, id, 1, "sleep", "10")
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "failed to exec in container: timeout 1s exceeded: context deadline exceeded") {
		t.Errorf("sleep 10 with a 1 s timeout: %v", err)
	}
	resp, err := execSync(ts, id, 1, "grpc_health_probe", "-addr=:50051", "-connect-timeout=100ms")
	if err != nil || resp.ExitCode != 2 {
		t.Errorf("grpc_health_probe: %v, %+v", err, resp)
	}
	resp, err = execSync(ts, id, 5, "/usr/local/bin/custom-probe", "--ready")
	if err != nil || resp.ExitCode != 0 || len(resp.Stdout) != 0 {
		t.Errorf("unknown command: %v, %+v; want the canned result", err, resp)
	}
	// The container is untouched by the killed exec.
	if st := ts.criStatus(id); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container after the exec timeout: %v", st.State)
	}
}
