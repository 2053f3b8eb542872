package configs

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary files to Load. It must never panic, and whatever
// it accepts must be valid and encodable.
func FuzzLoad(f *testing.F) {
	f.Add(DefaultTOML())
	if node, err := os.ReadFile(filepath.Join("testdata", "containerd-1.7-node.toml")); err == nil {
		f.Add(node)
	}
	f.Add([]byte(""))
	f.Add([]byte("version = 3\n"))
	f.Add([]byte("[plugins.\"io.fakecontainerd.v1\"]\ntime_scale = \"fast\"\nstop_grace = \"never\"\n"))
	f.Add([]byte("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\noptions = 1\n"))
	f.Add([]byte("[plugins.cri]\n[[a.b]]\nc = [1, \"x\", {d = 2}]\n"))
	f.Add([]byte("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\nSystemdCgrup = true\n[plugins.\"io.containerd.grpc.v1.cri\"]\nsandbox_imgae = 1\ncni = 2\n"))

	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "config.toml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := Load(path)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("Load accepted a config Validate rejects: %v", err)
		}
		if _, err := cfg.JSON(); err != nil {
			t.Errorf("JSON: %v", err)
		}
		if _, err := cfg.CRIStatusJSON(); err != nil {
			t.Errorf("CRIStatusJSON: %v", err)
		}
	})
}
