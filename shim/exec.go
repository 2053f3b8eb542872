package shim

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TopicTaskExecAdded and TopicTaskExecStarted are runc.GetTopic's names.
const (
	TopicTaskExecAdded   = "/tasks/exec-added"
	TopicTaskExecStarted = "/tasks/exec-started"
)

// The exec half of the task service: runc-shim's execProcess, whose program
// is interpreted against the container's view (shim/command).

// startModelLocked starts the main process's program (under p.mu, in Start).
func (p *Init) startModelLocked() {
	if p.model != nil {
		p.model.start(p.behaviour, p.setExited)
	}
}

// stopModelLocked ends the program and the execs of a process that exited
// or was deleted (under p.mu).
func (p *Init) stopModelLocked() {
	if p.model != nil {
		p.model.stop()
		p.model.stopExecs()
	}
}

// execIn takes the process lock as process.Init.Exec does: an exec waits
// behind whatever holds it.
func (p *Init) execIn(r *taskAPI.ExecProcessRequest) error {
	unlock, _ := p.lock("Exec")
	defer unlock()
	if p.status != statusRunning {
		return status.Errorf(codes.FailedPrecondition, "cannot exec in a %s state", p.status)
	}
	if p.model == nil {
		return status.Errorf(codes.FailedPrecondition, "container %s has no process model", p.id)
	}
	spec, err := decodeProcess(r.Spec.GetValue())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "exec %s in %s: %v", r.ExecID, p.id, err)
	}
	_, err = p.model.addExec(r.ExecID, spec, r.Stdin, r.Stdout, r.Stderr)
	return err
}

func (s *Service) Exec(ctx context.Context, r *taskAPI.ExecProcessRequest) (*emptypb.Empty, error) {
	if r.ExecID == "" {
		return nil, status.Errorf(codes.InvalidArgument, "exec id must not be empty")
	}
	p, err := s.get(r.ID)
	if err != nil {
		return nil, err
	}
	if err := p.execIn(r); err != nil {
		return nil, err
	}
	s.publish(TopicTaskExecAdded, &eventstypes.TaskExecAdded{ContainerID: r.ID, ExecID: r.ExecID})
	return &emptypb.Empty{}, nil
}

func (s *Service) getExec(id, execID string) (*Init, *execProcess, error) {
	p, err := s.get(id)
	if err != nil {
		return nil, nil, err
	}
	if p.model == nil {
		return nil, nil, status.Errorf(codes.NotFound, "process %s does not exist", execID)
	}
	e, err := p.model.exec(execID)
	return p, e, err
}

func (s *Service) startExec(ctx context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	p, e, err := s.getExec(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	// runc exec --detach: runc, then runc init joining the container's
	// namespaces (setns), then the command; not under the process lock
	// (execProcess.Start takes only the exec's own).
	if err := runc(ctx, p.cpu, nil, "runc exec", p.costs.RuncExec); err != nil {
		return nil, status.Errorf(status.Code(err), "OCI runtime exec failed: %v", err)
	}
	err = p.model.startExec(e, s.cfg.Clock.Now, func(e *execProcess) {
		s.publish(TopicTaskExit, &eventstypes.TaskExit{
			ContainerID: r.ID, ID: e.id, Pid: e.pid, ExitStatus: e.code, ExitedAt: timestamppb.New(e.exitedAt),
		})
	})
	if err != nil {
		return nil, err
	}
	s.publish(TopicTaskExecStarted, &eventstypes.TaskExecStarted{ContainerID: r.ID, ExecID: r.ExecID, Pid: e.pid})
	return &taskAPI.StartResponse{Pid: e.pid}, nil
}

func (s *Service) waitExec(ctx context.Context, r *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	_, e, err := s.getExec(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	code, at, err := e.wait(ctx)
	if err != nil {
		return nil, err
	}
	return &taskAPI.WaitResponse{ExitStatus: code, ExitedAt: timestamppb.New(at)}, nil
}

func (s *Service) killExec(r *taskAPI.KillRequest) (*emptypb.Empty, error) {
	_, e, err := s.getExec(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if err := e.kill(r.Signal); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (s *Service) stateExec(r *taskAPI.StateRequest) (*taskAPI.StateResponse, error) {
	_, e, err := s.getExec(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	st := (&stateSnapshot{status: e.status}).taskStatus()
	resp := &taskAPI.StateResponse{ID: r.ID, ExecID: e.id, Pid: e.pid, Status: st, ExitStatus: e.code}
	if !e.exitedAt.IsZero() {
		resp.ExitedAt = timestamppb.New(e.exitedAt)
	}
	return resp, nil
}

func (s *Service) deleteExec(r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	p, _, err := s.getExec(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	e, err := p.model.deleteExec(r.ExecID)
	if err != nil {
		return nil, err
	}
	return &taskAPI.DeleteResponse{Pid: e.pid, ExitStatus: e.code, ExitedAt: timestamppb.New(e.exitedAt)}, nil
}

// closeIO closes a process's stdin, as runc-shim's CloseIO closes the pipe
// to the process: it reads EOF.
func (s *Service) closeIO(r *taskAPI.CloseIORequest) error {
	if !r.Stdin {
		return nil
	}
	if r.ExecID == "" {
		p, err := s.get(r.ID)
		if err != nil {
			return err
		}
		if p.model != nil {
			p.model.stdin.closeWrite()
		}
		return nil
	}
	_, e, err := s.getExec(r.ID, r.ExecID)
	if err != nil {
		return err
	}
	e.stdin.closeWrite()
	return nil
}

// stdinStream is a process's stdin: the read end of the FIFO the daemon
// writes, and a write end of the shim's own (runc-shim keeps one), so the
// process does not read EOF whenever no client writes. CloseIO closes the
// shim's write end: once the daemon's is closed too, the process reads
// what was written, then EOF, as from a pipe. Close (the process ended)
// closes both; a read blocked then returns EOF.
type stdinStream struct {
	r, keep *os.File
	mu      sync.Mutex
	closed  bool
}

// openStdin opens the FIFO's read end without blocking, then the shim's
// write end (which a reader lets open at once).
func openStdin(path string) (*stdinStream, error) {
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	keep, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		r.Close()
		return nil, err
	}
	return &stdinStream{r: r, keep: keep}, nil
}

func (s *stdinStream) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && errors.Is(err, os.ErrClosed) {
		err = io.EOF
	}
	return n, err
}

// closeWrite is CloseIO: the shim lets go of its write end. Nil-safe.
func (s *stdinStream) closeWrite() {
	if s != nil {
		s.keep.Close()
	}
}

// Close is idempotent and nil-safe (a process without stdin).
func (s *stdinStream) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.keep.Close()
	return s.r.Close()
}
