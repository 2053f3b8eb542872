package e2e

import (
	"io"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/e2e/streamclient"
)

// TestStreaming drives the binary's streaming server as kubelet's proxy
// does: CRI Exec, Attach and PortForward, then the URL they return, dialled
// with client-go's SPDY clients. Shims run as processes, so stdin and the
// output cross from the daemon to the shim process through FIFOs.
func TestStreaming(t *testing.T) {
	t.Parallel()
	d := newDaemon(t, "--shim-mode", "process", "--time-scale", "0.01")
	d.pull("busybox")
	pc := d.podConfig("stream", filepath.Join(d.dir, "pod-logs", "stream"))
	podID := d.runp(pc)
	app := d.containerConfig("app", nil)
	app.Command = []string{"sleep", "infinity"}
	appID := d.create(podID, app, pc)
	d.startContainer(appID)

	exec := func(cmd []string, stdin string) streamclient.Result {
		t.Helper()
		resp, err := d.rt.Exec(d.ctx(), &runtime.ExecRequest{ContainerId: appID, Cmd: cmd, Stdin: stdin != "", Stdout: true, Stderr: true})
		if err != nil {
			t.Fatalf("Exec %v: %v", cmd, err)
		}
		// The URL is on the configured loopback address, on the port the
		// server picked (stream_server_port = "0").
		u, err := url.Parse(resp.Url)
		if err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" || u.Port() == "0" || !strings.HasPrefix(u.Path, "/exec/") {
			t.Fatalf("Exec URL %q (%v): want http://127.0.0.1:<port>/exec/<token>", resp.Url, err)
		}
		var in io.Reader
		if stdin != "" {
			in = strings.NewReader(stdin)
		}
		res, err := streamclient.Stream(d.ctx(), streamclient.SPDY, resp.Url, in, false)
		if err != nil {
			t.Fatalf("stream exec %v: %v", cmd, err)
		}
		return res
	}
	if res := exec([]string{"sh", "-c", "echo hi; exit 3"}, ""); res.Stdout != "hi\n" || res.Code != 3 {
		t.Errorf("echo hi; exit 3: stdout %q code %d, want \"hi\\n\" 3", res.Stdout, res.Code)
	}
	if res := exec([]string{"cat"}, "piped\nthrough cat\n"); res.Stdout != "piped\nthrough cat\n" || res.Code != 0 {
		t.Errorf("cat: stdout %q code %d", res.Stdout, res.Code)
	}
	// The exec sees the container's files, as ExecSync's does.
	if res := exec([]string{"sh", "-c", "echo x > /tmp/f; cat /tmp/f; ls /nosuch"}, ""); res.Stdout != "x\n" || res.Code != 1 ||
		!strings.Contains(res.Stderr, "No such file or directory") {
		t.Errorf("files: stdout %q stderr %q code %d", res.Stdout, res.Stderr, res.Code)
	}
	// A URL is for one stream: a second dial finds no such token.
	resp, err := d.rt.Exec(d.ctx(), &runtime.ExecRequest{ContainerId: appID, Cmd: []string{"true"}, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := streamclient.Stream(d.ctx(), streamclient.SPDY, resp.Url, nil, false); err != nil {
		t.Fatalf("first dial: %v", err)
	}
	if _, err := streamclient.Stream(d.ctx(), streamclient.SPDY, resp.Url, nil, false); err == nil {
		t.Errorf("a second dial of %s succeeded", resp.Url)
	}

	// Attach: a container created with stdin reads the client's lines and
	// its output comes back; StdinOnce ends its stdin with the client's.
	rd := d.containerConfig("reader", nil)
	rd.Command = []string{"sh", "-c", "while read l; do echo got $l; done; echo bye; exit 5"}
	rd.Stdin, rd.StdinOnce = true, true
	rdID := d.create(podID, rd, pc)
	d.startContainer(rdID)
	aresp, err := d.rt.Attach(d.ctx(), &runtime.AttachRequest{ContainerId: rdID, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := streamclient.Stream(d.ctx(), streamclient.SPDY, aresp.Url, strings.NewReader("a\nb\n"), false)
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	if res.Stdout != "got a\ngot b\nbye\n" {
		t.Errorf("attach: stdout %q stderr %q", res.Stdout, res.Stderr)
	}
	if st := d.waitState(rdID, runtime.ContainerState_CONTAINER_EXITED, time.Minute); st.ExitCode != 5 {
		t.Errorf("reader exited %d, want 5", st.ExitCode)
	}

	// Port-forward: nothing listens in the fake pod, as on a node whose
	// container does not listen.
	presp, err := d.rt.PortForward(d.ctx(), &runtime.PortForwardRequest{PodSandboxId: podID, Port: []int32{80}})
	if err != nil {
		t.Fatal(err)
	}
	_, msg, err := streamclient.PortForward(d.ctx(), presp.Url, 80, []byte("GET / HTTP/1.0\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "failed to connect to localhost:80 inside namespace") || !strings.Contains(msg, "connect: connection refused") {
		t.Errorf("port-forward to a closed port: error stream %q", msg)
	}
	if u, err := url.Parse(presp.Url); err != nil || !strings.HasPrefix(u.Path, "/portforward/") || u.Hostname() != "127.0.0.1" {
		t.Errorf("port-forward URL %q (%v): want http://127.0.0.1:<port>/portforward/<token>", presp.Url, err)
	}
}
