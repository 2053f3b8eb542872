package shim

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
)

// kernelService stands for the kernel beside a shim: what a user on the
// node does to a container's process without containerd (`kill -9
// $CNTR_PID`). The fake processes live inside the shim, so the daemon
// reaches them over the shim's own socket, but on a service of its own:
// containerd's task API is not involved, no task call is tracked, no shim
// lock is taken, and the death reaches the shim's exit processing exactly
// as a scripted exit does.
const kernelService = "fakecontainerd.kernel.v1.Kernel"

func (s *Service) registerKernel(ts *ttrpc.Server) {
	ts.RegisterService(kernelService, &ttrpc.ServiceDesc{Methods: map[string]ttrpc.Method{
		"Signal": func(ctx context.Context, unmarshal func(any) error) (any, error) {
			var req taskAPI.KillRequest
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			p, err := s.get(req.ID)
			if err != nil {
				return nil, err
			}
			r, err := p.Signal(syscall.Signal(req.Signal))
			if err != nil {
				return nil, err
			}
			s.cfg.Log.WithFields(map[string]any{"id": req.ID, "signal": SignalName(syscall.Signal(req.Signal)), "exits": r.Exits}).Info("signal delivered to the container's process")
			return r.encode()
		},
		"Exit": func(ctx context.Context, unmarshal func(any) error) (any, error) {
			var req eventstypes.TaskExit
			if err := unmarshal(&req); err != nil {
				return nil, err
			}
			p, err := s.get(req.ContainerID)
			if err != nil {
				return nil, err
			}
			if err := p.Exit(req.ExitStatus); err != nil {
				return nil, err
			}
			s.cfg.Log.WithFields(map[string]any{"id": req.ContainerID, "exit_status": req.ExitStatus}).Info("container's process exits")
			return Reaction{Exits: true, ExitStatus: req.ExitStatus}.encode()
		},
	}})
}

func (r Reaction) encode() (*structpb.Struct, error) {
	return structpb.NewStruct(map[string]any{"exits": r.Exits, "exit_status": float64(r.ExitStatus), "after": r.After.String()})
}

func decodeReaction(s *structpb.Struct) (Reaction, error) {
	f := s.GetFields()
	after, err := time.ParseDuration(f["after"].GetStringValue())
	if err != nil {
		return Reaction{}, fmt.Errorf("kernel reply: after: %w", err)
	}
	return Reaction{Exits: f["exits"].GetBoolValue(), ExitStatus: uint32(f["exit_status"].GetNumberValue()), After: after}, nil
}

// ParseSignal reads a signal as kill(1) takes it: a number (9), a name
// (KILL) or a name with SIG (SIGKILL), in any case.
func ParseSignal(s string) (syscall.Signal, error) {
	v := strings.ToUpper(strings.TrimSpace(s))
	if n, err := strconv.Atoi(v); err == nil {
		if n < 1 || n > 64 {
			return 0, fmt.Errorf("signal %q: a number must be 1 to 64", s)
		}
		return syscall.Signal(n), nil
	}
	if !strings.HasPrefix(v, "SIG") {
		v = "SIG" + v
	}
	if sig := unix.SignalNum(v); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("signal %q: not a signal name or number (KILL, TERM, INT, 9, 15, ...)", s)
}

// SignalName is the signal's name as kill -l prints it with SIG: SIGKILL.
func SignalName(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return "signal " + strconv.Itoa(int(sig))
}

// Signal is kill(2) on a task's init process from the node, outside
// containerd: see kernelService. NotFound if the daemon has no such task
// or its process has already exited.
func (m *Manager) Signal(ctx context.Context, id string, sig syscall.Signal) (Reaction, error) {
	return m.kernelCall(ctx, id, "Signal", &taskAPI.KillRequest{ID: id, Signal: uint32(sig)})
}

// Exit makes a task's init process exit by itself now with code.
func (m *Manager) Exit(ctx context.Context, id string, code uint32) (Reaction, error) {
	return m.kernelCall(ctx, id, "Exit", &eventstypes.TaskExit{ContainerID: id, ID: id, ExitStatus: code})
}

func (m *Manager) kernelCall(ctx context.Context, id, method string, req any) (Reaction, error) {
	t, ok := m.Lookup(id)
	if !ok {
		return Reaction{}, &shimError{code: codes.NotFound, msg: fmt.Sprintf("no running task found: task %s not found", id)}
	}
	var resp structpb.Struct
	if err := t.shim.client.Call(ctx, kernelService, method, req, &resp); err != nil {
		return Reaction{}, m.fromShim(err)
	}
	return decodeReaction(&resp)
}
