package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fcd runs the binary to completion (at most limit) and returns its
// combined output and exit code; -1 means it was still running at limit.
func fcd(t *testing.T, limit time.Duration, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		return out.String(), -1
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit):
		return out.String(), exit.ExitCode()
	default:
		t.Fatalf("run %s: %v", binary, err)
		return "", 0
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBadFlagsAndConfig: whatever is wrong on the command line or in the
// config file, fakecontainerd refuses to start, at once, saying which flag
// or key is wrong; and the config it documents is one it accepts.
func TestBadFlagsAndConfig(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "fcde")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// Every run gets its own socket and dirs: a bad config that is wrongly
	// accepted serves there until the time limit, and fails the case.
	where := []string{"--address", filepath.Join(dir, "cri.sock"), "--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state")}

	cases := []struct {
		name string
		args []string
		file string // config file content, passed with --config
		want []string
	}{
		{name: "unknown flag", args: []string{"--no-such-flag"}, want: []string{"no-such-flag"}},
		{name: "unknown serve flag", args: []string{"serve", "--no-such-flag"}, want: []string{"no-such-flag"}},
		{name: "time scale zero", args: []string{"--time-scale", "0"}, want: []string{"--time-scale", "0"}},
		{name: "time scale negative", args: []string{"--time-scale=-1"}, want: []string{"--time-scale"}},
		{name: "time scale not a number", args: []string{"--time-scale", "fast"}, want: []string{"time-scale", "fast"}},
		{name: "shim mode", args: []string{"--shim-mode", "bogus"}, want: []string{"--shim-mode", "bogus"}},
		{name: "log level", args: []string{"--log-level", "loud"}, want: []string{"--log-level", "loud"}},
		{name: "stray argument", args: []string{"serve", "extra"}, want: []string{"extra"}},
		{name: "missing config file", args: []string{"--config", filepath.Join(dir, "missing.toml")}, want: []string{"missing.toml"}},
		{name: "time_scale string", file: "version = 2\n[plugins.\"io.fakecontainerd.v1\"]\n  time_scale = \"fast\"\n",
			want: []string{"time_scale"}},
		{name: "version 3", file: "version = 3\n", want: []string{"version", "3"}},
		{name: "version 1 shape", file: "[plugins.cri]\n  sandbox_image = \"pause:3.9\"\n", want: []string{"version"}},
		{name: "bad size", file: "version = 2\n[plugins.\"io.fakecontainerd.v1\"]\n  dirty_limit = \"lots\"\n", want: []string{"dirty_limit"}},
		{name: "unparsable TOML", file: "version = = 2\n", want: []string{"toml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append(args, "--config", writeFile(t, dir, filepath.Base(t.Name())+".toml", tc.file))
			}
			start := time.Now()
			out, code := fcd(t, 30*time.Second, append(args, where...)...)
			switch {
			case code == -1:
				t.Fatalf("fakecontainerd %s: still running after 5s; want it to refuse to start\n%s", strings.Join(args, " "), out)
			case code == 0:
				t.Fatalf("fakecontainerd %s: exit status 0, want non-zero\n%s", strings.Join(args, " "), out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("fakecontainerd %s: exit %d in %v, message does not name %q:\n%s", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond), w, out)
				}
			}
			if strings.Contains(out, "serving the CRI") {
				t.Errorf("it served before failing:\n%s", out)
			}
		})
	}

	t.Run("config default is accepted by config check", func(t *testing.T) {
		def, code := fcd(t, 30*time.Second, "config", "default")
		if code != 0 || !strings.Contains(def, "version = 2") || !strings.Contains(def, `[plugins."io.fakecontainerd.v1"]`) {
			t.Fatalf("config default: exit %d\n%s", code, def)
		}
		path := writeFile(t, dir, "default.toml", def)
		out, code := fcd(t, 30*time.Second, "config", "check", path)
		if code != 0 || strings.TrimSpace(out) != "ok" {
			t.Errorf("config check of config default's output: exit %d, want 0 and just \"ok\" (every documented key modelled):\n%s", code, out)
		}
	})

	t.Run("config check rejects what serve rejects", func(t *testing.T) {
		path := writeFile(t, dir, "bad-check.toml", "version = 2\n[plugins.\"io.fakecontainerd.v1\"]\n  shim_mode = \"bogus\"\n")
		out, code := fcd(t, 30*time.Second, "config", "check", path)
		if code == 0 || !strings.Contains(out, "shim_mode") {
			t.Errorf("config check of a bad shim_mode: exit %d, want non-zero naming shim_mode:\n%s", code, out)
		}
		if out, code := fcd(t, 30*time.Second, "config", "check"); code == 0 {
			t.Errorf("config check without a FILE: exit 0:\n%s", out)
		}
	})

	t.Run("realistic node config", func(t *testing.T) {
		path, err := filepath.Abs(filepath.Join("testdata", "node-config.toml"))
		if err != nil {
			t.Fatal(err)
		}
		out, code := fcd(t, 30*time.Second, "config", "check", path)
		if code != 0 || !strings.HasSuffix(strings.TrimSpace(out), "ok") {
			t.Fatalf("config check of a containerd 1.7 node config: exit %d, want 0 and ok:\n%s", code, out)
		}
		for _, k := range []string{
			`not modelled (ignored): plugins."io.containerd.grpc.v1.cri".cni.bin_dir`,
			`not modelled (ignored): plugins."io.containerd.grpc.v1.cri".registry.config_path`,
			`not modelled (ignored): oom_score`,
		} {
			if !strings.Contains(out, k) {
				t.Errorf("config check does not list %q:\n%s", k, out)
			}
		}
		if strings.Contains(out, "SystemdCgroup") || strings.Contains(out, "sandbox_image") {
			t.Errorf("config check lists modelled keys as not modelled:\n%s", out)
		}

		// And the server runs on it, reading the keys it models.
		d := newDaemon(t, "--config", path, "--time-scale", "0.5")
		rc, err := d.rt.RuntimeConfig(d.ctx())
		if err != nil || rc.GetLinux().GetCgroupDriver() != runtime.CgroupDriver_SYSTEMD {
			t.Errorf("runtime-config on a SystemdCgroup = true node: %v (%v), want cgroup driver SYSTEMD", rc, err)
		}
		pc := d.podConfig("node", d.dir+"/pod-logs")
		d.runp(pc)
		var tags []string
		for _, img := range d.images() {
			tags = append(tags, img.RepoTags...)
		}
		if len(tags) != 1 || tags[0] != "registry.k8s.io/pause:3.9" {
			t.Errorf("images after runp: %v, want the node config's sandbox_image registry.k8s.io/pause:3.9", tags)
		}
		d.stop()
	})
}
