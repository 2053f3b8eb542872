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

	"github.com/fakecontainerd/fakecontainerd/faults"
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
	// Once it is over, nothing waits (after the exit's own short holds:
	// the shim's Kill, State and Wait take the process lock in turn), and
	// the long waits are remembered.
	settle := time.Now().Add(10 * time.Second)
	for {
		rep = BlameReport{}
		ts.adminGet("/v1/blame", &rep)
		if len(rep.Chains) == 0 || time.Now().After(settle) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
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

// TestBlameNamesTheFault: when a delay or block fault is what holds a lock
// or a call, blame names the fault (id, point, spec), not the work the
// point stands for; and calls held in a fault with no lock between them
// and their caller are listed as waits too.
func TestBlameNamesTheFault(t *testing.T) {
	type calls struct{ updates, lists, statuses int }
	tests := []struct {
		name string
		// annotations of the container; its fault is one of them, or
		// point and spec, armed once the container runs.
		annotations map[string]string
		point, spec string
		// settle is how long (scenario time) to wait before the calls.
		settle time.Duration
		calls  calls
		// want must all be in one chain, which starts with prefix.
		prefix  string
		want    []string
		notWant []string
		// chains is how many chains blame must show (0: not checked).
		chains int
	}{
		{
			name: "delay on the unmount holds the process lock",
			annotations: map[string]string{
				shim.AnnotationExitAfter: "5s", shim.AnnotationExitCode: "137",
				"fakecontainerd.io/fault.shim.unmount": "delay(20m)",
			},
			settle: 10 * time.Second,
			calls:  calls{updates: 1, lists: 3},
			prefix: "ListContainers (3 callers) waits on the status lock",
			want: []string{
				"by UpdateContainerResources, which waits on shim Update, which waits on the process lock",
				"by shim Delete, inside fault f1 (shim.unmount delay(20m0s)) for ",
			},
			notWant: []string{"unmounting rootfs"},
			// The exit handler's State calls wait on the process lock too.
			chains: 0,
		},
		{
			name:        "block on shim Update holds the status lock's holder",
			annotations: map[string]string{"fakecontainerd.io/fault.shim.Update": "block"},
			calls:       calls{updates: 1, lists: 2},
			prefix:      "ListContainers (2 callers) waits on the status lock",
			want:        []string{"by UpdateContainerResources, which waits on shim Update, held inside fault f1 (shim.Update block) for "},
			chains:      1,
		},
		{
			name:  "block at the status fsync holds the status lock's holder",
			point: faults.PointStatusFsync, spec: "block",
			calls:  calls{updates: 1, lists: 2},
			prefix: "ListContainers (2 callers) waits on the status lock",
			want:   []string{"by UpdateContainerResources, inside fault f1 (status.fsync block) for "},
			chains: 1,
		},
		{
			name:  "block at the status fsync with nobody waiting",
			point: faults.PointStatusFsync, spec: "block",
			calls:  calls{updates: 1},
			prefix: "UpdateContainerResources waits inside fault f1 (status.fsync block) on container ",
			want:   []string{", holding the status lock of container "},
			chains: 1,
		},
		{
			name:        "block on container.status holds two calls and no lock",
			annotations: map[string]string{"fakecontainerd.io/fault.container.status": "block"},
			calls:       calls{statuses: 2},
			prefix:      "ContainerStatus (2 callers) waits inside fault f1 (container.status block) on container ",
			want:        []string{", held up to "},
			chains:      1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, 0.01, nil)
			podID, pc := ts.runPod("job")
			id := ts.startContainer(podID, pc, "c1", tt.annotations)
			if tt.point != "" {
				if _, err := ts.srv.cri.faults.Add(tt.point, faults.Selector{ID: id}, tt.spec, "test"); err != nil {
					t.Fatal(err)
				}
			}
			_ = ts.clock.Sleep(context.Background(), tt.settle)

			var wg sync.WaitGroup
			call := func(n int, f func()) {
				for range n {
					wg.Add(1)
					go func() { defer wg.Done(); f() }()
				}
			}
			call(tt.calls.updates, func() {
				ts.rt.UpdateContainerResources(ts.ctx(time.Hour), &runtime.UpdateContainerResourcesRequest{
					ContainerId: id, Linux: &runtime.LinuxContainerResources{CpuShares: 256},
				})
			})
			if tt.calls.updates > 0 {
				_ = ts.clock.Sleep(context.Background(), 5*time.Second) // it holds the status lock
			}
			call(tt.calls.lists, func() { ts.rt.ListContainers(ts.ctx(time.Hour), &runtime.ListContainersRequest{}) })
			call(tt.calls.statuses, func() {
				ts.rt.ContainerStatus(ts.ctx(time.Hour), &runtime.ContainerStatusRequest{ContainerId: id})
			})
			// Release whatever the fault holds however the test ends.
			defer wg.Wait()
			defer ts.srv.cri.faults.Clear()

			var rep BlameReport
			chain := ""
			complete := func() bool {
				if chain == "" {
					return false
				}
				for _, w := range tt.want {
					if !strings.Contains(chain, w) {
						return false
					}
				}
				return true
			}
			for deadline := time.Now().Add(20 * time.Second); !complete() && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				rep = BlameReport{}
				if code := ts.adminGet("/v1/blame", &rep); code != http.StatusOK {
					t.Fatalf("blame: HTTP %d", code)
				}
				chain = ""
				for _, c := range rep.Chains {
					if strings.HasPrefix(c, tt.prefix) {
						chain = c
					}
				}
			}
			t.Logf("blame: %q", rep.Chains)
			if chain == "" {
				t.Fatalf("no chain starts with %q: %q", tt.prefix, rep.Chains)
			}
			for _, w := range tt.want {
				if !strings.Contains(chain, w) {
					t.Errorf("chain %q does not say %q", chain, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(chain, w) {
					t.Errorf("chain %q says %q", chain, w)
				}
			}
			if tt.chains > 0 && len(rep.Chains) != tt.chains {
				t.Errorf("%d chains %q, want %d", len(rep.Chains), rep.Chains, tt.chains)
			}
			if len(rep.Faults) == 0 || rep.Faults[0].FaultID != "f1" || rep.Faults[0].ContainerID != id {
				t.Errorf("faults %+v, want f1 on %s first", rep.Faults, id)
			}
		})
	}
}

// TestOpsPhraseAgrees: one operation waits, several wait.
func TestOpsPhraseAgrees(t *testing.T) {
	tests := []struct {
		ops  []string
		want string
	}{
		{[]string{"ListContainers"}, "ListContainers waits"},
		{[]string{"ListContainers", "ListContainers", "ListContainers"}, "ListContainers (3 callers) waits"},
		{[]string{"ListContainers", "ContainerStatus", "ListContainers"}, "ListContainers (2 callers) and ContainerStatus wait"},
		{[]string{"A", "B", "C", "B"}, "A, B (2 callers) and C wait"},
	}
	for _, tt := range tests {
		subject, verb := opsPhrase(tt.ops)
		if got := subject + " " + verb; got != tt.want {
			t.Errorf("opsPhrase(%q) = %q, want %q", tt.ops, got, tt.want)
		}
	}
}
