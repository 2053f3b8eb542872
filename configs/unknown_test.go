package configs

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// A key nobody knows is reported with the nearest known key of its level;
// keys containerd knows and the fake ignores stay in Undecoded only.
func TestLoadUnknownKeys(t *testing.T) {
	const cri = `[plugins."io.containerd.grpc.v1.cri"]` + "\n"
	const runc = `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]` + "\n"
	for _, tc := range []struct {
		name      string
		file      string
		want      []UnknownKey
		undecoded []string
	}{
		{name: "runc option typo", file: runc + "SystemdCgrup = true\n",
			want: []UnknownKey{{`plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options.SystemdCgrup`,
				`plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options.SystemdCgroup`}}},
		{name: "transposed letters", file: cri + "sandbox_imgae = \"pause:1\"\n",
			want: []UnknownKey{{`plugins."io.containerd.grpc.v1.cri".sandbox_imgae`, `plugins."io.containerd.grpc.v1.cri".sandbox_image`}}},
		{name: "top-level typo", file: "roots = \"/var/lib/x\"\n", want: []UnknownKey{{"roots", "root"}}},
		{name: "nothing close", file: cri + "frobnicate = 1\n", want: []UnknownKey{{`plugins."io.containerd.grpc.v1.cri".frobnicate`, ""}}},
		{name: "misspelled table, one line for its keys",
			file: `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.option]` + "\nSystemdCgroup = true\nBinaryName = \"x\"\n",
			want: []UnknownKey{{`plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.option`,
				`plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options`}}},
		{name: "misspelled plugin id", file: `[plugins."io.containerd.grpc.v1.crl"]` + "\nsandbox_image = \"x\"\n",
			want: []UnknownKey{{`plugins."io.containerd.grpc.v1.crl"`, `plugins."io.containerd.grpc.v1.cri"`}}},
		{name: "fake's own table is checked", file: `[plugins."io.fakecontainerd.v1"]` + "\ntime_scal = 1.0\n",
			want: []UnknownKey{{`plugins."io.fakecontainerd.v1".time_scal`, `plugins."io.fakecontainerd.v1".time_scale`}}},
		{name: "containerd's keys stay quiet", file: cri + "max_container_log_line_size = 16384\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\nbin_dir = \"/opt/cni/bin\"\n" + runc + "NoPivotRoot = false\n",
			undecoded: []string{`plugins."io.containerd.grpc.v1.cri".max_container_log_line_size`, `plugins."io.containerd.grpc.v1.cri".cni.bin_dir`,
				`plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options.NoPivotRoot`}},
		{name: "1.7 keys stay quiet", file: cri + "enable_cdi = true\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\nsandbox_mode = \"podsandbox\"\n",
			undecoded: []string{`plugins."io.containerd.grpc.v1.cri".enable_cdi`, `plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.sandbox_mode`}},
		{name: "other plugins are containerd's", file: `[plugins."io.containerd.gc.v1.scheduler"]` + "\npause_threshold = 0.02\n",
			undecoded: []string{`plugins."io.containerd.gc.v1.scheduler".pause_threshold`}},
		{name: "a non-runc runtime's options are its own", file: `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata]` +
			"\nruntime_type = \"io.containerd.kata.v2\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.kata.options]\nConfigPath = \"/etc/kata.toml\"\n",
			undecoded: []string{`plugins."io.containerd.grpc.v1.cri".containerd.runtimes.kata.options.ConfigPath`}},
		{name: "a runc runtime of another name is checked", file: `[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun]` +
			"\nruntime_type = \"io.containerd.runc.v2\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.crun.options]\nBinaryNam = \"crun\"\n",
			want: []UnknownKey{{`plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun.options.BinaryNam`,
				`plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun.options.BinaryName`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, rep, err := Load(writeFile(t, tc.file))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !reflect.DeepEqual(rep.Unknown, tc.want) {
				t.Errorf("Unknown =\n%+v\nwant\n%+v", rep.Unknown, tc.want)
			}
			if !slices.Equal(rep.Undecoded, tc.undecoded) {
				t.Errorf("Undecoded = %q, want %q", rep.Undecoded, tc.undecoded)
			}
		})
	}
}

// A real node's config (containerd 1.7) has no unknown key.
func TestLoadNodeConfigHasNoUnknownKeys(t *testing.T) {
	_, rep, err := Load(filepath.Join("testdata", "containerd-1.7-node.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Unknown) != 0 || len(rep.Warnings) != 0 {
		t.Errorf("Unknown = %+v, Warnings = %q; want none", rep.Unknown, rep.Warnings)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "ab", 2}, {"root", "root", 0}, {"roots", "root", 1},
		{"sandbox_imgae", "sandbox_image", 1}, {"systemdcgrup", "systemdcgroup", 1}, {"kitten", "sitting", 3},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// CRI Status (verbose) reports the config in containerd 1.6.20's JSON shape:
// the paths node scripts jq hold the values the fake uses, the keys it does
// not model hold the file's values or containerd's defaults, and the
// fake's own config sits under a key of its own.
func TestCRIStatusJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string // "" means the defaults
		want map[string]any
	}{
		{name: "defaults", want: map[string]any{
			"sandboxImage":                                   "registry.k8s.io/pause:3.10",
			"containerd.snapshotter":                         "overlayfs",
			"containerd.defaultRuntimeName":                  "runc",
			"containerd.runtimes.runc.runtimeType":           "io.containerd.runc.v2",
			"containerd.runtimes.runc.options.SystemdCgroup": false,
			"containerd.runtimes.runc.options.NoPivotRoot":   false,
			"cni.binDir":               "/opt/cni/bin",
			"cni.confDir":              "/etc/cni/net.d",
			"cni.maxConfNum":           float64(1),
			"registry.configPath":      "",
			"imageDecryption.keyModel": "node",
			"streamIdleTimeout":        "4h0m0s",
			"maxContainerLogSize":      float64(16384),
			"containerdRootDir":        "/var/lib/fakecontainerd",
			"containerdEndpoint":       "/run/fakecontainerd/fakecontainerd.sock",
			"rootDir":                  "/var/lib/fakecontainerd/io.containerd.grpc.v1.cri",
			"stateDir":                 "/run/fakecontainerd/io.containerd.grpc.v1.cri",
			"fakecontainerd.plugins.io\\.fakecontainerd\\.v1.shim_mode": "inprocess",
		}},
		{name: "node file", file: `[plugins."io.containerd.grpc.v1.cri"]
sandbox_image = "registry.k8s.io/pause:3.9"
stream_server_port = "10010"
[plugins."io.containerd.grpc.v1.cri".cni]
bin_dir = "/usr/lib/cni"
[plugins."io.containerd.grpc.v1.cri".registry]
config_path = "/etc/containerd/certs.d"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
SystemdCgroup = true
`, want: map[string]any{
			"sandboxImage":                         "registry.k8s.io/pause:3.9",
			"streamServerPort":                     "10010",
			"cni.binDir":                           "/usr/lib/cni",
			"cni.confDir":                          "/etc/cni/net.d",
			"registry.configPath":                  "/etc/containerd/certs.d",
			"containerd.runtimes.runc.runtimeType": "io.containerd.runc.v2",
			"containerd.runtimes.runc.options.SystemdCgroup": true,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Default()
			if tc.file != "" {
				cfg, _, err = Load(writeFile(t, tc.file))
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := cfg.CRIStatusJSON()
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatal(err)
			}
			for path, want := range tc.want {
				if got, ok := jsonPath(doc, path); !ok || !reflect.DeepEqual(got, want) {
					t.Errorf(".%s = %#v (present %v), want %#v", path, got, ok, want)
				}
			}
		})
	}
}

// jsonPath follows a jq-style dotted path ("\." escapes a dot in a key).
func jsonPath(doc any, path string) (any, bool) {
	var parts []string
	cur := ""
	for i := 0; i < len(path); i++ {
		switch {
		case path[i] == '\\' && i+1 < len(path):
			i++
			cur += string(path[i])
		case path[i] == '.':
			parts = append(parts, cur)
			cur = ""
		default:
			cur += string(path[i])
		}
	}
	parts = append(parts, cur)
	for _, p := range parts {
		m, ok := doc.(map[string]any)
		if !ok {
			return nil, false
		}
		if doc, ok = m[p]; !ok {
			return nil, false
		}
	}
	return doc, true
}
