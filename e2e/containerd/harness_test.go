package containerd

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	internalapi "k8s.io/cri-api/pkg/apis"
	remote "k8s.io/cri-client/pkg"
)

const (
	// crictlTimeout is crictl's --timeout default: every RPC gets it.
	crictlTimeout = 2 * time.Second
	// Image references as both runtimes normalise them; containerd.sh
	// imports them into containerd and the fake "pulls" them offline.
	busyboxImage = "docker.io/library/busybox:latest"
	pauseImage   = "registry.k8s.io/pause:3.10"
)

// runtime is one CRI server under test with crictl's two clients.
type runtime struct {
	name string // "containerd" or "fakecontainerd"
	dir  string
	sock string
	log  string // the daemon's log file
	logs string // the test's log directory (kept)
	// version is "containerd 1.6.20~ds1" as Version answers, for tables.
	version string
	// release is the containerd line: the real one's from its version,
	// the fake's its containerd_version ("1.6", "1.7", "2.x").
	release string
	rt      internalapi.RuntimeService
	img     internalapi.ImageManagerService
	// admin runs `fakecontainerd <verb...> --address sock <args>` (fake
	// only).
	admin func(verb []string, args ...string) (string, error)
	// onStart, if set, learns when the incident's container started.
	onStart func(time.Time)

	idsMu sync.Mutex
	ids   *normaliser // names of the incident's ids, for its logs
}

// nameID records a symbolic name for an id this runtime chose.
func (r *runtime) nameID(id, sym string) {
	r.idsMu.Lock()
	defer r.idsMu.Unlock()
	if r.ids == nil {
		r.ids = newNormaliser()
	}
	r.ids.name(id, sym)
}

// norm is the runtime's normaliser of incident texts.
func (r *runtime) norm() *normaliser {
	r.idsMu.Lock()
	defer r.idsMu.Unlock()
	if r.ids == nil {
		r.ids = newNormaliser()
	}
	return r.ids
}

func (r *runtime) endpoint() string { return "unix://" + r.sock }

// cgroupParent is the cgroup (cgroupfs) under which this runtime's pods
// go; containerd.sh stop removes it.
func (r *runtime) cgroupParent() string { return "/fakecontainerd-e2e-" + filepath.Base(r.dir) }

// connect makes crictl's clients with crictl's per-call timeout;
// NewRemoteRuntimeService validates the connection with a Version call.
func (r *runtime) connect(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	rt, err := remote.NewRemoteRuntimeService(ctx, r.endpoint(), crictlTimeout, nil, false)
	if err != nil {
		t.Fatalf("%s: connect: %v", r.name, err)
	}
	img, err := remote.NewRemoteImageService(ctx, r.endpoint(), crictlTimeout, nil, false)
	if err != nil {
		t.Fatalf("%s: connect image service: %v", r.name, err)
	}
	r.rt, r.img = rt, img
	if v, err := rt.Version(ctx, "v1"); err == nil {
		r.version = v.GetRuntimeName() + " " + v.GetRuntimeVersion()
		if r.release == "" {
			r.release = releaseOf(v.GetRuntimeVersion())
		}
	}
	t.Cleanup(func() {
		_ = rt.Close(context.Background())
		_ = img.Close(context.Background())
	})
}

// logDir is _logs/<test> here (or under $E2E_LOG_DIR), emptied first.
func logDir(t *testing.T) string {
	t.Helper()
	root := os.Getenv("E2E_LOG_DIR")
	if root == "" {
		root = "_logs"
	}
	dir, err := filepath.Abs(filepath.Join(root, strings.ReplaceAll(t.Name(), "/", "_")))
	if err != nil {
		t.Fatal(err)
	}
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// shortTemp is a temp dir with a short path (unix socket paths stay under
// 108 bytes, shim sockets included).
func shortTemp(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// script is containerd.sh next to this file.
func script() string {
	p, _ := filepath.Abs("containerd.sh")
	return p
}

// startContainerd starts a private containerd with containerd.sh and
// stops it, by pid, when the test ends; its log is copied to logs.
// $CONTAINERD names another containerd binary (a 2.x build, say).
func startContainerd(t *testing.T, logs string) *runtime {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("real containerd needs root")
	}
	dir := shortTemp(t, "fcdc")
	out, err := exec.Command(script(), "start", dir).CombinedOutput()
	if err != nil {
		_ = exec.Command(script(), "stop", dir).Run()
		t.Fatalf("containerd.sh start %s: %v\n%s", dir, err, out)
	}
	r := &runtime{name: "containerd", dir: dir, logs: logs, sock: filepath.Join(dir, "containerd.sock"), log: filepath.Join(dir, "containerd.log")}
	t.Cleanup(func() {
		if out, err := exec.Command(script(), "stop", dir).CombinedOutput(); err != nil {
			t.Errorf("containerd.sh stop %s: %v\n%s", dir, err, out)
		}
		copyFile(t, r.log, filepath.Join(logs, "containerd.log"))
		copyFile(t, filepath.Join(dir, "config.toml"), filepath.Join(logs, "containerd.toml"))
		// The daemon's root holds overlay snapshots: unmounted with the
		// private mount namespace when the daemon went.
		_ = os.RemoveAll(dir)
	})
	r.connect(t)
	return r
}

// fakeBinary is $FAKECONTAINERD or bin/fakecontainerd of this checkout.
func fakeBinary(t *testing.T) string {
	t.Helper()
	p := os.Getenv("FAKECONTAINERD")
	if p == "" {
		p = filepath.Join("..", "..", "bin", "fakecontainerd")
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("fakecontainerd binary %s: %v (run `make e2e-containerd` at the repository root, or `make build`)", abs, err)
	}
	return abs
}

// releaseOf is the containerd line of a Version answer's runtime version
// ("1.6.20~ds1" -> "1.6", "2.2.7+unknown" -> "2.x", "v1.7.30" -> "1.7"),
// the value of the fake's containerd_version that models it.
func releaseOf(version string) string {
	v := strings.TrimPrefix(version, "v")
	switch {
	case v == "":
		return ""
	case v[0] >= '2' && v[0] <= '9' && (len(v) == 1 || v[1] == '.'):
		return "2.x"
	case strings.HasPrefix(v, "1.7.") || v == "1.7":
		return "1.7"
	}
	return "1.6"
}

// fakeRelease is the containerd_version the fake runs with against real:
// $FAKE_CONTAINERD_VERSION, or the real containerd's own line.
func fakeRelease(real *runtime) string {
	if v := os.Getenv("FAKE_CONTAINERD_VERSION"); v != "" {
		return v
	}
	return real.release
}

// startFake serves bin/fakecontainerd on its own root and state with the
// embedded default config (whose sandbox_image is the pause image
// containerd.sh imports) and containerd_version = release, and pulls the
// two images containerd has imported, offline as every fake pull is.
func startFake(t *testing.T, logs, release string, extra ...string) *runtime {
	t.Helper()
	bin := fakeBinary(t)
	dir := shortTemp(t, "fcdf")
	r := &runtime{name: "fakecontainerd", dir: dir, logs: logs, sock: filepath.Join(dir, "cri.sock"), log: filepath.Join(dir, "fakecontainerd.log"), release: release}
	logFile, err := os.Create(r.log)
	if err != nil {
		t.Fatal(err)
	}
	// Every key the file leaves out keeps the embedded default.
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("version = 2\n[plugins.\"io.fakecontainerd.v1\"]\n  containerd_version = %q\n", release)), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--config", cfg, "--address", r.sock, "--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"), "--log-level", "debug"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		copyFile(t, r.log, filepath.Join(logs, "fakecontainerd.log"))
		_ = os.RemoveAll(dir)
	})
	r.admin = func(verb []string, a ...string) (string, error) {
		full := append(append(append([]string{}, verb...), "--address", r.sock), a...)
		out, err := exec.Command(bin, full...).CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("fakecontainerd %s: %w: %s", strings.Join(full, " "), err, out)
		}
		return string(out), nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(r.sock); err == nil {
			break
		}
		select {
		case <-done:
			t.Fatalf("fakecontainerd exited during start-up (log %s)", r.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("fakecontainerd: no socket %s after 30s", r.sock)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.connect(t)
	for _, image := range []string{busyboxImage, pauseImage} {
		if _, err := r.img.PullImage(context.Background(), imageSpec(image), nil, nil); err != nil {
			t.Fatalf("fakecontainerd: pull %s: %v", image, err)
		}
	}
	return r
}

func copyFile(t *testing.T, from, to string) {
	in, err := os.Open(from)
	if err != nil {
		t.Logf("keep log %s: %v", from, err)
		return
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Logf("keep log %s: %v", from, err)
		return
	}
	defer out.Close()
	_, _ = io.Copy(out, in)
}

// shimPid is the pid of the containerd-shim-runc-v2 serving sandbox
// podID of the private containerd at dir: its command line names our
// socket and the sandbox.
func shimPid(dir, podID string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "containerd-shim-runc-v2" {
			continue
		}
		if flagValue(args, "-address") == filepath.Join(dir, "containerd.sock") && flagValue(args, "-id") == podID {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no containerd-shim-runc-v2 for sandbox %s of %s", podID, dir)
}

func flagValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}
