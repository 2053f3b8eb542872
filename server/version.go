package server

import (
	"context"
	"encoding/json"
	"net/netip"
	goruntime "runtime"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Version is set at build time (-ldflags "-X .../server.Version=...").
var Version = "dev"

const (
	// kubeAPIVersion is the CRI version kubelet insists on ("0.1.0").
	kubeAPIVersion    = "0.1.0"
	runtimeName       = "fakecontainerd"
	runtimeAPIVersion = "v1"
)

func (c *criService) Version(ctx context.Context, r *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	return &runtime.VersionResponse{
		Version: kubeAPIVersion, RuntimeName: runtimeName, RuntimeVersion: Version, RuntimeApiVersion: runtimeAPIVersion,
	}, nil
}

// Status reports the runtime and its network ready, as kubelet needs both
// before it starts pods.
func (c *criService) Status(ctx context.Context, r *runtime.StatusRequest) (*runtime.StatusResponse, error) {
	resp := &runtime.StatusResponse{Status: &runtime.RuntimeStatus{Conditions: []*runtime.RuntimeCondition{
		{Type: runtime.RuntimeReady, Status: true},
		{Type: runtime.NetworkReady, Status: true},
	}}}
	if r.GetVerbose() {
		cfg, err := c.config.JSON()
		if err != nil {
			return nil, err
		}
		golang, _ := json.Marshal(goruntime.Version())
		c.mu.Lock()
		podCIDR, _ := json.Marshal(c.podCIDR)
		c.mu.Unlock()
		resp.Info = map[string]string{"config": string(cfg), "golang": string(golang), "podCIDR": string(podCIDR)}
	}
	return resp, nil
}

// RuntimeConfig tells kubelet the cgroup driver, from the runc options'
// SystemdCgroup as in containerd.
func (c *criService) RuntimeConfig(ctx context.Context, r *runtime.RuntimeConfigRequest) (*runtime.RuntimeConfigResponse, error) {
	driver := runtime.CgroupDriver_CGROUPFS
	name := c.config.Plugins.CRI.Containerd.DefaultRuntimeName
	if rt, ok := c.config.Plugins.CRI.Containerd.Runtimes[name]; ok && rt.Options.SystemdCgroup {
		driver = runtime.CgroupDriver_SYSTEMD
	}
	return &runtime.RuntimeConfigResponse{Linux: &runtime.LinuxRuntimeConfiguration{CgroupDriver: driver}}, nil
}

// UpdateRuntimeConfig takes the pod CIDR, the only field containerd uses.
// New pod IPs come from it.
func (c *criService) UpdateRuntimeConfig(ctx context.Context, r *runtime.UpdateRuntimeConfigRequest) (*runtime.UpdateRuntimeConfigResponse, error) {
	cidr := r.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	if cidr == "" {
		return &runtime.UpdateRuntimeConfigResponse{}, nil
	}
	// kubelet may send several comma-separated CIDRs, a dual-stack node's
	// in either order; the first IPv4 one is used, as the fake hands out
	// IPv4 addresses only.
	first := ""
	for _, part := range strings.Split(cidr, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(part))
		if err != nil {
			return nil, errInvalid("runtime_config.network_config.pod_cidr %q: %v", cidr, err)
		}
		if first == "" && p.Addr().Is4() {
			first = strings.TrimSpace(part)
		}
	}
	if first == "" {
		return nil, errInvalid("runtime_config.network_config.pod_cidr %q: no IPv4 CIDR", cidr)
	}
	ips, err := newIPAllocator(first)
	if err != nil {
		return nil, errInvalid("runtime_config.network_config.pod_cidr: %v", err)
	}
	c.mu.Lock()
	changed := c.podCIDR != first
	c.podCIDR = first
	c.mu.Unlock()
	if changed {
		for _, sb := range c.sandboxStore.List() {
			ips.reserve(sb.IP, sb.ID)
		}
		c.ips.replace(ips)
	}
	return &runtime.UpdateRuntimeConfigResponse{}, nil
}
