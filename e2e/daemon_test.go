package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	remote "k8s.io/cri-client/pkg"
)

const (
	// crictlTimeout bounds every RPC, as crictl's --timeout does (its
	// default is 2 s). On a machine whose cores are both busy a
	// process-mode RunPodSandbox (a shim process to start) can take longer
	// than that, so the suite allows 10 s.
	crictlTimeout = 10 * time.Second
	// readyTimeout bounds a start, -race build included.
	readyTimeout = 20 * time.Second
	// exitTimeout bounds a graceful stop (the server allows 10 s itself).
	exitTimeout = 15 * time.Second
)

// daemon is one fakecontainerd child process and the crictl-style clients
// talking to it. It can be stopped and started again on the same root and
// state; whatever happens, the test's cleanup kills it, and any shim
// process it left, by pid.
type daemon struct {
	t     *testing.T
	dir   string // short temp dir holding everything below
	sock  string
	root  string
	state string
	log   string // the server's stdout and stderr, all runs appended
	extra []string
	// setup, if set, adjusts the command before each start (environment,
	// working directory).
	setup func(*exec.Cmd)

	starts int
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has been waited for

	// rt and img are crictl's clients: cri-client with a per-call
	// timeout, dialled with the "unix://" endpoint.
	rt  internalapi.RuntimeService
	img internalapi.ImageManagerService
}

// newDaemon prepares a daemon in a fresh short temp dir (unix socket paths
// must stay under ~100 bytes) and starts it with `serve --address --root
// --state` plus extra.
func newDaemon(t *testing.T, extra ...string) *daemon {
	t.Helper()
	return newDaemonWith(t, nil, extra...)
}

// newDaemonWith is newDaemon with setup applied to the command at every
// start.
func newDaemonWith(t *testing.T, setup func(*exec.Cmd), extra ...string) *daemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "fcde")
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{
		t: t, dir: dir, extra: extra,
		sock:  filepath.Join(dir, "cri.sock"),
		root:  filepath.Join(dir, "root"),
		state: filepath.Join(dir, "state"),
		log:   filepath.Join(dir, "fakecontainerd.log"),
		setup: setup,
	}
	t.Cleanup(d.cleanup)
	d.start()
	return d
}

// on is d seen from another (sub)test: its helpers fail that test.
func (d *daemon) on(t *testing.T) *daemon {
	c := *d
	c.t = t
	return &c
}

func (d *daemon) endpoint() string { return "unix://" + d.sock }

// start runs the binary and waits until Version answers through cri-client.
func (d *daemon) start() {
	t := d.t
	t.Helper()
	if d.running() {
		t.Fatal("daemon already running")
	}
	d.starts++
	logFile, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	args := append([]string{"serve", "--address", d.sock, "--root", d.root, "--state", d.state, "--log-level", "debug"}, d.extra...)
	fmt.Fprintf(logFile, "=== e2e: start %d: %s %s\n", d.starts, binary, strings.Join(args, " "))
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A -race server (and its shims) would otherwise sleep a second at
	// every exit before reporting.
	cmd.Env = append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	// Should the test binary itself die, take the server along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if d.setup != nil {
		d.setup(cmd)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", binary, err)
	}
	d.cmd, d.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(d.done)
	d.waitReady()
}

func (d *daemon) waitReady() {
	t := d.t
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			t.Fatalf("fakecontainerd exited during start-up: %v (log %s)\n%s", d.cmd.ProcessState, d.log, d.logTail(40))
		default:
		}
		if conn, err := net.Dial("unix", d.sock); err == nil {
			conn.Close()
			if lastErr = d.connect(); lastErr == nil {
				return
			}
		} else {
			lastErr = err
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("fakecontainerd did not answer Version within %v: %v (log %s)\n%s", readyTimeout, lastErr, d.log, d.logTail(40))
}

// connect makes crictl's two clients; NewRemoteRuntimeService validates
// the connection with a Version call.
func (d *daemon) connect() error {
	ctx := context.Background()
	rt, err := remote.NewRemoteRuntimeService(ctx, d.endpoint(), crictlTimeout, nil, false)
	if err != nil {
		return err
	}
	img, err := remote.NewRemoteImageService(ctx, d.endpoint(), crictlTimeout, nil, false)
	if err != nil {
		_ = rt.Close(ctx)
		return err
	}
	d.rt, d.img = rt, img
	return nil
}

func (d *daemon) disconnect() {
	ctx := context.Background()
	if d.rt != nil {
		_ = d.rt.Close(ctx)
		d.rt = nil
	}
	if d.img != nil {
		_ = d.img.Close(ctx)
		d.img = nil
	}
}

func (d *daemon) running() bool {
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// stop sends SIGTERM and expects a clean exit (status 0) in time.
func (d *daemon) stop() {
	t := d.t
	t.Helper()
	d.disconnect()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM fakecontainerd: %v", err)
	}
	select {
	case <-d.done:
	case <-time.After(exitTimeout):
		t.Fatalf("fakecontainerd still running %v after SIGTERM (log %s)\n%s", exitTimeout, d.log, d.logTail(40))
	}
	if st := d.cmd.ProcessState; !st.Success() {
		t.Fatalf("fakecontainerd exited with %v after SIGTERM, want status 0 (log %s)\n%s", st, d.log, d.logTail(40))
	}
}

// kill is `kill -9 <pid>`: no shutdown code runs.
func (d *daemon) kill() {
	t := d.t
	t.Helper()
	d.disconnect()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL fakecontainerd: %v", err)
	}
	select {
	case <-d.done:
	case <-time.After(exitTimeout):
		t.Fatalf("fakecontainerd (pid %d) survived SIGKILL", d.pid())
	}
	if ws, ok := d.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("fakecontainerd ended with %v, want killed by SIGKILL", d.cmd.ProcessState)
	}
}

// cleanup runs at the end of the test, pass or fail: it kills the server
// and every shim process started for this daemon's state dir, by pid; it
// fails the test on a data race the server or a shim reported; it keeps
// the temp dir and shows the log when the test failed.
func (d *daemon) cleanup() {
	t := d.t
	d.disconnect()
	if d.running() {
		_ = d.cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-d.done:
		case <-time.After(exitTimeout):
			t.Errorf("fakecontainerd (pid %d) survived SIGKILL", d.pid())
		}
	}
	for _, p := range shimProcesses(d.state) {
		t.Logf("killing shim process %d left behind: %s", p.pid, strings.Join(p.args, " "))
		killPid(p.pid)
	}
	for _, f := range d.logFiles() {
		if data, err := os.ReadFile(f); err == nil && strings.Contains(string(data), "WARNING: DATA RACE") {
			t.Errorf("data race reported in %s", f)
		}
	}
	if t.Failed() {
		t.Logf("fakecontainerd log (kept with the rest of %s): %s\n%s", d.dir, d.log, d.logTail(60))
		return
	}
	os.RemoveAll(d.dir)
}

// logFiles are the server's log and the process-mode shims' logs.
func (d *daemon) logFiles() []string {
	shims, _ := filepath.Glob(filepath.Join(d.state, "s", "*.log"))
	return append([]string{d.log}, shims...)
}

// logTail is the last n lines of the server's log.
func (d *daemon) logTail(n int) string {
	f, err := os.Open(d.log)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// ctx is a context for a whole crictl command; cri-client adds the
// per-call timeout itself.
func (d *daemon) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	d.t.Cleanup(cancel)
	return ctx
}

// proc is one process from /proc.
type proc struct {
	pid  int
	args []string
}

// processes lists the processes whose command line can be read.
func processes() []proc {
	entries, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || fmt.Sprint(pid) != e.Name() {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(data) == 0 {
			continue
		}
		out = append(out, proc{pid: pid, args: strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00")})
	}
	return out
}

// flagValue is the value after flag in args, or "".
func flagValue(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// shimProcesses are the live `fakecontainerd shim` processes serving the
// given state dir (every daemon has its own).
func shimProcesses(stateDir string) []proc {
	var out []proc
	for _, p := range processes() {
		if slices.Contains(p.args, "shim") && flagValue(p.args, "--state") == stateDir && alive(p.pid) {
			out = append(out, p)
		}
	}
	return out
}

// alive reports whether pid is a process that has not exited: a zombie
// (exited, not yet reaped by whoever adopted it) counts as gone.
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: comm may hold spaces and parentheses.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	switch s[i+2] {
	case 'Z', 'X', 'x':
		return false
	}
	return true
}

// killPid SIGKILLs one process by pid and waits briefly for it to go.
func killPid(pid int) {
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return
	}
	for deadline := time.Now().Add(5 * time.Second); alive(pid) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}
