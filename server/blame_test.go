package server

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/shim"
)

// adminGet calls the admin API over its unix socket.
func (ts *testServer) adminGet(path string, out any) int {
	ts.t.Helper()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", AdminAddress(ts.cfg))
	}}}
	resp, err := client.Get("http://fakecontainerd" + path)
	if err != nil {
		ts.t.Fatalf("admin %s: %v", path, err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode < 300 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			ts.t.Fatalf("admin %s: decode: %v", path, err)
		}
	}
	return resp.StatusCode
}

// TestBlameNamesTheChain stops incident 1 in the middle and asks blame who
// waits on whom: the answer must name every link, from ListContainers to the
// unmount.
func TestBlameNamesTheChain(t *testing.T) {
	ts := newTestServer(t, 0.01, nil)
	podID, pc := ts.runPod("job")
	id := ts.startContainer(podID, pc, "loop", map[string]string{
		shim.AnnotationExitAfter: "5s", shim.AnnotationExitCode: "137",
		shim.AnnotationDirtyBytes: "1200MiB", shim.AnnotationDiskThroughput: "10MiB",
	})
	_ = ts.clock.Sleep(context.Background(), 10*time.Second) // exited; its delete is unmounting

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ts.rt.UpdateContainerResources(ts.ctx(5*time.Minute), &runtime.UpdateContainerResourcesRequest{
			ContainerId: id, Linux: &runtime.LinuxContainerResources{CpuShares: 256},
		})
	}()
	_ = ts.clock.Sleep(context.Background(), 5*time.Second)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts.rt.ListContainers(ts.ctx(10*time.Minute), &runtime.ListContainersRequest{})
		}()
	}

	// Poll until the chain is complete (every goroutine has reached its
	// lock), then check each link.
	var rep BlameReport
	var chain string
	deadline := time.Now().Add(10 * time.Second)
	for {
		rep = BlameReport{}
		if code := ts.adminGet("/v1/blame", &rep); code != http.StatusOK {
			t.Fatalf("blame: HTTP %d", code)
		}
		chain = ""
		for _, c := range rep.Chains {
			if strings.HasPrefix(c, "ListContainers (3 callers)") {
				chain = c
			}
		}
		if strings.Contains(chain, "unmounting") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("blame: %s", chain)
	for _, want := range []string{
		"ListContainers (3 callers) waits on the status lock of container " + id[:8],
		"by UpdateContainerResources",
		"which waits on shim Update",
		"which waits on the process lock",
		"by shim Delete, unmounting rootfs without volatile (1.2 GiB dirty)",
	} {
		if !strings.Contains(chain, want) {
			t.Errorf("blame chain %q does not say %q (all chains: %q)", chain, want, rep.Chains)
		}
	}
	wg.Wait()
	// Once it is over, nothing waits, and the long waits are remembered.
	rep = BlameReport{}
	ts.adminGet("/v1/blame", &rep)
	if len(rep.Chains) != 0 {
		t.Errorf("chains after the stall: %q", rep.Chains)
	}
	found := false
	for _, w := range rep.Longest {
		if w.Op == "ListContainers" && w.Waited > 30*time.Second {
			found = true
		}
	}
	if !found {
		t.Errorf("longest waits %+v lack ListContainers' stall", rep.Longest)
	}
}
