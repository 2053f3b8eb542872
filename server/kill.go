package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/shim"
	"github.com/fakecontainerd/fakecontainerd/store"
)

// kernelCallTimeout bounds the daemon's call to a shim's kernel service,
// which answers at once unless the shim is gone.
const kernelCallTimeout = 5 * time.Second

type (
	// KillRequest ends a container's process now, as `kill` on the node
	// does to $CNTR_PID: with a signal (default KILL), or, with ExitCode,
	// as if the process called exit(ExitCode) itself. ID is a container id
	// or a unique prefix of one (or of a sandbox id: its pause process).
	KillRequest struct {
		ID       string  `json:"id"`
		Signal   string  `json:"signal,omitempty"`
		ExitCode *uint32 `json:"exit_code,omitempty"`
	}
	// KillResponse says what the process does about it: whether it exits,
	// with which status and after how long (a SIGTERM takes the process's
	// stop grace; a process that ignores SIGTERM keeps running).
	KillResponse struct {
		ID         string        `json:"id"`
		Kind       string        `json:"kind"` // "container" or "sandbox"
		Signal     string        `json:"signal,omitempty"`
		Exits      bool          `json:"exits"`
		ExitStatus uint32        `json:"exit_status"`
		After      time.Duration `json:"after"`
	}
)

// killProcess resolves id and has the task's shim end its process (see
// shim.Manager.Signal). The death then takes the path of every exit: the
// shim's exit processing, TaskExit, the exit monitor's Wait returning, the
// server's exit handling.
func (c *criService) killProcess(ctx context.Context, req KillRequest) (KillResponse, error) {
	if req.ID == "" {
		return KillResponse{}, errInvalid("kill: id must not be empty")
	}
	if req.ExitCode != nil && req.Signal != "" {
		return KillResponse{}, errInvalid("kill: give a signal or an exit code, not both")
	}
	if req.ExitCode != nil && *req.ExitCode > 255 {
		return KillResponse{}, errInvalid("kill: exit code %d: must be 0 to 255", *req.ExitCode)
	}
	resp := KillResponse{Kind: "container"}
	if cntr, err := c.containerStore.Get(req.ID); err == nil {
		resp.ID = cntr.ID
	} else if !errors.Is(err, store.ErrNotFound) {
		return KillResponse{}, err
	} else if sb, sbErr := c.sandboxStore.Get(req.ID); sbErr == nil {
		resp.ID, resp.Kind = sb.ID, "sandbox"
	} else if errors.Is(sbErr, store.ErrNotFound) {
		return KillResponse{}, fmt.Errorf("kill: no container or sandbox %q: %w", req.ID, store.ErrNotFound)
	} else {
		return KillResponse{}, sbErr
	}
	if c.shims == nil {
		return KillResponse{}, fmt.Errorf("kill %s: the server has not started its shims", resp.ID)
	}
	ctx, cancel := c.clock.WithTimeout(ctx, kernelCallTimeout)
	defer cancel()
	var (
		r   shim.Reaction
		err error
	)
	if req.ExitCode != nil {
		r, err = c.shims.Exit(ctx, resp.ID, *req.ExitCode)
	} else {
		sig := syscall.SIGKILL
		if req.Signal != "" {
			if sig, err = shim.ParseSignal(req.Signal); err != nil {
				return KillResponse{}, errInvalid("kill: %v", err)
			}
		}
		resp.Signal = shim.SignalName(sig)
		r, err = c.shims.Signal(ctx, resp.ID, sig)
	}
	if shim.IsNotFound(err) {
		// The task is gone or its process has exited: kill(1)'s ESRCH.
		return KillResponse{}, fmt.Errorf("kill %s %s: no such process: %w", resp.Kind, resp.ID, err)
	}
	if err != nil {
		return KillResponse{}, fmt.Errorf("kill %s %s: %w", resp.Kind, resp.ID, err)
	}
	resp.Exits, resp.ExitStatus, resp.After = r.Exits, r.ExitStatus, r.After
	c.log.WithFields(logrus.Fields{"id": resp.ID, "signal": resp.Signal, "exits": r.Exits, "exit_status": r.ExitStatus}).Info("process killed from outside containerd")
	return resp, nil
}

// exitFault carries out a fault's exit action: the target's container, or
// else its sandbox, exits now with status.
func (c *criService) exitFault(t faults.Target, status uint32) error {
	id := t.ContainerID
	if id == "" {
		id = t.SandboxID
	}
	if id == "" {
		return fmt.Errorf("the point is about no container or sandbox")
	}
	_, err := c.killProcess(c.lifetime, KillRequest{ID: id, ExitCode: &status})
	return err
}

// httpCode is the admin API's status for an error, from its gRPC code.
func httpCode(err error) int {
	switch status.Code(toGRPC(err)) {
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	case codes.FailedPrecondition:
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}
