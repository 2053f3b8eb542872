package server

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"syscall"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	"google.golang.org/protobuf/types/known/timestamppb"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	containerstore "github.com/fakecontainerd/fakecontainerd/store/container"
)

// StopContainer sends the stop signal, waits up to the timeout for the exit
// to be handled, then SIGKILLs. Stopping a container that does not exist
// succeeds: the CRI spec makes Stop idempotent.
func (c *criService) StopContainer(ctx context.Context, r *runtime.StopContainerRequest) (*runtime.StopContainerResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errInvalid("container_id must not be empty")
	}
	if r.GetTimeout() < 0 {
		return nil, errInvalid("timeout %d: must not be negative", r.GetTimeout())
	}
	cntr, err := c.containerStore.Get(r.GetContainerId())
	if err != nil {
		if isNotFound(err) {
			c.log.WithField("id", r.GetContainerId()).Debug("StopContainer of a missing container")
			return &runtime.StopContainerResponse{}, nil
		}
		return nil, fmt.Errorf("an error occurred when try to find container %q: %w", r.GetContainerId(), err)
	}
	// Seconds beyond what a Duration holds would overflow to a negative
	// timeout, which means SIGKILL at once: cap them instead.
	timeout := time.Duration(min(r.GetTimeout(), int64(math.MaxInt64/time.Second))) * time.Second
	if err := c.stopContainer(ctx, cntr, timeout); err != nil {
		return nil, err
	}
	return &runtime.StopContainerResponse{}, nil
}

// stopContainer is containerd's: it takes no status write lock (one Get),
// but its Kill goes to the shim, which takes the process lock, and it waits
// for the exit handler to close the container's stop channel.
func (c *criService) stopContainer(ctx context.Context, cntr containerstore.Container, timeout time.Duration) error {
	id := cntr.ID
	state := cntr.Status.Get().State()
	if state != runtime.ContainerState_CONTAINER_RUNNING && state != runtime.ContainerState_CONTAINER_UNKNOWN {
		c.log.WithField("id", id).Infof("Container to stop %q must be in running or unknown state, current state %q", id, criContainerStateToString(state))
		return nil
	}
	task, err := c.shims.Get(ctx, id)
	if err != nil {
		if !isNotFound(err) {
			return fmt.Errorf("failed to get task for container %q: %w", id, err)
		}
		if state == runtime.ContainerState_CONTAINER_UNKNOWN {
			return c.cleanupUnknownContainer(ctx, cntr)
		}
		return nil
	}
	if state == runtime.ContainerState_CONTAINER_UNKNOWN {
		// Nobody watches an unknown container's exit: start a monitor and
		// wait for it before returning.
		waitCtx, cancel := context.WithCancel(c.eventMonitor.ctx)
		defer cancel()
		stopCh := c.eventMonitor.startContainerExitMonitor(id, task.Pid(), waitFor(waitCtx, task))
		defer func() {
			cancel()
			<-stopCh
		}()
	}
	if timeout > 0 {
		sig := parseSignal(cntr.StopSignal)
		// Send the stop signal once, however often kubelet retries.
		if atomic.CompareAndSwapUint32(cntr.IsStopSignaledWithTimeout, 0, 1) {
			c.log.WithField("id", id).Infof("Stop container %q with signal %v", id, sig)
			if err := task.Kill(ctx, sig); err != nil && !isNotFound(err) {
				return fmt.Errorf("failed to stop container %q: %w", id, err)
			}
		} else {
			c.log.WithField("id", id).Infof("Skipping the sending of signal %v to container %q because a prior stop with timeout>0 request already sent the signal", sig, id)
		}
		sigCtx, cancel := c.clock.WithTimeout(ctx, timeout)
		err := c.waitContainerStop(sigCtx, cntr)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("wait container %q: %w", id, ctx.Err())
		}
		c.log.WithField("id", id).Debugf("Stop container %q with signal %v timed out", id, sig)
	}
	c.log.WithField("id", id).Infof("Kill container %q", id)
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !isNotFound(err) {
		return fmt.Errorf("failed to kill container %q: %w", id, err)
	}
	if err := c.waitContainerStop(ctx, cntr); err != nil {
		return fmt.Errorf("an error occurs during waiting for container %q to be killed: %w", id, err)
	}
	return nil
}

func (c *criService) waitContainerStop(ctx context.Context, cntr containerstore.Container) error {
	select {
	case <-ctx.Done():
		return fmt.Errorf("wait container %q: %w", cntr.ID, ctx.Err())
	case <-cntr.Stopped():
		return nil
	}
}

// cleanupUnknownContainer records an exit for an unknown container whose
// task is gone.
func (c *criService) cleanupUnknownContainer(ctx context.Context, cntr containerstore.Container) error {
	return c.handleContainerExit(ctx, &eventstypes.TaskExit{
		ContainerID: cntr.ID, ID: cntr.ID, ExitStatus: unknownExitCode, ExitedAt: timestamppb.New(c.clock.Now()),
	}, cntr)
}

// parseSignal understands "SIGTERM", "TERM" and numbers; anything else is
// SIGTERM.
func parseSignal(s string) syscall.Signal {
	if s == "" {
		return syscall.SIGTERM
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n)
	}
	names := map[string]syscall.Signal{
		"TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT,
		"HUP": syscall.SIGHUP, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "WINCH": syscall.SIGWINCH,
	}
	name := s
	if len(name) > 3 && name[:3] == "SIG" {
		name = name[3:]
	}
	if sig, ok := names[name]; ok {
		return sig
	}
	return syscall.SIGTERM
}
