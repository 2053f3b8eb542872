package shim

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// createCmd creates and starts a task whose process runs args, logging to
// logPath ("" for none).
func (f *fixture) createCmd(t *testing.T, id string, args []string, logPath string, annotations map[string]string) *Task {
	t.Helper()
	o := CreateOpts{
		ID: id, Group: "sandbox1",
		Spec:   &specs.Spec{Version: "1.1.0", Process: &specs.Process{Args: args, Cwd: "/"}, Hostname: "pod1", Annotations: annotations},
		Rootfs: []*types.Mount{{Type: "overlay", Source: "overlay"}},
	}
	if logPath != "" {
		o.Stdout, o.Stderr = LogURI(logPath), LogURI(logPath)
	}
	tk, err := f.m.Create(context.Background(), o)
	if err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
	if err := tk.Start(context.Background()); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	return tk
}

func waitExit(t *testing.T, tk *Task) ExitStatus {
	t.Helper()
	ch, _ := tk.Wait(context.Background())
	select {
	case e := <-ch:
		return e
	case <-time.After(20 * time.Second):
		t.Fatalf("%s never exited", tk.ID())
	}
	return ExitStatus{}
}

func TestModelProcessExitsWithItsStatus(t *testing.T) {
	f := newFixture(t, 0.001)
	logPath := filepath.Join(t.TempDir(), "0.log")
	cases := []struct {
		name        string
		args        []string
		annotations map[string]string
		code        uint32
	}{
		{"script status", []string{"sh", "-c", "echo hi; exit 3"}, nil, 3},
		{"sleep ends", []string{"sleep", "2"}, nil, 0},
		{"syntax error", []string{"sh", "-c", "if true; then"}, nil, 2},
		{"annotation wins", []string{"sh", "-c", "exit 3"}, map[string]string{AnnotationExitAfter: "1s", AnnotationExitCode: "7"}, 7},
	}
	for i, tc := range cases {
		tk := f.createCmd(t, "c"+string(rune('a'+i)), tc.args, logPath, tc.annotations)
		if e := waitExit(t, tk); e.Err != nil || e.Code != tc.code {
			t.Errorf("%s: exit %+v, want %d", tc.name, e, tc.code)
		}
	}
	data, _ := os.ReadFile(logPath)
	if !strings.Contains(string(data), " stdout F hi\n") || !strings.Contains(string(data), " stderr F sh: -c: line 1: syntax error: ") {
		t.Errorf("log:\n%s", data)
	}
}

// A process the model does not know, or that never ends, runs until killed.
func TestModelProcessRunsUntilKilled(t *testing.T) {
	f := newFixture(t, 0.001)
	for _, args := range [][]string{{"nginx", "-g", "daemon off;"}, {"sh", "-c", "while true; do sleep 1; done"}, {"/pause"}} {
		tk := f.createCmd(t, args[0][len(args[0])-1:]+"x", args, "", nil)
		time.Sleep(20 * time.Millisecond) // 20 s of project time
		st, err := tk.Status(context.Background())
		if err != nil || st.Status.String() != "RUNNING" {
			t.Fatalf("%q: %v %v, want RUNNING", args, st.Status, err)
		}
		if err := tk.Kill(context.Background(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if e := waitExit(t, tk); e.Code != 137 {
			t.Errorf("%q killed: exit %d", args, e.Code)
		}
	}
}

func TestLogStreamEntries(t *testing.T) {
	f := newFixture(t, 1)
	path := filepath.Join(t.TempDir(), "0.log")
	l := newLogStream(path, "stdout", f.clock, logrus.NewEntry(logrus.New()))
	long := strings.Repeat("x", MaxLogLineSize+10)
	for _, w := range []string{"one\ntw", "o\n", long + "\n", "tail"} {
		l.Write([]byte(w))
	}
	// kubelet rotates between two lines.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	l.Close()
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	var got []string
	for _, line := range strings.Split(strings.TrimSuffix(string(old)+string(cur), "\n"), "\n") {
		parts := strings.SplitN(line, " ", 4)
		if _, err := time.Parse(time.RFC3339Nano, parts[0]); err != nil || parts[1] != "stdout" {
			t.Fatalf("entry %q", line)
		}
		got = append(got, parts[2]+" "+parts[3])
	}
	want := []string{"F one", "F two", "P " + long[:MaxLogLineSize], "F " + long[MaxLogLineSize:], "P tail"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("entries %q, want %q", got, want)
	}
	if string(cur) == "" || !strings.HasSuffix(string(cur), " stdout P tail\n") {
		t.Errorf("after the rotation the next entry goes to the new file: %q", cur)
	}
}

// fifo makes a FIFO and opens its read end as the daemon does.
func fifo(t *testing.T, name string) (string, *os.File) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return path, r
}

func TestExecProcessLifecycle(t *testing.T) {
	f := newFixture(t, 0.001)
	tk := f.createCmd(t, "app", []string{"sh", "-c", "echo ok > /tmp/healthy; sleep infinity"}, "", nil)
	run := func(id string, args ...string) (uint32, string, string) {
		t.Helper()
		outPath, out := fifo(t, id+"-stdout")
		errPath, errR := fifo(t, id+"-stderr")
		p, err := tk.Exec(context.Background(), ExecOpts{ID: id, Spec: &specs.Process{Args: args, Cwd: "/"}, Stdout: outPath, Stderr: errPath})
		if err != nil {
			t.Fatalf("exec %q: %v", args, err)
		}
		ch, _ := p.Wait(context.Background())
		if err := p.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		e := <-ch
		var stdout, stderr bytes.Buffer
		stdout.ReadFrom(out)
		stderr.ReadFrom(errR)
		if _, err := p.Delete(context.Background()); err != nil {
			t.Errorf("delete exec %s: %v", id, err)
		}
		return e.Code, stdout.String(), stderr.String()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, out, _ := run("probe"+time.Now().Format("150405.000000000"), "cat", "/tmp/healthy")
		if code == 0 && out == "ok\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cat /tmp/healthy: %d %q", code, out)
		}
	}
	if code, _, stderr := run("missing", "sh", "-c", "$X nope"); code != 127 || !strings.Contains(stderr, "not found") {
		t.Errorf("command found only at run time: %d %q", code, stderr)
	}
	if code, out, _ := run("host", "hostname"); code != 0 || out != "pod1\n" {
		t.Errorf("hostname: %d %q", code, out)
	}

	// A slow exec is killed; a duplicate id and an unknown one are refused.
	outPath, _ := fifo(t, "slow-stdout")
	p, err := tk.Exec(context.Background(), ExecOpts{ID: "slow", Spec: &specs.Process{Args: []string{"sleep", "infinity"}}, Stdout: outPath})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Exec(context.Background(), ExecOpts{ID: "slow", Spec: &specs.Process{Args: []string{"true"}}}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("duplicate exec id: %v", err)
	}
	ch, _ := p.Wait(context.Background())
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(context.Background(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if e := <-ch; e.Code != 137 {
		t.Errorf("killed exec: %d", e.Code)
	}
	if _, err := (&Process{t: tk, id: "nope"}).Delete(context.Background()); status.Code(err) != codes.NotFound {
		t.Errorf("delete of an unknown exec: %v", err)
	}

	// No exec in a stopped container.
	if err := tk.Kill(context.Background(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitExit(t, tk)
	if _, err := tk.Exec(context.Background(), ExecOpts{ID: "late", Spec: &specs.Process{Args: []string{"true"}}}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("exec in a stopped container: %v", err)
	}
}
