package configs

import (
	"encoding/json"
	"fmt"
	"path/filepath"
)

// This file holds containerd 1.6.20's own shape of what the fake reads:
// the CRI plugin's config (pkg/cri/config), with containerd's TOML keys,
// JSON names and defaults, and the keys of the server config and its other
// plugins. It serves two purposes: CRI Status (verbose), `crictl info`,
// reports the config as containerd does, so node scripts that jq
// .config.sandboxImage or .config.containerd.runtimes.runc.options find
// what they look for; and a key of a config file that containerd itself
// does not know (a typo such as SystemdCgrup) can be told from one the
// fake merely does not model.

// criPluginConfig is containerd 1.6.20's criconfig.PluginConfig. The
// embedded tables of the original are named fields with the same tags, so
// the JSON nests them the same way.
type criPluginConfig struct {
	Containerd                         criContainerdConfig     `toml:"containerd" json:"containerd"`
	CNI                                criCNIConfig            `toml:"cni" json:"cni"`
	Registry                           criRegistry             `toml:"registry" json:"registry"`
	ImageDecryption                    criImageDecryption      `toml:"image_decryption" json:"imageDecryption"`
	DisableTCPService                  bool                    `toml:"disable_tcp_service" json:"disableTCPService"`
	StreamServerAddress                string                  `toml:"stream_server_address" json:"streamServerAddress"`
	StreamServerPort                   string                  `toml:"stream_server_port" json:"streamServerPort"`
	StreamIdleTimeout                  string                  `toml:"stream_idle_timeout" json:"streamIdleTimeout"`
	EnableSelinux                      bool                    `toml:"enable_selinux" json:"enableSelinux"`
	SelinuxCategoryRange               int                     `toml:"selinux_category_range" json:"selinuxCategoryRange"`
	SandboxImage                       string                  `toml:"sandbox_image" json:"sandboxImage"`
	StatsCollectPeriod                 int                     `toml:"stats_collect_period" json:"statsCollectPeriod"`
	SystemdCgroup                      bool                    `toml:"systemd_cgroup" json:"systemdCgroup"`
	EnableTLSStreaming                 bool                    `toml:"enable_tls_streaming" json:"enableTLSStreaming"`
	X509KeyPairStreaming               criX509KeyPairStreaming `toml:"x509_key_pair_streaming" json:"x509KeyPairStreaming"`
	MaxContainerLogLineSize            int                     `toml:"max_container_log_line_size" json:"maxContainerLogSize"`
	DisableCgroup                      bool                    `toml:"disable_cgroup" json:"disableCgroup"`
	DisableApparmor                    bool                    `toml:"disable_apparmor" json:"disableApparmor"`
	RestrictOOMScoreAdj                bool                    `toml:"restrict_oom_score_adj" json:"restrictOOMScoreAdj"`
	MaxConcurrentDownloads             int                     `toml:"max_concurrent_downloads" json:"maxConcurrentDownloads"`
	DisableProcMount                   bool                    `toml:"disable_proc_mount" json:"disableProcMount"`
	UnsetSeccompProfile                string                  `toml:"unset_seccomp_profile" json:"unsetSeccompProfile"`
	TolerateMissingHugetlbController   bool                    `toml:"tolerate_missing_hugetlb_controller" json:"tolerateMissingHugetlbController"`
	DisableHugetlbController           bool                    `toml:"disable_hugetlb_controller" json:"disableHugetlbController"`
	DeviceOwnershipFromSecurityContext bool                    `toml:"device_ownership_from_security_context" json:"device_ownership_from_security_context"`
	IgnoreImageDefinedVolumes          bool                    `toml:"ignore_image_defined_volumes" json:"ignoreImageDefinedVolumes"`
	NetNSMountsUnderStateDir           bool                    `toml:"netns_mounts_under_state_dir" json:"netnsMountsUnderStateDir"`
	EnableUnprivilegedPorts            bool                    `toml:"enable_unprivileged_ports" json:"enableUnprivilegedPorts"`
	EnableUnprivilegedICMP             bool                    `toml:"enable_unprivileged_icmp" json:"enableUnprivilegedICMP"`
}

type criRuntime struct {
	Type                         string         `toml:"runtime_type" json:"runtimeType"`
	Path                         string         `toml:"runtime_path" json:"runtimePath"`
	Engine                       string         `toml:"runtime_engine" json:"runtimeEngine"`
	PodAnnotations               []string       `toml:"pod_annotations" json:"PodAnnotations"`
	ContainerAnnotations         []string       `toml:"container_annotations" json:"ContainerAnnotations"`
	Root                         string         `toml:"runtime_root" json:"runtimeRoot"`
	Options                      map[string]any `toml:"options" json:"options"`
	PrivilegedWithoutHostDevices bool           `toml:"privileged_without_host_devices" json:"privileged_without_host_devices"`
	BaseRuntimeSpec              string         `toml:"base_runtime_spec" json:"baseRuntimeSpec"`
	NetworkPluginConfDir         string         `toml:"cni_conf_dir" json:"cniConfDir"`
	NetworkPluginMaxConfNum      int            `toml:"cni_max_conf_num" json:"cniMaxConfNum"`
}

type criContainerdConfig struct {
	Snapshotter                string                `toml:"snapshotter" json:"snapshotter"`
	DefaultRuntimeName         string                `toml:"default_runtime_name" json:"defaultRuntimeName"`
	DefaultRuntime             criRuntime            `toml:"default_runtime" json:"defaultRuntime"`
	UntrustedWorkloadRuntime   criRuntime            `toml:"untrusted_workload_runtime" json:"untrustedWorkloadRuntime"`
	Runtimes                   map[string]criRuntime `toml:"runtimes" json:"runtimes"`
	NoPivot                    bool                  `toml:"no_pivot" json:"noPivot"`
	DisableSnapshotAnnotations bool                  `toml:"disable_snapshot_annotations" json:"disableSnapshotAnnotations"`
	DiscardUnpackedLayers      bool                  `toml:"discard_unpacked_layers" json:"discardUnpackedLayers"`
	IgnoreRdtNotEnabledErrors  bool                  `toml:"ignore_rdt_not_enabled_errors" json:"ignoreRdtNotEnabledErrors"`
}

type criCNIConfig struct {
	NetworkPluginBinDir       string `toml:"bin_dir" json:"binDir"`
	NetworkPluginConfDir      string `toml:"conf_dir" json:"confDir"`
	NetworkPluginMaxConfNum   int    `toml:"max_conf_num" json:"maxConfNum"`
	NetworkPluginConfTemplate string `toml:"conf_template" json:"confTemplate"`
	IPPreference              string `toml:"ip_pref" json:"ipPref"`
}

type criMirror struct {
	Endpoints []string `toml:"endpoint" json:"endpoint"`
}

type criAuthConfig struct {
	Username      string `toml:"username" json:"username"`
	Password      string `toml:"password" json:"password"`
	Auth          string `toml:"auth" json:"auth"`
	IdentityToken string `toml:"identitytoken" json:"identitytoken"`
}

type criTLSConfig struct {
	InsecureSkipVerify bool   `toml:"insecure_skip_verify" json:"insecure_skip_verify"`
	CAFile             string `toml:"ca_file" json:"caFile"`
	CertFile           string `toml:"cert_file" json:"certFile"`
	KeyFile            string `toml:"key_file" json:"keyFile"`
}

type criRegistry struct {
	ConfigPath string                       `toml:"config_path" json:"configPath"`
	Mirrors    map[string]criMirror         `toml:"mirrors" json:"mirrors"`
	Configs    map[string]criRegistryConfig `toml:"configs" json:"configs"`
	Auths      map[string]criAuthConfig     `toml:"auths" json:"auths"`
	Headers    map[string][]string          `toml:"headers" json:"headers"`
}

type criRegistryConfig struct {
	Auth *criAuthConfig `toml:"auth" json:"auth"`
	TLS  *criTLSConfig  `toml:"tls" json:"tls"`
}

type criImageDecryption struct {
	KeyModel string `toml:"key_model" json:"keyModel"`
}

type criX509KeyPairStreaming struct {
	TLSCertFile string `toml:"tls_cert_file" json:"tlsCertFile"`
	TLSKeyFile  string `toml:"tls_key_file" json:"tlsKeyFile"`
}

// runcOptionKeys are the keys of containerd 1.6's default runc options
// (the runc shim's Options type), in the order and with the values of
// pkg/cri/config's DefaultConfig.
var runcOptionKeys = []string{
	"NoPivotRoot", "NoNewKeyring", "ShimCgroup", "IoUid", "IoGid", "BinaryName",
	"Root", "CriuPath", "SystemdCgroup", "CriuImagePath", "CriuWorkPath",
}

func defaultRuncOptions() map[string]any {
	return map[string]any{
		"NoPivotRoot": false, "NoNewKeyring": false, "ShimCgroup": "", "IoUid": int64(0), "IoGid": int64(0),
		"BinaryName": "", "Root": "", "CriuPath": "", "SystemdCgroup": false, "CriuImagePath": "", "CriuWorkPath": "",
	}
}

// defaultCRIPluginConfig is containerd 1.6.20's DefaultConfig() (linux).
func defaultCRIPluginConfig() criPluginConfig {
	return criPluginConfig{
		CNI: criCNIConfig{NetworkPluginBinDir: "/opt/cni/bin", NetworkPluginConfDir: "/etc/cni/net.d", NetworkPluginMaxConfNum: 1},
		Containerd: criContainerdConfig{
			Snapshotter:                "overlayfs",
			DefaultRuntimeName:         "runc",
			Runtimes:                   map[string]criRuntime{"runc": {Type: "io.containerd.runc.v2", Options: defaultRuncOptions()}},
			DisableSnapshotAnnotations: true,
		},
		DisableTCPService:                true,
		StreamServerAddress:              "127.0.0.1",
		StreamServerPort:                 "0",
		StreamIdleTimeout:                "4h0m0s",
		SelinuxCategoryRange:             1024,
		SandboxImage:                     "registry.k8s.io/pause:3.6",
		StatsCollectPeriod:               10,
		MaxContainerLogLineSize:          16 * 1024,
		MaxConcurrentDownloads:           3,
		TolerateMissingHugetlbController: true,
		DisableHugetlbController:         true,
		ImageDecryption:                  criImageDecryption{KeyModel: "node"},
	}
}

// criStatusConfig is what containerd's Status (verbose) marshals as
// "config": criconfig.Config, the plugin config plus the directories.
type criStatusConfig struct {
	criPluginConfig
	ContainerdRootDir  string `json:"containerdRootDir"`
	ContainerdEndpoint string `json:"containerdEndpoint"`
	RootDir            string `json:"rootDir"`
	StateDir           string `json:"stateDir"`
	// Fake is fakecontainerd's own effective configuration (the TOML
	// tree, snake_case), under a key containerd does not use.
	Fake *Config `json:"fakecontainerd"`
}

// criPluginID is the CRI plugin's ID in a version 2 config.
const criPluginID = "io.containerd.grpc.v1.cri"

// CRIStatusJSON is the "config" of CRI Status (verbose) in containerd
// 1.6.20's shape: the CRI plugin config as containerd holds it (the file's
// CRI table over containerd's defaults, with the values the fake uses for
// the keys it models), containerdRootDir and friends, and the fake's own
// config under "fakecontainerd".
func (c *Config) CRIStatusJSON() ([]byte, error) {
	pc := c.criFile
	if pc == nil {
		d := defaultCRIPluginConfig()
		pc = &d
	}
	out := criStatusConfig{
		criPluginConfig:    *pc,
		ContainerdRootDir:  c.Root,
		ContainerdEndpoint: c.GRPC.Address,
		RootDir:            filepath.Join(c.Root, criPluginID),
		StateDir:           filepath.Join(c.State, criPluginID),
		Fake:               c,
	}
	// The keys the fake models hold the values it uses.
	cri := &out.criPluginConfig
	cri.SandboxImage = c.Plugins.CRI.SandboxImage
	cri.StreamServerAddress = c.Plugins.CRI.StreamServerAddress
	cri.StreamServerPort = c.Plugins.CRI.StreamServerPort
	cri.StreamIdleTimeout = c.Plugins.CRI.StreamIdleTimeout
	cri.EnableTLSStreaming = c.Plugins.CRI.EnableTLSStreaming
	cri.X509KeyPairStreaming = criX509KeyPairStreaming(c.Plugins.CRI.X509KeyPairStreaming)
	cri.Containerd.Snapshotter = c.Plugins.CRI.Containerd.Snapshotter
	cri.Containerd.DefaultRuntimeName = c.Plugins.CRI.Containerd.DefaultRuntimeName
	runtimes := make(map[string]criRuntime, len(c.Plugins.CRI.Containerd.Runtimes))
	for name, rt := range c.Plugins.CRI.Containerd.Runtimes {
		crt := pc.Containerd.Runtimes[name]
		crt.Type = rt.RuntimeType
		opts := make(map[string]any, len(crt.Options)+2)
		for k, v := range crt.Options {
			opts[k] = v
		}
		if crt.Options == nil {
			opts = defaultRuncOptions()
		}
		opts["SystemdCgroup"] = rt.Options.SystemdCgroup
		opts["BinaryName"] = rt.Options.BinaryName
		crt.Options = opts
		runtimes[name] = crt
	}
	cri.Containerd.Runtimes = runtimes
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("config: encoding CRI status JSON: %w", err)
	}
	return b, nil
}
