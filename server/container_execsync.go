package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/shim"
	"github.com/fakecontainerd/fakecontainerd/shim/command"
)

// ExecSync runs the command as an exec process in the container's shim, as
// containerd's execInternal does: the shim interprets it against the
// container's view (shim/command), its output comes back through FIFOs,
// and the request's timeout kills it. A command the process model does not
// know, or exec_sync.mode = "canned", gets the configured canned result.
func (c *criService) ExecSync(ctx context.Context, r *runtime.ExecSyncRequest) (*runtime.ExecSyncResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errInvalid("container_id must not be empty")
	}
	if len(r.GetCmd()) == 0 {
		return nil, errInvalid("cmd must not be empty")
	}
	if r.GetTimeout() < 0 {
		return nil, errInvalid("timeout %d: must not be negative", r.GetTimeout())
	}
	// containerd's execInContainer finds the container and checks its
	// state; ExecSync prefixes whatever it returns.
	cntr, err := c.containerStore.Get(r.GetContainerId())
	if err != nil {
		return nil, fmt.Errorf("failed to exec in container: failed to find container %q in store: %w", r.GetContainerId(), err)
	}
	if st := cntr.Status.Get().State(); st != runtime.ContainerState_CONTAINER_RUNNING {
		return nil, fmt.Errorf("failed to exec in container: %w", errState("container is in %s state", criContainerStateToString(st)))
	}
	canned := c.config.Plugins.Fake.ExecSync
	cannedResp := &runtime.ExecSyncResponse{Stdout: []byte(canned.Stdout), Stderr: []byte(canned.Stderr), ExitCode: canned.ExitCode}
	if canned.Mode == configs.ExecSyncCanned {
		return cannedResp, nil
	}
	if p := command.Parse(r.GetCmd()); !p.Modelled() {
		c.log.WithFields(logrus.Fields{"id": cntr.ID, "cmd": r.GetCmd(), "unknown": p.Unknown()}).Debug("exec command not modelled: canned result")
		return cannedResp, nil
	}
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = maxExecSyncOutput, maxExecSyncOutput
	code, err := c.execInternal(ctx, cntr.ID, execOptions{
		cmd: r.GetCmd(), timeout: time.Duration(r.GetTimeout()) * time.Second, stdout: &stdout, stderr: &stderr,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to exec in container: %w", err)
	}
	return &runtime.ExecSyncResponse{Stdout: stdout.b.Bytes(), Stderr: stderr.b.Bytes(), ExitCode: int32(code)}, nil
}

// execOptions are containerd's: how an exec is run and what its streams
// are.
type execOptions struct {
	cmd            []string
	stdin          io.Reader // nil: no stdin FIFO
	stdout, stderr io.Writer // nil discards
	tty            bool
	resize         <-chan remotecommand.TerminalSize
	timeout        time.Duration // 0: none
}

// execInternal is containerd's: create the exec with its FIFOs, wait,
// start, copy the streams, and on timeout (project time) kill it and report
// "timeout <d> exceeded". ExecSync and the streaming Exec both come here.
func (c *criService) execInternal(ctx context.Context, id string, opts execOptions) (uint32, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rec, err := c.db.GetContainer(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("failed to get container spec: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(rec.Spec, &spec); err != nil || spec.Process == nil {
		return 0, fmt.Errorf("failed to get container spec: %v", err)
	}
	task, err := c.shims.Get(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("failed to load task: %w", err)
	}
	pspec := *spec.Process
	pspec.Terminal, pspec.Args = opts.tty, opts.cmd
	if opts.tty {
		pspec.Env = append(slices.Clone(pspec.Env), "TERM=xterm")
	}
	stdout, stderr := opts.stdout, opts.stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	execID := generateID()
	c.log.WithField("id", id).Debugf("Generated exec id %q for container %q", execID, id)
	fifos, err := newFIFOSet(c.ioDir(id, execID[:16]), execID, opts.tty, opts.stdin != nil)
	if err != nil {
		return 0, fmt.Errorf("failed to create exec %q io: %w", execID, err)
	}
	process, err := task.Exec(ctx, shim.ExecOpts{ID: execID, Spec: &pspec, Stdin: fifos.stdin, Stdout: fifos.stdout, Stderr: fifos.stderr})
	if err != nil {
		closeIO(fifos)
		return 0, fmt.Errorf("failed to create exec %q: %w", execID, err)
	}
	defer func() {
		dctx, dcancel := c.clock.WithTimeout(context.Background(), deferCleanupTimeout)
		defer dcancel()
		if _, err := process.Delete(dctx); err != nil {
			c.log.WithError(err).WithField("id", id).Errorf("Failed to delete exec process %q for container %q", execID, id)
		}
	}()
	// The shim holds the write ends now: reading cannot see a false EOF.
	attachDone := make(chan struct{})
	fifos.copyOut(func(stream string, r io.Reader) {
		w := stdout
		if stream == streamStderr {
			w = stderr
		}
		io.Copy(w, r)
	}, func() { closeIO(fifos); close(attachDone) })
	exitCh, err := process.Wait(ctx)
	if err != nil {
		return 0, fmt.Errorf("failed to wait for process %q: %w", execID, err)
	}
	if err := process.Start(ctx); err != nil {
		return 0, fmt.Errorf("failed to start exec %q: %w", execID, err)
	}
	handleResizing(ctx, opts.resize, func(size remotecommand.TerminalSize) {
		if err := process.Resize(ctx, uint32(size.Width), uint32(size.Height)); err != nil {
			c.log.WithError(err).WithField("id", id).Errorf("Failed to resize process %q console for container %q", execID, id)
		}
	})
	// StdinOnce: the client's stdin ending closes the process's.
	fifos.copyIn(opts.stdin, func() {
		if err := process.CloseIO(ctx); err != nil && ctx.Err() == nil && !shim.IsNotFound(err) {
			c.log.WithError(err).WithField("id", id).Debugf("Failed to close stdin of exec %q", execID)
		}
	})
	execCtx := ctx
	timeout := opts.timeout
	if timeout > 0 {
		var execCancel context.CancelFunc
		execCtx, execCancel = c.clock.WithTimeout(ctx, timeout)
		defer execCancel()
	}
	select {
	case <-execCtx.Done():
		// The process may have exited by itself before the kill.
		if err := process.Kill(ctx, syscall.SIGKILL); err != nil && !shim.IsNotFound(err) {
			return 0, fmt.Errorf("failed to kill exec %q: %w", execID, err)
		}
		<-exitCh
		<-attachDone
		return 0, fmt.Errorf("timeout %v exceeded: %w", timeout, execCtx.Err())
	case res := <-exitCh:
		if res.Err != nil {
			return 0, fmt.Errorf("failed while waiting for exec %q: %w", execID, res.Err)
		}
		<-attachDone
		return res.Code, nil
	}
}
