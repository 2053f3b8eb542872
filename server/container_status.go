package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/faults"
	containerstore "github.com/fakecontainerd/fakecontainerd/store/container"
)

// ContainerStatus reads the container's status under its read lock, with no
// timeout: behind a held write lock it waits as long as the writer does.
func (c *criService) ContainerStatus(ctx context.Context, r *runtime.ContainerStatusRequest) (*runtime.ContainerStatusResponse, error) {
	if r.GetContainerId() == "" {
		// containerd's text (its truncindex refuses the empty prefix); the
		// code stays InvalidArgument (README).
		return nil, errInvalid(`an error occurred when try to find container "": Prefix can't be empty`)
	}
	cntr, err := c.containerStore.Get(r.GetContainerId())
	if err != nil {
		return nil, fmt.Errorf("an error occurred when try to find container %q: %w", r.GetContainerId(), err)
	}
	// One container whose inspect never returns (incident 3's stuck mount).
	if err := c.fire(ctx, faults.PointContainerStatus, func() faults.Target { return c.containerTarget(cntr.ID) }); err != nil {
		return nil, fmt.Errorf("failed to get status of container %q: %w", cntr.ID, err)
	}
	start := c.clock.Now()
	status := cntr.Status.Get()
	c.timing("ContainerStatus", cntr.ID, c.clock.Since(start), "[ContainerStatus] get container %s status", cntr.ID)
	resp := &runtime.ContainerStatusResponse{Status: c.toCRIContainerStatus(cntr, status)}
	if r.GetVerbose() {
		info, err := c.toCRIContainerInfo(ctx, cntr, status)
		if err != nil {
			return nil, fmt.Errorf("failed to get verbose container info: %w", err)
		}
		resp.Info = info
	}
	return resp, nil
}

func (c *criService) toCRIContainerStatus(cntr containerstore.Container, status containerstore.Status) *runtime.ContainerStatus {
	imageSpec := proto.Clone(cntr.Config.GetImage()).(*runtime.ImageSpec)
	imageRef := cntr.ImageRef
	if img, err := c.imageStore.Get(cntr.ImageRef); err == nil {
		var tags, digests []string
		for _, ref := range img.References {
			if strings.Contains(ref, "@") {
				digests = append(digests, ref)
			} else {
				tags = append(tags, ref)
			}
		}
		if len(tags) > 0 {
			imageSpec = &runtime.ImageSpec{Image: tags[0]}
		}
		if len(digests) > 0 {
			imageRef = digests[0]
		}
	}
	state := status.State()
	reason := status.Reason
	if state == runtime.ContainerState_CONTAINER_EXITED && reason == "" {
		reason = completeExitReason
		if status.ExitCode != 0 {
			reason = errorExitReason
		}
	}
	var mounts []*runtime.Mount
	for _, m := range cntr.Config.GetMounts() {
		mounts = append(mounts, proto.Clone(m).(*runtime.Mount))
	}
	st := &runtime.ContainerStatus{
		Id:          cntr.ID,
		Metadata:    proto.Clone(cntr.Config.GetMetadata()).(*runtime.ContainerMetadata),
		State:       state,
		CreatedAt:   status.CreatedAt,
		Image:       imageSpec,
		ImageRef:    imageRef,
		ImageId:     cntr.ImageRef,
		Reason:      reason,
		Message:     status.Message,
		Labels:      cntr.Config.GetLabels(),
		Annotations: cntr.Config.GetAnnotations(),
		Mounts:      mounts,
		LogPath:     cntr.LogPath,
		Resources:   status.Resources,
	}
	if state == runtime.ContainerState_CONTAINER_RUNNING || state == runtime.ContainerState_CONTAINER_EXITED {
		st.StartedAt = status.StartedAt
	}
	if state == runtime.ContainerState_CONTAINER_EXITED {
		st.FinishedAt = status.FinishedAt
		st.ExitCode = status.ExitCode
	}
	return st
}

func (c *criService) toCRIContainerInfo(ctx context.Context, cntr containerstore.Container, status containerstore.Status) (map[string]string, error) {
	info := map[string]any{
		"sandboxID":   cntr.SandboxID,
		"pid":         status.Pid,
		"removing":    status.Removing,
		"snapshotKey": cntr.ID,
		"snapshotter": "overlayfs",
		"runtimeType": "io.containerd.runc.v2",
		"config":      json.RawMessage(mustProtoJSON(cntr.Config)),
	}
	if rec, err := c.db.GetContainer(ctx, cntr.ID); err == nil {
		info["runtimeSpec"] = json.RawMessage(rec.Spec)
	}
	data, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	return map[string]string{"info": string(data)}, nil
}
