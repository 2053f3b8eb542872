package server

import (
	"context"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	containerstore "github.com/fakecontainerd/fakecontainerd/store/container"
)

// ListContainers is containerd's: copy the store, then take every
// container's status read lock in turn, with no timeout, and only then
// filter. One container whose write lock is held stalls the whole list,
// and the handler keeps waiting after the caller has given up.
func (c *criService) ListContainers(ctx context.Context, r *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	start := c.clock.Now()
	all := c.containerStore.List()
	containers := make([]*runtime.Container, 0, len(all))
	for _, cntr := range all {
		getStart := c.clock.Now()
		containers = append(containers, c.toCRIContainer(cntr))
		c.timing("ListContainers", cntr.ID, c.clock.Since(getStart), "[ListContainers] get container %s status", cntr.ID)
	}
	containers = c.filterCRIContainers(containers, r.GetFilter())
	c.timing("ListContainers", "", c.clock.Since(start), "[ListContainers] all list containers")
	return &runtime.ListContainersResponse{Containers: containers}, nil
}

func (c *criService) toCRIContainer(cntr containerstore.Container) *runtime.Container {
	status := cntr.Status.Get()
	return &runtime.Container{
		Id:           cntr.ID,
		PodSandboxId: cntr.SandboxID,
		Metadata:     proto.Clone(cntr.Config.GetMetadata()).(*runtime.ContainerMetadata),
		Image:        proto.Clone(cntr.Config.GetImage()).(*runtime.ImageSpec),
		ImageRef:     cntr.ImageRef,
		ImageId:      cntr.ImageRef,
		State:        status.State(),
		CreatedAt:    status.CreatedAt,
		Labels:       cntr.Config.GetLabels(),
		Annotations:  cntr.Config.GetAnnotations(),
	}
}

// filterCRIContainers resolves short ids in the filter, as containerd's
// normalizeContainerFilter does; an id that resolves to nothing matches
// nothing.
func (c *criService) filterCRIContainers(containers []*runtime.Container, f *runtime.ContainerFilter) []*runtime.Container {
	if f == nil {
		return containers
	}
	id := f.GetId()
	if id != "" {
		if cntr, err := c.containerStore.Get(id); err == nil {
			id = cntr.ID
		}
	}
	sandboxID := f.GetPodSandboxId()
	if sandboxID != "" {
		if sb, err := c.sandboxStore.Get(sandboxID); err == nil {
			sandboxID = sb.ID
		}
	}
	out := containers[:0]
	for _, cntr := range containers {
		if id != "" && cntr.Id != id {
			continue
		}
		if sandboxID != "" && cntr.PodSandboxId != sandboxID {
			continue
		}
		if f.GetState() != nil && f.GetState().GetState() != cntr.State {
			continue
		}
		if !matchLabels(f.GetLabelSelector(), cntr.Labels) {
			continue
		}
		out = append(out, cntr)
	}
	return out
}
