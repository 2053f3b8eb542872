package server

import (
	"context"
	"fmt"
	"path/filepath"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	containerstore "github.com/fakecontainerd/fakecontainerd/store/container"
)

// cpuNanoCores is the fake's steady CPU use while running: a tenth of a
// core, matching the shim's synthetic counter.
const cpuNanoCores = 100_000_000

// ContainerStats asks the container's shim for its (synthetic) metrics.
func (c *criService) ContainerStats(ctx context.Context, r *runtime.ContainerStatsRequest) (*runtime.ContainerStatsResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errInvalid("container_id must not be empty")
	}
	cntr, err := c.containerStore.Get(r.GetContainerId())
	if err != nil {
		return nil, fmt.Errorf("failed to find container: %w", err)
	}
	return &runtime.ContainerStatsResponse{Stats: c.containerStats(ctx, cntr)}, nil
}

// ListContainerStats returns stats for the containers the filter selects.
func (c *criService) ListContainerStats(ctx context.Context, r *runtime.ListContainerStatsRequest) (*runtime.ListContainerStatsResponse, error) {
	f := r.GetFilter()
	var out []*runtime.ContainerStats
	for _, cntr := range c.statsCandidates(f.GetId(), f.GetPodSandboxId()) {
		if !matchLabels(f.GetLabelSelector(), cntr.Config.GetLabels()) {
			continue
		}
		out = append(out, c.containerStats(ctx, cntr))
	}
	return &runtime.ListContainerStatsResponse{Stats: out}, nil
}

func (c *criService) statsCandidates(id, sandboxID string) []containerstore.Container {
	switch {
	case id != "":
		cntr, err := c.containerStore.Get(id)
		if err != nil {
			return nil
		}
		if sandboxID != "" && cntr.SandboxID != sandboxID {
			if sb, err := c.sandboxStore.Get(sandboxID); err != nil || sb.ID != cntr.SandboxID {
				return nil
			}
		}
		return []containerstore.Container{cntr}
	case sandboxID != "":
		sb, err := c.sandboxStore.Get(sandboxID)
		if err != nil {
			return nil
		}
		return c.containerStore.ListBySandbox(sb.ID)
	}
	return c.containerStore.List()
}

// containerStats never takes the container's status lock or the shim's
// process lock: like containerd's metrics path, it reads the shim's Stats.
func (c *criService) containerStats(ctx context.Context, cntr containerstore.Container) *runtime.ContainerStats {
	now := c.clock.Now().UnixNano()
	st := &runtime.ContainerStats{
		Attributes: &runtime.ContainerAttributes{
			Id:          cntr.ID,
			Metadata:    proto.Clone(cntr.Config.GetMetadata()).(*runtime.ContainerMetadata),
			Labels:      cntr.Config.GetLabels(),
			Annotations: cntr.Config.GetAnnotations(),
		},
		Cpu:    &runtime.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtime.UInt64Value{}, UsageNanoCores: &runtime.UInt64Value{}},
		Memory: &runtime.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtime.UInt64Value{}},
		WritableLayer: &runtime.FilesystemUsage{
			Timestamp: now,
			FsId:      &runtime.FilesystemIdentifier{Mountpoint: filepath.Join(c.config.Root, snapshotPluginDir)},
			UsedBytes: &runtime.UInt64Value{}, InodesUsed: &runtime.UInt64Value{},
		},
	}
	task, ok := c.shims.Lookup(cntr.ID)
	if !ok {
		return st
	}
	m, err := task.Stats(ctx)
	if err != nil {
		c.log.WithError(err).WithField("id", cntr.ID).Debug("failed to get container metrics")
		return st
	}
	ts := m.Timestamp.UnixNano()
	st.Cpu = &runtime.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtime.UInt64Value{Value: m.CPUUsageNanos}, UsageNanoCores: &runtime.UInt64Value{}}
	if cntr.Status.Get().State() == runtime.ContainerState_CONTAINER_RUNNING {
		st.Cpu.UsageNanoCores.Value = cpuNanoCores
	}
	st.Memory = &runtime.MemoryUsage{
		Timestamp: ts, WorkingSetBytes: &runtime.UInt64Value{Value: m.MemoryWorkingSet},
		RssBytes: &runtime.UInt64Value{Value: m.MemoryRSS}, UsageBytes: &runtime.UInt64Value{Value: m.MemoryWorkingSet},
		AvailableBytes: &runtime.UInt64Value{}, PageFaults: &runtime.UInt64Value{}, MajorPageFaults: &runtime.UInt64Value{},
	}
	st.WritableLayer.Timestamp = ts
	st.WritableLayer.UsedBytes.Value = m.WritableLayerBytes
	st.WritableLayer.InodesUsed.Value = m.WritableLayerInodes
	return st
}
