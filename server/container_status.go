package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
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
		if c.containerdV2() {
			// 2.x's truncindex words it in lower case.
			return nil, errInvalid(`an error occurred when try to find container "": prefix can't be empty`)
		}
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
	if c.containerdV2() {
		// 2.2.7 never fills image_id (1.6 predates it; the 1.6 model
		// fills it, README) and reports the process user from the spec.
		st.ImageId = ""
		st.User = containerUser(cntr.Config)
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

// containerUser is containerd 2.x's toCRIContainerUser
// (internal/cri/server/container_status_linux.go): the spec's
// process.user, which WithUser and WithAdditionalGIDs made at create from
// the security context and the image's /etc/passwd and /etc/group. The
// fake has no image files: the uid and gid are the security context's (0
// without one), and the groups are the primary gid, as WithAdditionalGIDs
// always adds it, then the security context's supplemental groups.
func containerUser(config *runtime.ContainerConfig) *runtime.ContainerUser {
	sc := config.GetLinux().GetSecurityContext()
	uid := sc.GetRunAsUser().GetValue()
	gid := sc.GetRunAsGroup().GetValue()
	groups := []int64{gid}
	for _, g := range sc.GetSupplementalGroups() {
		if !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	return &runtime.ContainerUser{Linux: &runtime.LinuxContainerUser{Uid: uid, Gid: gid, SupplementalGroups: groups}}
}
