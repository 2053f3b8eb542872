// Package configs reads fakecontainerd's configuration.
//
// The file has the shape of a containerd 1.x config.toml (version = 2) so that
// users can start fakecontainerd with their node's own config: the keys the
// fake models are read with containerd's names, every other key is accepted
// and reported (see Report), and the fake's own knobs live in a plugin table,
// [plugins."io.fakecontainerd.v1"], that containerd would itself ignore.
package configs

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// defaultTOML is the documented default configuration. It is the single
// source of the default values, so the file users read and the values the
// program uses cannot drift apart.
//
//go:embed default.toml
var defaultTOML []byte

// Config is the whole configuration file. The TOML keys are containerd's
// own; the JSON names repeat them so the config reported by CRI Status
// (verbose) reads like the file.
type Config struct {
	// Version is the config schema version; only 2 (containerd 1.x) is
	// supported.
	Version int `toml:"version" json:"version"`
	// Root holds persistent state.
	Root string `toml:"root" json:"root"`
	// State holds state that does not survive a reboot.
	State   string        `toml:"state" json:"state"`
	GRPC    GRPCConfig    `toml:"grpc" json:"grpc"`
	Debug   DebugConfig   `toml:"debug" json:"debug"`
	Metrics MetricsConfig `toml:"metrics" json:"metrics"`
	Plugins PluginsConfig `toml:"plugins" json:"plugins"`

	// criFile is the file's CRI table as containerd 1.6.20 decodes it,
	// over containerd's defaults, for CRIStatusJSON; nil when the file
	// has none (then containerd's defaults are reported).
	criFile *criPluginConfig
}

// GRPCConfig is containerd's [grpc] table.
type GRPCConfig struct {
	// Address is the absolute path of the CRI unix socket.
	Address string `toml:"address" json:"address"`
	// UID and GID own the socket file.
	UID int `toml:"uid" json:"uid"`
	GID int `toml:"gid" json:"gid"`
}

// DebugConfig is containerd's [debug] table.
type DebugConfig struct {
	// Address serves pprof/expvar; "" disables it.
	Address string `toml:"address" json:"address"`
	// Level is a logrus level name.
	Level string `toml:"level" json:"level"`
}

// MetricsConfig is containerd's [metrics] table.
type MetricsConfig struct {
	// Address serves Prometheus metrics; "" disables them.
	Address string `toml:"address" json:"address"`
	// GRPCHistogram enables gRPC handling-time histograms.
	GRPCHistogram bool `toml:"grpc_histogram" json:"grpc_histogram"`
}

// PluginsConfig holds the plugin tables fakecontainerd models, keyed by
// containerd's plugin IDs.
type PluginsConfig struct {
	CRI     CRIConfig     `toml:"io.containerd.grpc.v1.cri" json:"io.containerd.grpc.v1.cri"`
	Overlay OverlayConfig `toml:"io.containerd.snapshotter.v1.overlayfs" json:"io.containerd.snapshotter.v1.overlayfs"`
	Fake    FakeConfig    `toml:"io.fakecontainerd.v1" json:"io.fakecontainerd.v1"`
}

// CRIConfig is the part of containerd 1.x's CRI plugin config the fake uses.
type CRIConfig struct {
	SandboxImage string           `toml:"sandbox_image" json:"sandbox_image"`
	Containerd   ContainerdConfig `toml:"containerd" json:"containerd"`

	// The streaming server (Exec, Attach, PortForward URLs), with
	// containerd's keys and defaults.
	StreamServerAddress  string               `toml:"stream_server_address" json:"stream_server_address"`
	StreamServerPort     string               `toml:"stream_server_port" json:"stream_server_port"`
	StreamIdleTimeout    string               `toml:"stream_idle_timeout" json:"stream_idle_timeout"`
	EnableTLSStreaming   bool                 `toml:"enable_tls_streaming" json:"enable_tls_streaming"`
	X509KeyPairStreaming X509KeyPairStreaming `toml:"x509_key_pair_streaming" json:"x509_key_pair_streaming"`
}

// X509KeyPairStreaming is the streaming server's own certificate and key
// (PEM files); without them enable_tls_streaming uses a self-signed one.
type X509KeyPairStreaming struct {
	TLSCertFile string `toml:"tls_cert_file" json:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file" json:"tls_key_file"`
}

// ContainerdConfig is the CRI plugin's [...cri.containerd] table.
type ContainerdConfig struct {
	Snapshotter        string `toml:"snapshotter" json:"snapshotter"`
	DefaultRuntimeName string `toml:"default_runtime_name" json:"default_runtime_name"`
	// Runtimes is keyed by runtime handler name.
	Runtimes map[string]RuntimeConfig `toml:"runtimes" json:"runtimes"`
}

// RuntimeConfig is one [...cri.containerd.runtimes.<name>] table.
type RuntimeConfig struct {
	RuntimeType string      `toml:"runtime_type" json:"runtime_type"`
	Options     RuncOptions `toml:"options" json:"options"`
}

// RuncOptions are the runc shim options the fake models. The keys are
// CamelCase because containerd decodes them into runc's own options type.
type RuncOptions struct {
	SystemdCgroup bool   `toml:"SystemdCgroup" json:"SystemdCgroup"`
	BinaryName    string `toml:"BinaryName" json:"BinaryName"`
}

// OverlayConfig is the overlayfs snapshotter plugin's table.
type OverlayConfig struct {
	// MountOptions are added to every container rootfs overlay mount.
	MountOptions []string `toml:"mount_options" json:"mount_options"`
}

// FakeConfig holds the fake's own knobs; default.toml documents each one.
type FakeConfig struct {
	// ContainerdVersion is the containerd release line the fake models:
	// ContainerdV16 (the default), ContainerdV17 or ContainerdV2.
	ContainerdVersion string `toml:"containerd_version" json:"containerd_version"`
	// ShimMode is ShimModeInProcess or ShimModeProcess.
	ShimMode string `toml:"shim_mode" json:"shim_mode"`
	// ShimRuntimeSettings gives the server, home of the in-process shims,
	// containerd's shim GC settings (shim.TuneRuntime).
	ShimRuntimeSettings bool `toml:"shim_runtime_settings" json:"shim_runtime_settings"`
	// ShimV1DeletedState plays containerd <= 1.2.6's shim, before #3244.
	ShimV1DeletedState bool `toml:"shim_v1_deleted_state" json:"shim_v1_deleted_state"`
	// TimeScale is wall-clock seconds per scenario second.
	TimeScale float64 `toml:"time_scale" json:"time_scale"`
	// RootfsWriteRate is bytes per second a running container dirties.
	RootfsWriteRate ByteSize `toml:"rootfs_write_rate" json:"rootfs_write_rate"`
	// DirtyLimit caps a container's dirty bytes.
	DirtyLimit ByteSize `toml:"dirty_limit" json:"dirty_limit"`
	// DiskThroughput is bytes per second synced at unmount.
	DiskThroughput ByteSize `toml:"disk_throughput" json:"disk_throughput"`
	// PodCIDR is the IPv4 range pod IPs come from.
	PodCIDR string `toml:"pod_cidr" json:"pod_cidr"`
	// ExecSync is the canned ExecSync result.
	ExecSync ExecSyncConfig `toml:"exec_sync" json:"exec_sync"`
	// LogLines are written to a container's log at start.
	LogLines []string `toml:"log_lines" json:"log_lines"`
	// StopGrace is how long a fake process takes to exit after SIGTERM.
	StopGrace Duration `toml:"stop_grace" json:"stop_grace"`
	// AdminAddress is the admin API's unix socket; "" means the CRI
	// address plus ".admin".
	AdminAddress string `toml:"admin_address" json:"admin_address"`
	// Fixes are the fix toggles switched on at start.
	Fixes []string `toml:"fixes" json:"fixes"`
	// Faults are armed at start.
	Faults []FaultConfig `toml:"faults" json:"faults"`
	// LockTracking follows status, process and metadata lock holders and
	// waiters for `fakecontainerd blame`.
	LockTracking bool `toml:"lock_tracking" json:"lock_tracking"`
	// TimingLogThreshold: the timing logs ("[ListContainers] all list
	// containers cost ...") are written at debug level for calls at least
	// this slow, so a healthy run is quiet.
	TimingLogThreshold Duration `toml:"timing_log_threshold" json:"timing_log_threshold"`
	// Disk is the node's disk layout; without devices every container
	// rootfs has a disk of its own (the per-container layout).
	Disk DiskConfig `toml:"disk" json:"disk"`
	// CPU is the node's CPU model; 0 cores leaves it off.
	CPU CPUConfig `toml:"cpu" json:"cpu"`
}

// CPUConfig is the [plugins."io.fakecontainerd.v1".cpu] table: the node's
// cores and the CPU time each piece of the runtime's work takes on them
// (store/cpu models them). Cores 0 is the model off.
type CPUConfig struct {
	Cores      int      `toml:"cores" json:"cores"`
	Call       Duration `toml:"call" json:"call"`
	ListItem   Duration `toml:"list_item" json:"list_item"`
	ShimStart  Duration `toml:"shim_start" json:"shim_start"`
	RuncCreate Duration `toml:"runc_create" json:"runc_create"`
	RuncStart  Duration `toml:"runc_start" json:"runc_start"`
	RuncExec   Duration `toml:"runc_exec" json:"runc_exec"`
	RuncKill   Duration `toml:"runc_kill" json:"runc_kill"`
	RuncDelete Duration `toml:"runc_delete" json:"runc_delete"`
	RuncUpdate Duration `toml:"runc_update" json:"runc_update"`
	// CNISetup and CNITeardown are a CNI ADD and DEL (estimated, not
	// measured: no CNI plugins here).
	CNISetup    Duration `toml:"cni_setup" json:"cni_setup"`
	CNITeardown Duration `toml:"cni_teardown" json:"cni_teardown"`
}

// Costs lists the cost fields by their keys, for validation.
func (c CPUConfig) Costs() map[string]Duration {
	return map[string]Duration{
		"call": c.Call, "list_item": c.ListItem, "shim_start": c.ShimStart, "runc_create": c.RuncCreate,
		"runc_start": c.RuncStart, "runc_exec": c.RuncExec, "runc_kill": c.RuncKill,
		"runc_delete": c.RuncDelete, "runc_update": c.RuncUpdate, "cni_setup": c.CNISetup, "cni_teardown": c.CNITeardown,
	}
}

// DiskConfig is the [plugins."io.fakecontainerd.v1".disk] table: the
// node's block devices, which of containerd's directories live on which,
// and noisy neighbours writing to them (store/disk models them).
type DiskConfig struct {
	// RootMount names containerd's root as the node mounts it, in blame
	// and logs.
	RootMount string `toml:"root_mount" json:"root_mount"`
	// RootDevice holds containerd's root (meta.db, status checkpoints);
	// RootfsDevice the overlay snapshotter's directory ("" = RootDevice:
	// one filesystem); SplitDevice is where the split_disk fix moves the
	// snapshotter's directory.
	RootDevice   string `toml:"root_device" json:"root_device"`
	RootfsDevice string `toml:"rootfs_device" json:"rootfs_device"`
	SplitDevice  string `toml:"split_device" json:"split_device"`
	// Devices are the node's block devices.
	Devices []DiskDeviceConfig `toml:"devices" json:"devices"`
	// Writers are noisy neighbours.
	Writers []DiskWriterConfig `toml:"writers" json:"writers"`
}

// DiskDeviceConfig is one [[...disk.devices]] entry.
type DiskDeviceConfig struct {
	Name        string   `toml:"name" json:"name"`
	Throughput  ByteSize `toml:"throughput" json:"throughput"`
	SyncLatency Duration `toml:"sync_latency" json:"sync_latency"`
	Queue       ByteSize `toml:"queue" json:"queue"`
}

// DiskWriterConfig is one [[...disk.writers]] entry: something that is no
// container of ours dirtying a device's filesystem at a steady rate.
type DiskWriterConfig struct {
	Name   string   `toml:"name" json:"name"`
	Device string   `toml:"device" json:"device"`
	Rate   ByteSize `toml:"rate" json:"rate"`
}

// Shared reports whether the config declares a node layout.
func (d DiskConfig) Shared() bool { return len(d.Devices) > 0 }

// FaultConfig is one [[plugins."io.fakecontainerd.v1".faults]] entry.
type FaultConfig struct {
	// Point is a fault point name (`fakecontainerd fault points`).
	Point string `toml:"point" json:"point"`
	// Target selects containers or sandboxes: "all", or key=value pairs
	// such as "pod=job,namespace=default" or "id=40585f73".
	Target string `toml:"target" json:"target"`
	// Spec is the failpoint spec, e.g. "delay(2m)" or "2*error(Unavailable)->off".
	Spec string `toml:"spec" json:"spec"`
}

// ExecSync modes.
const (
	// ExecSyncModel runs the command in the container's process model; a
	// command the model does not know gets the canned result.
	ExecSyncModel = "model"
	// ExecSyncCanned answers every ExecSync with the canned result.
	ExecSyncCanned = "canned"
)

// ExecSyncConfig is how ExecSync answers, and its canned result.
type ExecSyncConfig struct {
	// Mode is ExecSyncModel ("" too) or ExecSyncCanned.
	Mode     string `toml:"mode" json:"mode"`
	Stdout   string `toml:"stdout" json:"stdout"`
	Stderr   string `toml:"stderr" json:"stderr"`
	ExitCode int32  `toml:"exit_code" json:"exit_code"`
}

// The containerd release lines the fake models (containerd_version); the
// README's fidelity section lists what each one changes.
const (
	// ContainerdV16 is containerd 1.6 (measured against 1.6.20).
	ContainerdV16 = "1.6"
	// ContainerdV17 is containerd 1.7 (read from v1.7.30's source).
	ContainerdV17 = "1.7"
	// ContainerdV2 is containerd 2.x (measured against 2.2.7).
	ContainerdV2 = "2.x"
)

// Shim modes.
const (
	// ShimModeInProcess runs one ttrpc shim server per sandbox inside the
	// server process.
	ShimModeInProcess = "inprocess"
	// ShimModeProcess runs every shim as a separate `fakecontainerd shim`
	// process, as containerd does.
	ShimModeProcess = "process"
)

// Report describes what Load saw but did not use.
type Report struct {
	// Undecoded lists, in file order, the keys of the file that
	// fakecontainerd does not model, as dotted TOML keys such as
	// plugins."io.containerd.grpc.v1.cri".cni.bin_dir. A table is listed only
	// when none of its keys are, so an unmodelled table with keys yields just
	// its keys. They are not errors: a node's containerd config has many.
	Undecoded []string
	// Unknown lists the keys neither containerd nor fakecontainerd knows,
	// each with the nearest known key when one is close: typos, which
	// `serve` warns about and `config check` flags. They are not in
	// Undecoded.
	Unknown []UnknownKey
	// Warnings are other things worth a line at start.
	Warnings []string
}

// DefaultTOML returns the documented default configuration file. It returns
// a copy so callers cannot alter the defaults.
func DefaultTOML() []byte {
	return slices.Clone(defaultTOML)
}

// Default returns the default configuration.
func Default() (*Config, error) {
	var cfg Config
	md, err := toml.Decode(string(defaultTOML), &cfg)
	if err != nil {
		return nil, fmt.Errorf("config: embedded default.toml: %w", err)
	}
	// A key in default.toml that no field takes would be documented yet
	// ignored; fail loudly rather than ship such a default.
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("config: embedded default.toml: %s: key is not modelled", und[0])
	}
	normalize(&cfg)
	return &cfg, nil
}

// Load reads the config file at path on top of the defaults, so the file
// needs only the keys it changes, and validates the result.
//
// Keys fakecontainerd does not model are not errors; they are listed in the
// Report. A modelled key with a value of the wrong type is an error naming
// the key. On a read or decode error the config is nil. When only validation
// fails, the decoded config is returned along with the error, so a caller
// that overrides fields from flags can fix them and call Validate again.
func Load(path string) (*Config, Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Report{}, fmt.Errorf("config: %w", err)
	}
	cfg, rep, err := decode(data)
	if err != nil {
		return nil, Report{}, fmt.Errorf("config: %s: %w", path, err)
	}
	if errs := cfg.validate(); len(errs) > 0 {
		return cfg, rep, joinPrefixed(errs, "config: "+path+": ")
	}
	return cfg, rep, nil
}

// decode reads data on top of the defaults.
func decode(data []byte) (*Config, Report, error) {
	cfg, err := Default()
	if err != nil {
		return nil, Report{}, err
	}
	// Remember the default runtimes: the TOML decoder builds every map entry
	// it decodes from a zero value, so they are needed to restore defaults
	// inside an entry the file names (see restoreRuntimeDefaults).
	defaultRuntimes := cfg.Plugins.CRI.Containerd.Runtimes

	// The decoder reuses a non-nil map and adds the file's entries to it;
	// give it a fresh one so defaultRuntimes stays untouched.
	cfg.Plugins.CRI.Containerd.Runtimes = make(map[string]RuntimeConfig, len(defaultRuntimes))
	for name, rt := range defaultRuntimes {
		cfg.Plugins.CRI.Containerd.Runtimes[name] = rt
	}

	md, err := toml.Decode(string(data), cfg)
	if err != nil {
		return nil, Report{}, err
	}
	// A file without a version key keeps the default 2, which is right for a
	// partial fakecontainerd file but wrong for a containerd version 1 file,
	// whose CRI table was plugins.cri. Catch that shape rather than silently
	// ignore the whole CRI table.
	if !md.IsDefined("version") && md.IsDefined("plugins", "cri") {
		return nil, Report{}, fmt.Errorf(`version: not set and the file has a [plugins.cri] table, so it is a version 1 containerd config; only version 2 is supported`)
	}
	if err := restoreRuntimeDefaults(data, cfg, defaultRuntimes); err != nil {
		return nil, Report{}, err
	}
	normalize(cfg)
	rep := Report{}
	leaves := undecodedLeaves(md.Undecoded())
	rep.Unknown = unknownKeys(leaves, cfg)
	for _, k := range leaves {
		if !underUnknown(k.String(), rep.Unknown) {
			rep.Undecoded = append(rep.Undecoded, k.String())
		}
	}
	if err := decodeCRIFile(data, cfg); err != nil {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("plugins.%q: containerd 1.6 would not decode it (%v); CRI Status reports containerd's defaults for the keys fakecontainerd does not model", criPluginID, err))
	}
	return cfg, rep, nil
}

// underUnknown reports whether key is, or is under, one of the unknown
// keys.
func underUnknown(key string, unknown []UnknownKey) bool {
	for _, u := range unknown {
		if key == u.Key || strings.HasPrefix(key, u.Key+".") {
			return true
		}
	}
	return false
}

// decodeCRIFile keeps the file's CRI table as containerd decodes it.
func decodeCRIFile(data []byte, cfg *Config) error {
	var file struct {
		Plugins map[string]toml.Primitive `toml:"plugins"`
	}
	md, err := toml.Decode(string(data), &file)
	if err != nil {
		return err
	}
	prim, ok := file.Plugins[criPluginID]
	if !ok {
		return nil
	}
	pc := defaultCRIPluginConfig()
	// The decoder adds the file's runtimes to the map it finds, each from
	// a zero value, as containerd's own decode does.
	if err := md.PrimitiveDecode(prim, &pc); err != nil {
		return err
	}
	cfg.criFile = &pc
	return nil
}

// runtimeTables captures each [...cri.containerd.runtimes.<name>] table of a
// file undecoded, so it can be decoded a second time on top of the default
// entry of the same name. The key matching is the decoder's own, so this sees
// exactly the tables the main decode saw.
type runtimeTables struct {
	Plugins struct {
		CRI struct {
			Containerd struct {
				Runtimes map[string]toml.Primitive `toml:"runtimes"`
			} `toml:"containerd"`
		} `toml:"io.containerd.grpc.v1.cri"`
	} `toml:"plugins"`
}

// restoreRuntimeDefaults makes a runtime entry the file only partly sets (say
// just options.SystemdCgroup for runc) keep the default values of the keys
// it leaves out, as every other table does.
func restoreRuntimeDefaults(data []byte, cfg *Config, defaults map[string]RuntimeConfig) error {
	var tables runtimeTables
	md, err := toml.Decode(string(data), &tables)
	if err != nil {
		return err
	}
	for name, prim := range tables.Plugins.CRI.Containerd.Runtimes {
		rt, ok := defaults[name]
		if !ok {
			continue
		}
		if err := md.PrimitiveDecode(prim, &rt); err != nil {
			return err
		}
		cfg.Plugins.CRI.Containerd.Runtimes[name] = rt
	}
	return nil
}

// normalize turns values containerd accepts into the one spelling the rest of
// fakecontainerd can rely on.
func normalize(cfg *Config) {
	// containerd's own `containerd config default` writes level = "" and
	// then logs at info; logrus parses level names case-insensitively.
	cfg.Debug.Level = strings.ToLower(cfg.Debug.Level)
	if cfg.Debug.Level == "" {
		cfg.Debug.Level = "info"
	}
	// An empty list in the file and no list at all mean the same.
	if len(cfg.Plugins.Fake.Fixes) == 0 {
		cfg.Plugins.Fake.Fixes = nil
	}
	if len(cfg.Plugins.Fake.Faults) == 0 {
		cfg.Plugins.Fake.Faults = nil
	}
}

// undecodedLeaves turns the decoder's undecoded keys into strings, dropping a
// table when any key under it is also listed: the keys say all the table
// name would, and a node config would otherwise list every table twice.
func undecodedLeaves(keys []toml.Key) []toml.Key {
	parents := make(map[string]bool)
	for _, k := range keys {
		for i := 1; i < len(k); i++ {
			parents[k[:i].String()] = true
		}
	}
	var out []toml.Key
	for _, k := range keys {
		if !parents[k.String()] {
			out = append(out, k)
		}
	}
	return out
}

// MountOptions returns the overlay mount options for container rootfs mounts.
func (c *Config) MountOptions() []string {
	return c.Plugins.Overlay.MountOptions
}

// Volatile reports whether rootfs overlay mounts are volatile, in which case
// an unmount does not sync dirty pages. Both spellings count: "volatile" is
// what users configure and "fsync=volatile" is how kernels >= 6.12.80 report
// it back (containerd accepts both since PR #13256).
func (c *Config) Volatile() bool {
	for _, o := range c.Plugins.Overlay.MountOptions {
		if o == "volatile" || o == "fsync=volatile" {
			return true
		}
	}
	return false
}

// JSON returns the effective configuration as indented JSON, the form CRI
// Status returns in its verbose info.
func (c *Config) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("config: encoding JSON: %w", err)
	}
	return b, nil
}
