package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	containerstore "github.com/fakecontainerd/fakecontainerd/store/container"
)

// RemoveContainer forcibly stops a running container, then removes it.
// Removing a container that does not exist succeeds.
func (c *criService) RemoveContainer(ctx context.Context, r *runtime.RemoveContainerRequest) (*runtime.RemoveContainerResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errInvalid("container_id must not be empty")
	}
	cntr, err := c.containerStore.Get(r.GetContainerId())
	if err != nil {
		if isNotFound(err) {
			c.log.WithField("id", r.GetContainerId()).Tracef("RemoveContainer called for container %q that does not exist", r.GetContainerId())
			return &runtime.RemoveContainerResponse{}, nil
		}
		return nil, fmt.Errorf("an error occurred when try to find container %q: %w", r.GetContainerId(), err)
	}
	if err := c.removeContainer(ctx, cntr); err != nil {
		return nil, err
	}
	return &runtime.RemoveContainerResponse{}, nil
}

func (c *criService) removeContainer(ctx context.Context, cntr containerstore.Container) (retErr error) {
	id := cntr.ID
	state := cntr.Status.Get().State()
	if state == runtime.ContainerState_CONTAINER_RUNNING || state == runtime.ContainerState_CONTAINER_UNKNOWN {
		c.log.WithField("id", id).Infof("Forcibly stopping container %q", id)
		if err := c.stopContainer(ctx, cntr, 0); err != nil {
			return fmt.Errorf("failed to forcibly stop container %q: %w", id, err)
		}
	}
	if err := setContainerRemoving(cntr); err != nil {
		return fmt.Errorf("failed to set removing state for container %q: %w", id, err)
	}
	defer func() {
		if retErr != nil {
			_ = cntr.Status.Update(func(s containerstore.Status) (containerstore.Status, error) {
				s.Removing = false
				return s, nil
			})
		}
	}()
	// A created container never had a task; an exited one's was deleted by
	// the exit handler. One left behind (a failed start) goes now.
	if _, ok := c.shims.Lookup(id); ok {
		if err := c.shims.DeleteTask(ctx, id); err != nil && !isNotFound(err) {
			return fmt.Errorf("failed to delete task of container %q: %w", id, err)
		}
	}
	if err := c.db.DeleteContainer(ctx, id); err != nil && !isNotFound(err) {
		return fmt.Errorf("failed to delete containerd container %q: %w", id, err)
	}
	if err := cntr.Delete(); err != nil {
		return fmt.Errorf("failed to delete container checkpoint for %q: %w", id, err)
	}
	if err := os.RemoveAll(c.containerRootDir(id)); err != nil {
		return fmt.Errorf("failed to remove container root directory %q: %w", c.containerRootDir(id), err)
	}
	// The volatile root: the stdin FIFO, any exec's leftovers.
	if err := os.RemoveAll(filepath.Join(c.stateDir, "containers", id)); err != nil {
		return fmt.Errorf("failed to remove volatile container root directory for %q: %w", id, err)
	}
	c.containerStore.Delete(id)
	c.containerNames.release(cntr.Name)
	c.disarmAnnotationFaults(id)
	c.generateAndSendContainerEvent(ctx, id, cntr.SandboxID, runtime.ContainerEventType_CONTAINER_DELETED_EVENT)
	return nil
}

// setContainerRemoving marks the container Removing in memory, refusing one
// that still runs or is starting, as containerd's setContainerRemoving.
func setContainerRemoving(cntr containerstore.Container) error {
	return cntr.Status.Update(func(s containerstore.Status) (containerstore.Status, error) {
		switch {
		case s.State() == runtime.ContainerState_CONTAINER_RUNNING || s.State() == runtime.ContainerState_CONTAINER_UNKNOWN:
			return s, errState("container is still running, to stop first")
		case s.Starting:
			return s, errState("container is in starting state, can't be removed")
		case s.Removing:
			return s, errState("container is already in removing state")
		}
		s.Removing = true
		return s, nil
	})
}
