package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"
)

// ProcessSpecTypeURL is how containerd's typeurl names specs.Process.
const ProcessSpecTypeURL = "types.containerd.io/opencontainers/runtime-spec/1/Process"

// ExecOpts describe an exec process: containerd's task.Exec arguments.
type ExecOpts struct {
	ID             string
	Spec           *specs.Process
	Stdin          string // the FIFO the daemon writes; "" for none
	Stdout, Stderr string // FIFOs, as for the init process
}

// Process is the daemon's handle on an exec process in a task.
type Process struct {
	t   *Task
	id  string
	pid uint32
}

// Exec creates an exec process in the task, as containerd's task.Exec.
func (t *Task) Exec(ctx context.Context, o ExecOpts) (*Process, error) {
	data, err := json.Marshal(o.Spec)
	if err != nil {
		return nil, fmt.Errorf("encode process spec of exec %s in %s: %w", o.ID, t.id, err)
	}
	defer t.track("Exec")()
	_, err = t.shim.task.Exec(ctx, &taskAPI.ExecProcessRequest{
		ID: t.id, ExecID: o.ID, Terminal: o.Spec.Terminal, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr,
		Spec: &anypb.Any{TypeUrl: ProcessSpecTypeURL, Value: data},
	})
	if err != nil {
		return nil, t.m.fromShim(err)
	}
	return &Process{t: t, id: o.ID}, nil
}

// ID is the exec id.
func (p *Process) ID() string { return p.id }

// Start starts the exec.
func (p *Process) Start(ctx context.Context) error {
	defer p.t.track("Start")()
	resp, err := p.t.shim.task.Start(ctx, &taskAPI.StartRequest{ID: p.t.id, ExecID: p.id})
	if err != nil {
		return p.t.m.fromShim(err)
	}
	p.pid = resp.Pid
	return nil
}

// Wait returns a channel that receives the exec's exit.
func (p *Process) Wait(ctx context.Context) (<-chan ExitStatus, error) {
	ch := make(chan ExitStatus, 1)
	go func() {
		defer close(ch)
		resp, err := p.t.shim.task.Wait(ctx, &taskAPI.WaitRequest{ID: p.t.id, ExecID: p.id})
		if err != nil {
			ch <- ExitStatus{Code: UnknownExitStatus, ExitedAt: p.t.m.cfg.Clock.Now(), Err: p.t.m.fromShim(err)}
			return
		}
		ch <- ExitStatus{Code: resp.ExitStatus, ExitedAt: resp.ExitedAt.AsTime()}
	}()
	return ch, nil
}

// Kill signals the exec.
func (p *Process) Kill(ctx context.Context, sig syscall.Signal) error {
	defer p.t.track("Kill")()
	_, err := p.t.shim.task.Kill(ctx, &taskAPI.KillRequest{ID: p.t.id, ExecID: p.id, Signal: uint32(sig)})
	return p.t.m.fromShim(err)
}

// CloseIO closes the exec's stdin (containerd's WithStdinCloser).
func (p *Process) CloseIO(ctx context.Context) error {
	defer p.t.track("CloseIO")()
	_, err := p.t.shim.task.CloseIO(ctx, &taskAPI.CloseIORequest{ID: p.t.id, ExecID: p.id, Stdin: true})
	return fromShim(err)
}

// Resize sets the exec's terminal size.
func (p *Process) Resize(ctx context.Context, width, height uint32) error {
	defer p.t.track("ResizePty")()
	_, err := p.t.shim.task.ResizePty(ctx, &taskAPI.ResizePtyRequest{ID: p.t.id, ExecID: p.id, Width: width, Height: height})
	return fromShim(err)
}

// Delete removes the exec, killing it first if it still runs (containerd's
// WithProcessKill).
func (p *Process) Delete(ctx context.Context) (*ExitStatus, error) {
	if err := p.Kill(ctx, syscall.SIGKILL); err == nil {
		exitCh, err := p.Wait(ctx)
		if err != nil {
			return nil, err
		}
		<-exitCh
	}
	defer p.t.track("Delete")()
	resp, err := p.t.shim.task.Delete(ctx, &taskAPI.DeleteRequest{ID: p.t.id, ExecID: p.id})
	if err != nil {
		return nil, p.t.m.fromShim(err)
	}
	return &ExitStatus{Code: resp.ExitStatus, ExitedAt: resp.ExitedAt.AsTime()}, nil
}
