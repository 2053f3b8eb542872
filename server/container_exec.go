package server

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Exec prepares a streaming endpoint to execute a command in the container
// and returns its URL (containerd's container_exec.go); the command runs
// when a client dials the URL (streamRuntime.Exec).
func (c *criService) Exec(ctx context.Context, r *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errInvalid("container_id must not be empty")
	}
	if len(r.GetCmd()) == 0 {
		return nil, errInvalid("cmd must not be empty")
	}
	cntr, err := c.containerStore.Get(r.GetContainerId())
	if err != nil {
		return nil, fmt.Errorf("failed to find container %q in store: %w", r.GetContainerId(), err)
	}
	if st := cntr.Status.Get().State(); st != runtime.ContainerState_CONTAINER_RUNNING {
		return nil, errState("container is in %s state", criContainerStateToString(st))
	}
	return c.streamServer.GetExec(r)
}
