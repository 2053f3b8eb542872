package server

import (
	"context"
	"fmt"
	"os"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RemovePodSandbox forcibly stops the sandbox, removes its containers and
// then the sandbox itself, and shuts its shim down. Removing a sandbox that
// does not exist succeeds.
func (c *criService) RemovePodSandbox(ctx context.Context, r *runtime.RemovePodSandboxRequest) (*runtime.RemovePodSandboxResponse, error) {
	if r.GetPodSandboxId() == "" {
		return nil, errInvalid("pod_sandbox_id must not be empty")
	}
	sb, err := c.sandboxStore.Get(r.GetPodSandboxId())
	if err != nil {
		if isNotFound(err) {
			c.log.WithField("sandbox", r.GetPodSandboxId()).Tracef("RemovePodSandbox called for sandbox %q that does not exist", r.GetPodSandboxId())
			return &runtime.RemovePodSandboxResponse{}, nil
		}
		return nil, fmt.Errorf("an error occurred when try to find sandbox %q: %w", r.GetPodSandboxId(), err)
	}
	id := sb.ID
	c.log.WithField("sandbox", id).Infof("Forcibly stopping sandbox %q", id)
	if err := c.stopPodSandbox(ctx, sb); err != nil {
		return nil, fmt.Errorf("failed to forcibly stop sandbox %q: %w", id, err)
	}
	for _, cntr := range c.containerStore.ListBySandbox(id) {
		if err := c.removeContainer(ctx, cntr); err != nil {
			return nil, fmt.Errorf("failed to remove container %q: %w", cntr.ID, err)
		}
	}
	if err := os.RemoveAll(c.sandboxRootDir(id)); err != nil {
		return nil, fmt.Errorf("failed to remove sandbox root directory %q: %w", c.sandboxRootDir(id), err)
	}
	if err := os.RemoveAll(c.sandboxStateDir(id)); err != nil {
		return nil, fmt.Errorf("failed to remove sandbox state directory %q: %w", c.sandboxStateDir(id), err)
	}
	if err := c.db.DeleteSandbox(ctx, id); err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("failed to delete sandbox %q: %w", id, err)
	}
	if err := c.shims.Shutdown(ctx, id); err != nil {
		c.log.WithError(err).WithField("sandbox", id).Warn("failed to shut down shim")
	}
	c.sandboxStore.Delete(id)
	c.sandboxNames.release(sb.Name)
	c.disarmAnnotationFaults(id)
	c.generateAndSendContainerEvent(ctx, id, id, runtime.ContainerEventType_CONTAINER_DELETED_EVENT)
	return &runtime.RemovePodSandboxResponse{}, nil
}
