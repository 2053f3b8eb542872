package scenario

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/faults/clock"
	"github.com/fakecontainerd/fakecontainerd/server"
	"github.com/fakecontainerd/fakecontainerd/shim"
)

// TestProberNamesTheHungContainerInIncident1 runs incident 1's mechanism on
// the fake server: a container exits, its Delete sits in a slow unmount (a
// delay fault on umount2) under the shim's process lock, and an
// UpdateContainerResources holds its status lock while it waits for the
// shim. ListContainers then hangs; the prober must still end its round on
// its own deadlines and name that container, and only it, while the stall
// lasts.
func TestProberNamesTheHungContainerInIncident1(t *testing.T) {
	const scale = 0.1
	dir, err := os.MkdirTemp("", "fcd-probe")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg, err := variantConfig(plan{}, dir, scale)
	if err != nil {
		t.Fatal(err)
	}
	clk, err := clock.New(scale)
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetLevel(logrus.PanicLevel)
	inj := faults.New(clk, logrus.NewEntry(log))
	ctx := context.Background()
	srv, err := server.New(ctx, server.Options{Config: cfg, Clock: clk, Log: logrus.NewEntry(log), Faults: inj})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	// However the test ends, the fault lets go first.
	t.Cleanup(func() { inj.Clear() })
	conn, err := grpc.NewClient("unix://"+cfg.GRPC.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rt := runtime.NewRuntimeServiceClient(conn)
	call := func() context.Context {
		c, cancel := clk.WithTimeout(ctx, time.Hour)
		t.Cleanup(cancel)
		return c
	}

	if _, err := runtime.NewImageServiceClient(conn).PullImage(call(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "busybox:latest"}}); err != nil {
		t.Fatal(err)
	}
	podLabels := map[string]string{labelPodName: "job-1", labelPodNamespace: "default", labelPodUID: "uid-job-1"}
	pc := &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: "job-1", Namespace: "default", Uid: "uid-job-1"},
		Labels:   podLabels, Linux: &runtime.LinuxPodSandboxConfig{},
	}
	pod, err := rt.RunPodSandbox(call(), &runtime.RunPodSandboxRequest{Config: pc})
	if err != nil {
		t.Fatal(err)
	}
	create := func(name string, annotations map[string]string) string {
		resp, err := rt.CreateContainer(call(), &runtime.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, SandboxConfig: pc, Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: name}, Image: &runtime.ImageSpec{Image: "busybox:latest"},
			Labels: merge(podLabels, map[string]string{labelContainerName: name}), Annotations: annotations,
			Linux: &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{CpuShares: 2}},
		}})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return resp.ContainerId
	}
	dying := create("c1", map[string]string{shim.AnnotationExitAfter: "5s", shim.AnnotationExitCode: "137"})
	healthy := create("c2", nil)
	if _, err := inj.Add(faults.PointShimUnmount, faults.Selector{ID: dying}, "delay(1h)", "test"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{dying, healthy} {
		if _, err := rt.StartContainer(call(), &runtime.StartContainerRequest{ContainerId: id}); err != nil {
			t.Fatal(err)
		}
	}
	poll := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s", what)
			}
		}
	}
	poll("c1's Delete reaches the unmount fault", func() bool { return inj.List()[0].Fired > 0 })

	p := NewProber(conn, clk, 10*time.Second, 10*time.Second)
	if r := p.Round(ctx); r.ListErr != nil || len(r.Probes) != 2 || len(r.NewlyHung) != 0 {
		t.Fatalf("round before the update = %+v: want both containers listed and answering", r)
	}

	updated := make(chan struct{})
	go func() {
		defer close(updated)
		rt.UpdateContainerResources(call(), &runtime.UpdateContainerResourcesRequest{
			ContainerId: dying, Linux: &runtime.LinuxContainerResources{CpuShares: 256},
		})
	}()
	poll("the update holds c1's status lock", func() bool {
		rep, _ := srv.Blame()
		for _, l := range rep.Locks {
			for _, h := range l.Holders {
				if h.Op == "UpdateContainerResources" && h.ShimCall != "" {
					return true
				}
			}
		}
		return false
	})

	r := p.Round(ctx)
	select {
	case <-updated:
		t.Fatal("the stall ended before the round did: the test proves nothing")
	default:
	}
	if r.ListErr == nil {
		t.Errorf("ListContainers answered during the stall; want it to hang on c1's status lock")
	}
	if len(r.NewlyHung) != 1 || r.NewlyHung[0].ID != dying || r.NewlyHung[0].Pod != "job-1" || r.NewlyHung[0].Name != "c1" {
		t.Errorf("newly hung %+v, want only %s (job-1/c1)", r.NewlyHung, dying)
	}
	for _, pr := range r.Probes {
		if pr.ID == healthy && (pr.Hung || pr.Err != nil) {
			t.Errorf("healthy c2 probed as %+v", pr)
		}
	}
	if hung := p.Hung(); len(hung) != 1 || hung[0].ID != dying {
		t.Errorf("Hung() = %+v, want %s", hung, dying)
	}
}
