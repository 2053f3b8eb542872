package server

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/faults/clock"
	"github.com/fakecontainerd/fakecontainerd/shim"
)

// withEndpoints serves metrics and debug on unix sockets next to the CRI
// socket.
func withEndpoints(c *configs.Config) {
	dir := filepath.Dir(c.GRPC.Address)
	c.Metrics.Address = filepath.Join(dir, "metrics.sock")
	c.Debug.Address = "unix://" + filepath.Join(dir, "debug.sock")
}

// httpGet fetches path from an HTTP server on a unix socket.
func httpGet(t *testing.T, socket, path string) string {
	t.Helper()
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://fakecontainerd" + path)
	if err != nil {
		t.Fatalf("GET %s on %s: %v", path, socket, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", path, resp.Status, body)
	}
	return string(body)
}

// sample finds one sample in Prometheus text: the line of name whose
// labels include every k="v" given; ok is false if there is none.
func sample(text, name string, labels ...string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, found := strings.CutPrefix(line, name)
		if !found || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(rest, labels[i]+`="`+labels[i+1]+`"`) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64)
		return v, err == nil
	}
	return 0, false
}

// TestMetricsEndpoint: the metrics socket serves every histogram, at
// /v1/metrics (containerd's path) and /metrics, with counts after a
// container's life; the debug socket serves pprof.
func TestMetricsEndpoint(t *testing.T) {
	ts := newTestServer(t, 0.01, withEndpoints)
	if _, err := ts.srv.cri.faults.Add(faults.CRIPoint("Version", false), faults.Selector{}, "delay(1ms)", "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.rt.Version(ts.ctx(time.Minute), &runtime.VersionRequest{}); err != nil {
		t.Fatal(err)
	}
	podID, pc := ts.runPod("metrics")
	id := ts.startContainer(podID, pc, "short", map[string]string{
		shim.AnnotationExitAfter: "1s", shim.AnnotationDirtyBytes: "20MiB", shim.AnnotationDiskThroughput: "10MiB",
	})
	for range 3 {
		if _, err := ts.rt.ListContainers(ts.ctx(time.Minute), &runtime.ListContainersRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ts.rt.ContainerStatus(ts.ctx(time.Minute), &runtime.ContainerStatusRequest{ContainerId: "no-such-container"}); err == nil {
		t.Fatal("ContainerStatus of a missing container succeeded")
	}
	ts.waitState(id, runtime.ContainerState_CONTAINER_EXITED, time.Minute)

	metricsSock := ts.srv.MetricsAddress()
	if metricsSock != ts.cfg.Metrics.Address {
		t.Errorf("MetricsAddress() = %q, want %q", metricsSock, ts.cfg.Metrics.Address)
	}
	text := httpGet(t, metricsSock, "/v1/metrics")
	if alt := httpGet(t, metricsSock, "/metrics"); !strings.Contains(alt, "fakecontainerd_cri_request_duration_seconds") {
		t.Errorf("/metrics does not serve the CRI histogram")
	}
	for _, c := range []struct {
		name   string
		labels []string
	}{
		{"fakecontainerd_cri_request_duration_seconds_count", []string{"method", "ListContainers", "code", "OK"}},
		{"fakecontainerd_cri_request_duration_seconds_count", []string{"method", "RunPodSandbox", "code", "OK"}},
		{"fakecontainerd_cri_request_duration_seconds_count", []string{"method", "ContainerStatus", "code", "NotFound"}},
		{"containerd_cri_container_list_seconds_count", nil},
		// Writes of the status lock are always tracked.
		{"fakecontainerd_status_lock_wait_seconds_count", []string{"op", "StartContainer"}},
		{"fakecontainerd_status_lock_hold_seconds_count", []string{"op", "StartContainer"}},
		{"fakecontainerd_shim_request_duration_seconds_count", []string{"method", "Start"}},
		{"fakecontainerd_shim_request_duration_seconds_count", []string{"method", "Delete"}},
		{"fakecontainerd_fault_firings_total", []string{"point", "cri.Version.before", "action", "delay"}},
		{"fakecontainerd_rootfs_unmount_duration_seconds_count", []string{"volatile", "false"}},
		{"go_goroutines", nil},
	} {
		if v, ok := sample(text, c.name, c.labels...); !ok || v <= 0 {
			t.Errorf("%s%v = %v (found %v), want > 0", c.name, c.labels, v, ok)
		}
	}
	// 20 MiB at 10 MiB/s: about 2 s of unmount, in scenario seconds.
	if sum, _ := sample(text, "fakecontainerd_rootfs_unmount_duration_seconds_sum", "volatile", "false"); sum < 1.5 || sum > 10 {
		t.Errorf("unmount duration sum = %vs, want about 2s of scenario time", sum)
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}

	debugSock := ts.srv.DebugAddress()
	if got := httpGet(t, debugSock, "/debug/pprof/goroutine?debug=1"); !strings.Contains(got, "goroutine profile:") {
		t.Errorf("/debug/pprof/goroutine?debug=1 is not a goroutine profile:\n%.500s", got)
	}
	if got := httpGet(t, debugSock, "/debug/vars"); !strings.Contains(got, "memstats") {
		t.Errorf("/debug/vars has no memstats")
	}

	// Both sockets go away with the server.
	ts.stop()
	for _, sock := range []string{metricsSock, debugSock} {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			t.Errorf("%s still answers after Close", sock)
		}
	}
}

// TestMetricsOffByDefault: no address, no endpoint, no registry.
func TestMetricsOffByDefault(t *testing.T) {
	ts := newTestServer(t, 1, nil)
	if ts.srv.cri.metrics != nil || ts.srv.MetricsRegisterer() != nil || ts.srv.MetricsAddress() != "" || ts.srv.DebugAddress() != "" {
		t.Errorf("metrics or debug on without an address: registerer %v, metrics %q, debug %q",
			ts.srv.MetricsRegisterer(), ts.srv.MetricsAddress(), ts.srv.DebugAddress())
	}
}

// TestMetricsLoopbackTCP: a loopback host:port works, port 0 included.
func TestMetricsLoopbackTCP(t *testing.T) {
	ts := newTestServer(t, 1, func(c *configs.Config) { c.Metrics.Address = "127.0.0.1:0" })
	addr := ts.srv.MetricsAddress()
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("MetricsAddress() = %q, want the bound 127.0.0.1 port", addr)
	}
	resp, err := http.Get("http://" + addr + "/v1/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/metrics: %s", resp.Status)
	}
}

// TestMetricsAddressRefused: an address reachable from the network is
// refused, by config validation and again by the server itself.
func TestMetricsAddressRefused(t *testing.T) {
	cfg, err := configs.Default()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg.Root, cfg.State, cfg.GRPC.Address = filepath.Join(dir, "root"), filepath.Join(dir, "state"), filepath.Join(dir, "cri.sock")
	cfg.Metrics.Address = "0.0.0.0:9100"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "metrics.address") {
		t.Errorf("Validate: %v, want an error naming metrics.address", err)
	}
	cfg.Metrics.Address, cfg.Debug.Address = "", "0.0.0.0:6060"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "debug.address") {
		t.Errorf("Validate: %v, want an error naming debug.address", err)
	}
	for _, c := range []struct{ key, metrics, debug string }{
		{"metrics.address", "0.0.0.0:9100", ""},
		{"debug.address", "", "[::]:6060"},
	} {
		cfg.Metrics.Address, cfg.Debug.Address = c.metrics, c.debug
		srv, err := New(context.Background(), Options{Config: cfg, Clock: clock.Real(), Log: testLogger()})
		if err == nil {
			srv.Close()
			t.Errorf("New with %s %q succeeded", c.key, c.metrics+c.debug)
			continue
		}
		if !strings.Contains(err.Error(), c.key) {
			t.Errorf("New: %v, want an error naming %s", err, c.key)
		}
	}
}

// TestMetricsStatusLockWait: in an incident-1-shaped stall (a shim Delete
// unmounting for a minute under the process lock, an update holding the
// status write lock while its shim Update waits for it), the ListContainers
// that wait for the status lock show in the wait histogram with the
// stall's length, and the update in the hold histogram.
func TestMetricsStatusLockWait(t *testing.T) {
	ts := newTestServer(t, 0.01, withEndpoints)
	podID, pc := ts.runPod("job")
	t0 := ts.clock.Now()
	// 600 MiB at 10 MiB/s: a 60 s unmount from 2 s on.
	id := ts.startContainer(podID, pc, "loop", map[string]string{
		shim.AnnotationExitAfter: "2s", shim.AnnotationExitCode: "137",
		shim.AnnotationDirtyBytes: "600MiB", shim.AnnotationDiskThroughput: "10MiB",
	})
	sleepUntil := func(d time.Duration) { _ = ts.clock.Sleep(context.Background(), d-ts.clock.Since(t0)) }
	sleepUntil(5 * time.Second)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = ts.rt.UpdateContainerResources(ts.ctx(5*time.Minute), &runtime.UpdateContainerResourcesRequest{
			ContainerId: id, Linux: &runtime.LinuxContainerResources{CpuShares: 512},
		})
	}()
	sleepUntil(8 * time.Second)
	var (
		mu       sync.Mutex
		listTook time.Duration
	)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := ts.clock.Now()
			if _, err := ts.rt.ListContainers(ts.ctx(5*time.Minute), &runtime.ListContainersRequest{}); err != nil {
				t.Errorf("ListContainers: %v", err)
			}
			mu.Lock()
			listTook = max(listTook, ts.clock.Since(start))
			mu.Unlock()
		}()
	}
	wg.Wait()
	if listTook < 30*time.Second {
		t.Fatalf("ListContainers took %v: no stall to measure", listTook)
	}

	text := httpGet(t, ts.srv.MetricsAddress(), "/v1/metrics")
	count, _ := sample(text, "fakecontainerd_status_lock_wait_seconds_count", "op", "ListContainers")
	sum, _ := sample(text, "fakecontainerd_status_lock_wait_seconds_sum", "op", "ListContainers")
	if count < 2 || sum < 2*30 {
		t.Errorf("status lock wait of ListContainers: count %v, sum %vs; want 2 waits of about %v", count, sum, listTook)
	}
	// Each stalled list lands in a bucket of 30 s or more.
	if under, _ := sample(text, "fakecontainerd_status_lock_wait_seconds_bucket", "op", "ListContainers", "le", "10"); under > count-2 {
		t.Errorf("%v of %v ListContainers waits under 10s, want the 2 stalled ones above", under, count)
	}
	if hold, _ := sample(text, "fakecontainerd_status_lock_hold_seconds_sum", "op", "UpdateContainerResources"); hold < 30 {
		t.Errorf("status lock hold of UpdateContainerResources: %vs, want the stall's length", hold)
	}
	if n, _ := sample(text, "fakecontainerd_cri_request_duration_seconds_count", "method", "ListContainers", "code", "OK"); n < 2 {
		t.Errorf("ListContainers requests counted: %v, want 2", n)
	}
	if os.Getenv("FCD_SHOW_METRICS") != "" { // to see what a stall looks like
		t.Logf("metrics:\n%s", text)
	}
	if upd, _ := sample(text, "fakecontainerd_shim_request_duration_seconds_sum", "method", "Update"); upd < 30 {
		t.Errorf("shim Update time: %vs, want the wait behind the unmount", upd)
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
}

// TestMetricsWithoutLockTracking: with lock_tracking off the CRI, shim and
// unmount metrics still work; the status lock ones are not recorded.
func TestMetricsWithoutLockTracking(t *testing.T) {
	ts := newTestServer(t, 0.01, func(c *configs.Config) {
		withEndpoints(c)
		c.Plugins.Fake.LockTracking = false
	})
	podID, pc := ts.runPod("untracked")
	ts.startContainer(podID, pc, "c", nil)
	text := httpGet(t, ts.srv.MetricsAddress(), "/v1/metrics")
	if v, _ := sample(text, "fakecontainerd_shim_request_duration_seconds_count", "method", "Start"); v < 1 {
		t.Errorf("shim Start calls counted: %v, want 1 or more", v)
	}
	if _, ok := sample(text, "fakecontainerd_status_lock_wait_seconds_count"); ok {
		t.Errorf("status lock waits recorded without lock tracking")
	}
}

func TestActionKind(t *testing.T) {
	for term, want := range map[string]string{
		"delay(2s)": "delay", "2*error(Unavailable)": "error", "30%delay(2s, 500ms)": "delay",
		"3*50%block": "block", "off": "off", "panic(x*y%z)": "panic", "error(Internal, a*b)": "error",
	} {
		if got := actionKind(term); got != want {
			t.Errorf("actionKind(%q) = %q, want %q", term, got, want)
		}
	}
}
