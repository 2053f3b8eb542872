package server

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ExecSync runs nothing: a fake container has no process to exec in. It
// answers with the configured canned result, so probes and `crictl exec
// --sync` see a definite outcome.
func (c *criService) ExecSync(ctx context.Context, r *runtime.ExecSyncRequest) (*runtime.ExecSyncResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errInvalid("container_id must not be empty")
	}
	if len(r.GetCmd()) == 0 {
		return nil, errInvalid("cmd must not be empty")
	}
	if r.GetTimeout() < 0 {
		return nil, errInvalid("timeout %d: must not be negative", r.GetTimeout())
	}
	cntr, err := c.containerStore.Get(r.GetContainerId())
	if err != nil {
		return nil, fmt.Errorf("failed to find container %q in store: %w", r.GetContainerId(), err)
	}
	if cntr.Status.Get().State() != runtime.ContainerState_CONTAINER_RUNNING {
		return nil, errState("container is in %s state", criContainerStateToString(cntr.Status.Get().State()))
	}
	canned := c.config.Plugins.Fake.ExecSync
	return &runtime.ExecSyncResponse{
		Stdout: []byte(canned.Stdout), Stderr: []byte(canned.Stderr), ExitCode: canned.ExitCode,
	}, nil
}
