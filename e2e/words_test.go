package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// crictlInfo is `crictl info`'s document: the status, and every verbose
// info value parsed as JSON when it is JSON, kept as a string otherwise,
// as crictl does.
func (d *daemon) crictlInfo() map[string]any {
	d.t.Helper()
	resp, err := d.rt.Status(d.ctx(), true)
	if err != nil {
		d.t.Fatalf("crictl info: %v", err)
	}
	doc := map[string]any{"status": resp.GetStatus()}
	for k, v := range resp.GetInfo() {
		var parsed any
		if err := json.Unmarshal([]byte(v), &parsed); err == nil {
			doc[k] = parsed
		} else {
			doc[k] = v
		}
	}
	return doc
}

// jq follows a jq path such as .config.containerd.runtimes.runc.options
// or ."lastCNILoadStatus.default".
func jq(doc any, path string) (any, bool) {
	var keys []string
	for rest := strings.TrimPrefix(path, "."); rest != ""; {
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`) + 1
			keys = append(keys, rest[1:end])
			rest = strings.TrimPrefix(rest[end+1:], ".")
			continue
		}
		k, after, _ := strings.Cut(rest, ".")
		keys = append(keys, k)
		rest = after
	}
	for _, k := range keys {
		m, ok := doc.(map[string]any)
		if !ok {
			return nil, false
		}
		if doc, ok = m[k]; !ok {
			return nil, false
		}
	}
	return doc, true
}

// TestCrictlInfoShape: the jq paths node scripts use on containerd's
// `crictl info` answer on the fake, with the node config's values.
func TestCrictlInfoShape(t *testing.T) {
	path, err := filepath.Abs(filepath.Join("testdata", "node-config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	d := newDaemon(t, "--config", path)
	doc := d.crictlInfo()
	for _, tc := range []struct {
		path string
		want any // nil: present, any value
	}{
		{".config.sandboxImage", "registry.k8s.io/pause:3.9"},
		{".config.containerd.runtimes.runc.options.SystemdCgroup", true},
		{".config.containerd.runtimes.runc.runtimeType", "io.containerd.runc.v2"},
		{".config.containerd.defaultRuntimeName", "runc"},
		{".config.containerd.snapshotter", "overlayfs"},
		{".config.cni.binDir", "/opt/cni/bin"},
		{".config.cni.confDir", "/etc/cni/net.d"},
		{".config.registry", nil},
		{".config.containerdRootDir", d.root},
		{".config.containerdEndpoint", d.sock},
		{".config.fakecontainerd.plugins.\"io.fakecontainerd.v1\".shim_mode", "inprocess"},
		{".cniconfig.PluginDirs", []any{"/opt/cni/bin"}},
		{".cniconfig.Networks", nil},
		{".lastCNILoadStatus", "OK"},
		{`."lastCNILoadStatus.default"`, "OK"},
		{".golang", nil},
	} {
		got, ok := jq(doc, tc.path)
		if !ok {
			t.Errorf("crictl info | jq '%s': null", tc.path)
			continue
		}
		if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("crictl info | jq '%s' = %#v, want %#v", tc.path, got, tc.want)
		}
	}
}

// TestConfigTypos: a misspelled key is a warning at start and in config
// check, with the key it most likely meant; --strict makes it an error.
func TestConfigTypos(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "typo.toml", `version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_imgae = "registry.k8s.io/pause:3.9"
  max_container_log_line_size = 16384
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgrup = true
`)
	const cgroupKey = `plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options.SystemdCgrup`
	const cgroupHint = `did you mean plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options.SystemdCgroup?`
	const imageKey = `plugins."io.containerd.grpc.v1.cri".sandbox_imgae`
	const imageHint = `did you mean plugins."io.containerd.grpc.v1.cri".sandbox_image?`

	out, code := fcd(t, 5*time.Second, "config", "check", path)
	if code != 0 {
		t.Errorf("config check of a file with typos: exit %d, want 0 (a warning, as containerd's config commands):\n%s", code, out)
	}
	for _, want := range []string{
		"unknown key (ignored): " + cgroupKey + " (" + cgroupHint + ")",
		"unknown key (ignored): " + imageKey + " (" + imageHint + ")",
		`not modelled (ignored): plugins."io.containerd.grpc.v1.cri".max_container_log_line_size`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("config check does not say %q:\n%s", want, out)
		}
	}
	if out, code := fcd(t, 5*time.Second, "config", "check", "--strict", path); code == 0 || !strings.Contains(out, "2 unknown key(s)") {
		t.Errorf("config check --strict: exit %d, want non-zero counting 2 unknown keys:\n%s", code, out)
	}

	d := newDaemon(t, "--config", path, "--log-level", "info")
	d.stop()
	log, err := os.ReadFile(d.log)
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, "level=warning") && strings.Contains(l, "Ignoring unknown key in TOML") {
			warnings = append(warnings, l)
		}
	}
	if len(warnings) != 2 {
		t.Errorf("%d unknown-key warnings at start, want 2 (one per key):\n%s", len(warnings), strings.Join(warnings, "\n"))
	}
	for _, want := range []string{cgroupHint, imageHint} {
		if !strings.Contains(strings.Join(warnings, "\n"), strings.ReplaceAll(want, `"`, `\"`)) {
			t.Errorf("no start-up warning says %q:\n%s", want, strings.Join(warnings, "\n"))
		}
	}
	if w := strings.Join(warnings, "\n"); strings.Contains(w, "max_container_log_line_size") {
		t.Errorf("a key containerd knows (max_container_log_line_size) was warned about:\n%s", w)
	}
}

// TestContainerdLogLinesE2E: a user grepping the fake's log for
// containerd's lines finds them, in containerd 1.6's words.
func TestContainerdLogLinesE2E(t *testing.T) {
	d := newDaemon(t, "--time-scale", "0.1")
	pc := d.podConfig("words", d.dir+"/pod-logs")
	podID := d.runp(pc)
	d.pull("busybox:latest")
	id := d.create(podID, d.containerConfig("c1", nil), pc)
	d.startContainer(id)
	if err := d.rt.UpdateContainerResources(d.ctx(), id, &runtime.ContainerResources{Linux: &runtime.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000}}); err != nil {
		t.Fatal(err)
	}
	if err := d.rt.UpdateContainerResources(d.ctx(), "nosuch", &runtime.ContainerResources{Linux: &runtime.LinuxContainerResources{}}); err == nil {
		t.Fatal("update of a missing container succeeded")
	}
	_, err := d.rt.ContainerStatus(d.ctx(), "nosuch", false)
	if err == nil || !strings.HasSuffix(err.Error(), `an error occurred when try to find container "nosuch": not found`) {
		t.Errorf("status of a missing container: %v, want containerd's text", err)
	}
	d.stop()
	log, err := os.ReadFile(d.log)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf(`msg="UpdateContainerResources for \"%s\" with Linux: &LinuxContainerResources{CpuPeriod:100000,CpuQuota:50000,CpuShares:0,`, id),
		fmt.Sprintf(`msg="UpdateContainerResources for \"%s\" returns successfully"`, id),
		fmt.Sprintf(`msg="RunPodSandbox for &PodSandboxMetadata{Name:words,Uid:%s,Namespace:%s,Attempt:%d,} returns sandbox id \"%s\""`,
			pc.Metadata.Uid, pc.Metadata.Namespace, pc.Metadata.Attempt, podID),
	} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %s", want)
		}
	}
	// The failure: containerd's message, the error as a field.
	found := false
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, `level=error msg="UpdateContainerResources for \"nosuch\" failed"`) &&
			strings.Contains(l, `error="failed to find container: not found"`) {
			found = true
		}
	}
	if !found {
		t.Error(`log lacks the error line "UpdateContainerResources for \"nosuch\" failed" with error="failed to find container: not found"`)
	}
}
