package server

import (
	"context"
	"fmt"
	"syscall"

	eventstypes "github.com/containerd/containerd/api/events"
	"google.golang.org/protobuf/types/known/timestamppb"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/faults"
	sandboxstore "github.com/fakecontainerd/fakecontainerd/store/sandbox"
)

// StopPodSandbox stops every container of the pod, tears down its network
// and kills its pause task. A sandbox that does not exist is already
// stopped: the CRI spec makes Stop idempotent.
func (c *criService) StopPodSandbox(ctx context.Context, r *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	if r.GetPodSandboxId() == "" {
		return nil, errInvalid("pod_sandbox_id must not be empty")
	}
	sb, err := c.sandboxStore.Get(r.GetPodSandboxId())
	if err != nil {
		if isNotFound(err) {
			c.log.WithField("sandbox", r.GetPodSandboxId()).Debug("StopPodSandbox of a missing sandbox")
			return &runtime.StopPodSandboxResponse{}, nil
		}
		return nil, fmt.Errorf("an error occurred when try to find sandbox %q: %w", r.GetPodSandboxId(), err)
	}
	if err := c.stopPodSandbox(ctx, sb); err != nil {
		return nil, err
	}
	return &runtime.StopPodSandboxResponse{}, nil
}

func (c *criService) stopPodSandbox(ctx context.Context, sb sandboxstore.Sandbox) error {
	for _, cntr := range c.containerStore.ListBySandbox(sb.ID) {
		state := cntr.Status.Get().State()
		if state == runtime.ContainerState_CONTAINER_RUNNING || state == runtime.ContainerState_CONTAINER_UNKNOWN {
			if err := c.stopContainer(ctx, cntr, 0); err != nil {
				return fmt.Errorf("failed to stop container %q: %w", cntr.ID, err)
			}
		}
	}
	// Tear down the network: the IP goes back to the pool and the status
	// stops reporting it, as after a CNI DEL.
	if sb.IP != "" {
		if err := c.fire(ctx, faults.PointCNITeardown, func() faults.Target { return c.sandboxTarget(sb.ID) }); err != nil {
			return fmt.Errorf("failed to destroy network for sandbox %q: %w", sb.ID, err)
		}
		// The CNI DEL: a plugin binary per plugin in the chain, iptables.
		if err := c.onCPU(ctx, "CNI teardown", c.config.Plugins.Fake.CPU.CNITeardown.Duration()); err != nil {
			return fmt.Errorf("failed to destroy network for sandbox %q: %w", sb.ID, err)
		}
		c.ips.release(sb.IP, sb.ID)
		c.log.WithField("sandbox", sb.ID).Infof("TearDown network for sandbox %q successfully", sb.ID)
	}
	if sb.Status.Get().State == sandboxstore.StateReady {
		if err := c.stopSandboxContainer(ctx, sb); err != nil {
			return fmt.Errorf("failed to stop sandbox container %q: %w", sb.ID, err)
		}
	}
	return nil
}

// stopSandboxContainer kills the pause task and waits for the exit handling
// to mark the sandbox NotReady.
func (c *criService) stopSandboxContainer(ctx context.Context, sb sandboxstore.Sandbox) error {
	task, err := c.shims.Get(ctx, sb.ID)
	if err != nil {
		if !isNotFound(err) {
			return fmt.Errorf("failed to get sandbox container task: %w", err)
		}
		// No task: nobody will report an exit, so record one ourselves.
		e := &eventstypes.TaskExit{ContainerID: sb.ID, ID: sb.ID, ExitStatus: unknownExitCode, ExitedAt: timestamppb.New(c.clock.Now())}
		return c.handleSandboxExit(ctx, e, sb)
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !isNotFound(err) {
		return fmt.Errorf("failed to kill sandbox container: %w", err)
	}
	select {
	case <-sb.Stopped():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait sandbox container %q: %w", sb.ID, ctx.Err())
	}
}
