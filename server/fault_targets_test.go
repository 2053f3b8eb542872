package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestFaultSetUnmatchedTarget: arming a fault whose target matches no
// container or pod that exists now warns, naming what does exist; with
// strict it is refused and nothing is armed. A target that matches, or
// "all", arms silently.
func TestFaultSetUnmatchedTarget(t *testing.T) {
	ts := newTestServer(t, 0.01, nil)
	podID, pc := ts.runPod("job-1")
	id := ts.startContainer(podID, pc, "c1", nil)
	cases := []struct {
		name    string
		req     FaultRequest
		code    int
		warning []string // parts the warning (or, refused, the error) must hold; nil: none
	}{
		{"all", FaultRequest{Target: "all"}, http.StatusCreated, nil},
		{"container id prefix", FaultRequest{Target: "id=" + id[:6]}, http.StatusCreated, nil},
		{"sandbox id", FaultRequest{Target: "id=" + podID}, http.StatusCreated, nil},
		{"pod and container", FaultRequest{Target: "pod=job-1,container=c1"}, http.StatusCreated, nil},
		{"typo in an id", FaultRequest{Target: "id=deadbeef"}, http.StatusCreated,
			[]string{`target "id=deadbeef" matches no container or pod`, "default/job-1 (" + podID[:12] + ")", "default/job-1/c1 (" + id[:12] + ")"}},
		{"typo in a pod name", FaultRequest{Target: "pod=job1"}, http.StatusCreated, []string{`"pod=job1"`, "default/job-1"}},
		{"strict typo", FaultRequest{Target: "container=c2", Strict: true}, http.StatusUnprocessableEntity, []string{"not armed", `"container=c2"`, "job-1/c1"}},
		{"strict match", FaultRequest{Target: "container=c1", Strict: true}, http.StatusCreated, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.req.Point, c.req.Spec = "shim.umount2", "delay(1s)"
			before := len(ts.srv.cri.faults.List())
			code, body := ts.adminPost("/v1/faults", c.req)
			if code != c.code {
				t.Fatalf("POST /v1/faults %+v: %d %s, want %d", c.req, code, body, c.code)
			}
			var resp struct {
				FaultResponse
				Error string `json:"error"`
			}
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatal(err)
			}
			text := resp.Warning + resp.Error
			if c.warning == nil && text != "" {
				t.Errorf("want no warning, got %q", text)
			}
			for _, w := range c.warning {
				if !strings.Contains(text, w) {
					t.Errorf("warning %q does not hold %q", text, w)
				}
			}
			armed := len(ts.srv.cri.faults.List()) - before
			if want := map[bool]int{true: 1, false: 0}[code == http.StatusCreated]; armed != want || (want == 1 && resp.ID == "") {
				t.Errorf("%d faults armed (id %q), want %d", armed, resp.ID, want)
			}
		})
	}
}
