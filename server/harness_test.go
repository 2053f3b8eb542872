package server

import (
	"context"
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
)

// testServer is a fakecontainerd served on a socket in a short temp dir,
// reached through the real gRPC client stubs.
type testServer struct {
	t     *testing.T
	dir   string
	cfg   *configs.Config
	clock clock.Clock
	srv   *Server
	conn  *grpc.ClientConn
	rt    runtime.RuntimeServiceClient
	img   runtime.ImageServiceClient
}

// newTestServer starts a server at the given time scale; mutate may change
// the config first. FCD_TEST_LOG=debug shows the server's log.
func newTestServer(t *testing.T, scale float64, mutate func(*configs.Config)) *testServer {
	t.Helper()
	// Unix socket paths are short; t.TempDir() can be too deep.
	dir, err := os.MkdirTemp("", "fcd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
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
	clk, err := clock.New(scale)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, dir: dir, cfg: cfg, clock: clk}
	ts.start()
	t.Cleanup(ts.stop)
	return ts
}

func testLogger() *logrus.Entry {
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	if lvl, err := logrus.ParseLevel(os.Getenv("FCD_TEST_LOG")); err == nil {
		log.SetLevel(lvl)
	}
	return logrus.NewEntry(log)
}

func (ts *testServer) start() {
	t := ts.t
	t.Helper()
	srv, err := New(context.Background(), Options{Config: ts.cfg, Clock: ts.clock, Log: testLogger()})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	go srv.Serve()
	conn, err := grpc.NewClient("unix://"+ts.cfg.GRPC.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
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
