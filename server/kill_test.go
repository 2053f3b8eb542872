package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/faults"
)

// adminPost sends one admin API request to the server's handler.
func (ts *testServer) adminPost(path string, body any) (int, []byte) {
	ts.t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		ts.t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	ts.srv.cri.adminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, bytes.NewReader(data)))
	return rec.Code, rec.Body.Bytes()
}

// TestKillFromTheNode: POST /v1/kill ends a running container's process as
// kill on the node does, and the exit takes the server's exit path: the
// container is EXITED with the status the kernel reports.
func TestKillFromTheNode(t *testing.T) {
	ts := newTestServer(t, 0.01, nil)
	podID, pc := ts.runPod("kill")
	exitCode := uint32(3)
	cases := []struct {
		name        string
		annotations map[string]string
		req         KillRequest // ID is filled in
		want        KillResponse
		exitStatus  int32 // 0: still running
	}{
		{name: "default is SIGKILL", want: KillResponse{Signal: "SIGKILL", Exits: true, ExitStatus: 137}, exitStatus: 137},
		{name: "TERM by number", annotations: map[string]string{"fakecontainerd.io/stop-grace": "2s"}, req: KillRequest{Signal: "15"},
			want: KillResponse{Signal: "SIGTERM", Exits: true, ExitStatus: 143, After: 2 * time.Second}, exitStatus: 143},
		{name: "TERM ignored", annotations: map[string]string{"fakecontainerd.io/stop-grace": "never"}, req: KillRequest{Signal: "TERM"},
			want: KillResponse{Signal: "SIGTERM"}},
		{name: "exit code", req: KillRequest{ExitCode: &exitCode}, want: KillResponse{Exits: true, ExitStatus: 3}, exitStatus: 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := ts.startContainer(podID, pc, strings.ReplaceAll(c.name, " ", "-"), c.annotations)
			c.req.ID = id[:8] // a prefix, as crictl takes
			code, body := ts.adminPost("/v1/kill", c.req)
			if code != http.StatusOK {
				t.Fatalf("POST /v1/kill: %d %s", code, body)
			}
			var got KillResponse
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			c.want.ID, c.want.Kind = id, "container"
			if got != c.want {
				t.Fatalf("kill = %+v, want %+v", got, c.want)
			}
			if c.exitStatus == 0 {
				_ = ts.clock.Sleep(ts.ctx(time.Minute), 10*time.Second)
				if st := ts.containerState(id); st != runtime.ContainerState_CONTAINER_RUNNING {
					t.Fatalf("after an ignored SIGTERM the container is %v, want RUNNING", st)
				}
				return
			}
			ts.waitState(id, runtime.ContainerState_CONTAINER_EXITED, time.Minute)
			resp, err := ts.rt.ContainerStatus(ts.ctx(time.Minute), &runtime.ContainerStatusRequest{ContainerId: id})
			if err != nil {
				t.Fatal(err)
			}
			if st := resp.Status; st.ExitCode != c.exitStatus || st.Reason != "Error" || st.FinishedAt == 0 {
				t.Errorf("status: exit code %d reason %q finished %d; want %d, Error, a time", st.ExitCode, st.Reason, st.FinishedAt, c.exitStatus)
			}
			// The process is gone now: ESRCH, as kill(1) says.
			if code, body := ts.adminPost("/v1/kill", KillRequest{ID: id}); code != http.StatusNotFound {
				t.Errorf("kill of an exited container: %d %s, want 404", code, body)
			}
		})
	}
}

func TestKillRejectsBadRequests(t *testing.T) {
	ts := newTestServer(t, 0.01, nil)
	podID, pc := ts.runPod("kill-bad")
	id := ts.startContainer(podID, pc, "c", nil)
	big := uint32(300)
	cases := []struct {
		name string
		req  KillRequest
		code int
		want string
	}{
		{"no id", KillRequest{}, http.StatusBadRequest, "id must not be empty"},
		{"unknown id", KillRequest{ID: "ffffffffff"}, http.StatusNotFound, `no container or sandbox "ffffffffff"`},
		{"bad signal", KillRequest{ID: id, Signal: "BOGUS"}, http.StatusBadRequest, `signal "BOGUS"`},
		{"signal and code", KillRequest{ID: id, Signal: "KILL", ExitCode: &big}, http.StatusBadRequest, "not both"},
		{"code too big", KillRequest{ID: id, ExitCode: &big}, http.StatusBadRequest, "0 to 255"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := ts.adminPost("/v1/kill", c.req)
			var e ErrorResponse
			_ = json.Unmarshal(body, &e)
			if code != c.code || !strings.Contains(e.Error, c.want) {
				t.Errorf("POST /v1/kill %+v: %d %s; want %d mentioning %q", c.req, code, body, c.code, c.want)
			}
		})
	}
	if st := ts.containerState(id); st != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("after bad kills the container is %v, want RUNNING", st)
	}
}

// TestExitFault: exit(137) armed at a point kills the target's process
// when a call reaches the point, as a kill -9 at that moment would.
func TestExitFault(t *testing.T) {
	ts := newTestServer(t, 0.01, nil)
	podID, pc := ts.runPod("exit-fault")
	id := ts.startContainer(podID, pc, "victim", nil)
	other := ts.startContainer(podID, pc, "bystander", nil)
	sel, _ := faults.ParseSelector("container=victim")
	if _, err := ts.srv.cri.faults.Add(faults.CRIPoint("UpdateContainerResources", false), sel, "1*exit(KILL)->off", "test"); err != nil {
		t.Fatal(err)
	}
	for _, cid := range []string{other, id} {
		if _, err := ts.rt.UpdateContainerResources(ts.ctx(time.Minute), &runtime.UpdateContainerResourcesRequest{
			ContainerId: cid, Linux: &runtime.LinuxContainerResources{CpuShares: 4},
		}); err != nil {
			t.Logf("update %s: %v", cid, err)
		}
	}
	ts.waitState(id, runtime.ContainerState_CONTAINER_EXITED, time.Minute)
	resp, err := ts.rt.ContainerStatus(ts.ctx(time.Minute), &runtime.ContainerStatusRequest{ContainerId: id})
	if err != nil || resp.Status.ExitCode != 137 {
		t.Fatalf("victim: %v, exit code %d; want 137", err, resp.GetStatus().GetExitCode())
	}
	if st := ts.containerState(other); st != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("bystander is %v, want RUNNING", st)
	}
}

// TestKillSandbox: a sandbox id kills the pod's pause process; the
// sandbox's exit handling makes it NOTREADY.
func TestKillSandbox(t *testing.T) {
	ts := newTestServer(t, 0.01, nil)
	podID, _ := ts.runPod("pause-kill")
	code, body := ts.adminPost("/v1/kill", KillRequest{ID: podID[:8]})
	if code != http.StatusOK {
		t.Fatalf("POST /v1/kill: %d %s", code, body)
	}
	var got KillResponse
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if want := (KillResponse{ID: podID, Kind: "sandbox", Signal: "SIGKILL", Exits: true, ExitStatus: 137}); got != want {
		t.Fatalf("kill = %+v, want %+v", got, want)
	}
	deadline := ts.clock.Now().Add(time.Minute)
	for {
		resp, err := ts.rt.PodSandboxStatus(ts.ctx(time.Minute), &runtime.PodSandboxStatusRequest{PodSandboxId: podID})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status.State == runtime.PodSandboxState_SANDBOX_NOTREADY {
			return
		}
		if ts.clock.Now().After(deadline) {
			t.Fatalf("sandbox is %v a minute after its pause process was killed, want NOTREADY", resp.Status.State)
		}
		_ = ts.clock.Sleep(ts.ctx(time.Minute), 100*time.Millisecond)
	}
}
