package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/ttrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

// StateTimeout is containerd's io.containerd.timeout.task.state: every State
// the daemon asks of a shim is capped at it.
const StateTimeout = 2 * time.Second

// UnknownExitStatus is what Wait reports when the shim went away.
const UnknownExitStatus = 255

// Task is the daemon's handle on one task in a shim: the counterpart of
// containerd's client Task plus the tasks service and runtime/v2 shimTask
// behind it. Calls carry the caller's ctx; its deadline crosses ttrpc.
type Task struct {
	id   string
	pid  uint32
	m    *Manager
	shim *shimConn
}

// ID is the container id.
func (t *Task) ID() string { return t.id }

// track reports a call to the shim to the manager's call observer.
func (t *Task) track(method string) func() {
	if t.m.cfg.Calls == nil {
		return func() {}
	}
	return t.m.cfg.Calls.Start(t.id, method)
}

// Pid is the init process's pid.
func (t *Task) Pid() uint32 { return t.pid }

// ExitStatus is a process's exit.
type ExitStatus struct {
	Code     uint32
	ExitedAt time.Time
	Err      error
}

// TaskState is what Status reports.
type TaskState struct {
	Status     task.Status
	Pid        uint32
	ExitStatus uint32
	ExitedAt   time.Time
}

// shimError is what containerd's errdefs.FromGRPC makes of a ttrpc error:
// the gRPC code is kept, the "rpc error: code = ... desc =" wrapping is
// dropped and the code's word is appended, so the field's log lines read
// the same here ("failed to delete task: context deadline exceeded:
// unknown", "cannot update a deleted process: unknown").
type shimError struct {
	code  codes.Code
	msg   string
	cause error // the context error, when the caller's deadline ended the call
}

func (e *shimError) Error() string              { return e.msg }
func (e *shimError) Unwrap() error              { return e.cause }
func (e *shimError) GRPCStatus() *status.Status { return status.New(e.code, e.msg) }

// codeWords are errdefs' names for the error classes.
var codeWords = map[codes.Code]string{
	codes.InvalidArgument:    "invalid argument",
	codes.NotFound:           "not found",
	codes.AlreadyExists:      "already exists",
	codes.FailedPrecondition: "failed precondition",
	codes.Unavailable:        "unavailable",
	codes.Unimplemented:      "not implemented",
}

// fromShim is fromShim below as the daemon this manager models converts:
// containerd 2.x's errgrpc.ToNative keeps an Unknown error's bare message
// ("cannot update a deleted process", "context deadline exceeded"), where
// 1.6's errdefs.FromGRPC appends ": unknown".
func (m *Manager) fromShim(err error) error {
	err = fromShim(err)
	var se *shimError
	if m.cfg.ContainerdV2 && errors.As(err, &se) && se.code == codes.Unknown {
		se.msg = strings.TrimSuffix(se.msg, ": unknown")
	}
	return err
}

// fromShim maps a ttrpc error to what containerd's daemon sees. A closed
// connection is NotFound, as in runtime/v2's shim.go; the bare context
// error the ttrpc client returns when the deadline passes is Unknown.
func fromShim(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ttrpc.ErrClosed) {
		return &shimError{code: codes.NotFound, msg: "ttrpc: closed: not found", cause: err}
	}
	st, ok := status.FromError(err)
	if !ok {
		return &shimError{code: codes.Unknown, msg: err.Error() + ": unknown", cause: err}
	}
	word, known := codeWords[st.Code()]
	if !known {
		return &shimError{code: codes.Unknown, msg: st.Message() + ": unknown"}
	}
	msg := st.Message()
	if !strings.HasSuffix(msg, ": "+word) {
		msg += ": " + word
	}
	return &shimError{code: st.Code(), msg: msg}
}

// IsNotFound reports whether err carries the NotFound code.
func IsNotFound(err error) bool { return status.Code(err) == codes.NotFound }

// Status is the client's task.Status: the shim's State capped at
// StateTimeout. NotFound and Unavailable fail; other errors are logged as
// containerd logs them ("get state for <id>") and give an unknown status.
func (t *Task) Status(ctx context.Context) (TaskState, error) {
	sctx, cancel := t.m.cfg.Clock.WithTimeout(ctx, StateTimeout)
	defer cancel()
	done := t.track("State")
	resp, err := t.shim.task.State(sctx, &taskAPI.StateRequest{ID: t.id})
	done()
	if err != nil {
		err = t.m.fromShim(err)
		if c := status.Code(err); c == codes.NotFound || c == codes.Unavailable {
			return TaskState{}, err
		}
		log := t.m.cfg.Log.WithError(err).WithField("id", t.id)
		log.Errorf("get state for %s", t.id)
		log.WithField("status", 0).Warn("unknown status")
		pid := t.pid
		if t.m.cfg.PidFromState {
			pid = 0
		}
		return TaskState{Status: task.Status_UNKNOWN, Pid: pid}, nil
	}
	st := TaskState{Status: resp.Status, Pid: resp.Pid, ExitStatus: resp.ExitStatus}
	if resp.ExitedAt != nil {
		st.ExitedAt = resp.ExitedAt.AsTime()
	}
	return st, nil
}

// Start starts the task.
func (t *Task) Start(ctx context.Context) error {
	defer t.track("Start")()
	_, err := t.shim.task.Start(ctx, &taskAPI.StartRequest{ID: t.id})
	return t.m.fromShim(err)
}

// Kill signals the task's init.
func (t *Task) Kill(ctx context.Context, sig syscall.Signal) error {
	defer t.track("Kill")()
	_, err := t.shim.task.Kill(ctx, &taskAPI.KillRequest{ID: t.id, Signal: uint32(sig), All: true})
	return t.m.fromShim(err)
}

// Wait returns a channel that receives the exit. Like containerd's client
// it calls the shim's Wait in a goroutine; if the shim goes away the exit is
// UnknownExitStatus with the error.
func (t *Task) Wait(ctx context.Context) (<-chan ExitStatus, error) {
	ch := make(chan ExitStatus, 1)
	go func() {
		defer close(ch)
		ch <- t.WaitExit(ctx)
	}()
	return ch, nil
}

// WaitExit calls the shim's Wait and blocks until the task exits or ctx
// ends. A watcher that has a goroutine of its own calls it there: at 10,000
// tasks, the extra goroutine of Wait is 40 MB of stacks.
func (t *Task) WaitExit(ctx context.Context) ExitStatus {
	resp, err := t.shim.task.Wait(ctx, &taskAPI.WaitRequest{ID: t.id})
	if err != nil {
		return ExitStatus{Code: UnknownExitStatus, ExitedAt: t.m.cfg.Clock.Now(), Err: t.m.fromShim(err)}
	}
	return ExitStatus{Code: resp.ExitStatus, ExitedAt: resp.ExitedAt.AsTime()}
}

// ResourcesTypeURL is how containerd's typeurl names specs.LinuxResources.
const ResourcesTypeURL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"

// Update sends new resources to the shim with the caller's ctx: there is no
// extra timeout, so the caller's deadline is what bounds a wait behind the
// process lock.
func (t *Task) Update(ctx context.Context, r *specs.LinuxResources) error {
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode resources of %s: %w", t.id, err)
	}
	defer t.track("Update")()
	_, err = t.shim.task.Update(ctx, &taskAPI.UpdateTaskRequest{
		ID: t.id, Resources: &anypb.Any{TypeUrl: ResourcesTypeURL, Value: data},
	})
	return t.m.fromShim(err)
}

// Stats returns the task's synthetic metrics.
func (t *Task) Stats(ctx context.Context) (*Metrics, error) {
	resp, err := t.shim.task.Stats(ctx, &taskAPI.StatsRequest{ID: t.id})
	if err != nil {
		return nil, t.m.fromShim(err)
	}
	var m Metrics
	if err := json.Unmarshal(resp.Stats.GetValue(), &m); err != nil {
		return nil, fmt.Errorf("decode stats of %s: %w", t.id, err)
	}
	return &m, nil
}

// DeleteOpt runs before a Delete, like containerd's ProcessDeleteOpts.
type DeleteOpt func(ctx context.Context, t *Task) error

// WithProcessKill kills the process (if it still runs) and waits for it
// before the delete, as containerd.WithProcessKill does. Its Kill takes the
// shim's process lock.
func WithProcessKill(ctx context.Context, t *Task) error {
	if t.m.cfg.PidFromState && t.pid == 0 {
		// 1.7.30 and 2.x: "Skip killing tasks with PID 0" (#10441); the
		// task was loaded while its shim's State failed.
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	exitCh, err := t.Wait(ctx)
	if err != nil {
		return err
	}
	if err := t.Kill(ctx, syscall.SIGKILL); err != nil {
		if IsNotFound(err) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-exitCh:
				return nil
			}
		}
		if status.Code(err) == codes.FailedPrecondition {
			return nil
		}
		return err
	}
	<-exitCh
	return nil
}

// Delete deletes the task: opts, then the state check, then the shim's
// Delete. A shim that does not know the task any more (NotFound at the state
// check or the Delete, or a closed connection) means it is gone: the daemon
// forgets it and returns NotFound.
func (t *Task) Delete(ctx context.Context, opts ...DeleteOpt) (*ExitStatus, error) {
	for _, o := range opts {
		if err := o(ctx, t); err != nil {
			return nil, err
		}
	}
	st, err := t.Status(ctx)
	if IsNotFound(err) {
		// containerd's client returns NotFound here, before the Delete
		// RPC (so no "failed to delete task" is logged): the shim has
		// deleted the process already, e.g. by an earlier Delete whose
		// caller gave up. The daemon forgets the task.
		t.m.removeTask(t.id)
		t.m.removeBundle(t.id)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	switch st.Status {
	case task.Status_STOPPED, task.Status_UNKNOWN, task.Status_CREATED:
	default:
		return nil, &shimError{code: codes.FailedPrecondition, msg: fmt.Sprintf("task must be stopped before deletion: %s: failed precondition", st.Status)}
	}
	start := t.m.cfg.Clock.Now()
	done := t.track("Delete")
	resp, err := t.shim.task.Delete(ctx, &taskAPI.DeleteRequest{ID: t.id})
	done()
	if err != nil {
		// containerd logs the shim's error as ttrpc gave it, before
		// errdefs.FromGRPC appends the code's word ("context deadline
		// exceeded", not "...: unknown").
		level := logrus.DebugLevel
		if t.m.cfg.ContainerdV2 {
			level = logrus.ErrorLevel
		}
		t.m.cfg.Log.WithError(err).WithField("id", t.id).Log(level, "failed to delete task")
		err = t.m.fromShim(err)
		if !IsNotFound(err) {
			return nil, fmt.Errorf("failed to delete task: %w", err)
		}
		t.m.removeTask(t.id)
		t.m.removeBundle(t.id)
		return nil, fmt.Errorf("failed to delete task: %w", err)
	}
	t.m.removeTask(t.id)
	t.m.removeBundle(t.id)
	t.m.cfg.Log.WithFields(logrus.Fields{"id": t.id, "method": "TaskDelete", "cost": t.m.cfg.Clock.Since(start)}).Debug("task deleted")
	return &ExitStatus{Code: resp.ExitStatus, ExitedAt: resp.ExitedAt.AsTime()}, nil
}

// Resize sets the init process's terminal size (the shim ignores it).
func (t *Task) Resize(ctx context.Context, width, height uint32) error {
	defer t.track("ResizePty")()
	_, err := t.shim.task.ResizePty(ctx, &taskAPI.ResizePtyRequest{ID: t.id, Width: width, Height: height})
	return fromShim(err)
}

// CloseIO closes the init process's stdin.
func (t *Task) CloseIO(ctx context.Context) error {
	defer t.track("CloseIO")()
	_, err := t.shim.task.CloseIO(ctx, &taskAPI.CloseIORequest{ID: t.id, Stdin: true})
	return fromShim(err)
}
