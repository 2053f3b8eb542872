package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/faults"
)

// The soak: soakClients clients doing mixed lifecycle, list and update
// calls for FCD_SOAK_DURATION (3 s by default; `make soak` runs 10 minutes
// with -race) while a chaos loop arms and clears random faults through the
// admin API. At the end every fault is cleared, no call is left blocked in
// a fault, the goroutine count is back to its baseline, the heap did not
// grow from the first third of the run to the last, and the server still
// serves every call promptly.

const (
	soakClients = 20
	// soakGoroutineSlack: once every client connection, admin connection
	// and pod is gone, what may still be winding down is grpc-go's and
	// net/http's per-connection goroutines of connections closed a moment
	// ago; the settle loop waits for them, the slack covers a straggler
	// or two without hiding a leak (one per pod or per call would be
	// hundreds).
	soakGoroutineSlack = 4
	// soakHeapGrowth is how much the live heap may grow from the first
	// third of the run to the last before it counts as growing without
	// bound: the stores hold a bounded population (each client keeps at
	// most a few pods), so a steady state must not keep climbing.
	soakHeapGrowth = 1.5
	soakHeapSlack  = 16 << 20
)

func soakDuration(t *testing.T) time.Duration {
	v := os.Getenv("FCD_SOAK_DURATION")
	if v == "" {
		return 3 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("FCD_SOAK_DURATION=%q: want a positive duration", v)
	}
	return d
}

// adminClient talks to the admin API as the socket's owner.
type soakAdmin struct {
	http *http.Client
	tr   *http.Transport
}

func newSoakAdmin(path string) *soakAdmin {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &soakAdmin{http: &http.Client{Transport: tr, Timeout: 10 * time.Second}, tr: tr}
}

func (a *soakAdmin) do(method, path string, q url.Values, body, out any) error {
	var rd *bytes.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	} else {
		rd = bytes.NewReader(nil)
	}
	u := "http://admin" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e ErrorResponse
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("admin %s %s: %s: %s", method, path, resp.Status, e.Error)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// soakClient is one client with its own connection and its own pods.
type soakClient struct {
	n     int
	ts    *testServer
	rng   *rand.Rand
	conn  *grpc.ClientConn
	rt    runtime.RuntimeServiceClient
	img   runtime.ImageServiceClient
	pods  map[string]*runtime.PodSandboxConfig
	ctrs  map[string]string // id -> pod
	seq   int
	calls atomic.Int64
	fails atomic.Int64
}

func pickKey[V any](rng *rand.Rand, m map[string]V) (string, bool) {
	if len(m) == 0 {
		return "", false
	}
	i := rng.IntN(len(m))
	for k := range m {
		if i == 0 {
			return k, true
		}
		i--
	}
	return "", false
}

// step makes one random call. A call gets 3 s of wall time: injected
// delays and blocks make some of them time out, as kubelet's do.
func (c *soakClient) step() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c.seq++
	var err error
	op := c.rng.IntN(100)
	switch {
	case op < 8 && len(c.pods) < 3 || len(c.pods) == 0:
		pc := podConfig(fmt.Sprintf("soak%d-%d", c.n, c.seq))
		var resp *runtime.RunPodSandboxResponse
		if resp, err = c.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: pc}); err == nil {
			c.pods[resp.PodSandboxId] = pc
		}
	case op < 12:
		pod, _ := pickKey(c.rng, c.pods)
		if _, err = c.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err == nil {
			delete(c.pods, pod)
			for id, p := range c.ctrs {
				if p == pod {
					delete(c.ctrs, id)
				}
			}
		}
	case op < 14:
		pod, _ := pickKey(c.rng, c.pods)
		_, err = c.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod})
	case op < 24 && len(c.ctrs) < 6:
		pod, _ := pickKey(c.rng, c.pods)
		var resp *runtime.CreateContainerResponse
		cfg := containerConfig(fmt.Sprintf("c%d", c.seq), nil)
		if c.rng.IntN(4) == 0 {
			cfg.Annotations = map[string]string{"fakecontainerd.io/exit-after": fmt.Sprintf("%ds", 1+c.rng.IntN(30))}
		}
		if resp, err = c.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: c.pods[pod]}); err == nil {
			c.ctrs[resp.ContainerId] = pod
		}
	case op < 34:
		if id, ok := pickKey(c.rng, c.ctrs); ok {
			_, err = c.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id})
		}
	case op < 40:
		if id, ok := pickKey(c.rng, c.ctrs); ok {
			_, err = c.rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: int64(c.rng.IntN(3))})
		}
	case op < 46:
		if id, ok := pickKey(c.rng, c.ctrs); ok {
			if _, err = c.rt.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err == nil {
				delete(c.ctrs, id)
			}
		}
	case op < 56:
		if id, ok := pickKey(c.rng, c.ctrs); ok {
			_, err = c.rt.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{
				ContainerId: id, Linux: &runtime.LinuxContainerResources{CpuShares: int64(2 + c.rng.IntN(1024)), MemoryLimitInBytes: int64(64+c.rng.IntN(64)) << 20},
			})
		}
	case op < 72:
		_, err = c.rt.ListContainers(ctx, &runtime.ListContainersRequest{})
	case op < 80:
		_, err = c.rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	case op < 88:
		if id, ok := pickKey(c.rng, c.ctrs); ok {
			_, err = c.rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id, Verbose: c.rng.IntN(2) == 0})
		}
	case op < 92:
		_, err = c.rt.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{})
	case op < 95:
		if id, ok := pickKey(c.rng, c.ctrs); ok {
			_, err = c.rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"true"}, Timeout: 1})
		}
	case op < 98:
		_, err = c.img.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: fmt.Sprintf("soak%d:latest", c.rng.IntN(5))}})
	default:
		_, err = c.img.ListImages(ctx, &runtime.ListImagesRequest{})
	}
	c.calls.Add(1)
	if err != nil {
		c.fails.Add(1)
	}
}

// soakSpecs are the faults the chaos loop arms (scenario time: at
// criScale, 10s is 100 ms of wall time).
var soakSpecs = []string{
	"delay(10s)", "delay(3s, 2s)", "30%delay(20s)", "2*delay(30s)->off", "error(Unavailable)",
	"3*error(DeadlineExceeded)->off", "50%error(Internal, soak)", "block", "1*block->delay(1s)",
}

// TestSoak is the soak; FCD_SOAK_DURATION sets how long it runs.
func TestSoak(t *testing.T) {
	dur := soakDuration(t)
	ts := newTestServer(t, criScale, nil)
	if _, err := ts.img.PullImage(ts.ctx(time.Minute), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "busybox:latest"}}); err != nil {
		t.Fatal(err)
	}
	baseline := goroutineBaseline()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %v, %d clients", seed, dur, soakClients)

	admin := newSoakAdmin(AdminAddress(ts.cfg))
	points := faults.Points()
	var (
		stop            atomic.Bool
		wg              sync.WaitGroup
		armed, released atomic.Int64
		adminErrs       atomic.Int64
	)
	clients := make([]*soakClient, soakClients)
	for n := range clients {
		conn, err := grpc.NewClient("unix://"+ts.cfg.GRPC.Address, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		c := &soakClient{
			n: n, ts: ts, rng: rand.New(rand.NewPCG(seed, uint64(n))), conn: conn,
			rt: runtime.NewRuntimeServiceClient(conn), img: runtime.NewImageServiceClient(conn),
			pods: map[string]*runtime.PodSandboxConfig{}, ctrs: map[string]string{},
		}
		clients[n] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				c.step()
			}
		}()
	}
	// Chaos: arm a random fault at a random point, clear or release it
	// a little later; a few at a time.
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		rng := rand.New(rand.NewPCG(seed, 999))
		type live struct {
			id    string
			until time.Time
		}
		var active []live
		for !stop.Load() {
			if len(active) < 4 {
				target := "all"
				if rng.IntN(3) == 0 {
					target = fmt.Sprintf("pod=soak%d-", rng.IntN(soakClients)) // matches no pod exactly: a miss
				}
				var info faults.Info
				req := FaultRequest{Point: points[rng.IntN(len(points))], Target: target, Spec: soakSpecs[rng.IntN(len(soakSpecs))]}
				if err := admin.do(http.MethodPost, "/v1/faults", nil, req, &info); err != nil {
					adminErrs.Add(1)
					t.Logf("admin: arm %+v: %v", req, err)
				} else {
					armed.Add(1)
					active = append(active, live{info.ID, time.Now().Add(time.Duration(50+rng.IntN(400)) * time.Millisecond)})
				}
			}
			now := time.Now()
			keep := active[:0]
			for _, f := range active {
				if now.Before(f.until) {
					keep = append(keep, f)
					continue
				}
				if rng.IntN(2) == 0 {
					var r ReleaseResponse
					if err := admin.do(http.MethodPost, "/v1/faults/release", url.Values{"id": {f.id}}, nil, &r); err == nil {
						released.Add(int64(r.Released))
					}
				}
				if err := admin.do(http.MethodDelete, "/v1/faults", url.Values{"id": {f.id}}, nil, nil); err != nil {
					adminErrs.Add(1)
					t.Logf("admin: clear %s: %v", f.id, err)
				}
			}
			active = keep
			time.Sleep(time.Duration(10+rng.IntN(40)) * time.Millisecond)
		}
	}()
	// The heap, after a GC, sampled through the run.
	var heap []uint64
	sampleEvery := max(dur/30, 100*time.Millisecond)
	for end := time.Now().Add(dur); time.Now().Before(end); {
		time.Sleep(sampleEvery)
		goruntime.GC()
		var ms goruntime.MemStats
		goruntime.ReadMemStats(&ms)
		heap = append(heap, ms.HeapAlloc)
	}
	stop.Store(true)
	// The chaos loop stops at once (it never waits on a fault); clearing
	// everything before it has stopped would race its own clears.
	<-chaosDone

	// Every injected stall is cleared: with no fault left, every call
	// ends and every client stops.
	if err := admin.do(http.MethodDelete, "/v1/faults", nil, nil, nil); err != nil {
		buf := make([]byte, 8<<20)
		t.Fatalf("clear all faults: %v\n%s", err, buf[:goruntime.Stack(buf, true)])
	}
	stopped := make(chan struct{})
	go func() {
		wg.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		buf := make([]byte, 4<<20)
		t.Fatalf("clients still busy 30s after the soak ended and every fault was cleared\n%s", buf[:goruntime.Stack(buf, true)])
	}
	var left []faults.Info
	if err := admin.do(http.MethodGet, "/v1/faults", nil, nil, &left); err != nil || len(left) > 0 {
		t.Errorf("faults after clearing all: %v (%v)", left, err)
	}
	// No goroutine is still held by a fault (a delay or block whose fault
	// is gone must have let go).
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 8<<20)
		stacks := string(buf[:goruntime.Stack(buf, true)])
		if !strings.Contains(stacks, "faults.(*Injector).act") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls still held by a cleared fault:\n%s", stacks)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The server still answers everything, promptly.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	listStart := time.Now()
	all, err := ts.rt.ListContainers(ctx, &runtime.ListContainersRequest{})
	if err != nil {
		t.Fatalf("ListContainers after the soak: %v", err)
	}
	if took := time.Since(listStart); took > 2*time.Second {
		t.Errorf("ListContainers after the soak took %v: a status lock is still held", took)
	}
	for _, c := range all.Containers {
		if _, err := ts.rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: c.Id}); err != nil {
			t.Errorf("ContainerStatus %s after the soak: %v", c.Id, err)
		}
	}
	podID, pc := ts.runPod("after-soak")
	id := ts.startContainer(podID, pc, "c", nil)
	ts.criStop(id, 1)

	// Clean up as kubelet would; every pod goes.
	pods, err := ts.rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if _, err := ts.rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Errorf("RemovePodSandbox %s after the soak: %v", p.Id, err)
		}
	}
	if n := ts.srv.cri.containerStore.Len(); n != 0 {
		t.Errorf("%d containers left after removing every pod", n)
	}
	for _, c := range clients {
		c.conn.Close()
	}
	admin.tr.CloseIdleConnections()

	after := settleGoroutines(baseline + soakGoroutineSlack)
	var calls, fails int64
	for _, c := range clients {
		calls += c.calls.Load()
		fails += c.fails.Load()
	}
	var firings uint64
	for _, n := range ts.srv.cri.faults.Counts() {
		firings += n
	}
	third := max(len(heap)/3, 1)
	mean := func(s []uint64) uint64 {
		var sum uint64
		for _, v := range s {
			sum += v
		}
		return sum / uint64(max(len(s), 1))
	}
	first, last := mean(heap[:third]), mean(heap[len(heap)-third:])
	t.Logf("soak %v: %d calls (%d failed or timed out), %d faults armed, %d firings, %d blocked calls released, %d admin errors; goroutines %d before, %d after; heap first third %.1f MiB, last third %.1f MiB (%d samples)",
		dur, calls, fails, armed.Load(), firings, released.Load(), adminErrs.Load(), baseline, after,
		float64(first)/(1<<20), float64(last)/(1<<20), len(heap))
	if after > baseline+soakGoroutineSlack {
		buf := make([]byte, 4<<20)
		t.Errorf("%d goroutines after the soak, baseline %d\n%s", after, baseline, buf[:goruntime.Stack(buf, true)])
	}
	if float64(last) > float64(first)*soakHeapGrowth+soakHeapSlack {
		t.Errorf("heap grew from %d to %d bytes between the first and last third of the soak", first, last)
	}
	if calls < soakClients || armed.Load() == 0 || firings == 0 {
		t.Errorf("the soak did too little to mean anything: %d calls, %d faults, %d firings", calls, armed.Load(), firings)
	}
	if adminErrs.Load() > 0 {
		t.Errorf("%d admin API calls failed", adminErrs.Load())
	}
}

// TestFailedRunPodSandboxLeavesNoShim: a RunPodSandbox whose task create
// fails (runc create failing in the shim) has already started the pod's
// shim; the failed call must shut it down again. The soak found them
// piling up, a ttrpc server and its goroutines each.
func TestFailedRunPodSandboxLeavesNoShim(t *testing.T) {
	for _, point := range []string{faults.PointSandboxCreate, faults.ShimPoint("Create"), faults.ShimPoint("Start")} {
		t.Run(point, func(t *testing.T) {
			ts := newTestServer(t, criScale, nil)
			if _, err := ts.img.PullImage(ts.ctx(time.Minute), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "registry.k8s.io/pause:3.10"}}); err != nil {
				t.Fatal(err)
			}
			before := goroutineBaseline()
			if _, err := ts.srv.cri.faults.Add(point, faults.Selector{}, "error(Internal, runc create failed)", "test"); err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				_, err := ts.rt.RunPodSandbox(ts.ctx(time.Minute), &runtime.RunPodSandboxRequest{Config: podConfig(fmt.Sprintf("p%d", i))})
				if err == nil {
					t.Fatal("RunPodSandbox succeeded with its task create failing")
				}
			}
			if after := settleGoroutines(before + goroutineSlack); after > before+goroutineSlack {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines after 5 failed RunPodSandbox, %d before: their shims were left running\n%s", after, before, buf[:goruntime.Stack(buf, true)])
			}
			if socks, _ := os.ReadDir(filepath.Join(ts.cfg.State, "s")); len(socks) > 0 {
				t.Errorf("shim sockets left: %d", len(socks))
			}
		})
	}
}
