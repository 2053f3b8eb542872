package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/ttrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"

	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/faults/clock"
	"github.com/fakecontainerd/fakecontainerd/faults/clock/deadline"
)

// Shim modes.
const (
	ModeInProcess = "inprocess"
	ModeProcess   = "process"
)

// ManagerConfig configures the daemon side of the shims.
type ManagerConfig struct {
	// StateDir is the daemon's --state: bundles, shim sockets and process
	// records live under it.
	StateDir      string
	Mode          string
	EventsAddress string
	Clock         clock.Clock
	Defaults      Defaults
	Log           *logrus.Entry
	// Executable and Args start a process-mode shim: Executable Args... plus
	// the flags the manager adds (see processArgs).
	Executable string
	Args       []string
	// Faults, Toggles and Target are shared with in-process shims. A
	// process-mode shim gets the toggles on at its start (--fix) and no
	// faults: it is another process.
	Faults  *faults.Injector
	Toggles *faults.Toggles
	Target  func(id string) faults.Target
	// Locks watches in-process shims' process locks; Calls watches the
	// daemon's calls to every shim.
	Locks LockObserver
	Calls CallObserver
	// Unmounted, if set, is told every rootfs unmount of an in-process
	// shim (metrics); a process-mode shim cannot report it.
	Unmounted UnmountObserver
	// ContainerdV2 converts shim errors as containerd 2.x does (an Unknown
	// error keeps its message without ": unknown", fromShim) and logs a
	// failed shim Delete at error level, as 2.x's runtime/v2 does.
	ContainerdV2 bool
	// PidFromState is containerd 1.7.30's and 2.x's client: a task loaded
	// while its State failed has pid 0 (the tasks service's Get answers
	// the zero state's pid), and WithProcessKill skips a task with pid 0
	// (containerd #10441). 1.6 has no such skip.
	PidFromState bool
}

// Manager is the daemon side of the shims, the counterpart of containerd's
// runtime/v2 TaskManager: it starts or finds the shim of a sandbox group,
// keeps the daemon's list of tasks, and reconnects after a restart.
type Manager struct {
	cfg ManagerConfig

	mu    sync.Mutex
	shims map[string]*shimConn // by group
	tasks map[string]*Task     // the daemon's task list, by container id
	// loading holds, during Load only, every group's process records, so
	// the in-process shims Load starts do not each read them all again.
	loading map[string][]*processRecord
	// starting has a channel per group whose shim is being started,
	// closed when it is up: a start (a few ms, a process spawn in process
	// mode) does not hold mu, so other pods' tasks go on meanwhile.
	starting map[string]chan struct{}
	// orphans are the groups whose in-process shim died: only a new shim
	// of theirs can have records to restore outside Load. Any other new
	// shim is a new pod's and starts empty, without reading every
	// container's record (which made each RunPodSandbox O(containers)).
	orphans map[string]bool
	closed  bool
}

type shimConn struct {
	group   string
	address string
	client  *ttrpc.Client
	task    taskAPI.TTRPCTaskService
	local   *Server // in-process mode only
}

// NewManager makes a manager; call Load to find shims left by a previous run.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Mode != ModeInProcess && cfg.Mode != ModeProcess {
		return nil, fmt.Errorf("shim mode %q: must be %q or %q", cfg.Mode, ModeInProcess, ModeProcess)
	}
	for _, d := range []string{BundleRoot(cfg.StateDir), RuncRoot(cfg.StateDir)} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("create shim state dir: %w", err)
		}
	}
	return &Manager{cfg: cfg, shims: map[string]*shimConn{}, tasks: map[string]*Task{},
		starting: map[string]chan struct{}{}, orphans: map[string]bool{}}, nil
}

// BundleRoot holds one bundle directory per task, as
// /run/containerd/io.containerd.runtime.v2.task/<ns>.
func BundleRoot(stateDir string) string {
	return filepath.Join(stateDir, "io.containerd.runtime.v2.task", Namespace)
}

// BundleDir is the bundle of one task.
func (m *Manager) BundleDir(id string) string { return filepath.Join(BundleRoot(m.cfg.StateDir), id) }

// CreateOpts describes a task to create.
type CreateOpts struct {
	ID     string
	Group  string // the sandbox id: one shim per pod
	Spec   *specs.Spec
	Rootfs []*types.Mount
	// Stdout and Stderr are the FIFOs the process writes its output to
	// (the daemon reads them into the container log); "" drops the stream.
	Stdout, Stderr string
	Terminal       bool
	// Stdin is the FIFO of the process's stdin (a container created with
	// stdin), "" for none.
	Stdin string
}

// bundleGroup is written next to address so a restarted daemon knows which
// shim group a bundle belongs to.
const bundleGroupFile = "group"

// Create writes the bundle, starts the group's shim if needed and creates
// the task in it.
func (m *Manager) Create(ctx context.Context, o CreateOpts) (*Task, error) {
	bundle := m.BundleDir(o.ID)
	if err := writeBundle(bundle, o); err != nil {
		return nil, err
	}
	sc, err := m.shimFor(ctx, o.Group)
	if err != nil {
		os.RemoveAll(bundle)
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(bundle, "address"), []byte("unix://"+sc.address)); err != nil {
		os.RemoveAll(bundle)
		return nil, err
	}
	resp, err := sc.task.Create(ctx, &taskAPI.CreateTaskRequest{
		ID: o.ID, Bundle: bundle, Rootfs: o.Rootfs, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, Terminal: o.Terminal,
	})
	if err != nil {
		os.RemoveAll(bundle)
		return nil, fmt.Errorf("failed to create shim task: %w", m.fromShim(err))
	}
	t := &Task{id: o.ID, pid: resp.Pid, m: m, shim: sc}
	m.mu.Lock()
	m.tasks[o.ID] = t
	m.mu.Unlock()
	return t, nil
}

func writeBundle(bundle string, o CreateOpts) error {
	if err := os.MkdirAll(filepath.Join(bundle, "rootfs"), 0o711); err != nil {
		return fmt.Errorf("create bundle of %s: %w", o.ID, err)
	}
	data, err := json.Marshal(o.Spec)
	if err != nil {
		return fmt.Errorf("encode spec of %s: %w", o.ID, err)
	}
	if err := writeFileAtomic(filepath.Join(bundle, "config.json"), data); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(bundle, bundleGroupFile), []byte(o.Group))
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Get is the tasks service's Get: the daemon's task list, then the shim's
// State under the 2 s io.containerd.timeout.task.state cap. NotFound and
// Unavailable are errors; any other State failure is logged ("get state
// for") and the task is returned with an unknown status, as containerd does.
func (m *Manager) Get(ctx context.Context, id string) (*Task, error) {
	m.mu.Lock()
	t, ok := m.tasks[id]
	m.mu.Unlock()
	if !ok {
		return nil, &shimError{code: codes.NotFound, msg: fmt.Sprintf("no running task found: task %s not found", id)}
	}
	st, err := t.Status(ctx)
	if err != nil {
		return nil, err
	}
	if m.cfg.PidFromState && st.Pid != t.pid {
		// The task as loaded carries the pid its State gave: none when
		// the State failed.
		view := *t
		view.pid = st.Pid
		return &view, nil
	}
	return t, nil
}

// Tasks lists the daemon's tasks.
func (m *Manager) Tasks() []*Task {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Task, 0, len(m.tasks))
	for _, t := range m.tasks {
		out = append(out, t)
	}
	return out
}

func (m *Manager) removeTask(id string) {
	m.mu.Lock()
	delete(m.tasks, id)
	m.mu.Unlock()
}

// shimFor returns the group's shim, connecting to a live one or starting it.
// One caller per group starts it, without holding mu; the group's other
// callers wait for that start.
func (m *Manager) shimFor(ctx context.Context, group string) (*shimConn, error) {
	m.mu.Lock()
	for {
		if sc, ok := m.shims[group]; ok {
			m.mu.Unlock()
			return sc, nil
		}
		wait, ok := m.starting[group]
		if !ok {
			break
		}
		m.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		m.mu.Lock()
	}
	if m.closed {
		m.mu.Unlock()
		return nil, fmt.Errorf("start shim of %s: %w", group, ttrpc.ErrClosed)
	}
	done := make(chan struct{})
	m.starting[group] = done
	records := m.loading
	if records == nil && !m.orphans[group] {
		// Known to have none: an empty set, not nil (read them from disk).
		records = map[string][]*processRecord{}
	}
	m.mu.Unlock()

	sc, err := m.connect(group)
	if err != nil {
		sc, err = m.start(ctx, group, records)
	}
	m.mu.Lock()
	delete(m.starting, group)
	close(done)
	if err == nil && m.closed {
		err = fmt.Errorf("start shim of %s: %w", group, ttrpc.ErrClosed)
		sc.client.Close()
		if sc.local != nil {
			sc.local.Close()
		}
	}
	if err == nil {
		m.shims[group] = sc
		delete(m.orphans, group)
	}
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return sc, nil
}

func (m *Manager) connect(group string) (*shimConn, error) {
	address := SocketPath(m.cfg.StateDir, group)
	conn, err := net.DialTimeout("unix", address, time.Second)
	if err != nil {
		return nil, fmt.Errorf("connect shim of %s: %w", group, err)
	}
	sc := &shimConn{group: group, address: address}
	sc.client = ttrpc.NewClient(conn, ttrpc.WithOnClose(func() { m.shimClosed(sc) }), ttrpc.WithUnaryClientInterceptor(deadline.UnaryClientTTRPC))
	sc.task = taskAPI.NewTTRPCTaskClient(sc.client)
	return sc, nil
}

// shimClosed forgets a shim whose connection ended, so the next Create of
// its group starts a new one. A connection that ends while the shim is
// still registered (not Shutdown or Close) means the shim is gone for the
// daemon, as containerd treats it: its tasks' Waits fail and they are
// reported exited (255). An in-process shim is then closed too, as if its
// process had died: left serving, it would leak its server and goroutines,
// and a later connect to its socket would reach a shim no one manages.
func (m *Manager) shimClosed(sc *shimConn) {
	m.mu.Lock()
	registered := m.shims[sc.group] == sc
	if registered {
		delete(m.shims, sc.group)
		if sc.local != nil {
			m.orphans[sc.group] = true
		}
	}
	local := sc.local
	m.mu.Unlock()
	if registered && local != nil {
		m.cfg.Log.WithField("sandbox", sc.group).Warn("connection to in-process shim closed; treating the shim as dead")
		go local.Close()
	}
}

// start starts the group's shim; an in-process one restores records (nil:
// read them from RuncRoot).
func (m *Manager) start(ctx context.Context, group string, records map[string][]*processRecord) (*shimConn, error) {
	log := m.cfg.Log.WithField("sandbox", group)
	switch m.cfg.Mode {
	case ModeInProcess:
		// A new containerd-shim-runc-v2: fork, exec, a Go runtime starting.
		if err := runc(ctx, m.cfg.Defaults.CPU, nil, "shim start", m.cfg.Defaults.Costs.ShimStart); err != nil {
			return nil, fmt.Errorf("start shim: %w", err)
		}
		srv, err := NewServer(ServerConfig{
			Group: group, StateDir: m.cfg.StateDir, EventsAddress: m.cfg.EventsAddress,
			Clock: m.cfg.Clock, Defaults: m.cfg.Defaults, Log: log.WithField("shim", "inprocess"),
			Faults: m.cfg.Faults, Toggles: m.cfg.Toggles, Target: m.cfg.Target, Locks: m.cfg.Locks,
			Unmounted: m.cfg.Unmounted, records: records,
		})
		if err != nil {
			return nil, err
		}
		go func() {
			if err := srv.Serve(context.Background()); err != nil {
				log.WithError(err).Error("shim server stopped")
			}
		}()
		sc, err := m.connect(group)
		if err != nil {
			srv.Close()
			return nil, err
		}
		sc.local = srv
		log.Debug("started in-process shim")
		return sc, nil
	default:
		return m.startProcess(ctx, group, log)
	}
}

// startProcess runs `fakecontainerd shim` in its own session so it outlives
// the daemon, as containerd-shim-runc-v2 does, and waits for its socket.
func (m *Manager) startProcess(ctx context.Context, group string, log *logrus.Entry) (*shimConn, error) {
	if m.cfg.Executable == "" {
		return nil, fmt.Errorf("start shim of %s: no executable configured for process mode", group)
	}
	logPath := filepath.Join(m.cfg.StateDir, "s", "shim-"+group+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o711); err != nil {
		return nil, fmt.Errorf("start shim of %s: %w", group, err)
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start shim of %s: %w", group, err)
	}
	defer logFile.Close()
	args := append(append([]string{}, m.cfg.Args...), m.processArgs(group)...)
	cmd := exec.Command(m.cfg.Executable, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start shim of %s: %w", group, err)
	}
	// Reap it if it exits while we run; a shim outliving us is reparented.
	go func() { _ = cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sc, err := m.connect(group)
		if err == nil {
			log.WithField("pid", cmd.Process.Pid).Debug("started shim process")
			return sc, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = cmd.Process.Kill()
			return nil, fmt.Errorf("start shim of %s: socket never answered (log %s): %w", group, logPath, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// processArgs are the flags of `fakecontainerd shim`.
func (m *Manager) processArgs(group string) []string {
	d := m.cfg.Defaults
	args := []string{
		"--group", group, "--state", m.cfg.StateDir, "--events-address", m.cfg.EventsAddress,
		"--time-scale", strconv.FormatFloat(m.cfg.Clock.Scale(), 'g', -1, 64),
		"--clock-origin", strconv.FormatInt(m.cfg.Clock.Origin().UnixNano(), 10),
		"--write-rate", strconv.FormatInt(d.Disk.WriteRate, 10),
		"--dirty-limit", strconv.FormatInt(d.Disk.DirtyLimit, 10),
		"--disk-throughput", strconv.FormatInt(d.Disk.Throughput, 10),
		"--stop-grace", d.StopGrace.String(),
	}
	if d.IgnoreTerm {
		args = append(args, "--ignore-sigterm")
	}
	for _, f := range m.cfg.Toggles.On() {
		args = append(args, "--fix", string(f))
	}
	return args
}

// Load reconnects to the shims of the bundles a previous run left, as a
// restarted containerd does, and returns the tasks it found. An in-process
// shim died with the previous server, so it is started again and restores
// its processes from their records (a deliberate difference: containerd's
// shims are always separate processes). A process-mode shim that is gone
// has its bundle cleaned up, and its task is not returned: the CRI layer then
// finds a container without a task, as containerd does after a dead shim.
func (m *Manager) Load(ctx context.Context) ([]*Task, error) {
	entries, err := os.ReadDir(BundleRoot(m.cfg.StateDir))
	if err != nil {
		return nil, fmt.Errorf("read bundles: %w", err)
	}
	if m.cfg.Mode == ModeInProcess {
		records, err := readAllRecords(RuncRoot(m.cfg.StateDir))
		if err != nil {
			return nil, err
		}
		m.mu.Lock()
		m.loading = records
		m.mu.Unlock()
		defer func() {
			m.mu.Lock()
			m.loading = nil
			m.mu.Unlock()
		}()
	}
	var out []*Task
	for _, e := range entries {
		id := e.Name()
		bundle := m.BundleDir(id)
		groupData, err := os.ReadFile(filepath.Join(bundle, bundleGroupFile))
		if err != nil {
			m.cfg.Log.WithField("id", id).Warn("removing bundle without a shim group")
			os.RemoveAll(bundle)
			continue
		}
		group := string(groupData)
		sc, err := m.loadShim(ctx, group)
		if err != nil {
			m.cfg.Log.WithError(err).WithFields(logrus.Fields{"id": id, "sandbox": group}).Warn("cleaning up after dead shim")
			os.RemoveAll(bundle)
			_ = removeRecord(RuncRoot(m.cfg.StateDir), id)
			continue
		}
		st, err := sc.task.State(ctx, &taskAPI.StateRequest{ID: id})
		if err != nil {
			m.cfg.Log.WithError(err).WithField("id", id).Warn("shim does not know task, cleaning up bundle")
			os.RemoveAll(bundle)
			continue
		}
		t := &Task{id: id, pid: st.Pid, m: m, shim: sc}
		m.mu.Lock()
		m.tasks[id] = t
		m.mu.Unlock()
		out = append(out, t)
	}
	return out, nil
}

func (m *Manager) loadShim(ctx context.Context, group string) (*shimConn, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if sc, ok := m.shims[group]; ok {
		return sc, nil
	}
	sc, err := m.connect(group)
	if err != nil && m.cfg.Mode == ModeInProcess {
		sc, err = m.start(ctx, group, m.loading)
	}
	if err != nil {
		return nil, err
	}
	m.shims[group] = sc
	return sc, nil
}

// Shutdown ends the group's shim once its tasks are gone (RemovePodSandbox).
func (m *Manager) Shutdown(ctx context.Context, group string) error {
	m.mu.Lock()
	sc, ok := m.shims[group]
	delete(m.shims, group)
	m.mu.Unlock()
	if !ok {
		return nil
	}
	_, err := sc.task.Shutdown(ctx, &taskAPI.ShutdownRequest{ID: group, Now: true})
	if err != nil && !errors.Is(err, ttrpc.ErrClosed) {
		m.cfg.Log.WithError(err).WithField("sandbox", group).Debug("shim shutdown")
	}
	sc.client.Close()
	if sc.local != nil {
		sc.local.Close()
	}
	return nil
}

// Close drops the daemon's connections. In-process shims stop with it;
// process-mode shims keep running for the next daemon to find.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	shims := m.shims
	m.shims = map[string]*shimConn{}
	m.mu.Unlock()
	for _, sc := range shims {
		sc.client.Close()
		if sc.local != nil {
			sc.local.Close()
		}
	}
}

func (m *Manager) removeBundle(id string) {
	if err := os.RemoveAll(m.BundleDir(id)); err != nil {
		m.cfg.Log.WithError(err).WithField("id", id).Warn("failed to remove bundle")
	}
}

// Lookup returns the daemon's handle on a task without asking the shim
// anything (the tasks service's own list).
func (m *Manager) Lookup(id string) (*Task, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tasks[id]
	return t, ok
}

// DeleteTask is the tasks service's Delete, used to clean up a task the
// shim no longer reports: it deletes it in the shim if the daemon still
// lists it and forgets it whatever the shim says. NotFound if the daemon
// does not list it.
func (m *Manager) DeleteTask(ctx context.Context, id string) error {
	t, ok := m.Lookup(id)
	if !ok {
		return &shimError{code: codes.NotFound, msg: fmt.Sprintf("task %s: not found", id)}
	}
	_, err := t.shim.task.Delete(ctx, &taskAPI.DeleteRequest{ID: id})
	if err = m.fromShim(err); err != nil && !IsNotFound(err) {
		return fmt.Errorf("failed to delete task: %w", err)
	}
	m.removeTask(id)
	m.removeBundle(id)
	m.cfg.Log.WithField("id", id).Infof("Ensure that container %s in task-service has been cleanup successfully", id)
	return nil
}
