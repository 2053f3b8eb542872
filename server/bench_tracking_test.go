package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// The node size measured: 1,000 running containers in 50 pods.
const (
	benchPods          = 50
	benchContainersPer = 20
)

// BenchmarkListContainersTracking measures what lock tracking (and the
// metrics) cost a healthy ListContainers of 1,000 running containers,
// through the real gRPC client:
//
//	go test -run XXX -bench ListContainersTracking -benchtime 200x ./server/
//
// Uncontended status reads are not tracked, so tracking=on should cost
// next to nothing over tracking=off. The three servers are set up once and
// shared by the sub-benchmarks; "interleaved" calls them in turn, one call
// each per iteration, so that load from elsewhere on the machine falls on
// all of them alike, and reports each one's ns per call and the ratios
// (the figures to quote).
func BenchmarkListContainersTracking(b *testing.B) {
	type variant struct {
		name              string
		tracking, metrics bool
		rt                runtime.RuntimeServiceClient
	}
	variants := []*variant{
		{name: "tracking=off"},
		{name: "tracking=on", tracking: true},
		{name: "tracking=on,metrics=on", tracking: true, metrics: true},
	}
	// Set up here, on the parent: a sub-benchmark's cleanup would close
	// its server before the interleaved run.
	rts := make([]runtime.RuntimeServiceClient, len(variants))
	for i, v := range variants {
		v.rt = benchServer(b, v.tracking, v.metrics)
		rts[i] = v.rt
	}
	populate(b, rts)
	list := func(b *testing.B, rt runtime.RuntimeServiceClient) {
		resp, err := rt.ListContainers(context.Background(), &runtime.ListContainersRequest{})
		if err != nil {
			b.Fatal(err)
		}
		if n := len(resp.Containers); n != benchPods*benchContainersPer {
			b.Fatalf("listed %d containers, want %d", n, benchPods*benchContainersPer)
		}
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			for b.Loop() {
				list(b, v.rt)
			}
		})
	}
	b.Run("interleaved", func(b *testing.B) {
		took := make([]time.Duration, len(variants))
		calls := 0
		for b.Loop() {
			// The order rotates, so no variant is always first.
			for j := range rts {
				i := (calls + j) % len(rts)
				start := time.Now()
				list(b, rts[i])
				took[i] += time.Since(start)
			}
			calls++
		}
		perCall := func(i int) float64 { return float64(took[i].Nanoseconds()) / float64(calls) }
		b.ReportMetric(perCall(0), "off-ns/call")
		b.ReportMetric(perCall(1), "on-ns/call")
		b.ReportMetric(perCall(2), "on+metrics-ns/call")
		b.ReportMetric(perCall(1)/perCall(0), "on/off")
		b.ReportMetric(perCall(2)/perCall(0), "on+metrics/off")
	})
}

// benchServer starts a server and returns its runtime client, with
// busybox pulled and no pods yet.
func benchServer(b *testing.B, tracking, metrics bool) runtime.RuntimeServiceClient {
	b.Helper()
	dir, err := os.MkdirTemp("", "fcdb")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	cfg, err := configs.Default()
	if err != nil {
		b.Fatal(err)
	}
	cfg.Root, cfg.State = filepath.Join(dir, "root"), filepath.Join(dir, "state")
	cfg.GRPC.Address = filepath.Join(dir, "cri.sock")
	cfg.Plugins.Fake.LockTracking = tracking
	if metrics {
		cfg.Metrics.Address = filepath.Join(dir, "metrics.sock")
	}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	srv, err := New(context.Background(), Options{Config: cfg, Clock: clock.Real(), Log: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve()
	b.Cleanup(srv.Close)
	conn, err := grpc.NewClient("unix://"+cfg.GRPC.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	img := runtime.NewImageServiceClient(conn)
	if _, err := img.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "busybox:latest"}}); err != nil {
		b.Fatal(err)
	}
	return runtime.NewRuntimeServiceClient(conn)
}

// populate runs the same 1,000 running containers in 50 pods on every
// server, in lockstep: each pod and each container is made on all of them
// in turn, so their objects interleave on the heap. (Servers filled one
// after another differ by 10% or more in ListContainers time by the order
// they were filled in alone, whatever their config.) The work runs on 16
// goroutines: the metadata database's fsyncs are what a one-by-one set-up
// would wait on.
func populate(b *testing.B, rts []runtime.RuntimeServiceClient) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	podIDs := make([][]string, benchPods) // [pod][server]
	pcs := make([]*runtime.PodSandboxConfig, benchPods)
	parallel(b, benchPods, func(p int) error {
		pcs[p] = podConfig(fmt.Sprintf("bench-%02d", p))
		podIDs[p] = make([]string, len(rts))
		for s, rt := range rts {
			resp, err := rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: pcs[p]})
			if err != nil {
				return err
			}
			podIDs[p][s] = resp.PodSandboxId
		}
		return nil
	})
	parallel(b, benchPods*benchContainersPer, func(n int) error {
		p, i := n/benchContainersPer, n%benchContainersPer
		for s, rt := range rts {
			resp, err := rt.CreateContainer(ctx, &runtime.CreateContainerRequest{
				PodSandboxId: podIDs[p][s], Config: containerConfig(fmt.Sprintf("c%02d", i), nil), SandboxConfig: pcs[p],
			})
			if err != nil {
				return err
			}
			if _, err := rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
				return err
			}
		}
		return nil
	})
	b.Logf("%d servers with %d pods and %d running containers each, set up in %v",
		len(rts), benchPods, benchPods*benchContainersPer, time.Since(start).Round(time.Millisecond))
}

// parallel runs f(0..n-1) on 16 goroutines and fails b on the first error.
func parallel(b *testing.B, n int, f func(int) error) {
	b.Helper()
	work := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := f(i); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}
