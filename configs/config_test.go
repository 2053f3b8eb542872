package configs

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// wantDefault is default.toml written out by hand, so a changed default is a
// deliberate edit in two places.
func wantDefault() *Config {
	return &Config{
		Version: 2,
		Root:    "/var/lib/fakecontainerd",
		State:   "/run/fakecontainerd",
		GRPC:    GRPCConfig{Address: "/run/fakecontainerd/fakecontainerd.sock"},
		Debug:   DebugConfig{Address: "", Level: "info"},
		Metrics: MetricsConfig{Address: ""},
		Plugins: PluginsConfig{
			CRI: CRIConfig{
				SandboxImage:        "registry.k8s.io/pause:3.10",
				StreamServerAddress: "127.0.0.1",
				StreamServerPort:    "0",
				StreamIdleTimeout:   "4h0m0s",
				Containerd: ContainerdConfig{
					Snapshotter:        "overlayfs",
					DefaultRuntimeName: "runc",
					Runtimes: map[string]RuntimeConfig{
						"runc": {RuntimeType: "io.containerd.runc.v2"},
					},
				},
			},
			Overlay: OverlayConfig{MountOptions: []string{}},
			Fake: FakeConfig{
				ContainerdVersion:   "1.6",
				ShimMode:            "inprocess",
				ShimRuntimeSettings: true,
				TimeScale:           1.0,
				RootfsWriteRate:     1 << 20,
				DirtyLimit:          2 << 30,
				DiskThroughput:      200 << 20,
				PodCIDR:             "10.88.0.0/16",
				ExecSync:            ExecSyncConfig{Mode: ExecSyncModel},
				LogLines:            []string{"fakecontainerd: container started"},
				StopGrace:           0,
				LockTracking:        true,
				TimingLogThreshold:  Duration(100 * time.Millisecond),
				Disk:                DiskConfig{RootMount: "/var/lib/containerd", Devices: []DiskDeviceConfig{}, Writers: []DiskWriterConfig{}},
				CPU: CPUConfig{
					Call: Duration(500 * time.Microsecond), ListItem: Duration(25 * time.Microsecond),
					ShimStart: Duration(15 * time.Millisecond), RuncCreate: Duration(15 * time.Millisecond),
					RuncStart: Duration(8 * time.Millisecond), RuncExec: Duration(16500 * time.Microsecond),
					RuncKill: Duration(7 * time.Millisecond), RuncDelete: Duration(8 * time.Millisecond),
					RuncUpdate: Duration(7 * time.Millisecond), CNISetup: Duration(40 * time.Millisecond),
					CNITeardown: Duration(40 * time.Millisecond),
				},
			},
		},
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefault(t *testing.T) {
	cfg, err := Default()
	if err != nil {
		t.Fatalf("Default: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate(Default()): %v", err)
	}
	if want := wantDefault(); !reflect.DeepEqual(cfg, want) {
		t.Errorf("Default() =\n%+v\nwant\n%+v", cfg, want)
	}
	// Each call must hand out its own config: callers override fields.
	other, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	other.Plugins.CRI.Containerd.Runtimes["runc"] = RuntimeConfig{}
	other.Plugins.Fake.LogLines[0] = "changed"
	if !reflect.DeepEqual(cfg, wantDefault()) {
		t.Error("changing one Default() result changed another")
	}
	DefaultTOML()[0] = '!'
	if DefaultTOML()[0] == '!' {
		t.Error("DefaultTOML returned the embedded bytes, not a copy")
	}
}

// tomlLeafKeys lists the TOML key of every leaf field of t, descending into
// structs and, for maps, into the entry named entry. ByteSize and Duration
// are leaves although they have a struct-free kind of their own.
func tomlLeafKeys(t reflect.Type, prefix toml.Key, entry string) []toml.Key {
	textType := reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()
	var keys []toml.Key
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue // not a key: criFile, the file's CRI table as containerd holds it
		}
		key := append(slices.Clone(prefix), name)
		switch {
		case reflect.PointerTo(f.Type).Implements(textType):
			keys = append(keys, key)
		case f.Type.Kind() == reflect.Struct:
			keys = append(keys, tomlLeafKeys(f.Type, key, entry)...)
		case f.Type.Kind() == reflect.Map:
			keys = append(keys, tomlLeafKeys(f.Type.Elem(), append(key, entry), entry)...)
		default:
			keys = append(keys, key)
		}
	}
	return keys
}

func TestDefaultTOMLDocumentsEveryKey(t *testing.T) {
	var cfg Config
	md, err := toml.Decode(string(DefaultTOML()), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Every key in the file is modelled...
	if und := md.Undecoded(); len(und) > 0 {
		t.Errorf("default.toml has keys no field takes: %v", und)
	}
	// ...and every modelled key is in the file, so the file documents all.
	for _, key := range tomlLeafKeys(reflect.TypeFor[Config](), nil, "runc") {
		if !md.IsDefined(key...) {
			t.Errorf("default.toml does not set %s", key)
		}
	}

	// Every key and table header carries a comment on the line(s) above.
	assignment := regexp.MustCompile(`^\s*(\[|[A-Za-z_"])`)
	lines := strings.Split(string(DefaultTOML()), "\n")
	for i, line := range lines {
		if !assignment.MatchString(line) {
			continue
		}
		j := i - 1
		for j >= 0 && strings.TrimSpace(lines[j]) == "" {
			j--
		}
		if j < 0 || !strings.HasPrefix(strings.TrimSpace(lines[j]), "#") {
			t.Errorf("default.toml line %d has no comment above it: %s", i+1, line)
		}
	}
}

func TestDefaultRoundTrip(t *testing.T) {
	cfg, err := Default()
	if err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		t.Fatalf("encoding TOML: %v", err)
	}
	var fromTOML Config
	if _, err := toml.Decode(buf.String(), &fromTOML); err != nil {
		t.Fatalf("decoding re-encoded TOML: %v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(&fromTOML, cfg) {
		t.Errorf("TOML round trip =\n%+v\nwant\n%+v", fromTOML, *cfg)
	}

	js, err := cfg.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON Config
	if err := json.Unmarshal(js, &fromJSON); err != nil {
		t.Fatalf("decoding JSON: %v\n%s", err, js)
	}
	if !reflect.DeepEqual(&fromJSON, cfg) {
		t.Errorf("JSON round trip =\n%+v\nwant\n%+v", fromJSON, *cfg)
	}
	// The JSON uses the file's key names and the readable unit forms.
	for _, want := range []string{`"io.fakecontainerd.v1"`, `"dirty_limit": "2GiB"`, `"stop_grace": "0s"`, `"SystemdCgroup": false`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("JSON lacks %s:\n%s", want, js)
		}
	}
}

func TestLoadPartialKeepsDefaults(t *testing.T) {
	path := writeFile(t, `
[plugins."io.fakecontainerd.v1"]
  time_scale = 0.01
  stop_grace = "never"
  dirty_limit = 536870912

[plugins."io.containerd.snapshotter.v1.overlayfs"]
  mount_options = ["volatile"]

# Only one key of the runc entry: the others keep their defaults.
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = true

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun]
  runtime_type = "io.containerd.runc.v2"
  options = { BinaryName = "/usr/bin/crun" }
`)
	cfg, rep, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(rep.Undecoded) != 0 {
		t.Errorf("Undecoded = %q, want none", rep.Undecoded)
	}

	want := wantDefault()
	want.Plugins.Fake.TimeScale = 0.01
	want.Plugins.Fake.StopGrace = DurationNever
	want.Plugins.Fake.DirtyLimit = 512 << 20
	want.Plugins.Overlay.MountOptions = []string{"volatile"}
	want.Plugins.CRI.Containerd.Runtimes = map[string]RuntimeConfig{
		"runc": {RuntimeType: "io.containerd.runc.v2", Options: RuncOptions{SystemdCgroup: true}},
		"crun": {RuntimeType: "io.containerd.runc.v2", Options: RuncOptions{BinaryName: "/usr/bin/crun"}},
	}
	// The file has a CRI table, which is kept as containerd decodes it
	// (TestCRIStatusJSON checks it).
	if cfg.criFile == nil {
		t.Error("criFile = nil, want the file's CRI table")
	}
	want.criFile = cfg.criFile
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load =\n%+v\nwant\n%+v", cfg, want)
	}
	if !cfg.Volatile() || !slices.Equal(cfg.MountOptions(), []string{"volatile"}) {
		t.Errorf("MountOptions() = %q, Volatile() = %v", cfg.MountOptions(), cfg.Volatile())
	}
	if !cfg.Plugins.Fake.StopGrace.Never() {
		t.Error("stop_grace = \"never\" did not decode as never")
	}
}

func TestLoadNodeConfig(t *testing.T) {
	cfg, rep, err := Load(filepath.Join("testdata", "containerd-1.7-node.toml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}

	// The modelled keys come from the node's file...
	if cfg.Root != "/var/lib/containerd" || cfg.GRPC.Address != "/run/containerd/containerd.sock" {
		t.Errorf("root, grpc.address = %q, %q", cfg.Root, cfg.GRPC.Address)
	}
	if got := cfg.Plugins.CRI.SandboxImage; got != "registry.k8s.io/pause:3.9" {
		t.Errorf("sandbox_image = %q", got)
	}
	if !cfg.Plugins.CRI.Containerd.Runtimes["runc"].Options.SystemdCgroup {
		t.Error("SystemdCgroup = false, want true")
	}
	if !cfg.Volatile() {
		t.Error("Volatile() = false, want true")
	}
	if cfg.Metrics.Address != "127.0.0.1:1338" {
		t.Errorf("metrics.address = %q", cfg.Metrics.Address)
	}
	// ...containerd's empty level means info...
	if cfg.Debug.Level != "info" {
		t.Errorf("debug.level = %q, want info", cfg.Debug.Level)
	}
	// ...and the fake's own table keeps its defaults.
	if !reflect.DeepEqual(cfg.Plugins.Fake, wantDefault().Plugins.Fake) {
		t.Errorf("fake table = %+v, want defaults", cfg.Plugins.Fake)
	}

	for _, want := range []string{
		`disabled_plugins`,
		`grpc.max_recv_message_size`,
		`plugins."io.containerd.grpc.v1.cri".cni.bin_dir`,
		`plugins."io.containerd.grpc.v1.cri".max_container_log_line_size`,
		`plugins."io.containerd.grpc.v1.cri".registry.config_path`,
		`plugins."io.containerd.grpc.v1.cri".registry.mirrors`,
		`plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options.NoPivotRoot`,
		`plugins."io.containerd.grpc.v1.cri".containerd.default_runtime.options`,
		`plugins."io.containerd.snapshotter.v1.overlayfs".root_path`,
		`plugins."io.containerd.transfer.v1.local".unpack_config.platform`,
		`proxy_plugins`,
		`timeouts."io.containerd.timeout.task.state"`,
	} {
		if !slices.Contains(rep.Undecoded, want) {
			t.Errorf("Undecoded lacks %s", want)
		}
	}
	for _, notWant := range []string{
		`plugins."io.containerd.grpc.v1.cri".cni`, // a table whose keys are listed
		`plugins."io.containerd.grpc.v1.cri".sandbox_image`,
		`plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options.SystemdCgroup`,
		`version`,
	} {
		if slices.Contains(rep.Undecoded, notWant) {
			t.Errorf("Undecoded lists %s", notWant)
		}
	}
}

// TestLoadErrors feeds files with one bad key each and checks the error
// names that key.
func TestLoadErrors(t *testing.T) {
	const fake = "[plugins.\"io.fakecontainerd.v1\"]\n"
	tests := []struct {
		name    string
		file    string
		wantKey string
	}{
		// Wrong TOML types for modelled keys.
		{"time_scale string", fake + `time_scale = "fast"`, "time_scale"},
		{"shim_mode number", fake + `shim_mode = 1`, "shim_mode"},
		{"log_lines string", fake + `log_lines = "x"`, "log_lines"},
		{"exit_code string", fake + "[plugins.\"io.fakecontainerd.v1\".exec_sync]\nexit_code = \"1\"", "exit_code"},
		{"exec_sync mode unknown", fake + "[plugins.\"io.fakecontainerd.v1\".exec_sync]\nmode = \"real\"", "exec_sync.mode"},
		{"exit_code overflow", fake + "[plugins.\"io.fakecontainerd.v1\".exec_sync]\nexit_code = 4294967296", "exit_code"},
		{"dirty_limit bad unit", fake + `dirty_limit = "2XB"`, "dirty_limit"},
		{"disk_throughput table", fake + "[plugins.\"io.fakecontainerd.v1\".disk_throughput]\nx = 1", "disk_throughput"},
		{"stop_grace no unit", fake + `stop_grace = 30`, "stop_grace"},
		{"stop_grace negative", fake + `stop_grace = "-1s"`, "stop_grace"},
		{"root number", `root = 1`, "root"},
		{"grpc not a table", `grpc = "x"`, "grpc"},
		{"SystemdCgroup string", "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\nSystemdCgroup = \"yes\"", "SystemdCgroup"},
		{"mount_options string", "[plugins.\"io.containerd.snapshotter.v1.overlayfs\"]\nmount_options = \"volatile\"", "mount_options"},
		{"syntax error", "root = ", "root"},

		// Well-typed but invalid values.
		{"version 3", "version = 3", "version"},
		{"version 1 shape", "[plugins.cri]\nsandbox_image = \"x\"", "version"},
		{"root empty", `root = ""`, "root"},
		{"root relative", `root = "var/lib/x"`, "root"},
		{"state empty", `state = ""`, "state"},
		{"root equals state", "root = \"/x\"\nstate = \"/x/\"", "state"},
		{"grpc.address empty", "[grpc]\naddress = \"\"", "grpc.address"},
		{"grpc.address scheme", "[grpc]\naddress = \"unix:///run/x.sock\"", "grpc.address"},
		{"grpc.address too long", "[grpc]\naddress = \"/" + strings.Repeat("a", 120) + "\"", "grpc.address"},
		{"debug.level", "[debug]\nlevel = \"verbose\"", "debug.level"},
		{"debug.address public", "[debug]\naddress = \"0.0.0.0:6060\"", "debug.address"},
		{"debug.address no host", "[debug]\naddress = \":6060\"", "debug.address"},
		{"debug.address relative unix", "[debug]\naddress = \"unix://debug.sock\"", "debug.address"},
		{"metrics.address public", "[metrics]\naddress = \"10.0.0.5:1338\"", "metrics.address"},
		{"metrics.address hostname", "[metrics]\naddress = \"node1:1338\"", "metrics.address"},
		{"metrics.address no port", "[metrics]\naddress = \"127.0.0.1\"", "metrics.address"},
		{"metrics.address bad port", "[metrics]\naddress = \"127.0.0.1:99999\"", "metrics.address"},
		{"metrics.address relative", "[metrics]\naddress = \"metrics.sock\"", "metrics.address"},
		{"default runtime missing", "[plugins.\"io.containerd.grpc.v1.cri\".containerd]\ndefault_runtime_name = \"kata\"", "default_runtime_name"},
		{"default runtime empty", "[plugins.\"io.containerd.grpc.v1.cri\".containerd]\ndefault_runtime_name = \"\"", "default_runtime_name"},
		{"shim_mode", fake + `shim_mode = "x"`, `plugins."io.fakecontainerd.v1".shim_mode`},
		{"containerd_version", fake + `containerd_version = "2.0"`, `plugins."io.fakecontainerd.v1".containerd_version: must be "1.6", "1.7" or "2.x", got "2.0"`},
		{"containerd_version empty", fake + `containerd_version = ""`, `plugins."io.fakecontainerd.v1".containerd_version`},
		{"time_scale zero", fake + `time_scale = 0.0`, "time_scale"},
		{"time_scale negative", fake + `time_scale = -1.0`, "time_scale"},
		{"time_scale too big", fake + `time_scale = 1000.5`, "time_scale"},
		{"time_scale nan", fake + `time_scale = nan`, "time_scale"},
		{"time_scale inf", fake + `time_scale = inf`, "time_scale"},
		{"dirty_limit zero", fake + `dirty_limit = "0"`, "dirty_limit"},
		{"disk_throughput zero", fake + `disk_throughput = 0`, "disk_throughput"},
		{"pod_cidr garbage", fake + `pod_cidr = "pods"`, "pod_cidr"},
		{"pod_cidr no prefix", fake + `pod_cidr = "10.88.0.0"`, "pod_cidr"},
		{"pod_cidr ipv6", fake + `pod_cidr = "fd00::/64"`, "pod_cidr"},
		{"pod_cidr too small", fake + `pod_cidr = "10.88.0.0/25"`, "pod_cidr"},
		{"pod_cidr host bits", fake + `pod_cidr = "10.88.0.1/16"`, "pod_cidr"},
		{"log_lines newline", fake + `log_lines = ["ok", "two\nlines"]`, "log_lines[1]"},
		{"cpu cores negative", "[plugins.\"io.fakecontainerd.v1\".cpu]\ncores = -1", "cpu.cores"},
		{"cpu cost negative", "[plugins.\"io.fakecontainerd.v1\".cpu]\nrunc_exec = \"-1ms\"", "cpu.runc_exec"},
		{"cpu with process shims", fake + "shim_mode = \"process\"\n[plugins.\"io.fakecontainerd.v1\".cpu]\ncores = 2", "cpu.cores"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Load(writeFile(t, tt.file))
			if err == nil {
				t.Fatalf("Load succeeded, want an error naming %s", tt.wantKey)
			}
			if !strings.Contains(err.Error(), tt.wantKey) {
				t.Errorf("error %q does not name %s", err, tt.wantKey)
			}
		})
	}
}

func TestLoadErrorReportsEveryProblem(t *testing.T) {
	path := writeFile(t, "version = 3\n[debug]\nlevel = \"loud\"\n")
	cfg, _, err := Load(path)
	if err == nil {
		t.Fatal("Load succeeded")
	}
	for _, want := range []string{"config: " + path + ": version:", "config: " + path + ": debug.level:", "containerd 2.x"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// The decoded config comes back so flag overrides can repair it.
	if cfg == nil {
		t.Fatal("Load returned no config with a validation error")
	}
	cfg.Version = 2
	cfg.Debug.Level = "debug"
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate after fixing the fields: %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.toml")
	cfg, _, err := Load(path)
	if err == nil || cfg != nil {
		t.Fatalf("Load(missing) = %v, %v; want nil config and an error", cfg, err)
	}
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not wrap fs.ErrNotExist and name the path", err)
	}
}

// TestValidateOverrides covers the values a caller sets from flags, which
// never pass through the decoder.
func TestValidateOverrides(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantKey string // "" means valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"process shim mode", func(c *Config) { c.Plugins.Fake.ShimMode = ShimModeProcess }, ""},
		{"time_scale max", func(c *Config) { c.Plugins.Fake.TimeScale = 1000 }, ""},
		{"write rate zero", func(c *Config) { c.Plugins.Fake.RootfsWriteRate = 0 }, ""},
		{"write rate negative", func(c *Config) { c.Plugins.Fake.RootfsWriteRate = -1 }, "rootfs_write_rate"},
		{"dirty_limit negative", func(c *Config) { c.Plugins.Fake.DirtyLimit = -1 }, "dirty_limit"},
		{"stop_grace negative", func(c *Config) { c.Plugins.Fake.StopGrace = Duration(-time.Second) }, "stop_grace"},
		{"stop_grace never", func(c *Config) { c.Plugins.Fake.StopGrace = DurationNever }, ""},
		{"pod_cidr /24", func(c *Config) { c.Plugins.Fake.PodCIDR = "192.168.7.0/24" }, ""},
		{"level warning", func(c *Config) { c.Debug.Level = "warning" }, ""},
		{"level empty", func(c *Config) { c.Debug.Level = "" }, "debug.level"},
		{"level upper case", func(c *Config) { c.Debug.Level = "INFO" }, "debug.level"},
		{"root equals state", func(c *Config) { c.State = c.Root }, "state"},
		{"debug unix path", func(c *Config) { c.Debug.Address = "/run/fakecontainerd/debug.sock" }, ""},
		{"debug unix url", func(c *Config) { c.Debug.Address = "unix:///run/fakecontainerd/debug.sock" }, ""},
		{"debug loopback v4", func(c *Config) { c.Debug.Address = "127.0.0.1:6060" }, ""},
		{"debug loopback 127/8", func(c *Config) { c.Debug.Address = "127.8.9.10:6060" }, ""},
		{"debug loopback v6", func(c *Config) { c.Debug.Address = "[::1]:6060" }, ""},
		{"debug localhost", func(c *Config) { c.Debug.Address = "localhost:6060" }, ""},
		{"metrics ephemeral port", func(c *Config) { c.Metrics.Address = "127.0.0.1:0" }, ""},
		{"metrics v6 any", func(c *Config) { c.Metrics.Address = "[::]:1338" }, "metrics.address"},
		{"metrics tcp url", func(c *Config) { c.Metrics.Address = "tcp://127.0.0.1:1338" }, "metrics.address"},
		{"stream loopback v6", func(c *Config) { c.Plugins.CRI.StreamServerAddress = "::1" }, ""},
		{"stream any address", func(c *Config) { c.Plugins.CRI.StreamServerAddress = "0.0.0.0" }, "stream_server_address"},
		{"stream node address", func(c *Config) { c.Plugins.CRI.StreamServerAddress = "" }, "stream_server_address"},
		{"stream fixed port", func(c *Config) { c.Plugins.CRI.StreamServerPort = "10010" }, ""},
		{"stream port not a number", func(c *Config) { c.Plugins.CRI.StreamServerPort = "http" }, "stream_server_port"},
		{"stream port too big", func(c *Config) { c.Plugins.CRI.StreamServerPort = "65536" }, "stream_server_port"},
		{"stream idle timeout", func(c *Config) { c.Plugins.CRI.StreamIdleTimeout = "4 hours" }, "stream_idle_timeout"},
		{"stream tls self-signed", func(c *Config) { c.Plugins.CRI.EnableTLSStreaming = true }, ""},
		{"stream tls cert without key", func(c *Config) {
			c.Plugins.CRI.EnableTLSStreaming = true
			c.Plugins.CRI.X509KeyPairStreaming.TLSCertFile = "/etc/cert.pem"
		}, "tls_key_file"},
		{"stream key without tls", func(c *Config) { c.Plugins.CRI.X509KeyPairStreaming.TLSKeyFile = "/etc/key.pem" }, "tls_key_file"},
		{"no runtimes", func(c *Config) { c.Plugins.CRI.Containerd.Runtimes = nil }, "default_runtime_name"},
		{"disk one device", func(c *Config) { c.Plugins.Fake.Disk = nodeDisk() }, ""},
		{"disk split", func(c *Config) { c.Plugins.Fake.Disk = nodeDisk(); c.Plugins.Fake.Disk.SplitDevice = "vdc" }, ""},
		{"disk no root device", func(c *Config) { c.Plugins.Fake.Disk = nodeDisk(); c.Plugins.Fake.Disk.RootDevice = "" }, "disk.root_device"},
		{"disk unknown rootfs device", func(c *Config) { c.Plugins.Fake.Disk = nodeDisk(); c.Plugins.Fake.Disk.RootfsDevice = "sda" }, "disk.rootfs_device"},
		{"disk split on root", func(c *Config) { c.Plugins.Fake.Disk = nodeDisk(); c.Plugins.Fake.Disk.SplitDevice = "vdb" }, "disk.split_device"},
		{"disk device without layout", func(c *Config) { c.Plugins.Fake.Disk.RootDevice = "vdb" }, "disk.root_device"},
		{"disk zero throughput", func(c *Config) { c.Plugins.Fake.Disk = nodeDisk(); c.Plugins.Fake.Disk.Devices[0].Throughput = 0 }, "disk.devices[0].throughput"},
		{"disk device twice", func(c *Config) {
			c.Plugins.Fake.Disk = nodeDisk()
			c.Plugins.Fake.Disk.Devices[1].Name = "vdb"
		}, "disk.devices[1].name"},
		{"disk writer nowhere", func(c *Config) {
			c.Plugins.Fake.Disk = nodeDisk()
			c.Plugins.Fake.Disk.Writers = []DiskWriterConfig{{Name: "x", Device: "sdz", Rate: 1}}
		}, "disk.writers[0].device"},
		{"disk process shims", func(c *Config) { c.Plugins.Fake.Disk = nodeDisk(); c.Plugins.Fake.ShimMode = ShimModeProcess }, "disk.devices"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Default()
			if err != nil {
				t.Fatal(err)
			}
			tt.mutate(cfg)
			err = cfg.Validate()
			switch {
			case tt.wantKey == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.wantKey != "" && err == nil:
				t.Errorf("Validate succeeded, want an error naming %s", tt.wantKey)
			case tt.wantKey != "" && !strings.HasPrefix(err.Error(), "config: ") ||
				tt.wantKey != "" && !strings.Contains(err.Error(), tt.wantKey):
				t.Errorf("error %q does not start with config: and name %s", err, tt.wantKey)
			}
		})
	}
}

// nodeDisk is a valid two-device layout.
func nodeDisk() DiskConfig {
	return DiskConfig{RootMount: "/var/lib/containerd", RootDevice: "vdb",
		Devices: []DiskDeviceConfig{{Name: "vdb", Throughput: 100 << 20}, {Name: "vdc", Throughput: 100 << 20}}}
}

func TestVolatile(t *testing.T) {
	tests := []struct {
		opts []string
		want bool
	}{
		{nil, false},
		{[]string{}, false},
		{[]string{"volatile"}, true},
		{[]string{"index=off", "fsync=volatile"}, true},
		{[]string{"userxattr", "volatile"}, true},
		{[]string{"nonvolatile", "volatile=off"}, false},
	}
	for _, tt := range tests {
		cfg := &Config{Plugins: PluginsConfig{Overlay: OverlayConfig{MountOptions: tt.opts}}}
		if got := cfg.Volatile(); got != tt.want {
			t.Errorf("Volatile() with %q = %v, want %v", tt.opts, got, tt.want)
		}
	}
}

func TestContainerdVersion(t *testing.T) {
	def, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if def.Plugins.Fake.ContainerdVersion != ContainerdV16 {
		t.Errorf("default containerd_version = %q, want %q (today's behaviour)", def.Plugins.Fake.ContainerdVersion, ContainerdV16)
	}
	for _, v := range []string{ContainerdV16, ContainerdV17, ContainerdV2} {
		cfg, _, err := Load(writeFile(t, "[plugins.\"io.fakecontainerd.v1\"]\ncontainerd_version = \""+v+"\"\n"))
		if err != nil {
			t.Fatalf("Load containerd_version = %q: %v", v, err)
		}
		if got := cfg.Plugins.Fake.ContainerdVersion; got != v {
			t.Errorf("containerd_version = %q, want %q", got, v)
		}
	}
}
