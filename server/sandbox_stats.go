package server

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	sandboxstore "github.com/fakecontainerd/fakecontainerd/store/sandbox"
)

// PodSandboxStats sums the pod's containers' stats.
func (c *criService) PodSandboxStats(ctx context.Context, r *runtime.PodSandboxStatsRequest) (*runtime.PodSandboxStatsResponse, error) {
	if r.GetPodSandboxId() == "" {
		return nil, errInvalid("pod_sandbox_id must not be empty")
	}
	sb, err := c.sandboxStore.Get(r.GetPodSandboxId())
	if err != nil {
		return nil, fmt.Errorf("an error occurred when trying to find sandbox %s: %w", r.GetPodSandboxId(), err)
	}
	return &runtime.PodSandboxStatsResponse{Stats: c.podSandboxStats(ctx, sb)}, nil
}

// ListPodSandboxStats returns stats for the sandboxes the filter selects.
func (c *criService) ListPodSandboxStats(ctx context.Context, r *runtime.ListPodSandboxStatsRequest) (*runtime.ListPodSandboxStatsResponse, error) {
	f := r.GetFilter()
	var out []*runtime.PodSandboxStats
	for _, sb := range c.sandboxStore.List() {
		if f.GetId() != "" {
			if want, err := c.sandboxStore.Get(f.GetId()); err != nil || want.ID != sb.ID {
				continue
			}
		}
		if !matchLabels(f.GetLabelSelector(), sb.Config.GetLabels()) {
			continue
		}
		out = append(out, c.podSandboxStats(ctx, sb))
	}
	return &runtime.ListPodSandboxStatsResponse{Stats: out}, nil
}

func (c *criService) podSandboxStats(ctx context.Context, sb sandboxstore.Sandbox) *runtime.PodSandboxStats {
	now := c.clock.Now().UnixNano()
	linux := &runtime.LinuxPodSandboxStats{
		Cpu:     &runtime.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtime.UInt64Value{}, UsageNanoCores: &runtime.UInt64Value{}},
		Memory:  &runtime.MemoryUsage{Timestamp: now, WorkingSetBytes: &runtime.UInt64Value{}, UsageBytes: &runtime.UInt64Value{}, RssBytes: &runtime.UInt64Value{}},
		Process: &runtime.ProcessUsage{Timestamp: now, ProcessCount: &runtime.UInt64Value{}},
		Network: &runtime.NetworkUsage{Timestamp: now, DefaultInterface: &runtime.NetworkInterfaceUsage{
			Name: "eth0", RxBytes: &runtime.UInt64Value{}, RxErrors: &runtime.UInt64Value{}, TxBytes: &runtime.UInt64Value{}, TxErrors: &runtime.UInt64Value{},
		}},
	}
	for _, cntr := range c.containerStore.ListBySandbox(sb.ID) {
		cs := c.containerStats(ctx, cntr)
		linux.Containers = append(linux.Containers, cs)
		linux.Cpu.UsageCoreNanoSeconds.Value += cs.Cpu.UsageCoreNanoSeconds.GetValue()
		linux.Cpu.UsageNanoCores.Value += cs.Cpu.UsageNanoCores.GetValue()
		linux.Memory.WorkingSetBytes.Value += cs.Memory.WorkingSetBytes.GetValue()
		linux.Memory.UsageBytes.Value += cs.Memory.UsageBytes.GetValue()
		linux.Memory.RssBytes.Value += cs.Memory.RssBytes.GetValue()
		if cs.Cpu.UsageNanoCores.GetValue() > 0 {
			linux.Process.ProcessCount.Value++
		}
	}
	// containerd reads network stats from the pod's netns: a host-network
	// pod has none, so it reports no network usage.
	if hostNetwork(sb.Config) {
		linux.Network = nil
	} else if st := sb.Status.Get(); st.State == sandboxstore.StateReady {
		// Some traffic proportional to uptime, so rates are non-zero and
		// steady.
		up := uint64(c.clock.Since(st.CreatedAt).Seconds())
		linux.Network.DefaultInterface.RxBytes.Value = up * 1024
		linux.Network.DefaultInterface.TxBytes.Value = up * 512
	}
	return &runtime.PodSandboxStats{
		Attributes: &runtime.PodSandboxAttributes{
			Id: sb.ID, Metadata: proto.Clone(sb.Config.GetMetadata()).(*runtime.PodSandboxMetadata),
			Labels: sb.Config.GetLabels(), Annotations: sb.Config.GetAnnotations(),
		},
		Linux: linux,
	}
}
