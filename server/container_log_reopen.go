package server

import (
	"context"
	"fmt"
	"os"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ReopenContainerLog reopens a running container's log file after kubelet
// rotated it: the file is created again if the rotation moved it away.
func (c *criService) ReopenContainerLog(ctx context.Context, r *runtime.ReopenContainerLogRequest) (*runtime.ReopenContainerLogResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errInvalid("container_id must not be empty")
	}
	cntr, err := c.containerStore.Get(r.GetContainerId())
	if err != nil {
		return nil, fmt.Errorf("an error occurred when try to find container %q: %w", r.GetContainerId(), err)
	}
	if cntr.Status.Get().State() != runtime.ContainerState_CONTAINER_RUNNING {
		return nil, errState("container is not running")
	}
	if cntr.LogPath == "" {
		return &runtime.ReopenContainerLogResponse{}, nil
	}
	f, err := os.OpenFile(cntr.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("failed to create and open log file %q: %w", cntr.LogPath, err)
	}
	f.Close()
	return &runtime.ReopenContainerLogResponse{}, nil
}
