package kubelet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Defaults for the binaries under test; `make e2e-kubelet` sets both
// variables.
const (
	defaultKubeVersion = "v1.36.3"
	podImage           = "busybox:latest"
)

// fakeBinary is bin/fakecontainerd of this checkout, or $FAKECONTAINERD.
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
		t.Fatalf("fakecontainerd binary %s: %v (run `make e2e-kubelet` at the repository root, or `make build`)", abs, err)
	}
	return abs
}

// kubeletBinary is $KUBELET or the binary build-kubelet.sh caches.
func kubeletBinary(t *testing.T) string {
	t.Helper()
	p := os.Getenv("KUBELET")
	if p == "" {
		version := os.Getenv("KUBE_VERSION")
		if version == "" {
			version = defaultKubeVersion
		}
		cache := os.Getenv("KUBELET_CACHE")
		if cache == "" {
			base := os.Getenv("XDG_CACHE_HOME")
			if base == "" {
				home, _ := os.UserHomeDir()
				base = filepath.Join(home, ".cache")
			}
			cache = filepath.Join(base, "fakecontainerd")
		}
		p = filepath.Join(cache, "kubelet-"+version, "kubelet")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("kubelet binary %s: %v (run ./build-kubelet.sh or `make e2e-kubelet`)", p, err)
	}
	return p
}

// kubeletVersion is the version `kubelet --version` prints and its minor
// ("Kubernetes v1.19.16" gives "v1.19.16", 19).
func kubeletVersion(t *testing.T, bin string) (string, int) {
	t.Helper()
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", bin, err)
	}
	m := kubeletVersionRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("%s --version printed %q, want Kubernetes v1.N.M", bin, out)
	}
	minor, _ := strconv.Atoi(string(m[2]))
	return string(m[1]), minor
}

var kubeletVersionRE = regexp.MustCompile(`Kubernetes (v1\.([0-9]+)\.[0-9]+)`)

// logRoot is where every test keeps its logs: $E2E_LOG_DIR or _logs here.
func logRoot() string {
	if d := os.Getenv("E2E_LOG_DIR"); d != "" {
		return d
	}
	abs, err := filepath.Abs("_logs")
	if err != nil {
		return "_logs"
	}
	return abs
}

// testLogDir is a fresh folder for t's logs, named after the test. It is
// kept after the run, pass or fail; a failing test names it.
func testLogDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(logRoot(), strings.NewReplacer("/", string(filepath.Separator), " ", "_").Replace(t.Name()))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("FAILED: the logs of %s (fakecontainerd.log, kubelet.log, timeline.txt, configs) are in %s", t.Name(), dir)
		}
	})
	return dir
}

// freePort asks the kernel for a free loopback TCP port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// proc is a process the suite started. It is stopped by its own pid at the
// end of the test, pass or fail; Pdeathsig kills it if the test binary
// itself dies first (a go test timeout), so nothing outlives the suite.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  *os.File
}

func startProc(t *testing.T, name, logPath string, bin string, args ...string) *proc {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "# %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Pdeathsig fires when the thread that forked exits; keep this
	// goroutine on its thread while forking so that thread is not one Go
	// is about to retire.
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), log: f}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Logf("started %s (pid %d), log %s", name, cmd.Process.Pid, logPath)
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the pid, then SIGKILL after a grace period.
func (p *proc) stop(t *testing.T) {
	defer p.log.Close()
	if p.exited() {
		t.Logf("%s (pid %d) had already exited: %v", p.name, p.cmd.Process.Pid, p.err)
		return
	}
	_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	t.Logf("stopped %s (pid %d)", p.name, p.cmd.Process.Pid)
}

// podManifest is a static pod: busybox containers that would loop
// forever; fakecontainerd.io/ annotations script what the fake process
// really does (kubelet copies pod annotations to the sandbox config, and
// fakecontainerd applies "<key>.<container>" to that container).
type podManifest struct {
	name          string
	restartPolicy string
	containers    []string
	annotations   map[string]string
	// command, when set, is every container's command instead of the loop;
	// readinessExec, when set, is their exec readiness probe.
	command       []string
	readinessExec []string
	// resources, when set, is every container's requests and limits
	// (equal requests and limits make a Guaranteed pod).
	resources map[string]string
}

func (p podManifest) json() ([]byte, error) {
	var containers []map[string]any
	for _, c := range p.containers {
		command := []string{"sh", "-c", "while true; do sleep 1; done"}
		if p.command != nil {
			command = p.command
		}
		container := map[string]any{
			"name":            c,
			"image":           podImage,
			"imagePullPolicy": "IfNotPresent",
			"command":         command,
		}
		if p.resources != nil {
			container["resources"] = map[string]any{"requests": p.resources, "limits": p.resources}
		}
		if p.readinessExec != nil {
			container["readinessProbe"] = map[string]any{
				"exec": map[string]any{"command": p.readinessExec}, "periodSeconds": 1, "timeoutSeconds": 1,
			}
		}
		containers = append(containers, container)
	}
	return json.MarshalIndent(map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata":   map[string]any{"name": p.name, "namespace": "default", "annotations": p.annotations},
		"spec": map[string]any{
			"restartPolicy":                 p.restartPolicy,
			"terminationGracePeriodSeconds": 5,
			"containers":                    containers,
		},
	}, "", "  ")
}

// node is one fakecontainerd and one kubelet on it, each with its own
// directories, ports and hostname, so several can run side by side.
type node struct {
	t        *testing.T
	name     string // kubelet's hostname-override; static pods are "<pod>-<name>"
	logDir   string
	workDir  string // short temp dir: sockets, roots
	socket   string
	fake     *proc
	kubelet  *proc
	roPort   int
	hzPort   int
	cri      cri.RuntimeServiceClient
	img      cri.ImageServiceClient
	http     *http.Client
	started  time.Time
	timeline *timeline
	// kubeVersion is what kubelet --version says ("v1.19.16"), kubeMinor
	// its minor version (19).
	kubeVersion string
	kubeMinor   int
	// expectf reports an outcome that differs from an arm's expectation
	// (errorf, or a log line in report-only mode).
	expectf func(format string, args ...any)
}

// nodeOptions configure a node: the fakecontainerd config overlay (read on
// top of the embedded default) and the static pods.
type nodeOptions struct {
	fakeConfig string
	pods       []podManifest
	// kubeletConfig is set over the suite's KubeletConfiguration
	// (featureGates, cpuManagerPolicy, ...).
	kubeletConfig map[string]any
}

func startNode(t *testing.T, name, logDir string, opts nodeOptions) *node {
	t.Helper()
	fakeBin, kubeletBin := fakeBinary(t), kubeletBinary(t)
	// Unix socket paths must stay under ~100 bytes: a short /tmp dir.
	work, err := os.MkdirTemp("", "fk-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// kubelet bind-mounts its root dir onto itself (shared
		// propagation) and leaves it mounted when it exits.
		unmountUnder(t, work)
		if err := os.RemoveAll(work); err != nil {
			t.Logf("remove %s: %v", work, err)
		}
		removeHostPodLogs(t, name, opts.pods)
	})
	n := &node{
		t: t, name: name, logDir: logDir, workDir: work,
		socket:   filepath.Join(work, "cri.sock"),
		http:     &http.Client{Timeout: 5 * time.Second},
		timeline: &timeline{},
	}
	n.timeline.path = filepath.Join(logDir, "timeline.txt")
	t.Cleanup(n.timeline.write)

	// fakecontainerd.
	args := []string{"serve", "--address", n.socket, "--root", filepath.Join(work, "root"),
		"--state", filepath.Join(work, "state"), "--log-level", "debug"}
	if opts.fakeConfig != "" {
		cfg := filepath.Join(logDir, "fakecontainerd.toml")
		if err := os.WriteFile(cfg, []byte(opts.fakeConfig), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", cfg)
	}
	n.fake = startProc(t, name+"/fakecontainerd", filepath.Join(logDir, "fakecontainerd.log"), fakeBin, args...)
	conn, err := grpc.NewClient("unix://"+n.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n.cri, n.img = cri.NewRuntimeServiceClient(conn), cri.NewImageServiceClient(conn)
	n.waitFor("fakecontainerd to serve the CRI", 30*time.Second, func() error {
		if n.fake.exited() {
			return errFatal{fmt.Errorf("fakecontainerd exited: %v", n.fake.err)}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := n.cri.Version(ctx, &cri.VersionRequest{})
		return err
	})

	// Static pods.
	manifests := filepath.Join(logDir, "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range opts.pods {
		data, err := p.json()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(manifests, p.name+".json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// kubelet, standalone.
	n.roPort, n.hzPort = freePort(t), freePort(t)
	kcfg := map[string]any{
		"apiVersion":                    "kubelet.config.k8s.io/v1beta1",
		"kind":                          "KubeletConfiguration",
		"failCgroupV1":                  false,
		"cgroupsPerQOS":                 false,
		"enforceNodeAllocatable":        []string{},
		"failSwapOn":                    false,
		"cgroupDriver":                  "cgroupfs",
		"localStorageCapacityIsolation": false,
		"staticPodPath":                 manifests,
		"fileCheckFrequency":            "5s",
		"address":                       "127.0.0.1",
		"port":                          freePort(t),
		"readOnlyPort":                  n.roPort,
		"healthzBindAddress":            "127.0.0.1",
		"healthzPort":                   n.hzPort,
		"podLogsDir":                    filepath.Join(work, "pod-logs"),
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": true},
			"webhook":   map[string]any{"enabled": false},
		},
		"authorization": map[string]any{"mode": "AlwaysAllow"},
	}
	// Kubelets before 1.27 take the runtime from flags, and before 1.24
	// default to dockershim. Keys a kubelet does not know (failCgroupV1,
	// podLogsDir, ...) fail its strict decoding; it then decodes
	// leniently and logs a warning ("using lenient decoding").
	var runtimeFlags []string
	if n.kubeVersion, n.kubeMinor = kubeletVersion(t, kubeletBin); n.kubeMinor >= 27 {
		kcfg["containerRuntimeEndpoint"] = "unix://" + n.socket
	} else {
		runtimeFlags = []string{"--container-runtime=remote", "--container-runtime-endpoint=unix://" + n.socket}
		// They also add KUBE-MARK-DROP and friends to the host's
		// iptables (seen: "Failed to ensure that nat chain
		// KUBE-MARK-DROP exists" where iptables is missing).
		kcfg["makeIPTablesUtilChains"] = false
	}
	if n.kubeMinor < 26 {
		// Their device manager keeps its checkpoint in the fixed
		// /var/lib/kubelet/device-plugins, whatever --root-dir says: two
		// such kubelets at once race on it and reject pods ("Allocate
		// failed due to failed to write checkpoint file", seen with
		// 1.18). The gate (GA in 1.26) swaps in a stub.
		kcfg["featureGates"] = map[string]bool{"DevicePlugins": false}
	}
	maps.Copy(kcfg, opts.kubeletConfig)
	data, err := json.MarshalIndent(kcfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	kcfgPath := filepath.Join(logDir, "kubelet-config.json")
	if err := os.WriteFile(kcfgPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	n.started = time.Now()
	// --cert-dir defaults to /var/lib/kubelet/pki whatever --root-dir says.
	n.kubelet = startProc(t, name+"/kubelet", filepath.Join(logDir, "kubelet.log"), kubeletBin,
		append([]string{"--config=" + kcfgPath, "--root-dir=" + filepath.Join(work, "kubelet"), "--cert-dir=" + filepath.Join(work, "kubelet", "pki"), "--hostname-override=" + name, "--v=3", "--vmodule=generic=5"}, runtimeFlags...)...)
	n.waitFor("kubelet to answer on its read-only port", time.Minute, func() error {
		if n.kubelet.exited() {
			return errFatal{fmt.Errorf("kubelet exited: %v", n.kubelet.err)}
		}
		_, err := n.pods()
		return err
	})
	return n
}

// removeHostPodLogs removes what kubelet insists on writing outside its
// root dir for this node's static pods: kubelets before 1.29 (no
// podLogsDir) write pod logs to /var/log/pods/<ns>_<pod>_<uid>, and every
// kubelet links them from /var/log/containers/<pod>_<ns>_<container>-<id>.log.
// A link is removed only once it dangles, so a live one of another
// kubelet's pod of the same name stays.
func removeHostPodLogs(t *testing.T, node string, pods []podManifest) {
	for _, p := range pods {
		pod := p.name + "-" + node
		dirs, _ := filepath.Glob(filepath.Join("/var/log/pods", "default_"+pod+"_*"))
		for _, d := range dirs {
			if err := os.RemoveAll(d); err != nil {
				t.Logf("remove %s: %v", d, err)
			}
		}
		links, _ := filepath.Glob(filepath.Join("/var/log/containers", pod+"_default_*.log"))
		for _, l := range links {
			if _, err := os.Stat(l); errors.Is(err, os.ErrNotExist) {
				os.Remove(l)
			}
		}
	}
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(t *testing.T, dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Logf("read mountinfo: %v", err)
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", p, err)
		}
	}
}

// runArms runs one parallel subtest per arm name, skipping those not in
// E2E_ARMS when it is set (comma-separated; empty runs every arm).
func runArms(t *testing.T, names []string, run func(t *testing.T, i int)) {
	want := map[string]bool{}
	for _, a := range strings.Split(os.Getenv("E2E_ARMS"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			want[a] = true
		}
	}
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			if len(want) > 0 && !want[name] {
				t.Skipf("not in E2E_ARMS=%s", os.Getenv("E2E_ARMS"))
			}
			t.Parallel()
			run(t, i)
		})
	}
}

// errFatal stops waitFor at once.
type errFatal struct{ error }

// waitFor polls cond every second until it returns nil, failing the test
// (naming the log folder) on timeout or on an errFatal.
func (n *node) waitFor(what string, within time.Duration, cond func() error) {
	n.t.Helper()
	if err := poll(within, cond); err != nil {
		n.fatalf("waiting %v for %s: %v", within, what, err)
	}
}

// waitOrReport is waitFor that reports a timeout as an error and returns.
func (n *node) waitOrReport(what string, within time.Duration, cond func() error) {
	n.t.Helper()
	if err := poll(within, cond); err != nil {
		n.errorf("waiting %v for %s: %v", within, what, err)
	}
}

// poll calls cond every second until it returns nil (poll returns nil),
// returns an errFatal, or within has passed (poll returns cond's last
// error).
func poll(within time.Duration, cond func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		var fatal errFatal
		if errors.As(err, &fatal) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Second)
	}
}

func (n *node) fatalf(format string, args ...any) {
	n.t.Helper()
	n.t.Fatalf("%s [node %s; logs in %s]", fmt.Sprintf(format, args...), n.name, n.logDir)
}

func (n *node) errorf(format string, args ...any) {
	n.t.Helper()
	n.t.Errorf("%s [node %s; logs in %s]", fmt.Sprintf(format, args...), n.name, n.logDir)
}

// staticPodName is the name kubelet gives a static pod on this node.
func (n *node) staticPodName(pod string) string { return pod + "-" + n.name }

// --- kubelet's read-only endpoints ---

// kubePod is the part of a v1.Pod the suite reads from /pods.
type kubePod struct {
	Metadata struct {
		Name string `json:"name"`
		UID  string `json:"uid"`
	} `json:"metadata"`
	Status struct {
		Phase             string            `json:"phase"`
		ContainerStatuses []containerStatus `json:"containerStatuses"`
	} `json:"status"`
}

type containerState struct {
	Running *struct {
		StartedAt time.Time `json:"startedAt"`
	} `json:"running"`
	Waiting *struct {
		Reason string `json:"reason"`
	} `json:"waiting"`
	Terminated *struct {
		ExitCode    int       `json:"exitCode"`
		Reason      string    `json:"reason"`
		ContainerID string    `json:"containerID"`
		FinishedAt  time.Time `json:"finishedAt"`
	} `json:"terminated"`
}

func (s containerState) String() string {
	switch {
	case s.Running != nil:
		return "running"
	case s.Waiting != nil:
		return "waiting(" + s.Waiting.Reason + ")"
	case s.Terminated != nil:
		return fmt.Sprintf("terminated(%s, exit %d)", s.Terminated.Reason, s.Terminated.ExitCode)
	}
	return "none"
}

type containerStatus struct {
	Name         string         `json:"name"`
	ContainerID  string         `json:"containerID"`
	RestartCount int            `json:"restartCount"`
	Ready        bool           `json:"ready"`
	State        containerState `json:"state"`
	LastState    containerState `json:"lastState"`
}

// runtimeID is the CRI id in a "containerd://<id>" container id.
func (c containerStatus) runtimeID() string {
	_, id, _ := strings.Cut(c.ContainerID, "://")
	return id
}

func (p kubePod) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", p.Metadata.Name, p.Status.Phase)
	for _, c := range p.Status.ContainerStatuses {
		fmt.Fprintf(&b, " [%s %s restarts=%d last=%s]", c.Name, c.State, c.RestartCount, c.LastState)
	}
	return b.String()
}

func (n *node) get(port int, path string) ([]byte, error) {
	resp, err := n.http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// pods is kubelet's /pods.
func (n *node) pods() (map[string]kubePod, error) {
	body, err := n.get(n.roPort, "/pods")
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []kubePod `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("decode /pods: %w", err)
	}
	out := map[string]kubePod{}
	for _, p := range list.Items {
		out[p.Metadata.Name] = p
	}
	return out, nil
}

// pod is one static pod from /pods.
func (n *node) pod(name string) (kubePod, error) {
	pods, err := n.pods()
	if err != nil {
		return kubePod{}, err
	}
	p, ok := pods[n.staticPodName(name)]
	if !ok {
		return kubePod{}, fmt.Errorf("pod %s not in /pods yet", n.staticPodName(name))
	}
	return p, nil
}

// metrics is kubelet's /metrics, as "name{labels}" -> value.
func (n *node) metrics() (map[string]float64, error) {
	body, err := n.get(n.roPort, "/metrics")
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// healthz is kubelet's /healthz on its healthz port.
func (n *node) healthz() error {
	_, err := n.get(n.hzPort, "/healthz")
	return err
}

// --- logs ---

// klogLine matches kubelet's klog header: "E1122 13:46:17.123456 ...".
var klogLine = regexp.MustCompile(`^[IWEF](\d{2})(\d{2}) (\d{2}:\d{2}:\d{2}\.\d{6})`)

// kubeletLogMatches returns the times and text of kubelet log lines
// containing substr.
func (n *node) kubeletLogMatches(substr string) []logLine {
	return matchLog(filepath.Join(n.logDir, "kubelet.log"), substr, func(line string) (time.Time, bool) {
		m := klogLine.FindStringSubmatch(line)
		if m == nil {
			return time.Time{}, false
		}
		year := time.Now().Year()
		ts, err := time.ParseInLocation("2006 01 02 15:04:05.000000", fmt.Sprintf("%d %s %s %s", year, m[1], m[2], m[3]), time.Local)
		return ts, err == nil
	})
}

// fakeTime matches fakecontainerd's logrus timestamp: time="<RFC3339Nano>".
var fakeTime = regexp.MustCompile(`^time="([^"]+)"`)

// fakeLogMatches returns fakecontainerd log lines containing every substr.
func (n *node) fakeLogMatches(substrs ...string) []logLine {
	var out []logLine
	for _, l := range matchLog(filepath.Join(n.logDir, "fakecontainerd.log"), substrs[0], func(line string) (time.Time, bool) {
		m := fakeTime.FindStringSubmatch(line)
		if m == nil {
			return time.Time{}, false
		}
		ts, err := time.Parse(time.RFC3339Nano, m[1])
		return ts, err == nil
	}) {
		if !slices.ContainsFunc(substrs[1:], func(s string) bool { return !strings.Contains(l.text, s) }) {
			out = append(out, l)
		}
	}
	return out
}

type logLine struct {
	at   time.Time
	text string
}

func matchLog(path, substr string, stamp func(string) (time.Time, bool)) []logLine {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, substr) {
			continue
		}
		if ts, ok := stamp(line); ok {
			out = append(out, logLine{at: ts, text: line})
		}
	}
	return out
}

// --- timeline ---

// timeline is what the harness saw, in order, written to timeline.txt.
type timeline struct {
	mu      sync.Mutex
	path    string
	t0      time.Time
	entries []timelineEntry
}

type timelineEntry struct {
	at   time.Time
	what string
}

func (tl *timeline) add(at time.Time, format string, args ...any) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.entries = append(tl.entries, timelineEntry{at: at, what: fmt.Sprintf(format, args...)})
}

// setOrigin makes timeline.txt show offsets from t0 (the exit).
func (tl *timeline) setOrigin(t0 time.Time) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.t0 = t0
}

func (tl *timeline) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	es := slices.Clone(tl.entries)
	slices.SortStableFunc(es, func(a, b timelineEntry) int { return a.at.Compare(b.at) })
	var b strings.Builder
	for _, e := range es {
		off := ""
		if !tl.t0.IsZero() {
			off = fmt.Sprintf("%+8.1fs  ", e.at.Sub(tl.t0).Seconds())
		}
		fmt.Fprintf(&b, "%s  %s%s\n", e.at.Format("15:04:05.000"), off, e.what)
	}
	return b.String()
}

func (tl *timeline) write() {
	_ = os.WriteFile(tl.path, []byte(tl.String()), 0o644)
}
