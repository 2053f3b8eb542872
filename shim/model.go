package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fakecontainerd/fakecontainerd/shim/command"
)

// model is what a container's fake process does, interpreted from its
// command (shim/command): the main process's program, its output streams
// (the FIFOs containerd's CRI plugin reads into the container log) and the
// filesystem view that it and every exec share.
type model struct {
	program *command.Program
	view    *command.View
	env     command.Env  // without the output streams
	stdin   *stdinStream // nil: created without stdin
	stdout  io.WriteCloser
	stderr  io.WriteCloser
	log     *logrus.Entry

	// openOutput is the service's, for the execs' outputs.
	openOutput func(log *logrus.Entry, path, stream string) io.WriteCloser

	closeOnce sync.Once
	cancel    context.CancelFunc // set once the program runs

	mu    sync.Mutex
	execs map[string]*execProcess
}

// newModel reads the container's process from its spec. The output FIFOs
// are opened now, as runc's init inherits them at create: a reader that is
// waiting (the daemon opened them first) sees EOF only when the process is
// gone.
//
// A stdin FIFO gets a write end of the shim's own (stdinStream): the
// process reads EOF only after CloseIO, not whenever no client is attached.
func (s *Service) newModel(id string, spec *specs.Spec, stdinPath, stdoutPath, stderrPath string, terminal bool) *model {
	log := s.cfg.Log.WithField("id", id)
	m := &model{log: log, execs: map[string]*execProcess{}, openOutput: s.openOutput}
	var args []string
	env := command.Env{Dir: "/", Clock: s.cfg.Clock}
	if spec.Process != nil {
		args, env.Vars, env.Dir = spec.Process.Args, spec.Process.Env, spec.Process.Cwd
	}
	hostname, sysctls := s.podIdentityLocked(spec)
	env.Hostname, env.Init = hostname, args
	cfg := command.ViewConfig{Hostname: hostname, Sysctls: sysctls}
	if spec.Root != nil {
		cfg.ReadOnlyRoot = spec.Root.Readonly
	}
	for _, mnt := range spec.Mounts {
		if mnt.Type != "bind" && !slices.Contains(mnt.Options, "bind") && !slices.Contains(mnt.Options, "rbind") {
			continue
		}
		cfg.Mounts = append(cfg.Mounts, command.Mount{Destination: mnt.Destination, Source: mnt.Source, ReadOnly: slices.Contains(mnt.Options, "ro")})
	}
	m.view = command.NewView(cfg, s.cfg.Clock)
	env.FS = m.view
	m.env = env
	m.program = command.Parse(args)
	if stdinPath != "" {
		if in, err := openStdin(stdinPath); err != nil {
			log.WithError(err).WithField("path", stdinPath).Warn("cannot open process stdin; it reads EOF")
		} else {
			m.stdin = in
		}
	}
	m.stdout = s.openOutput(log, stdoutPath, "stdout")
	m.stderr = m.stdout
	if !terminal {
		m.stderr = s.openOutput(log, stderrPath, "stderr")
	}
	return m
}

// podIdentityLocked is the hostname and sysctls a container sees: its pod
// sandbox's, whose UTS and network namespaces it joins (the sandbox's spec
// carries them, as containerd's does). Called with s.mu held or before the
// service is shared.
func (s *Service) podIdentityLocked(spec *specs.Spec) (string, map[string]string) {
	hostname := spec.Hostname
	var sysctls map[string]string
	if spec.Linux != nil {
		sysctls = spec.Linux.Sysctl
	}
	if sb, ok := s.processes[spec.Annotations[annotationSandboxID]]; ok && sb.bundle != "" {
		if sbSpec, err := readSpec(sb.bundle); err == nil {
			if hostname == "" {
				hostname = sbSpec.Hostname
			}
			if sysctls == nil && sbSpec.Linux != nil {
				sysctls = sbSpec.Linux.Sysctl
			}
		}
	}
	return hostname, sysctls
}

// annotationSandboxID is containerd's io.kubernetes.cri.sandbox-id.
const annotationSandboxID = "io.kubernetes.cri.sandbox-id"

// openOutput opens a process's output: a CRI log (LogURI), or a FIFO the
// daemon reads (an exec's). Without a reader (or a path) the output is
// dropped, as the daemon asked for none.
func (s *Service) openOutput(log *logrus.Entry, path, stream string) io.WriteCloser {
	if path == "" {
		return discard{}
	}
	if p, ok := strings.CutPrefix(path, logScheme); ok {
		return newLogStream(p, stream, s.cfg.Clock, log)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		log.WithError(err).WithField("path", path).Warn("cannot open process output; dropping it")
		return discard{}
	}
	return f
}

// closeStreams closes a process's outputs (one, with a terminal).
func closeStreams(stdout, stderr io.Closer) {
	stdout.Close()
	if stderr != stdout {
		stderr.Close()
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) Close() error                { return nil }

func (m *model) closeOutputs() {
	m.closeOnce.Do(func() {
		closeStreams(m.stdout, m.stderr)
		m.stdin.Close()
	})
}

// start runs the main program, unless annotations script the process
// (they win over the model) or the program names a command the model does
// not know (the process then runs until stopped, as before the model). It
// calls exited with the status when the program ends by itself. Called
// under the process lock, so start and stop cannot cross.
func (m *model) start(b Behaviour, exited func(code uint32)) {
	if b.ExitAfter > 0 {
		return
	}
	if !m.program.Modelled() {
		m.log.WithField("unknown", m.program.Unknown()).Debug("command not modelled: the process runs until stopped")
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	if d, forever, ok := m.program.Idle(); ok {
		// A process that only waits (a pod's pause, `sleep 3600`) is a
		// timer, not an interpreter blocked in a goroutine of its own: the
		// same exit for a fraction of the memory, 110 times on a full node.
		if forever {
			return
		}
		t := m.env.Clock.AfterFunc(d, func() {
			if ctx.Err() != nil {
				return // stopped first
			}
			m.closeOutputs()
			exited(0)
		})
		m.cancel = func() { t.Stop(); cancel() }
		return
	}
	env := m.env
	env.Stdout, env.Stderr = m.stdout, m.stderr
	if m.stdin != nil {
		env.Stdin = m.stdin
	}
	go func() {
		code, err := m.program.Run(ctx, env)
		var unknown *command.UnknownCommandError
		switch {
		case ctx.Err() != nil:
			return // stopped: the exit is the stop's, and stop closes the outputs
		case errors.As(err, &unknown):
			m.log.WithField("unknown", unknown.Name).Debug("command not modelled: the process runs until stopped")
			return
		case err != nil:
			m.log.WithError(err).Warn("the process model failed: the process runs until stopped")
			return
		}
		m.closeOutputs()
		exited(uint32(code))
	}()
}

// stop ends the main program (the process exited or was killed) and closes
// its outputs.
func (m *model) stop() {
	if m.cancel != nil {
		m.cancel()
	}
	m.closeOutputs()
}

// execProcess is an exec in the container: runc-shim's execProcess. Its
// program runs against the container's view.
type execProcess struct {
	id      string
	pid     uint32
	program *command.Program
	vars    []string // the exec's environment, on top of the container's
	dir     string
	stdin   *stdinStream // nil: the exec has no stdin
	tty     bool
	stdout  io.WriteCloser
	stderr  io.WriteCloser

	mu       sync.Mutex
	status   processStatus
	code     uint32
	exitedAt time.Time
	cancel   context.CancelFunc
	now      func() time.Time
	exited   func(*execProcess) // publishes TaskExit
	done     chan struct{}
}

// addExec records a created exec process.
func (m *model) addExec(execID string, spec *specs.Process, stdinPath, stdoutPath, stderrPath string) (*execProcess, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.execs[execID]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "id %s: already exists", execID)
	}
	e := &execProcess{id: execID, pid: fakePid(execID), program: command.Parse(spec.Args),
		vars: spec.Env, dir: spec.Cwd, status: statusCreated, done: make(chan struct{})}
	if stdinPath != "" {
		in, err := openStdin(stdinPath)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "open stdin of exec %s: %v", execID, err)
		}
		e.stdin = in
	}
	e.stdout = m.openOutput(m.log, stdoutPath, "stdout")
	if spec.Terminal {
		e.tty, e.stdout = true, &ttyOutput{w: e.stdout}
	}
	e.stderr = e.stdout
	if !spec.Terminal {
		e.stderr = m.openOutput(m.log, stderrPath, "stderr")
	}
	m.execs[execID] = e
	return e, nil
}

func (m *model) exec(execID string) (*execProcess, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.execLocked(execID)
}

func (m *model) execLocked(execID string) (*execProcess, error) {
	e, ok := m.execs[execID]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "process %s does not exist", execID)
	}
	return e, nil
}

// startExec runs the exec's program; exited is called once it has exited.
func (m *model) startExec(e *execProcess, now func() time.Time, exited func(*execProcess)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.status != statusCreated {
		return status.Errorf(codes.FailedPrecondition, "process %s: cannot start a %s process", e.id, e.status)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.status, e.cancel = statusRunning, cancel
	env := m.env
	env.Stdout, env.Stderr = e.stdout, e.stderr
	switch {
	case e.stdin != nil && e.tty:
		env.Stdin = &ttyInput{r: e.stdin, echo: e.stdout}
	case e.stdin != nil:
		env.Stdin = e.stdin
	}
	env.Vars = append(slices.Clone(env.Vars), e.vars...)
	if e.dir != "" {
		env.Dir = e.dir
	}
	e.now, e.exited = now, exited
	go func() {
		code, err := e.program.Run(ctx, env)
		var unknown *command.UnknownCommandError
		switch {
		case ctx.Err() != nil:
			return // killed: kill has ended the process
		case errors.As(err, &unknown):
			// What a shell says of a program it cannot find.
			fmt.Fprintf(e.stderr, "sh: %s: not found\n", unknown.Name)
			code = 127
		case err != nil:
			fmt.Fprintf(e.stderr, "sh: %v\n", err)
			code = command.ExitSyntax
		}
		e.mu.Lock()
		e.finishLocked(uint32(code))
		e.mu.Unlock()
	}()
	return nil
}

// finishLocked records the exit, closes the outputs and publishes the exit
// once; a kill ends the process at once, whatever its program is doing.
func (e *execProcess) finishLocked(code uint32) {
	if e.status != statusRunning {
		return
	}
	e.status, e.code, e.exitedAt = statusStopped, code, e.now()
	e.cancel()
	closeStreams(e.stdout, e.stderr)
	e.stdin.Close()
	close(e.done)
	go e.exited(e) // publishing must not hold e.mu
}

// kill signals the exec: the signals that end a shell end it at once.
func (e *execProcess) kill(signal uint32) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch e.status {
	case statusStopped, statusDeleted:
		return status.Errorf(codes.NotFound, "process already finished")
	case statusCreated:
		return status.Errorf(codes.FailedPrecondition, "process %s not started", e.id)
	}
	switch syscall.Signal(signal) {
	case syscall.SIGKILL, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP:
		e.finishLocked(128 + signal)
	}
	return nil
}

func (e *execProcess) wait(ctx context.Context) (uint32, time.Time, error) {
	select {
	case <-e.done:
	case <-ctx.Done():
		return 0, time.Time{}, ctx.Err()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.code, e.exitedAt, nil
}

// deleteExec removes an exited (or never started) exec.
func (m *model) deleteExec(execID string) (*execProcess, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.execLocked(execID)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.status == statusRunning {
		return nil, status.Errorf(codes.FailedPrecondition, "cannot delete a running process")
	}
	if e.status == statusCreated {
		// Deleting a created exec kills its waiting process.
		closeStreams(e.stdout, e.stderr)
		e.stdin.Close()
		e.code, e.exitedAt = 128+uint32(syscall.SIGKILL), m.env.Clock.Now()
	}
	e.status = statusDeleted
	delete(m.execs, execID)
	return e, nil
}

// stopExecs kills every running exec: the container's init is gone.
func (m *model) stopExecs() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.execs {
		_ = e.kill(uint32(syscall.SIGKILL))
	}
}

// decodeProcess reads an exec's process spec.
func decodeProcess(data []byte) (*specs.Process, error) {
	var p specs.Process
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("decode process spec: %w", err)
	}
	if len(p.Args) == 0 {
		return nil, errors.New("process spec: args must not be empty")
	}
	return &p, nil
}
