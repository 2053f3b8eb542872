package server

import (
	"context"
	"encoding/json"
	"fmt"
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
		Version: kubeAPIVersion, RuntimeName: runtimeName, RuntimeVersion: c.runtimeVersion(), RuntimeApiVersion: runtimeAPIVersion,
	}, nil
}

// Status reports the runtime and its network ready, as kubelet needs both
// before it starts pods.
func (c *criService) Status(ctx context.Context, r *runtime.StatusRequest) (*runtime.StatusResponse, error) {
	resp := &runtime.StatusResponse{Status: &runtime.RuntimeStatus{Conditions: []*runtime.RuntimeCondition{
		{Type: runtime.RuntimeReady, Status: true},
		{Type: runtime.NetworkReady, Status: true},
	}}}
	if c.containerdV2() {
		// 2.x: the runtime's features (internal/cri/server/service.go
		// sets supplemental_groups_policy) and the deprecation condition.
		resp.Features = &runtime.RuntimeFeatures{SupplementalGroupsPolicy: true}
		cond, err := containerdHasNoDeprecationWarnings(hostCgroupV2())
		if err != nil {
			return nil, err
		}
		resp.Status.Conditions = append(resp.Status.Conditions, cond)
	}
	if r.GetVerbose() {
		// containerd 1.6.20's keys (status.go): its CRI config as JSON,
		// the Go version, the CNI config and its last load status. The
		// fake's own config is under config.fakecontainerd, and podCIDR
		// is the fake's.
		cfg, err := c.config.CRIStatusJSON()
		if err != nil {
			return nil, err
		}
		golang, _ := json.Marshal(goruntime.Version())
		c.mu.Lock()
		podCIDR, _ := json.Marshal(c.podCIDR)
		c.mu.Unlock()
		cni, err := json.Marshal(cniConfig(c.config.Plugins.Fake.PodCIDR))
		if err != nil {
			return nil, fmt.Errorf("failed to marshal CNI config: %w", err)
		}
		resp.Info = map[string]string{
			"config": string(cfg), "golang": string(golang), "cniconfig": string(cni),
			"lastCNILoadStatus": "OK", "lastCNILoadStatus.default": "OK",
			"podCIDR": string(podCIDR),
		}
	}
	return resp, nil
}

// cniConfig is go-cni's ConfigResult (containerd's "cniconfig") for the
// network the fake models, as containerd shows a node with its default CNI
// directories and one bridge conflist: the loopback, and a bridge with
// host-local addresses from the pod CIDR (the fake runs no CNI plugin; it
// hands out the addresses itself). The field names are go-cni's (it has
// no JSON tags).
func cniConfig(podCIDR string) any {
	type netConf struct {
		Network map[string]any
		Source  string
	}
	type confList struct {
		Name       string
		CNIVersion string
		Plugins    []netConf
		Source     string
	}
	type confNetwork struct {
		Config *confList
		IFName string
	}
	loopback := `{"cniVersion":"0.3.1","name":"cni-loopback","plugins":[{"type":"loopback"}]}`
	bridgePlugin := fmt.Sprintf(`{"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","ranges":[[{"subnet":%q}]]}}`, podCIDR)
	bridge := `{"cniVersion":"1.0.0","name":"fakecontainerd","plugins":[` + bridgePlugin + `]}`
	return struct {
		PluginDirs       []string
		PluginConfDir    string
		PluginMaxConfNum int
		Prefix           string
		Networks         []confNetwork
	}{
		PluginDirs: []string{"/opt/cni/bin"}, PluginConfDir: "/etc/cni/net.d", PluginMaxConfNum: 1, Prefix: "eth",
		Networks: []confNetwork{
			{Config: &confList{Name: "cni-loopback", CNIVersion: "0.3.1", Plugins: []netConf{{Network: map[string]any{"type": "loopback", "ipam": map[string]any{}, "dns": map[string]any{}}, Source: `{"type":"loopback"}`}}, Source: loopback}, IFName: "lo"},
			{Config: &confList{Name: "fakecontainerd", CNIVersion: "1.0.0", Plugins: []netConf{{Network: map[string]any{"type": "bridge", "ipam": map[string]any{"type": "host-local"}, "dns": map[string]any{}}, Source: bridgePlugin}}, Source: bridge}, IFName: "eth0"},
		},
	}
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
