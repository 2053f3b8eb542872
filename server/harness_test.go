package server

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/faults/clock"
	"github.com/fakecontainerd/fakecontainerd/faults/clock/deadline"
)

// testServer is a fakecontainerd served on a socket in a short temp dir,
// reached through the real gRPC client stubs.
type testServer struct {
	t      *testing.T
	logger *logrus.Entry // nil: testLogger()
	dir    string
	cfg    *configs.Config
	clock  clock.Clock
	srv    *Server
	conn   *grpc.ClientConn
	rt     runtime.RuntimeServiceClient
	img    runtime.ImageServiceClient
}

// newTestServer starts a server at the given time scale; mutate may change
// the config first. FCD_TEST_LOG=debug shows the server's log.
func newTestServer(t *testing.T, scale float64, mutate func(*configs.Config)) *testServer {
	t.Helper()
	return newLoggedTestServer(t, scale, mutate, nil)
}

// newLoggedTestServer is newTestServer logging to logger (nil: testLogger).
func newLoggedTestServer(t *testing.T, scale float64, mutate func(*configs.Config), logger *logrus.Entry) *testServer {
	t.Helper()
	dir := testDir(t, "fcd")
	cfg, err := configs.Default()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Root, cfg.State = filepath.Join(dir, "root"), filepath.Join(dir, "state")
	cfg.GRPC.Address = filepath.Join(dir, "cri.sock")
	cfg.Plugins.Fake.TimeScale = scale
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, logger: logger, dir: dir, cfg: cfg, clock: testClock(t, scale)}
	ts.start()
	t.Cleanup(ts.stop)
	return ts
}

// testDir is a test server's directory: on a tmpfs (/dev/shm) if there is
// one, as the scenario runner's. The server fsyncs its metadata and status
// checkpoints; on a busy disk one fsync can wait longer than a call's
// deadline at a small time scale, and I/O waits are not starvation the
// clock leaves out. Unix socket paths must stay short (t.TempDir() can be
// too deep).
func testDir(tb testing.TB, prefix string) string {
	dir, err := os.MkdirTemp("/dev/shm", prefix)
	if err != nil {
		if dir, err = os.MkdirTemp("", prefix); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// testClock is the clock of a test server: below time scale 1, one that
// leaves out the time the machine starved the test (clock.Meter), as a
// scenario run's does, so a busy machine does not stretch the figures.
func testClock(tb testing.TB, scale float64) clock.Clock {
	if scale == 1 {
		return clock.Real()
	}
	clk, err := clock.NewDiscounting(scale)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(clk.Stop)
	return clk
}

// testLogger discards the server's log unless FCD_TEST_LOG names a level:
// the incident tests make the server log errors on purpose, and a failing
// test's output should be its failure.
func testLogger() *logrus.Entry {
	log := logrus.New()
	if lvl, err := logrus.ParseLevel(os.Getenv("FCD_TEST_LOG")); err == nil {
		log.SetLevel(lvl)
	} else {
		log.SetOutput(io.Discard)
	}
	return logrus.NewEntry(log)
}

func (ts *testServer) start() {
	t := ts.t
	t.Helper()
	logger := ts.logger
	if logger == nil {
		logger = testLogger()
	}
	srv, err := New(context.Background(), Options{Config: ts.cfg, Clock: ts.clock, Log: logger})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	go srv.Serve()
	conn, err := grpc.NewClient("unix://"+ts.cfg.GRPC.Address, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUnaryInterceptor(deadline.UnaryClientGRPC))
	if err != nil {
		t.Fatal(err)
	}
	ts.srv, ts.conn = srv, conn
	ts.rt, ts.img = runtime.NewRuntimeServiceClient(conn), runtime.NewImageServiceClient(conn)
}

func (ts *testServer) stop() {
	if ts.conn != nil {
		ts.conn.Close()
		ts.conn = nil
	}
	if ts.srv != nil {
		ts.srv.Close()
		ts.srv = nil
	}
}

// restart stops the server and starts a new one on the same root and state.
func (ts *testServer) restart() {
	ts.stop()
	ts.start()
}

// ctx is a call context with a deadline in scenario time.
func (ts *testServer) ctx(d time.Duration) context.Context {
	ctx, cancel := ts.clock.WithTimeout(context.Background(), d)
	ts.t.Cleanup(cancel)
	return ctx
}

// findHolder polls blame (the admin API) for up to within until a tracked
// lock's holder matches; it returns that holder, or false.
func (ts *testServer) findHolder(within time.Duration, match func(lock string, h UseEntry) bool) (UseEntry, bool) {
	ts.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var rep BlameReport
		if code := ts.adminGet("/v1/blame", &rep); code != http.StatusOK {
			ts.t.Fatalf("blame: HTTP %d", code)
		}
		for _, l := range rep.Locks {
			for _, h := range l.Holders {
				if match(l.Lock, h) {
					return h, true
				}
			}
		}
		if time.Now().After(deadline) {
			return UseEntry{}, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitForHolder waits until a tracked lock is held by op.
func (ts *testServer) waitForHolder(op string) {
	ts.t.Helper()
	if _, ok := ts.findHolder(time.Minute, func(_ string, h UseEntry) bool { return h.Op == op }); !ok {
		ts.t.Fatalf("no tracked lock held by %s after a minute", op)
	}
}

func podConfig(name string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: name, Namespace: "default", Uid: name + "-uid", Attempt: 1},
		Hostname:     name,
		LogDirectory: "",
		Labels:       map[string]string{"io.kubernetes.pod.name": name, "io.kubernetes.pod.uid": name + "-uid"},
		Linux:        &runtime.LinuxPodSandboxConfig{},
	}
}

func containerConfig(name string, annotations map[string]string) *runtime.ContainerConfig {
	return &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name},
		Image:    &runtime.ImageSpec{Image: "busybox:latest"},
		// Runs until stopped at no cost: the process model interprets
		// commands, and a loop at a small time scale is real CPU.
		Command:     []string{"sleep", "infinity"},
		Labels:      map[string]string{"io.kubernetes.container.name": name},
		Annotations: annotations,
		Linux:       &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{CpuShares: 2, MemoryLimitInBytes: 64 << 20}},
	}
}

// runPod pulls busybox, runs a pod and returns its id and config.
func (ts *testServer) runPod(name string) (string, *runtime.PodSandboxConfig) {
	t := ts.t
	t.Helper()
	if _, err := ts.img.PullImage(ts.ctx(time.Minute), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "busybox:latest"}}); err != nil {
		t.Fatalf("pull: %v", err)
	}
	pc := podConfig(name)
	resp, err := ts.rt.RunPodSandbox(ts.ctx(time.Minute), &runtime.RunPodSandboxRequest{Config: pc})
	if err != nil {
		t.Fatalf("runp %s: %v", name, err)
	}
	return resp.PodSandboxId, pc
}

// startContainer creates and starts a container in a pod.
func (ts *testServer) startContainer(podID string, pc *runtime.PodSandboxConfig, name string, annotations map[string]string) string {
	t := ts.t
	t.Helper()
	id := ts.createContainer(podID, pc, name, annotations)
	if _, err := ts.rt.StartContainer(ts.ctx(time.Minute), &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return id
}

func (ts *testServer) createContainer(podID string, pc *runtime.PodSandboxConfig, name string, annotations map[string]string) string {
	t := ts.t
	t.Helper()
	resp, err := ts.rt.CreateContainer(ts.ctx(time.Minute), &runtime.CreateContainerRequest{
		PodSandboxId: podID, Config: containerConfig(name, annotations), SandboxConfig: pc,
	})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return resp.ContainerId
}

func (ts *testServer) containerState(id string) runtime.ContainerState {
	ts.t.Helper()
	resp, err := ts.rt.ContainerStatus(ts.ctx(time.Minute), &runtime.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		ts.t.Fatalf("status %s: %v", id, err)
	}
	return resp.Status.State
}

// waitState polls until the container reaches want, in scenario time.
func (ts *testServer) waitState(id string, want runtime.ContainerState, within time.Duration) {
	ts.t.Helper()
	deadline := ts.clock.Now().Add(within)
	for {
		got := ts.containerState(id)
		if got == want {
			return
		}
		if ts.clock.Now().After(deadline) {
			ts.t.Fatalf("container %s is %v after %v, want %v", id, got, within, want)
		}
		_ = ts.clock.Sleep(context.Background(), 100*time.Millisecond)
	}
}
