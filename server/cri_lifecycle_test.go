package server

import (
	"bufio"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/shim"
)

// Container lifecycle over the CRI: create, start, stop, remove, status,
// list and resource updates, with the codes containerd gives.

func TestCRICreateContainerErrors(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	pc := podConfig("create")
	pc.LogDirectory = filepath.Join(ts.dir, "pods", "create")
	podID := ts.criRunPodConfig(pc)
	stoppedID, stoppedPC := ts.runPod("stopped")
	ts.criStopPod(stoppedID)
	ts.createContainer(podID, pc, "taken", nil)

	with := func(f func(*runtime.ContainerConfig)) *runtime.ContainerConfig {
		cfg := containerConfig("c", nil)
		f(cfg)
		return cfg
	}
	annotated := func(k, v string) *runtime.ContainerConfig {
		return containerConfig("c", map[string]string{k: v})
	}
	cases := []struct {
		name  string
		pod   string
		cfg   *runtime.ContainerConfig
		podPC *runtime.PodSandboxConfig
		code  codes.Code
	}{
		{name: "nil config", pod: podID, cfg: nil, code: codes.InvalidArgument},
		{name: "nil metadata", pod: podID, cfg: with(func(c *runtime.ContainerConfig) { c.Metadata = nil }), code: codes.InvalidArgument},
		{name: "empty name", pod: podID, cfg: with(func(c *runtime.ContainerConfig) { c.Metadata.Name = "" }), code: codes.InvalidArgument},
		{name: "name with a slash", pod: podID, cfg: with(func(c *runtime.ContainerConfig) { c.Metadata.Name = "a/b" }), code: codes.InvalidArgument},
		{name: "nil image", pod: podID, cfg: with(func(c *runtime.ContainerConfig) { c.Image = nil }), code: codes.InvalidArgument},
		{name: "empty image", pod: podID, cfg: with(func(c *runtime.ContainerConfig) { c.Image.Image = "" }), code: codes.InvalidArgument},
		{name: "empty label key", pod: podID, cfg: with(func(c *runtime.ContainerConfig) { c.Labels[""] = "x" }), code: codes.InvalidArgument},
		{name: "exit-after not a duration", pod: podID, cfg: annotated(shim.AnnotationExitAfter, "soon"), code: codes.InvalidArgument},
		{name: "exit-after negative", pod: podID, cfg: annotated(shim.AnnotationExitAfter, "-1s"), code: codes.InvalidArgument},
		{name: "exit-code out of range", pod: podID, cfg: annotated(shim.AnnotationExitCode, "256"), code: codes.InvalidArgument},
		{name: "stop-grace not a duration", pod: podID, cfg: annotated(shim.AnnotationStopGrace, "forever"), code: codes.InvalidArgument},
		{name: "dirty-bytes not a size", pod: podID, cfg: annotated(shim.AnnotationDirtyBytes, "lots"), code: codes.InvalidArgument},
		{name: "log path with ..", pod: podID, cfg: with(func(c *runtime.ContainerConfig) { c.LogPath = "../escape.log" }), code: codes.InvalidArgument},
		{name: "log path climbing out", pod: podID, cfg: with(func(c *runtime.ContainerConfig) { c.LogPath = "c/../../escape.log" }), code: codes.InvalidArgument},
		{name: "absolute log path", pod: podID, cfg: with(func(c *runtime.ContainerConfig) { c.LogPath = "/etc/passwd" }), code: codes.InvalidArgument},
		{name: "negative cpu shares", pod: podID, cfg: with(func(c *runtime.ContainerConfig) { c.Linux.Resources.CpuShares = -1 }), code: codes.InvalidArgument},
		{name: "bad cpuset", pod: podID, cfg: with(func(c *runtime.ContainerConfig) { c.Linux.Resources.CpusetCpus = "3-1" }), code: codes.InvalidArgument},
		{name: "empty pod id", pod: "", cfg: containerConfig("c", nil), code: codes.InvalidArgument},
		{name: "missing pod", pod: criMissingID, cfg: containerConfig("c", nil), code: codes.NotFound},
		{name: "stopped pod", pod: stoppedID, podPC: stoppedPC, cfg: containerConfig("c", nil), code: codes.NotFound},
		{name: "image not pulled", pod: podID, cfg: with(func(c *runtime.ContainerConfig) { c.Image.Image = "nginx:1.25" }), code: codes.NotFound},
		{name: "name in use", pod: podID, cfg: containerConfig("taken", nil), code: codes.AlreadyExists},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sbc := pc
			if tc.podPC != nil {
				sbc = tc.podPC
			}
			_, err := ts.rt.CreateContainer(ts.ctx(time.Minute), &runtime.CreateContainerRequest{PodSandboxId: tc.pod, Config: tc.cfg, SandboxConfig: sbc})
			criWantCode(t, "CreateContainer", err, tc.code)
		})
	}
	// Nothing refused was created; the refused names are free.
	resp, err := ts.rt.ListContainers(ts.ctx(time.Minute), &runtime.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Containers) != 1 {
		t.Errorf("%d containers after refused creates, want only %q", len(resp.Containers), "taken")
	}
	ts.createContainer(podID, pc, "c", nil)
	// A log path inside the directory is fine, however written.
	cfg := containerConfig("logged", nil)
	cfg.LogPath = "./logged/../logged/0.log"
	id := ts.criCreate(podID, pc, cfg)
	if got := ts.criStatus(id).LogPath; got != filepath.Join(pc.LogDirectory, "logged", "0.log") {
		t.Errorf("log path %q, want it cleaned inside the pod's log directory", got)
	}
}

var criLogLine = regexp.MustCompile(`^(\S+) stdout F (.*)$`)

func TestCRIContainerLifecycle(t *testing.T) {
	lines := []string{"fakecontainerd: container started", "second line"}
	ts := newTestServer(t, criScale, func(c *configs.Config) { c.Plugins.Fake.LogLines = lines })
	pc := podConfig("life")
	pc.LogDirectory = filepath.Join(ts.dir, "pods", "life")
	podID := ts.criRunPodConfig(pc)
	cfg := containerConfig("app", map[string]string{"io.kubernetes.container.restartCount": "0", "note": "x"})
	cfg.Labels["io.kubernetes.pod.uid"] = "life-uid"
	cfg.LogPath = "app/0.log"
	cfg.Mounts = []*runtime.Mount{{ContainerPath: "/data", HostPath: "/srv/data", Readonly: true}}
	logPath := filepath.Join(pc.LogDirectory, "app", "0.log")

	created := ts.clock.Now()
	id := ts.criCreate(podID, pc, cfg)
	st := ts.criStatus(id)
	if st.Id != id || st.State != runtime.ContainerState_CONTAINER_CREATED || !proto.Equal(st.Metadata, cfg.Metadata) {
		t.Errorf("created status id %s state %v metadata %v", st.Id, st.State, st.Metadata)
	}
	if at := time.Unix(0, st.CreatedAt); at.Before(created) || at.After(ts.clock.Now()) {
		t.Errorf("created at %v, want between %v and now", at, created)
	}
	if st.StartedAt != 0 || st.FinishedAt != 0 || st.ExitCode != 0 || st.Reason != "" {
		t.Errorf("created container has started %d finished %d exit %d reason %q", st.StartedAt, st.FinishedAt, st.ExitCode, st.Reason)
	}
	if !maps.Equal(st.Labels, cfg.Labels) || !maps.Equal(st.Annotations, cfg.Annotations) {
		t.Errorf("labels %v annotations %v, want the config's %v %v", st.Labels, st.Annotations, cfg.Labels, cfg.Annotations)
	}
	if st.LogPath != logPath {
		t.Errorf("log path %q, want %q", st.LogPath, logPath)
	}
	if st.GetImage().GetImage() != "docker.io/library/busybox:latest" || !strings.HasPrefix(st.ImageRef, "docker.io/library/busybox@sha256:") ||
		!strings.HasPrefix(st.ImageId, "sha256:") {
		t.Errorf("image %v ref %q id %q, want the normalised tag, repo digest and image id", st.Image, st.ImageRef, st.ImageId)
	}
	if len(st.Mounts) != 1 || !proto.Equal(st.Mounts[0], cfg.Mounts[0]) {
		t.Errorf("mounts %v, want %v", st.Mounts, cfg.Mounts)
	}
	if r := st.GetResources().GetLinux(); r.GetCpuShares() != 2 || r.GetMemoryLimitInBytes() != 64<<20 {
		t.Errorf("resources %v, want the config's cpu shares 2 and 64MiB", r)
	}
	if _, err := os.Stat(logPath); !os.IsNotExist(err) {
		t.Errorf("log file before start: %v, want none", err)
	}

	if _, err := ts.rt.StartContainer(ts.ctx(time.Minute), &runtime.StartContainerRequest{ContainerId: id[:12]}); err != nil {
		t.Fatalf("start by prefix: %v", err)
	}
	st = ts.criStatus(id)
	if st.State != runtime.ContainerState_CONTAINER_RUNNING || st.StartedAt < st.CreatedAt || st.FinishedAt != 0 {
		t.Errorf("started status %v created %d started %d finished %d", st.State, st.CreatedAt, st.StartedAt, st.FinishedAt)
	}
	// The CRI log: "<RFC3339Nano> stdout F <line>", stamped at the start.
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatalf("log file after start: %v", err)
	}
	var got []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := criLogLine.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Errorf("log line %q is not in the CRI format", sc.Text())
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil || at.UnixNano() != st.StartedAt {
			t.Errorf("log line time %q (%v), want the start time %v", m[1], err, time.Unix(0, st.StartedAt).UTC())
		}
		got = append(got, m[2])
	}
	f.Close()
	if !slices.Equal(got, lines) {
		t.Errorf("log lines %q, want %q", got, lines)
	}

	ts.criStop(id, 30)
	st = ts.criStatus(id)
	if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 143 || st.Reason != "Error" ||
		st.FinishedAt < st.StartedAt || st.StartedAt == 0 {
		t.Errorf("stopped status %v exit %d reason %q started %d finished %d, want EXITED 143 Error", st.State, st.ExitCode, st.Reason, st.StartedAt, st.FinishedAt)
	}
	if _, err := ts.rt.RemoveContainer(ts.ctx(time.Minute), &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	_, err = ts.rt.ContainerStatus(ts.ctx(time.Minute), &runtime.ContainerStatusRequest{ContainerId: id})
	criWantCode(t, "ContainerStatus after remove", err, codes.NotFound)
	// The name is free again, for the next attempt.
	ts.criCreate(podID, pc, cfg)
}

func TestCRIContainerStatus(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	podID, pc := ts.runPod("status")
	id := ts.startContainer(podID, pc, "app", nil)
	for _, tc := range []struct {
		name, id string
		code     codes.Code
	}{
		{"empty id", "", codes.InvalidArgument},
		{"missing", criMissingID, codes.NotFound},
		{"missing prefix", "zz", codes.NotFound},
		{"prefix", id[:8], codes.OK},
	} {
		_, err := ts.rt.ContainerStatus(ts.ctx(time.Minute), &runtime.ContainerStatusRequest{ContainerId: tc.id})
		criWantCode(t, "ContainerStatus "+tc.name, err, tc.code)
	}
	resp, err := ts.rt.ContainerStatus(ts.ctx(time.Minute), &runtime.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		SandboxID string `json:"sandboxID"`
		Pid       uint32 `json:"pid"`
		Config    struct {
			Metadata struct{ Name string } `json:"metadata"`
		} `json:"config"`
		RuntimeSpec struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
		t.Fatalf("verbose info %q: %v", resp.Info["info"], err)
	}
	if info.SandboxID != podID || info.Pid == 0 || info.Config.Metadata.Name != "app" || info.RuntimeSpec.Annotations[annotationSandboxID] != podID {
		t.Errorf("verbose info %+v: want the sandbox, a pid, the config and the spec", info)
	}
	if len(resp.Info) != 1 {
		t.Errorf("verbose info keys %v, want only info", slices.Collect(maps.Keys(resp.Info)))
	}
}

func TestCRIStartContainerErrors(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	podID, pc := ts.runPod("start")
	running := ts.startContainer(podID, pc, "running", nil)
	exited := ts.startContainer(podID, pc, "exited", map[string]string{shim.AnnotationExitAfter: "1ms", shim.AnnotationExitCode: "4"})
	ts.waitState(exited, runtime.ContainerState_CONTAINER_EXITED, 5*time.Minute)
	removing := ts.createContainer(podID, pc, "removing", nil)
	ts.criSetFlags(removing, false, true)
	starting := ts.createContainer(podID, pc, "starting", nil)
	ts.criSetFlags(starting, true, false)

	cases := []struct {
		name, id string
		code     codes.Code
		// The state the container must keep after the refusal.
		state runtime.ContainerState
	}{
		{name: "empty id", id: "", code: codes.InvalidArgument},
		{name: "missing", id: criMissingID, code: codes.NotFound},
		{name: "running", id: running, code: codes.Unknown, state: runtime.ContainerState_CONTAINER_RUNNING},
		{name: "exited", id: exited, code: codes.Unknown, state: runtime.ContainerState_CONTAINER_EXITED},
		{name: "being removed", id: removing, code: codes.Unknown, state: runtime.ContainerState_CONTAINER_CREATED},
		{name: "already starting", id: starting, code: codes.Unknown, state: runtime.ContainerState_CONTAINER_CREATED},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := ts.criFor(t)
			_, err := ts.rt.StartContainer(ts.ctx(time.Minute), &runtime.StartContainerRequest{ContainerId: tc.id})
			criWantCode(t, "StartContainer", err, tc.code)
			if tc.id == "" || tc.id == criMissingID {
				return
			}
			// A refused start must not record a start failure.
			st := ts.criStatus(tc.id)
			if st.State != tc.state || st.Reason == "StartError" {
				t.Errorf("after the refused start: %v reason %q, want %v unchanged", st.State, st.Reason, tc.state)
			}
		})
	}
	if got := ts.criStatus(exited).ExitCode; got != 4 {
		t.Errorf("exited container's exit code %d after a refused start, want 4", got)
	}
	// Once the flags clear, the created ones start.
	ts.criSetFlags(starting, false, false)
	if _, err := ts.rt.StartContainer(ts.ctx(time.Minute), &runtime.StartContainerRequest{ContainerId: starting}); err != nil {
		t.Errorf("start after the starting flag cleared: %v", err)
	}
}

// TestCRIStopContainer: StopContainer sends SIGTERM, waits up to the
// timeout and then SIGKILLs, as containerd does.
func TestCRIStopContainer(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	podID, pc := ts.runPod("stop")
	cases := []struct {
		name     string
		grace    string // fakecontainerd.io/stop-grace; "" for the default (0s)
		timeout  int64
		code     int32
		min, max time.Duration // how long StopContainer takes, in scenario time
	}{
		// The bounds leave room for scheduling noise, which this time scale
		// magnifies 100x, and still tell a wait for the timeout apart.
		{name: "exits on SIGTERM", grace: "0s", timeout: 60, code: 143, max: 30 * time.Second},
		{name: "default grace", timeout: 60, code: 143, max: 30 * time.Second},
		{name: "exits within the timeout", grace: "5s", timeout: 60, code: 143, min: 5 * time.Second, max: 35 * time.Second},
		{name: "ignores SIGTERM", grace: "never", timeout: 30, code: 137, min: 30 * time.Second, max: 60 * time.Second},
		{name: "grace longer than the timeout", grace: "120s", timeout: 10, code: 137, min: 10 * time.Second, max: 60 * time.Second},
		{name: "zero timeout kills", grace: "never", timeout: 0, code: 137, max: 30 * time.Second},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := ts.criFor(t)
			var ann map[string]string
			if tc.grace != "" {
				ann = map[string]string{shim.AnnotationStopGrace: tc.grace}
			}
			id := ts.startContainer(podID, pc, "c"+string(rune('a'+i)), ann)
			start := ts.clock.Now()
			ts.criStop(id, tc.timeout)
			took := ts.clock.Since(start)
			if took < tc.min || took > tc.max {
				t.Errorf("StopContainer with timeout %ds took %v, want %v..%v", tc.timeout, took, tc.min, tc.max)
			}
			// StopContainer returns once the exit is recorded.
			st := ts.criStatus(id)
			if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != tc.code || st.Reason != "Error" {
				t.Errorf("after stop: %v exit %d reason %q, want EXITED %d Error", st.State, st.ExitCode, st.Reason, tc.code)
			}
			// Stopping again is a no-op that keeps the exit.
			ts.criStop(id, 10)
			if again := ts.criStatus(id); again.ExitCode != tc.code || again.FinishedAt != st.FinishedAt {
				t.Errorf("second stop changed the exit: %d at %d, want %d at %d", again.ExitCode, again.FinishedAt, tc.code, st.FinishedAt)
			}
		})
	}

	created := ts.createContainer(podID, pc, "created", nil)
	for _, tc := range []struct {
		name    string
		id      string
		timeout int64
		code    codes.Code
	}{
		{name: "empty id", id: "", code: codes.InvalidArgument},
		{name: "negative timeout", id: created, timeout: -1, code: codes.InvalidArgument},
		{name: "missing is a no-op", id: criMissingID, code: codes.OK},
		{name: "created is a no-op", id: created, timeout: 10, code: codes.OK},
	} {
		_, err := ts.rt.StopContainer(ts.ctx(time.Minute), &runtime.StopContainerRequest{ContainerId: tc.id, Timeout: tc.timeout})
		criWantCode(t, "StopContainer "+tc.name, err, tc.code)
	}
	if got := ts.containerState(created); got != runtime.ContainerState_CONTAINER_CREATED {
		t.Errorf("created container after StopContainer: %v, want CREATED", got)
	}

	// The shim-wide default can ignore SIGTERM too; an annotation overrides it.
	t.Run("config stop_grace never", func(t *testing.T) {
		ts := newTestServer(t, criScale, func(c *configs.Config) { c.Plugins.Fake.StopGrace = configs.DurationNever })
		podID, pc := ts.runPod("never")
		stubborn := ts.startContainer(podID, pc, "stubborn", nil)
		polite := ts.startContainer(podID, pc, "polite", map[string]string{shim.AnnotationStopGrace: "0s"})
		for _, c := range []struct {
			id       string
			code     int32
			min, max time.Duration
		}{{stubborn, 137, 30 * time.Second, 60 * time.Second}, {polite, 143, 0, 25 * time.Second}} {
			start := ts.clock.Now()
			ts.criStop(c.id, 30)
			if took := ts.clock.Since(start); took < c.min || took > c.max {
				t.Errorf("stop took %v, want %v..%v", took, c.min, c.max)
			}
			if st := ts.criStatus(c.id); st.ExitCode != c.code {
				t.Errorf("exit code %d, want %d", st.ExitCode, c.code)
			}
		}
	})
}

// TestCRIContainerExitsByItself: fakecontainerd.io/exit-after and exit-code
// script the process's own exit.
func TestCRIContainerExitsByItself(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	podID, pc := ts.runPod("self")
	cases := []struct {
		name   string
		after  string
		code   string
		want   int32
		reason string
	}{
		{name: "success", after: "2s", want: 0, reason: "Completed"},
		{name: "explicit zero", after: "1s", code: "0", want: 0, reason: "Completed"},
		{name: "failure", after: "3s", code: "3", want: 3, reason: "Error"},
		{name: "oom-like", after: "1s", code: "137", want: 137, reason: "Error"},
	}
	ids := make([]string, len(cases))
	starts := make([]time.Time, len(cases)) // just before each start
	for i, tc := range cases {
		ann := map[string]string{shim.AnnotationExitAfter: tc.after}
		if tc.code != "" {
			ann[shim.AnnotationExitCode] = tc.code
		}
		id := ts.createContainer(podID, pc, "c"+string(rune('a'+i)), ann)
		starts[i] = ts.clock.Now()
		if _, err := ts.rt.StartContainer(ts.ctx(time.Minute), &runtime.StartContainerRequest{ContainerId: id}); err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := ts.criFor(t)
			ts.waitState(ids[i], runtime.ContainerState_CONTAINER_EXITED, 5*time.Minute)
			st := ts.criStatus(ids[i])
			if st.ExitCode != tc.want || st.Reason != tc.reason {
				t.Errorf("exit %d reason %q, want %d %q", st.ExitCode, st.Reason, tc.want, tc.reason)
			}
			// The process starts during StartContainer; StartedAt is taken
			// after the shim's start returns, as in containerd, so measure
			// from just before the call.
			after, _ := time.ParseDuration(tc.after)
			if ran := time.Unix(0, st.FinishedAt).Sub(starts[i]); ran < after || ran > after+10*time.Second {
				t.Errorf("exited %v after the start call, want about %v", ran, after)
			}
			// Not FinishedAt >= StartedAt: as in containerd, a process
			// that exits before the start call returns finishes "before"
			// it started.
			if st.StartedAt == 0 {
				t.Error("exited container has no start time")
			}
		})
	}
}

func TestCRIRemoveContainer(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	podID, pc := ts.runPod("rm")
	// A running container that ignores SIGTERM is killed, not waited for.
	running := ts.startContainer(podID, pc, "running", map[string]string{shim.AnnotationStopGrace: "never"})
	created := ts.createContainer(podID, pc, "created", nil)
	exited := ts.startContainer(podID, pc, "exited", map[string]string{shim.AnnotationExitAfter: "1ms"})
	ts.waitState(exited, runtime.ContainerState_CONTAINER_EXITED, 5*time.Minute)
	starting := ts.createContainer(podID, pc, "starting", nil)
	ts.criSetFlags(starting, true, false)
	removing := ts.createContainer(podID, pc, "removing", nil)
	ts.criSetFlags(removing, false, true)

	cases := []struct {
		name, id string
		code     codes.Code
		gone     bool
	}{
		{name: "empty id", id: "", code: codes.InvalidArgument},
		{name: "missing is a no-op", id: criMissingID, code: codes.OK},
		{name: "running is forcibly stopped", id: running, code: codes.OK, gone: true},
		{name: "created", id: created[:12], code: codes.OK, gone: true},
		{name: "exited", id: exited, code: codes.OK, gone: true},
		{name: "removed again is a no-op", id: exited, code: codes.OK, gone: true},
		{name: "starting", id: starting, code: codes.Unknown},
		{name: "already removing", id: removing, code: codes.Unknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := ts.criFor(t)
			start := ts.clock.Now()
			_, err := ts.rt.RemoveContainer(ts.ctx(time.Minute), &runtime.RemoveContainerRequest{ContainerId: tc.id})
			criWantCode(t, "RemoveContainer", err, tc.code)
			if took := ts.clock.Since(start); took > 30*time.Second {
				t.Errorf("RemoveContainer took %v", took)
			}
			if tc.id == "" || tc.id == criMissingID {
				return
			}
			_, err = ts.rt.ContainerStatus(ts.ctx(time.Minute), &runtime.ContainerStatusRequest{ContainerId: tc.id})
			if gone := status.Code(err) == codes.NotFound; gone != tc.gone {
				t.Errorf("after RemoveContainer: status error %v, want gone=%v", err, tc.gone)
			}
		})
	}
	// The refused ones are still there, and go once their flag clears.
	for _, id := range []string{starting, removing} {
		if got := ts.containerState(id); got != runtime.ContainerState_CONTAINER_CREATED {
			t.Errorf("refused container %s is %v, want CREATED", id, got)
		}
		ts.criSetFlags(id, false, false)
		if _, err := ts.rt.RemoveContainer(ts.ctx(time.Minute), &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
			t.Errorf("remove after the flag cleared: %v", err)
		}
	}
	if _, err := os.Stat(ts.srv.cri.containerRootDir(running)); !os.IsNotExist(err) {
		t.Errorf("removed container's root dir: %v, want it gone", err)
	}
}

func TestCRIListContainers(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	podA, pcA := ts.runPod("a")
	podB, pcB := ts.runPod("b")
	mk := func(pod string, pc *runtime.PodSandboxConfig, name string, labels map[string]string, ann map[string]string) string {
		cfg := containerConfig(name, ann)
		for k, v := range labels {
			cfg.Labels[k] = v
		}
		return ts.criCreate(pod, pc, cfg)
	}
	start := func(id string) {
		if _, err := ts.rt.StartContainer(ts.ctx(time.Minute), &runtime.StartContainerRequest{ContainerId: id}); err != nil {
			t.Fatal(err)
		}
	}
	c1 := mk(podA, pcA, "c1", map[string]string{"app": "web"}, nil)
	start(c1)
	c2 := mk(podA, pcA, "c2", map[string]string{"app": "db"}, nil)
	c3 := mk(podA, pcA, "c3", map[string]string{"app": "web", "tier": "x"}, map[string]string{shim.AnnotationExitAfter: "1ms"})
	start(c3)
	ts.waitState(c3, runtime.ContainerState_CONTAINER_EXITED, 5*time.Minute)
	c4 := mk(podB, pcB, "c4", map[string]string{"app": "web"}, nil)
	start(c4)

	state := func(s runtime.ContainerState) *runtime.ContainerStateValue {
		return &runtime.ContainerStateValue{State: s}
	}
	cases := []struct {
		name   string
		filter *runtime.ContainerFilter
		want   []string
	}{
		{name: "no filter", want: []string{c1, c2, c3, c4}},
		{name: "empty filter", filter: &runtime.ContainerFilter{}, want: []string{c1, c2, c3, c4}},
		{name: "id", filter: &runtime.ContainerFilter{Id: c1}, want: []string{c1}},
		{name: "id prefix", filter: &runtime.ContainerFilter{Id: c2[:8]}, want: []string{c2}},
		{name: "missing id", filter: &runtime.ContainerFilter{Id: criMissingID}},
		{name: "running", filter: &runtime.ContainerFilter{State: state(runtime.ContainerState_CONTAINER_RUNNING)}, want: []string{c1, c4}},
		{name: "created", filter: &runtime.ContainerFilter{State: state(runtime.ContainerState_CONTAINER_CREATED)}, want: []string{c2}},
		{name: "exited", filter: &runtime.ContainerFilter{State: state(runtime.ContainerState_CONTAINER_EXITED)}, want: []string{c3}},
		{name: "unknown", filter: &runtime.ContainerFilter{State: state(runtime.ContainerState_CONTAINER_UNKNOWN)}},
		{name: "pod", filter: &runtime.ContainerFilter{PodSandboxId: podA}, want: []string{c1, c2, c3}},
		{name: "pod prefix", filter: &runtime.ContainerFilter{PodSandboxId: podB[:8]}, want: []string{c4}},
		{name: "missing pod", filter: &runtime.ContainerFilter{PodSandboxId: criMissingID}},
		{name: "label", filter: &runtime.ContainerFilter{LabelSelector: map[string]string{"app": "web"}}, want: []string{c1, c3, c4}},
		{name: "two labels", filter: &runtime.ContainerFilter{LabelSelector: map[string]string{"app": "web", "tier": "x"}}, want: []string{c3}},
		{name: "label missing", filter: &runtime.ContainerFilter{LabelSelector: map[string]string{"app": "cache"}}},
		{name: "pod and state", filter: &runtime.ContainerFilter{PodSandboxId: podA, State: state(runtime.ContainerState_CONTAINER_RUNNING)}, want: []string{c1}},
		{name: "pod and label", filter: &runtime.ContainerFilter{PodSandboxId: podA, LabelSelector: map[string]string{"app": "web"}}, want: []string{c1, c3}},
		{name: "id in another pod", filter: &runtime.ContainerFilter{Id: c4, PodSandboxId: podA}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := ts.rt.ListContainers(ts.ctx(time.Minute), &runtime.ListContainersRequest{Filter: tc.filter})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range resp.Containers {
				got = append(got, c.Id)
			}
			if !slices.Equal(criSorted(got), criSorted(tc.want)) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	// Items carry what PLEG groups and compares by.
	resp, err := ts.rt.ListContainers(ts.ctx(time.Minute), &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{Id: c3}})
	if err != nil || len(resp.Containers) != 1 {
		t.Fatalf("list c3: %v %v", resp, err)
	}
	c := resp.Containers[0]
	if c.PodSandboxId != podA || c.Metadata.GetName() != "c3" || c.Labels["tier"] != "x" || c.Annotations[shim.AnnotationExitAfter] != "1ms" ||
		c.GetImage().GetImage() != "busybox:latest" || !strings.HasPrefix(c.ImageRef, "sha256:") || c.CreatedAt == 0 ||
		c.State != runtime.ContainerState_CONTAINER_EXITED {
		t.Errorf("item %v: want c3's pod, metadata, labels, annotations, image, creation time and EXITED", c)
	}
}

func TestCRIUpdateContainerResources(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	podID, pc := ts.runPod("update")
	running := ts.startContainer(podID, pc, "running", nil)
	created := ts.createContainer(podID, pc, "created", nil)
	exited := ts.startContainer(podID, pc, "exited", map[string]string{shim.AnnotationExitAfter: "1ms"})
	ts.waitState(exited, runtime.ContainerState_CONTAINER_EXITED, 5*time.Minute)

	update := func(id string, r *runtime.LinuxContainerResources) error {
		_, err := ts.rt.UpdateContainerResources(ts.ctx(time.Minute), &runtime.UpdateContainerResourcesRequest{ContainerId: id, Linux: r})
		return err
	}
	// specMemory reads the memory limit from the spec (verbose info).
	specMemory := func(id string) int64 {
		t.Helper()
		resp, err := ts.rt.ContainerStatus(ts.ctx(time.Minute), &runtime.ContainerStatusRequest{ContainerId: id, Verbose: true})
		if err != nil {
			t.Fatal(err)
		}
		var info struct {
			RuntimeSpec struct {
				Linux struct {
					Resources struct {
						Memory struct{ Limit int64 }
					}
				}
			} `json:"runtimeSpec"`
		}
		if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil {
			t.Fatal(err)
		}
		return info.RuntimeSpec.Linux.Resources.Memory.Limit
	}

	cases := []struct {
		name   string
		id     string
		update *runtime.LinuxContainerResources
		want   *runtime.LinuxContainerResources // echoed in ContainerStatus
	}{
		// A memory limit without a swap limit sets swap to it, as
		// containerd's WithResources does, at create and at update.
		{
			// Fields left zero keep their values (cpu shares, memory).
			name: "running", id: running,
			update: &runtime.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, CpusetCpus: "0-1", Unified: map[string]string{"memory.high": "1G"}},
			want: &runtime.LinuxContainerResources{CpuShares: 2, MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 64 << 20, CpuPeriod: 100000, CpuQuota: 50000, CpusetCpus: "0-1",
				Unified: map[string]string{"memory.high": "1G"}},
		},
		{
			name: "running again", id: running,
			update: &runtime.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 256 << 20},
			want: &runtime.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 256 << 20, MemorySwapLimitInBytes: 256 << 20, CpuPeriod: 100000, CpuQuota: 50000, CpusetCpus: "0-1",
				Unified: map[string]string{"memory.high": "1G"}},
		},
		{
			name: "created", id: created,
			update: &runtime.LinuxContainerResources{MemoryLimitInBytes: 128 << 20},
			want:   &runtime.LinuxContainerResources{CpuShares: 2, MemoryLimitInBytes: 128 << 20, MemorySwapLimitInBytes: 128 << 20},
		},
		{
			name: "exited", id: exited,
			update: &runtime.LinuxContainerResources{CpuShares: 1024},
			want:   &runtime.LinuxContainerResources{CpuShares: 1024, MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 64 << 20},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := ts.criFor(t)
			if err := update(tc.id, tc.update); err != nil {
				t.Fatalf("UpdateContainerResources: %v", err)
			}
			if got := ts.criStatus(tc.id).GetResources().GetLinux(); !proto.Equal(got, tc.want) {
				t.Errorf("status resources %v, want %v", got, tc.want)
			}
			if got := specMemory(tc.id); got != tc.want.MemoryLimitInBytes {
				t.Errorf("spec memory limit %d, want %d", got, tc.want.MemoryLimitInBytes)
			}
		})
	}
	// A created container starts with its updated limits.
	if _, err := ts.rt.StartContainer(ts.ctx(time.Minute), &runtime.StartContainerRequest{ContainerId: created}); err != nil {
		t.Fatal(err)
	}
	if got := ts.criStatus(created).GetResources().GetLinux().GetMemoryLimitInBytes(); got != 128<<20 {
		t.Errorf("memory limit after start %d, want the updated 128MiB", got)
	}

	removing := ts.createContainer(podID, pc, "removing", nil)
	ts.criSetFlags(removing, false, true)
	for _, tc := range []struct {
		name string
		id   string
		r    *runtime.LinuxContainerResources
		code codes.Code
	}{
		{"empty id", "", &runtime.LinuxContainerResources{CpuShares: 2}, codes.InvalidArgument},
		{"missing", criMissingID, &runtime.LinuxContainerResources{CpuShares: 2}, codes.NotFound},
		{"negative memory", running, &runtime.LinuxContainerResources{MemoryLimitInBytes: -5}, codes.InvalidArgument},
		{"negative period", running, &runtime.LinuxContainerResources{CpuPeriod: -1}, codes.InvalidArgument},
		{"bad cpuset", running, &runtime.LinuxContainerResources{CpusetMems: "x"}, codes.InvalidArgument},
		{"oom score out of range", running, &runtime.LinuxContainerResources{OomScoreAdj: 2000}, codes.InvalidArgument},
		{"being removed", removing, &runtime.LinuxContainerResources{CpuShares: 4}, codes.Unknown},
	} {
		criWantCode(t, "UpdateContainerResources "+tc.name, update(tc.id, tc.r), tc.code)
	}
	// The refused updates changed nothing.
	if got := ts.criStatus(running).GetResources().GetLinux(); got.GetCpuShares() != 512 || got.GetMemoryLimitInBytes() != 256<<20 || got.GetCpusetMems() != "" {
		t.Errorf("resources after refused updates %v, want the last accepted ones", got)
	}
	if got := ts.criStatus(removing).GetResources().GetLinux().GetCpuShares(); got != 2 {
		t.Errorf("removing container's cpu shares %d, want 2", got)
	}
}
