package server

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListPodSandbox takes each sandbox's own status lock, never a container's.
func (c *criService) ListPodSandbox(ctx context.Context, r *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	f := r.GetFilter()
	// An id that resolves to no single sandbox matches nothing, as in
	// containerd's filterCRISandboxes.
	idFilter := c.resolveSandboxID(f.GetId())
	all := c.sandboxStore.List()
	out := make([]*runtime.PodSandbox, 0, len(all))
	for _, sb := range all {
		if idFilter != "" && sb.ID != idFilter {
			continue
		}
		status := sb.Status.Get()
		state := toCRISandboxState(status.State)
		if f.GetState() != nil && f.GetState().GetState() != state {
			continue
		}
		if !matchLabels(f.GetLabelSelector(), sb.Config.GetLabels()) {
			continue
		}
		out = append(out, &runtime.PodSandbox{
			Id:             sb.ID,
			Metadata:       sb.Config.GetMetadata(), // immutable, shared as in toCRIContainer
			State:          state,
			CreatedAt:      status.CreatedAt.UnixNano(),
			Labels:         sb.Config.GetLabels(),
			Annotations:    sb.Config.GetAnnotations(),
			RuntimeHandler: sb.RuntimeHandler,
		})
	}
	if err := c.onCPU(ctx, "ListPodSandbox", c.listCost(len(all))); err != nil {
		return nil, err
	}
	return &runtime.ListPodSandboxResponse{Items: out}, nil
}
