package server

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/e2e/streamclient"
)

// streamExec asks the server for an Exec URL and runs it.
func (ts *testServer) streamExec(t *testing.T, tr streamclient.Transport, id string, cmd []string, stdin string, tty bool) streamclient.Result {
	t.Helper()
	req := &runtime.ExecRequest{ContainerId: id, Cmd: cmd, Stdout: true, Stderr: !tty, Stdin: stdin != "", Tty: tty}
	resp, err := ts.rt.Exec(ts.ctx(time.Minute), req)
	if err != nil {
		t.Fatalf("Exec %v: %v", cmd, err)
	}
	var in io.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	res, err := streamclient.Stream(ts.ctx(time.Minute), tr, resp.Url, in, tty)
	if err != nil {
		t.Fatalf("stream exec %v over %s: %v", cmd, tr, err)
	}
	return res
}

// TestStreamingExec runs commands through the URL Exec returns, over both
// transports kubelet's proxy and kubectl use: the exit code, both streams,
// stdin, a tty (one stream, TERM=xterm) and an interactive shell.
func TestStreamingExec(t *testing.T) {
	ts := newTestServer(t, 0.01, nil)
	podID, pc := ts.runPod("stream")
	id := ts.startContainer(podID, pc, "c", nil)
	cases := []struct {
		name   string
		cmd    []string
		stdin  string
		tty    bool
		stdout string
		stderr string
		code   int
	}{
		{name: "exit code", cmd: []string{"sh", "-c", "echo hi; exit 3"}, stdout: "hi\n", code: 3},
		{name: "stderr", cmd: []string{"sh", "-c", "echo out; echo err >&2"}, stdout: "out\n", stderr: "err\n"},
		{name: "stdin through cat", cmd: []string{"cat"}, stdin: "one\ntwo\n", stdout: "one\ntwo\n"},
		{name: "stdin read by the shell", cmd: []string{"sh", "-c", "read a; echo got $a"}, stdin: "x\n", stdout: "got x\n"},
		{name: "interactive shell", cmd: []string{"sh"}, stdin: "echo one\nnosuch\necho $((1+1))\nexit 4\n",
			stdout: "one\n2\n", stderr: "sh: nosuch: not found\n", code: 4},
		{name: "tty", cmd: []string{"sh", "-c", "echo $TERM; echo err >&2"}, tty: true, stdout: "xterm\r\nerr\r\n"},
		// A terminal's line discipline: CR in is NL, input is echoed,
		// NL out is CR NL, ^D is EOF.
		{name: "tty interactive shell", cmd: []string{"sh"}, tty: true, stdin: "echo hi\r\x04",
			stdout: "echo hi\r\nhi\r\n"},
		{name: "unknown command", cmd: []string{"nginx", "-v"}, stderr: "sh: nginx: not found\n", code: 127},
	}
	for _, tr := range []streamclient.Transport{streamclient.SPDY, streamclient.WebSocket} {
		for _, c := range cases {
			if tr == streamclient.WebSocket && c.stdin != "" {
				continue // websocket v4 cannot close stdin (see streamclient)
			}
			t.Run(string(tr)+"/"+c.name, func(t *testing.T) {
				res := ts.streamExec(t, tr, id, c.cmd, c.stdin, c.tty)
				if res.Stdout != c.stdout || res.Stderr != c.stderr || res.Code != c.code {
					t.Errorf("got stdout %q stderr %q code %d, want %q %q %d", res.Stdout, res.Stderr, res.Code, c.stdout, c.stderr, c.code)
				}
			})
		}
	}
}

// TestStreamingErrors: the URL calls check the object first, with
// containerd's codes and texts.
func TestStreamingErrors(t *testing.T) {
	ts := newTestServer(t, 0.01, nil)
	podID, pc := ts.runPod("stream-err")
	created := ts.createContainer(podID, pc, "created", nil)
	ctx := ts.ctx(time.Minute)
	cases := []struct {
		name string
		call func() error
		code codes.Code
		msg  string
	}{
		{"exec missing", func() error {
			_, err := ts.rt.Exec(ctx, &runtime.ExecRequest{ContainerId: "nosuch", Cmd: []string{"true"}, Stdout: true})
			return err
		}, codes.NotFound, `failed to find container "nosuch" in store`},
		{"exec created", func() error {
			_, err := ts.rt.Exec(ctx, &runtime.ExecRequest{ContainerId: created, Cmd: []string{"true"}, Stdout: true})
			return err
		}, codes.Unknown, "container is in CONTAINER_CREATED state"},
		{"exec no stream", func() error {
			_, err := ts.rt.Exec(ctx, &runtime.ExecRequest{ContainerId: created[:12], Cmd: []string{"true"}})
			return err
		}, codes.Unknown, "container is in CONTAINER_CREATED state"},
		{"attach created", func() error {
			_, err := ts.rt.Attach(ctx, &runtime.AttachRequest{ContainerId: created, Stdout: true})
			return err
		}, codes.Unknown, "container is in CONTAINER_CREATED state"},
		{"attach missing", func() error {
			_, err := ts.rt.Attach(ctx, &runtime.AttachRequest{ContainerId: "nosuch", Stdout: true})
			return err
		}, codes.NotFound, "failed to find container in store"},
		{"port-forward missing", func() error {
			_, err := ts.rt.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: "nosuch", Port: []int32{80}})
			return err
		}, codes.NotFound, `failed to find sandbox "nosuch"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if status.Code(err) != c.code || !strings.Contains(status.Convert(err).Message(), c.msg) {
				t.Errorf("got %v, want %s containing %q", err, c.code, c.msg)
			}
		})
	}
	running := ts.startContainer(podID, pc, "running", nil)
	_, err := ts.rt.Exec(ctx, &runtime.ExecRequest{ContainerId: running, Cmd: []string{"true"}, Tty: true, Stderr: true, Stdout: true})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "tty and stderr cannot both be true") {
		t.Errorf("exec tty+stderr: got %v, want InvalidArgument", err)
	}
	if _, err := ts.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatal(err)
	}
	_, err = ts.rt.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: podID, Port: []int32{80}})
	if status.Code(err) != codes.Unknown || !strings.Contains(err.Error(), "sandbox container is not running") {
		t.Errorf("port-forward of a stopped pod: got %v, want Unknown, sandbox container is not running", err)
	}
}

// TestStreamingAttach attaches to a container created with stdin: its
// main process reads the client's stdin and its output comes back, and
// with StdinOnce the end of stdin is the process's EOF.
func TestStreamingAttach(t *testing.T) {
	ts := newTestServer(t, 0.01, nil)
	podID, pc := ts.modelPod("attach")
	id, _ := ts.startCommand(podID, pc, "reader", []string{"sh", "-c", "while read l; do echo got $l; echo e$l >&2; done; echo bye"},
		func(c *runtime.ContainerConfig) { c.Stdin, c.StdinOnce = true, true })
	resp, err := ts.rt.Attach(ts.ctx(time.Minute), &runtime.AttachRequest{ContainerId: id, Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := streamclient.Stream(ts.ctx(time.Minute), streamclient.SPDY, resp.Url, strings.NewReader("a\nb\n"), false)
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	if res.Stdout != "got a\ngot b\nbye\n" || res.Stderr != "ea\neb\n" || res.Code != 0 {
		t.Errorf("attach got stdout %q stderr %q code %d", res.Stdout, res.Stderr, res.Code)
	}
	ts.waitState(id, runtime.ContainerState_CONTAINER_EXITED, time.Minute)
}

// TestStreamingPortForwardClosedPort: nothing listens in the model, so a
// forwarded connection is refused with containerd's message.
func TestStreamingPortForwardClosedPort(t *testing.T) {
	ts := newTestServer(t, 0.01, nil)
	podID, _ := ts.runPod("pf")
	resp, err := ts.rt.PortForward(ts.ctx(time.Minute), &runtime.PortForwardRequest{PodSandboxId: podID, Port: []int32{8080}})
	if err != nil {
		t.Fatal(err)
	}
	_, msg, err := streamclient.PortForward(ts.ctx(time.Minute), resp.Url, 8080, []byte("GET / HTTP/1.0\r\n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "failed to execute portforward in network namespace \"/var/run/netns/cni-" + podID[:12] + "\": failed to connect to localhost:8080 inside namespace \"" + podID +
		"\", IPv4: dial tcp4 127.0.0.1:8080: connect: connection refused IPv6 dial tcp6 [::1]:8080: connect: connection refused "
	if !strings.Contains(msg, want) {
		t.Errorf("error stream %q, want it to contain %q", msg, want)
	}
}

// BenchmarkStreamingExec is one `kubectl exec POD -- sh -c 'echo hi'` at
// the runtime: CRI Exec, then the URL dialled over SPDY, the command run
// as a shim exec, its output and exit code streamed back.
func BenchmarkStreamingExec(b *testing.B) {
	s := newTBServer(b, 1)
	s.populate(population{pods: 1, perPod: 1, running: 1})
	c := s.c()
	list, err := c.ListContainers(context.Background(), &runtime.ListContainersRequest{})
	if err != nil || len(list.Containers) != 1 {
		b.Fatalf("containers %v: %v", list, err)
	}
	id := list.Containers[0].Id
	b.ResetTimer()
	for range b.N {
		resp, err := c.Exec(context.Background(), &runtime.ExecRequest{ContainerId: id, Cmd: []string{"sh", "-c", "echo hi"}, Stdout: true, Stderr: true})
		if err != nil {
			b.Fatal(err)
		}
		res, err := streamclient.Stream(context.Background(), streamclient.SPDY, resp.Url, nil, false)
		if err != nil || res.Stdout != "hi\n" {
			b.Fatalf("exec: %+v, %v", res, err)
		}
	}
}

// TestLogFollowerRotation: attach's view of the log: entries written after
// it started, partial entries joined, the rest of a rotated file, then the
// new file from its start.
func TestLogFollowerRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	write := func(p, s string) {
		t.Helper()
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	write(path, "2026-01-01T00:00:00Z stdout F before the attach\n")
	f, err := newLogFollower(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	var out, errOut strings.Builder
	read := func() {
		t.Helper()
		if err := f.copyTo(&out, &errOut); err != nil {
			t.Fatal(err)
		}
	}
	write(path, "2026-01-01T00:00:01Z stdout P par\n2026-01-01T00:00:01Z stdout F tial\n2026-01-01T00:00:01Z stderr F oops\n2026-01-01T00:00:02Z stdout F half")
	read()
	write(path, " written\n2026-01-01T00:00:03Z stdout F last of the old file\n")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	write(path, "2026-01-01T00:00:04Z stdout F first of the new file\n")
	read()
	if want := "partial\nhalf written\nlast of the old file\nfirst of the new file\n"; out.String() != want {
		t.Errorf("stdout %q, want %q", out.String(), want)
	}
	if errOut.String() != "oops\n" {
		t.Errorf("stderr %q, want %q", errOut.String(), "oops\n")
	}
}
