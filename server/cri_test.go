package server

import (
	"context"
	"encoding/json"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/shim"
	containerstore "github.com/fakecontainerd/fakecontainerd/store/container"
)

// The CRI surface tests: every RuntimeService and ImageService method over
// the real gRPC stubs, its happy path and its error codes as containerd
// (and so critest and kubelet) expect them. Container lifecycle tests are in
// cri_lifecycle_test.go, recovery in restart_test.go.

// criScale runs every delay 100x faster than scenario time.
const criScale = 0.01

// criMissingID resolves to nothing: generated ids are random hex, and a
// 64-character id only matches itself.
var criMissingID = strings.Repeat("0", 64)

// criFor is ts reporting to t, for helpers called inside a subtest.
func (ts *testServer) criFor(t *testing.T) *testServer {
	c := *ts
	c.t = t
	return &c
}

// criWantCode checks an error's gRPC code.
func criWantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Errorf("%s: code %v (err %v), want %v", what, got, err, want)
	}
}

// criRunPodConfig runs a pod from a given config (busybox is pulled first).
func (ts *testServer) criRunPodConfig(pc *runtime.PodSandboxConfig) string {
	t := ts.t
	t.Helper()
	if _, err := ts.img.PullImage(ts.ctx(time.Minute), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "busybox:latest"}}); err != nil {
		t.Fatalf("pull: %v", err)
	}
	resp, err := ts.rt.RunPodSandbox(ts.ctx(time.Minute), &runtime.RunPodSandboxRequest{Config: pc})
	if err != nil {
		t.Fatalf("runp %s: %v", pc.GetMetadata().GetName(), err)
	}
	return resp.PodSandboxId
}

func (ts *testServer) criPodStatus(id string) *runtime.PodSandboxStatus {
	ts.t.Helper()
	resp, err := ts.rt.PodSandboxStatus(ts.ctx(time.Minute), &runtime.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		ts.t.Fatalf("PodSandboxStatus %s: %v", id, err)
	}
	return resp.Status
}

func (ts *testServer) criStatus(id string) *runtime.ContainerStatus {
	ts.t.Helper()
	resp, err := ts.rt.ContainerStatus(ts.ctx(time.Minute), &runtime.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		ts.t.Fatalf("ContainerStatus %s: %v", id, err)
	}
	return resp.Status
}

// criCreate creates a container from a full config.
func (ts *testServer) criCreate(podID string, pc *runtime.PodSandboxConfig, cfg *runtime.ContainerConfig) string {
	ts.t.Helper()
	resp, err := ts.rt.CreateContainer(ts.ctx(time.Minute), &runtime.CreateContainerRequest{
		PodSandboxId: podID, Config: cfg, SandboxConfig: pc,
	})
	if err != nil {
		ts.t.Fatalf("create %s: %v", cfg.GetMetadata().GetName(), err)
	}
	return resp.ContainerId
}

func (ts *testServer) criStop(id string, timeout int64) {
	ts.t.Helper()
	if _, err := ts.rt.StopContainer(ts.ctx(10*time.Minute), &runtime.StopContainerRequest{ContainerId: id, Timeout: timeout}); err != nil {
		ts.t.Fatalf("stop %s: %v", id, err)
	}
}

func (ts *testServer) criStopPod(id string) {
	ts.t.Helper()
	if _, err := ts.rt.StopPodSandbox(ts.ctx(10*time.Minute), &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		ts.t.Fatalf("stopp %s: %v", id, err)
	}
}

// criInternal returns the server's in-memory container, to set flags that
// only exist for an instant in real calls (Starting, Removing).
func (ts *testServer) criInternal(id string) containerstore.Container {
	ts.t.Helper()
	cntr, err := ts.srv.cri.containerStore.Get(id)
	if err != nil {
		ts.t.Fatalf("internal container %s: %v", id, err)
	}
	return cntr
}

func (ts *testServer) criSetFlags(id string, starting, removing bool) {
	ts.t.Helper()
	err := ts.criInternal(id).Status.Update(func(s containerstore.Status) (containerstore.Status, error) {
		s.Starting, s.Removing = starting, removing
		return s, nil
	})
	if err != nil {
		ts.t.Fatal(err)
	}
}

// sharedFirstChar returns the first character two of ids share, if any.
func sharedFirstChar(ids []string) (string, bool) {
	seen := map[byte]bool{}
	for _, id := range ids {
		if seen[id[0]] {
			return id[:1], true
		}
		seen[id[0]] = true
	}
	return "", false
}

func criSorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestCRIVersion(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	resp, err := ts.rt.Version(ts.ctx(time.Minute), &runtime.VersionRequest{Version: "0.1.0"})
	if err != nil {
		t.Fatal(err)
	}
	// kubelet refuses any Version other than "0.1.0".
	if resp.Version != "0.1.0" || resp.RuntimeApiVersion != "v1" || resp.RuntimeName != "fakecontainerd" || resp.RuntimeVersion == "" {
		t.Errorf("Version = %+v", resp)
	}
}

func TestCRIStatus(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	resp, err := ts.rt.Status(ts.ctx(time.Minute), &runtime.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ready := map[string]bool{}
	for _, c := range resp.GetStatus().GetConditions() {
		ready[c.Type] = c.Status
	}
	if !ready[runtime.RuntimeReady] || !ready[runtime.NetworkReady] {
		t.Errorf("conditions %v: kubelet needs RuntimeReady and NetworkReady true", resp.GetStatus().GetConditions())
	}
	if len(resp.Info) != 0 {
		t.Errorf("non-verbose Status has info %v", resp.Info)
	}

	resp, err = ts.rt.Status(ts.ctx(time.Minute), &runtime.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	// config is containerd's CRI config shape, the fake's own under
	// "fakecontainerd" (configs.TestCRIStatusJSON checks the shape).
	var info struct {
		SandboxImage       string `json:"sandboxImage"`
		ContainerdRootDir  string `json:"containerdRootDir"`
		ContainerdEndpoint string `json:"containerdEndpoint"`
		Containerd         struct {
			Runtimes map[string]struct {
				Options map[string]any `json:"options"`
			} `json:"runtimes"`
		} `json:"containerd"`
		Fake configs.Config `json:"fakecontainerd"`
	}
	if err := json.Unmarshal([]byte(resp.Info["config"]), &info); err != nil {
		t.Fatalf("verbose info config %q: %v", resp.Info["config"], err)
	}
	if info.ContainerdRootDir != ts.cfg.Root || info.ContainerdEndpoint != ts.cfg.GRPC.Address || info.SandboxImage != ts.cfg.Plugins.CRI.SandboxImage {
		t.Errorf("verbose config = root %q address %q sandbox image %q; want the server's", info.ContainerdRootDir, info.ContainerdEndpoint, info.SandboxImage)
	}
	if got := info.Containerd.Runtimes["runc"].Options["SystemdCgroup"]; got != false {
		t.Errorf("verbose config runc SystemdCgroup = %v, want false", got)
	}
	if info.Fake.Root != ts.cfg.Root || info.Fake.Plugins.Fake.TimeScale != ts.cfg.Plugins.Fake.TimeScale {
		t.Errorf("verbose config.fakecontainerd = root %q time_scale %v; want the server's", info.Fake.Root, info.Fake.Plugins.Fake.TimeScale)
	}
	for _, k := range []string{"cniconfig", "lastCNILoadStatus", "lastCNILoadStatus.default"} {
		if resp.Info[k] == "" {
			t.Errorf("verbose info lacks %s (containerd's keys: %v)", k, resp.Info)
		}
	}
	var cni struct {
		PluginDirs []string
		Networks   []struct{ IFName string }
	}
	if err := json.Unmarshal([]byte(resp.Info["cniconfig"]), &cni); err != nil || len(cni.PluginDirs) == 0 || len(cni.Networks) == 0 {
		t.Errorf("verbose cniconfig = %s (%v), want go-cni's ConfigResult", resp.Info["cniconfig"], err)
	}
	var golang, podCIDR string
	if err := json.Unmarshal([]byte(resp.Info["golang"]), &golang); err != nil || golang != goruntime.Version() {
		t.Errorf("verbose golang = %q (%v), want %q", resp.Info["golang"], err, goruntime.Version())
	}
	if err := json.Unmarshal([]byte(resp.Info["podCIDR"]), &podCIDR); err != nil || podCIDR != "10.88.0.0/16" {
		t.Errorf("verbose podCIDR = %q (%v), want the configured 10.88.0.0/16", resp.Info["podCIDR"], err)
	}
}

func TestCRIRuntimeConfig(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*configs.Config)
		want   runtime.CgroupDriver
	}{
		{name: "default is cgroupfs", want: runtime.CgroupDriver_CGROUPFS},
		{name: "runc SystemdCgroup", want: runtime.CgroupDriver_SYSTEMD, mutate: func(c *configs.Config) {
			rt := c.Plugins.CRI.Containerd.Runtimes["runc"]
			rt.Options.SystemdCgroup = true
			c.Plugins.CRI.Containerd.Runtimes["runc"] = rt
		}},
		// Only the default runtime's option decides, as in containerd.
		{name: "SystemdCgroup on another handler", want: runtime.CgroupDriver_CGROUPFS, mutate: func(c *configs.Config) {
			c.Plugins.CRI.Containerd.Runtimes["other"] = configs.RuntimeConfig{
				RuntimeType: "io.containerd.runc.v2", Options: configs.RuncOptions{SystemdCgroup: true},
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, criScale, tc.mutate)
			resp, err := ts.rt.RuntimeConfig(ts.ctx(time.Minute), &runtime.RuntimeConfigRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.GetLinux().GetCgroupDriver(); got != tc.want {
				t.Errorf("cgroup driver = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCRIUpdateRuntimeConfig(t *testing.T) {
	update := func(ts *testServer, cidr string) error {
		_, err := ts.rt.UpdateRuntimeConfig(ts.ctx(time.Minute), &runtime.UpdateRuntimeConfigRequest{
			RuntimeConfig: &runtime.RuntimeConfig{NetworkConfig: &runtime.NetworkConfig{PodCidr: cidr}},
		})
		return err
	}
	cases := []struct {
		name    string
		cidr    string
		code    codes.Code
		newPods string // the range new pod IPs must come from
	}{
		{name: "empty keeps the configured range", cidr: "", newPods: "10.88.0.0/16"},
		{name: "ipv4", cidr: "10.99.0.0/24", newPods: "10.99.0.0/24"},
		{name: "dual stack, ipv4 first", cidr: "10.98.0.0/24,fd00:1::/64", newPods: "10.98.0.0/24"},
		{name: "dual stack, ipv6 first", cidr: "fd00:1::/64,10.97.0.0/24", newPods: "10.97.0.0/24"},
		{name: "garbage", cidr: "not-a-cidr", code: codes.InvalidArgument, newPods: "10.88.0.0/16"},
		{name: "ipv6 only", cidr: "fd00:1::/64", code: codes.InvalidArgument, newPods: "10.88.0.0/16"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, criScale, nil)
			first, _ := ts.runPod("before")
			firstIP := ts.criPodStatus(first).GetNetwork().GetIp()
			criWantCode(t, "UpdateRuntimeConfig "+tc.cidr, update(ts, tc.cidr), tc.code)
			id, _ := ts.runPod("after")
			ip, err := netip.ParseAddr(ts.criPodStatus(id).GetNetwork().GetIp())
			if err != nil {
				t.Fatalf("new pod IP: %v", err)
			}
			if !netip.MustParsePrefix(tc.newPods).Contains(ip) {
				t.Errorf("new pod IP %v, want one in %s", ip, tc.newPods)
			}
			if ip.String() == firstIP {
				t.Errorf("new pod got %v, the IP of a running pod", ip)
			}
			if tc.code != codes.OK {
				return
			}
			resp, err := ts.rt.Status(ts.ctx(time.Minute), &runtime.StatusRequest{Verbose: true})
			if err != nil {
				t.Fatal(err)
			}
			if want, _ := json.Marshal(tc.newPods); resp.Info["podCIDR"] != string(want) {
				t.Errorf("verbose podCIDR = %s, want %s", resp.Info["podCIDR"], want)
			}
		})
	}

	// A range that holds running pods' IPs does not hand them out again.
	t.Run("keeps IPs in use", func(t *testing.T) {
		ts := newTestServer(t, criScale, nil)
		first, _ := ts.runPod("first") // 10.88.0.2
		firstIP := ts.criPodStatus(first).GetNetwork().GetIp()
		if err := update(ts, "10.88.0.0/24"); err != nil {
			t.Fatal(err)
		}
		second, _ := ts.runPod("second")
		if ip := ts.criPodStatus(second).GetNetwork().GetIp(); ip == firstIP || !strings.HasPrefix(ip, "10.88.0.") {
			t.Errorf("second pod IP %q; first pod has %q; want another IP in 10.88.0.0/24", ip, firstIP)
		}
	})
}

// criNSPodConfig is a pod config with the given namespace options.
func criNSPodConfig(name string, ns *runtime.NamespaceOption) *runtime.PodSandboxConfig {
	pc := podConfig(name)
	pc.Annotations = map[string]string{"note": name}
	pc.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: ns}}
	return pc
}

func TestCRIRunPodSandboxErrors(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	ts.runPod("taken")
	meta := func(name, ns, uid string) *runtime.PodSandboxConfig {
		return &runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: name, Namespace: ns, Uid: uid}}
	}
	cases := []struct {
		name string
		req  *runtime.RunPodSandboxRequest
		code codes.Code
	}{
		{name: "nil config", req: &runtime.RunPodSandboxRequest{}, code: codes.InvalidArgument},
		{name: "nil metadata", req: &runtime.RunPodSandboxRequest{Config: &runtime.PodSandboxConfig{}}, code: codes.InvalidArgument},
		{name: "empty name", req: &runtime.RunPodSandboxRequest{Config: meta("", "ns", "u")}, code: codes.InvalidArgument},
		{name: "empty namespace", req: &runtime.RunPodSandboxRequest{Config: meta("n", "", "u")}, code: codes.InvalidArgument},
		{name: "empty uid", req: &runtime.RunPodSandboxRequest{Config: meta("n", "ns", "")}, code: codes.InvalidArgument},
		{name: "name with a slash", req: &runtime.RunPodSandboxRequest{Config: meta("a/b", "ns", "u")}, code: codes.InvalidArgument},
		{name: "dot-dot uid", req: &runtime.RunPodSandboxRequest{Config: meta("n", "ns", "..")}, code: codes.InvalidArgument},
		{name: "empty label key", req: &runtime.RunPodSandboxRequest{Config: &runtime.PodSandboxConfig{
			Metadata: &runtime.PodSandboxMetadata{Name: "n", Namespace: "ns", Uid: "u"}, Labels: map[string]string{"": "v"},
		}}, code: codes.InvalidArgument},
		{name: "unknown runtime handler", req: &runtime.RunPodSandboxRequest{Config: podConfig("h"), RuntimeHandler: "kata"}, code: codes.InvalidArgument},
		{name: "name in use", req: &runtime.RunPodSandboxRequest{Config: podConfig("taken")}, code: codes.AlreadyExists},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ts.rt.RunPodSandbox(ts.ctx(time.Minute), tc.req)
			criWantCode(t, "RunPodSandbox", err, tc.code)
		})
	}
	// None of the refused requests left a sandbox behind.
	resp, err := ts.rt.ListPodSandbox(ts.ctx(time.Minute), &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Items) != 1 {
		t.Errorf("%d sandboxes after refused runs, want only the first one", len(resp.Items))
	}
	// A refused run with the default handler named explicitly succeeds.
	if _, err := ts.rt.RunPodSandbox(ts.ctx(time.Minute), &runtime.RunPodSandboxRequest{Config: podConfig("h"), RuntimeHandler: "runc"}); err != nil {
		t.Errorf("run with handler runc after a refused run with the same name: %v", err)
	}
}

func TestCRIPodSandboxStatus(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	podNS := &runtime.NamespaceOption{Network: runtime.NamespaceMode_POD, Pid: runtime.NamespaceMode_CONTAINER, Ipc: runtime.NamespaceMode_POD}
	hostNS := &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_POD, Ipc: runtime.NamespaceMode_NODE}
	cases := []struct {
		name   string
		ns     *runtime.NamespaceOption
		wantIP bool
	}{
		{name: "pod network", ns: podNS, wantIP: true},
		{name: "host network", ns: hostNS, wantIP: false},
		{name: "no namespace options", ns: nil, wantIP: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := ts.criFor(t)
			pc := criNSPodConfig("pod"+string(rune('a'+i)), tc.ns)
			before := ts.clock.Now()
			id := ts.criRunPodConfig(pc)
			st := ts.criPodStatus(id)
			if st.Id != id || st.State != runtime.PodSandboxState_SANDBOX_READY {
				t.Errorf("status id %s state %v, want %s READY", st.Id, st.State, id)
			}
			if !proto.Equal(st.Metadata, pc.Metadata) {
				t.Errorf("metadata %v, want %v", st.Metadata, pc.Metadata)
			}
			if !maps.Equal(st.Labels, pc.Labels) || !maps.Equal(st.Annotations, pc.Annotations) {
				t.Errorf("labels %v annotations %v, want %v %v", st.Labels, st.Annotations, pc.Labels, pc.Annotations)
			}
			if created := time.Unix(0, st.CreatedAt); created.Before(before.Add(-time.Second)) || created.After(ts.clock.Now()) {
				t.Errorf("created at %v, want between %v and now", created, before)
			}
			// kubelet recreates a sandbox whose namespace options differ.
			wantNS := tc.ns
			if wantNS == nil {
				wantNS = &runtime.NamespaceOption{}
			}
			if got := st.GetLinux().GetNamespaces().GetOptions(); !proto.Equal(got, wantNS) {
				t.Errorf("namespace options %v, want %v", got, wantNS)
			}
			ip := st.GetNetwork().GetIp()
			if tc.wantIP {
				if addr, err := netip.ParseAddr(ip); err != nil || !netip.MustParsePrefix("10.88.0.0/16").Contains(addr) {
					t.Errorf("pod IP %q, want one in 10.88.0.0/16", ip)
				}
			} else if ip != "" {
				t.Errorf("host-network pod IP %q, want none", ip)
			}

			// A unique prefix names the sandbox too.
			if byPrefix := ts.criPodStatus(id[:12]); byPrefix.Id != id {
				t.Errorf("status by prefix is of %s, want %s", byPrefix.Id, id)
			}
			resp, err := ts.rt.PodSandboxStatus(ts.ctx(time.Minute), &runtime.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
			if err != nil {
				t.Fatal(err)
			}
			var info struct {
				Pid    uint32 `json:"pid"`
				Config struct {
					Metadata struct{ Name string } `json:"metadata"`
				} `json:"config"`
			}
			if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info.Config.Metadata.Name != pc.Metadata.Name || info.Pid == 0 {
				t.Errorf("verbose info %q (%v): want the config and a pid", resp.Info["info"], err)
			}

			ts.criStopPod(id)
			st = ts.criPodStatus(id)
			if st.State != runtime.PodSandboxState_SANDBOX_NOTREADY || st.GetNetwork().GetIp() != "" {
				t.Errorf("after stop: state %v IP %q, want NOTREADY and no IP", st.State, st.GetNetwork().GetIp())
			}
			if got := st.GetLinux().GetNamespaces().GetOptions(); !proto.Equal(got, wantNS) {
				t.Errorf("namespace options after stop %v, want %v", got, wantNS)
			}
		})
	}

	for _, tc := range []struct {
		name, id string
		code     codes.Code
	}{
		{name: "empty id", id: "", code: codes.InvalidArgument},
		{name: "missing", id: criMissingID, code: codes.NotFound},
		{name: "missing prefix", id: "zz", code: codes.NotFound},
	} {
		_, err := ts.rt.PodSandboxStatus(ts.ctx(time.Minute), &runtime.PodSandboxStatusRequest{PodSandboxId: tc.id})
		criWantCode(t, "PodSandboxStatus "+tc.name, err, tc.code)
	}
}

func TestCRIStopPodSandbox(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	podID, pc := ts.runPod("stoppable")
	// A running container that ignores SIGTERM: the pod stop kills it.
	running := ts.startContainer(podID, pc, "running", map[string]string{shim.AnnotationStopGrace: "never"})
	created := ts.createContainer(podID, pc, "created", nil)

	start := ts.clock.Now()
	ts.criStopPod(podID)
	if took := ts.clock.Since(start); took > 30*time.Second {
		t.Errorf("StopPodSandbox took %v: containers are killed, not given a grace period", took)
	}
	st := ts.criPodStatus(podID)
	if st.State != runtime.PodSandboxState_SANDBOX_NOTREADY || st.GetNetwork().GetIp() != "" {
		t.Errorf("after stop: state %v IP %q, want NOTREADY without IP", st.State, st.GetNetwork().GetIp())
	}
	if cs := ts.criStatus(running); cs.State != runtime.ContainerState_CONTAINER_EXITED || cs.ExitCode != 137 {
		t.Errorf("running container after pod stop: %v exit %d, want EXITED 137", cs.State, cs.ExitCode)
	}
	if got := ts.containerState(created); got != runtime.ContainerState_CONTAINER_CREATED {
		t.Errorf("created container after pod stop: %v, want still CREATED", got)
	}

	// Stop is idempotent, on a stopped and on a missing sandbox.
	for _, id := range []string{podID, criMissingID} {
		_, err := ts.rt.StopPodSandbox(ts.ctx(time.Minute), &runtime.StopPodSandboxRequest{PodSandboxId: id})
		criWantCode(t, "StopPodSandbox again/missing", err, codes.OK)
	}
	_, err := ts.rt.StopPodSandbox(ts.ctx(time.Minute), &runtime.StopPodSandboxRequest{})
	criWantCode(t, "StopPodSandbox with empty id", err, codes.InvalidArgument)

	// Nothing new runs in a stopped sandbox.
	_, err = ts.rt.CreateContainer(ts.ctx(time.Minute), &runtime.CreateContainerRequest{
		PodSandboxId: podID, Config: containerConfig("late", nil), SandboxConfig: pc,
	})
	criWantCode(t, "CreateContainer in a stopped sandbox", err, codes.NotFound)
	_, err = ts.rt.StartContainer(ts.ctx(time.Minute), &runtime.StartContainerRequest{ContainerId: created})
	criWantCode(t, "StartContainer in a stopped sandbox", err, codes.Unknown)
	// As in containerd, a failed start leaves the container EXITED with
	// StartError rather than CREATED forever.
	if cs := ts.criStatus(created); cs.State != runtime.ContainerState_CONTAINER_EXITED || cs.Reason != "StartError" || cs.ExitCode != 128 {
		t.Errorf("after a failed start: %v reason %q exit %d, want EXITED StartError 128", cs.State, cs.Reason, cs.ExitCode)
	}
}

func TestCRIRemovePodSandbox(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	podID, pc := ts.runPod("removable")
	otherID, otherPC := ts.runPod("other")
	running := ts.startContainer(podID, pc, "running", nil)
	created := ts.createContainer(podID, pc, "created", nil)
	exited := ts.startContainer(podID, pc, "exited", map[string]string{shim.AnnotationExitAfter: "1ms"})
	ts.waitState(exited, runtime.ContainerState_CONTAINER_EXITED, 5*time.Minute)
	survivor := ts.startContainer(otherID, otherPC, "survivor", nil)

	// Removing a ready sandbox stops it first, as containerd does.
	if _, err := ts.rt.RemovePodSandbox(ts.ctx(time.Minute), &runtime.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		t.Fatalf("RemovePodSandbox of a ready sandbox: %v", err)
	}
	_, err := ts.rt.PodSandboxStatus(ts.ctx(time.Minute), &runtime.PodSandboxStatusRequest{PodSandboxId: podID})
	criWantCode(t, "PodSandboxStatus after remove", err, codes.NotFound)
	for _, id := range []string{running, created, exited} {
		_, err := ts.rt.ContainerStatus(ts.ctx(time.Minute), &runtime.ContainerStatusRequest{ContainerId: id})
		criWantCode(t, "ContainerStatus of a removed pod's container", err, codes.NotFound)
	}
	list, err := ts.rt.ListContainers(ts.ctx(time.Minute), &runtime.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Containers) != 1 || list.Containers[0].Id != survivor {
		t.Errorf("containers after remove: %v, want only the other pod's", list.Containers)
	}
	if got := ts.containerState(survivor); got != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("other pod's container is %v, want RUNNING", got)
	}
	pods, err := ts.rt.ListPodSandbox(ts.ctx(time.Minute), &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 || pods.Items[0].Id != otherID {
		t.Errorf("sandboxes after remove: %v, want only %s", pods.Items, otherID)
	}
	if _, err := os.Stat(ts.srv.cri.sandboxRootDir(podID)); !os.IsNotExist(err) {
		t.Errorf("sandbox root dir still there: %v", err)
	}

	// Remove is idempotent; the name is free again.
	_, err = ts.rt.RemovePodSandbox(ts.ctx(time.Minute), &runtime.RemovePodSandboxRequest{PodSandboxId: podID})
	criWantCode(t, "RemovePodSandbox again", err, codes.OK)
	_, err = ts.rt.RemovePodSandbox(ts.ctx(time.Minute), &runtime.RemovePodSandboxRequest{})
	criWantCode(t, "RemovePodSandbox with empty id", err, codes.InvalidArgument)
	again, _ := ts.runPod("removable")
	ts.startContainer(again, pc, "running", nil) // the container name is free too
}

func TestCRIListPodSandbox(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	mk := func(name string, labels map[string]string) string {
		pc := podConfig(name)
		for k, v := range labels {
			pc.Labels[k] = v
		}
		return ts.criRunPodConfig(pc)
	}
	web := mk("web", map[string]string{"app": "web", "tier": "front"})
	api := mk("api", map[string]string{"app": "web", "tier": "back"})
	db := mk("db", map[string]string{"app": "db"})
	ts.criStopPod(db)

	ready := &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_READY}
	notReady := &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_NOTREADY}
	cases := []struct {
		name   string
		filter *runtime.PodSandboxFilter
		want   []string
	}{
		{name: "no filter", want: []string{web, api, db}},
		{name: "empty filter", filter: &runtime.PodSandboxFilter{}, want: []string{web, api, db}},
		{name: "id", filter: &runtime.PodSandboxFilter{Id: api}, want: []string{api}},
		{name: "id prefix", filter: &runtime.PodSandboxFilter{Id: db[:10]}, want: []string{db}},
		{name: "missing id", filter: &runtime.PodSandboxFilter{Id: criMissingID}},
		{name: "ready", filter: &runtime.PodSandboxFilter{State: ready}, want: []string{web, api}},
		{name: "not ready", filter: &runtime.PodSandboxFilter{State: notReady}, want: []string{db}},
		{name: "one label", filter: &runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "web"}}, want: []string{web, api}},
		{name: "two labels", filter: &runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "web", "tier": "back"}}, want: []string{api}},
		{name: "label value differs", filter: &runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "cache"}}},
		{name: "id and state disagree", filter: &runtime.PodSandboxFilter{Id: web, State: notReady}},
		{name: "id and label", filter: &runtime.PodSandboxFilter{Id: web[:10], LabelSelector: map[string]string{"tier": "front"}}, want: []string{web}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := ts.rt.ListPodSandbox(ts.ctx(time.Minute), &runtime.ListPodSandboxRequest{Filter: tc.filter})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, sb := range resp.Items {
				got = append(got, sb.Id)
			}
			if !slices.Equal(criSorted(got), criSorted(tc.want)) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	// Items carry what kubelet groups pods by.
	resp, err := ts.rt.ListPodSandbox(ts.ctx(time.Minute), &runtime.ListPodSandboxRequest{Filter: &runtime.PodSandboxFilter{Id: web}})
	if err != nil || len(resp.Items) != 1 {
		t.Fatalf("list web: %v %v", resp, err)
	}
	item := resp.Items[0]
	if item.Metadata.GetName() != "web" || item.Metadata.GetUid() != "web-uid" || item.Labels["io.kubernetes.pod.uid"] != "web-uid" ||
		item.Labels["tier"] != "front" || item.CreatedAt == 0 || item.State != runtime.PodSandboxState_SANDBOX_READY {
		t.Errorf("item %v: want web's metadata, labels, creation time and READY", item)
	}
}

// TestCRIAmbiguousPrefix: a prefix naming several objects is
// InvalidArgument for every method that looks one up, and a filter with it
// matches nothing.
func TestCRIAmbiguousPrefix(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	podID, pc := ts.runPod("amb")
	// 17 ids cannot all start with different hex digits.
	var ids []string
	prefix, ok := "", false
	for i := 0; !ok; i++ {
		ids = append(ids, ts.createContainer(podID, pc, "c"+string(rune('a'+i)), nil))
		prefix, ok = sharedFirstChar(ids)
	}
	ctx := func() context.Context { return ts.ctx(time.Minute) }
	calls := map[string]func() error{
		"ContainerStatus": func() error {
			_, err := ts.rt.ContainerStatus(ctx(), &runtime.ContainerStatusRequest{ContainerId: prefix})
			return err
		},
		"StartContainer": func() error {
			_, err := ts.rt.StartContainer(ctx(), &runtime.StartContainerRequest{ContainerId: prefix})
			return err
		},
		"StopContainer": func() error {
			_, err := ts.rt.StopContainer(ctx(), &runtime.StopContainerRequest{ContainerId: prefix})
			return err
		},
		"RemoveContainer": func() error {
			_, err := ts.rt.RemoveContainer(ctx(), &runtime.RemoveContainerRequest{ContainerId: prefix})
			return err
		},
		"UpdateContainerResources": func() error {
			_, err := ts.rt.UpdateContainerResources(ctx(), &runtime.UpdateContainerResourcesRequest{ContainerId: prefix})
			return err
		},
		"ReopenContainerLog": func() error {
			_, err := ts.rt.ReopenContainerLog(ctx(), &runtime.ReopenContainerLogRequest{ContainerId: prefix})
			return err
		},
		"ExecSync": func() error {
			_, err := ts.rt.ExecSync(ctx(), &runtime.ExecSyncRequest{ContainerId: prefix, Cmd: []string{"true"}})
			return err
		},
		"ContainerStats": func() error {
			_, err := ts.rt.ContainerStats(ctx(), &runtime.ContainerStatsRequest{ContainerId: prefix})
			return err
		},
	}
	for name, call := range calls {
		criWantCode(t, name+" with an ambiguous prefix", call(), codes.InvalidArgument)
	}
	list, err := ts.rt.ListContainers(ctx(), &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{Id: prefix}})
	if err != nil || len(list.Containers) != 0 {
		t.Errorf("ListContainers with an ambiguous id: %v %v, want nothing", list.GetContainers(), err)
	}
	// Nothing was started, stopped or removed by the refused calls.
	for _, id := range ids {
		if got := ts.containerState(id); got != runtime.ContainerState_CONTAINER_CREATED {
			t.Errorf("container %s is %v after refused calls, want CREATED", id, got)
		}
	}

	// The same for sandboxes.
	pods := []string{podID}
	for i := 0; ; i++ {
		if prefix, ok = sharedFirstChar(pods); ok {
			break
		}
		id, _ := ts.runPod("amb" + string(rune('a'+i)))
		pods = append(pods, id)
	}
	for name, call := range map[string]func() error{
		"PodSandboxStatus": func() error {
			_, err := ts.rt.PodSandboxStatus(ctx(), &runtime.PodSandboxStatusRequest{PodSandboxId: prefix})
			return err
		},
		"StopPodSandbox": func() error {
			_, err := ts.rt.StopPodSandbox(ctx(), &runtime.StopPodSandboxRequest{PodSandboxId: prefix})
			return err
		},
		"RemovePodSandbox": func() error {
			_, err := ts.rt.RemovePodSandbox(ctx(), &runtime.RemovePodSandboxRequest{PodSandboxId: prefix})
			return err
		},
		"PodSandboxStats": func() error {
			_, err := ts.rt.PodSandboxStats(ctx(), &runtime.PodSandboxStatsRequest{PodSandboxId: prefix})
			return err
		},
		"CreateContainer": func() error {
			_, err := ts.rt.CreateContainer(ctx(), &runtime.CreateContainerRequest{PodSandboxId: prefix, Config: containerConfig("x", nil), SandboxConfig: pc})
			return err
		},
	} {
		criWantCode(t, name+" with an ambiguous prefix", call(), codes.InvalidArgument)
	}
	sbs, err := ts.rt.ListPodSandbox(ctx(), &runtime.ListPodSandboxRequest{Filter: &runtime.PodSandboxFilter{Id: prefix}})
	if err != nil || len(sbs.Items) != 0 {
		t.Errorf("ListPodSandbox with an ambiguous id: %v %v, want nothing", sbs.GetItems(), err)
	}
	for _, id := range pods {
		if st := ts.criPodStatus(id); st.State != runtime.PodSandboxState_SANDBOX_READY {
			t.Errorf("sandbox %s is %v after refused calls, want READY", id, st.State)
		}
	}
}

func TestCRIExecSync(t *testing.T) {
	ts := newTestServer(t, criScale, func(c *configs.Config) {
		c.Plugins.Fake.ExecSync = configs.ExecSyncConfig{Mode: configs.ExecSyncCanned, Stdout: "hello\n", Stderr: "careful\n", ExitCode: 3}
	})
	podID, pc := ts.runPod("exec")
	running := ts.startContainer(podID, pc, "running", nil)
	created := ts.createContainer(podID, pc, "created", nil)
	exited := ts.startContainer(podID, pc, "exited", map[string]string{shim.AnnotationExitAfter: "1ms"})
	ts.waitState(exited, runtime.ContainerState_CONTAINER_EXITED, 5*time.Minute)

	resp, err := ts.rt.ExecSync(ts.ctx(time.Minute), &runtime.ExecSyncRequest{ContainerId: running, Cmd: []string{"echo", "hi"}, Timeout: 5})
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Stdout) != "hello\n" || string(resp.Stderr) != "careful\n" || resp.ExitCode != 3 {
		t.Errorf("ExecSync = stdout %q stderr %q exit %d, want the configured result", resp.Stdout, resp.Stderr, resp.ExitCode)
	}
	if _, err := ts.rt.ExecSync(ts.ctx(time.Minute), &runtime.ExecSyncRequest{ContainerId: running[:12], Cmd: []string{"true"}}); err != nil {
		t.Errorf("ExecSync by prefix: %v", err)
	}
	for _, tc := range []struct {
		name string
		req  *runtime.ExecSyncRequest
		code codes.Code
	}{
		{"empty id", &runtime.ExecSyncRequest{Cmd: []string{"true"}}, codes.InvalidArgument},
		{"empty cmd", &runtime.ExecSyncRequest{ContainerId: running}, codes.InvalidArgument},
		{"negative timeout", &runtime.ExecSyncRequest{ContainerId: running, Cmd: []string{"true"}, Timeout: -1}, codes.InvalidArgument},
		{"missing", &runtime.ExecSyncRequest{ContainerId: criMissingID, Cmd: []string{"true"}}, codes.NotFound},
		{"created", &runtime.ExecSyncRequest{ContainerId: created, Cmd: []string{"true"}}, codes.Unknown},
		{"exited", &runtime.ExecSyncRequest{ContainerId: exited, Cmd: []string{"true"}}, codes.Unknown},
	} {
		_, err := ts.rt.ExecSync(ts.ctx(time.Minute), tc.req)
		criWantCode(t, "ExecSync "+tc.name, err, tc.code)
	}
}

func TestCRIReopenContainerLog(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	pc := podConfig("logs")
	pc.LogDirectory = filepath.Join(ts.dir, "pods", "logs")
	podID := ts.criRunPodConfig(pc)
	cfg := containerConfig("app", nil)
	cfg.LogPath = "app/0.log"
	running := ts.criCreate(podID, pc, cfg)
	if _, err := ts.rt.StartContainer(ts.ctx(time.Minute), &runtime.StartContainerRequest{ContainerId: running}); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(pc.LogDirectory, "app", "0.log")
	if _, err := os.Stat(logPath); err != nil {
		t.Fatalf("log file after start: %v", err)
	}
	// kubelet rotates: renames the file, then asks for a reopen.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.rt.ReopenContainerLog(ts.ctx(time.Minute), &runtime.ReopenContainerLogRequest{ContainerId: running}); err != nil {
		t.Fatalf("ReopenContainerLog: %v", err)
	}
	if _, err := os.Stat(logPath); err != nil {
		t.Errorf("log file after reopen: %v", err)
	}
	// A running container without a log path has nothing to reopen.
	nolog := ts.startContainer(podID, pc, "nolog", nil)
	if _, err := ts.rt.ReopenContainerLog(ts.ctx(time.Minute), &runtime.ReopenContainerLogRequest{ContainerId: nolog}); err != nil {
		t.Errorf("ReopenContainerLog without a log path: %v", err)
	}
	created := ts.createContainer(podID, pc, "created", nil)
	ts.criStop(nolog, 0)
	for _, tc := range []struct {
		name, id string
		code     codes.Code
	}{
		{"empty id", "", codes.InvalidArgument},
		{"missing", criMissingID, codes.NotFound},
		{"created", created, codes.Unknown},
		{"exited", nolog, codes.Unknown},
	} {
		_, err := ts.rt.ReopenContainerLog(ts.ctx(time.Minute), &runtime.ReopenContainerLogRequest{ContainerId: tc.id})
		criWantCode(t, "ReopenContainerLog "+tc.name, err, tc.code)
	}
}

func TestCRIContainerStats(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	webPC := podConfig("web")
	webPC.Labels["app"] = "web"
	web := ts.criRunPodConfig(webPC)
	dbPC := podConfig("db")
	db := ts.criRunPodConfig(dbPC)
	mk := func(pod string, pc *runtime.PodSandboxConfig, name, role string, start bool) string {
		cfg := containerConfig(name, map[string]string{"a": name})
		cfg.Labels["role"] = role
		id := ts.criCreate(pod, pc, cfg)
		if start {
			if _, err := ts.rt.StartContainer(ts.ctx(time.Minute), &runtime.StartContainerRequest{ContainerId: id}); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	front := mk(web, webPC, "front", "server", true)
	side := mk(web, webPC, "side", "helper", true)
	idle := mk(web, webPC, "idle", "helper", false)
	store := mk(db, dbPC, "store", "server", true)
	_ = ts.clock.Sleep(context.Background(), 2*time.Second) // let CPU time accrue

	resp, err := ts.rt.ContainerStats(ts.ctx(time.Minute), &runtime.ContainerStatsRequest{ContainerId: front})
	if err != nil {
		t.Fatal(err)
	}
	st := resp.Stats
	if st.GetAttributes().GetId() != front || st.GetAttributes().GetMetadata().GetName() != "front" ||
		st.GetAttributes().GetLabels()["role"] != "server" || st.GetAttributes().GetAnnotations()["a"] != "front" {
		t.Errorf("attributes %v, want front's id, metadata, labels and annotations", st.GetAttributes())
	}
	if st.GetCpu().GetTimestamp() == 0 || st.GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 || st.GetCpu().GetUsageNanoCores().GetValue() == 0 {
		t.Errorf("cpu %v: critest wants a timestamp and non-zero usage for a running container", st.GetCpu())
	}
	if st.GetMemory().GetTimestamp() == 0 || st.GetMemory().GetWorkingSetBytes().GetValue() == 0 {
		t.Errorf("memory %v: want a timestamp and a working set", st.GetMemory())
	}
	if st.GetWritableLayer().GetFsId().GetMountpoint() == "" || st.GetWritableLayer().GetUsedBytes().GetValue() == 0 {
		t.Errorf("writable layer %v: want a mountpoint and used bytes", st.GetWritableLayer())
	}
	// A created container has no task: attributes, zero usage.
	resp, err = ts.rt.ContainerStats(ts.ctx(time.Minute), &runtime.ContainerStatsRequest{ContainerId: idle[:12]})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Stats.GetAttributes().GetId() != idle || resp.Stats.GetCpu().GetUsageNanoCores().GetValue() != 0 || resp.Stats.GetCpu().GetTimestamp() == 0 {
		t.Errorf("created container stats %v: want its id, a timestamp and no usage", resp.Stats)
	}
	for _, tc := range []struct {
		name, id string
		code     codes.Code
	}{{"empty id", "", codes.InvalidArgument}, {"missing", criMissingID, codes.NotFound}} {
		_, err := ts.rt.ContainerStats(ts.ctx(time.Minute), &runtime.ContainerStatsRequest{ContainerId: tc.id})
		criWantCode(t, "ContainerStats "+tc.name, err, tc.code)
	}

	cases := []struct {
		name   string
		filter *runtime.ContainerStatsFilter
		want   []string
	}{
		{name: "no filter", want: []string{front, side, idle, store}},
		{name: "id", filter: &runtime.ContainerStatsFilter{Id: side}, want: []string{side}},
		{name: "id prefix", filter: &runtime.ContainerStatsFilter{Id: store[:10]}, want: []string{store}},
		{name: "missing id", filter: &runtime.ContainerStatsFilter{Id: criMissingID}},
		{name: "pod", filter: &runtime.ContainerStatsFilter{PodSandboxId: web}, want: []string{front, side, idle}},
		{name: "pod prefix", filter: &runtime.ContainerStatsFilter{PodSandboxId: db[:10]}, want: []string{store}},
		{name: "missing pod", filter: &runtime.ContainerStatsFilter{PodSandboxId: criMissingID}},
		{name: "id in pod", filter: &runtime.ContainerStatsFilter{Id: front, PodSandboxId: web[:10]}, want: []string{front}},
		{name: "id in another pod", filter: &runtime.ContainerStatsFilter{Id: front, PodSandboxId: db}},
		{name: "label", filter: &runtime.ContainerStatsFilter{LabelSelector: map[string]string{"role": "server"}}, want: []string{front, store}},
		{name: "label in pod", filter: &runtime.ContainerStatsFilter{PodSandboxId: web, LabelSelector: map[string]string{"role": "helper"}}, want: []string{side, idle}},
	}
	for _, tc := range cases {
		t.Run("list "+tc.name, func(t *testing.T) {
			resp, err := ts.rt.ListContainerStats(ts.ctx(time.Minute), &runtime.ListContainerStatsRequest{Filter: tc.filter})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range resp.Stats {
				got = append(got, s.GetAttributes().GetId())
			}
			if !slices.Equal(criSorted(got), criSorted(tc.want)) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCRIPodSandboxStats(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	webPC := podConfig("web")
	webPC.Labels["app"] = "web"
	web := ts.criRunPodConfig(webPC)
	dbPC := podConfig("db")
	db := ts.criRunPodConfig(dbPC)
	ts.startContainer(web, webPC, "a", nil)
	ts.startContainer(web, webPC, "b", nil)
	ts.createContainer(web, webPC, "c", nil)
	ts.startContainer(db, dbPC, "d", nil)
	_ = ts.clock.Sleep(context.Background(), 2*time.Second) // let usage accrue

	resp, err := ts.rt.PodSandboxStats(ts.ctx(time.Minute), &runtime.PodSandboxStatsRequest{PodSandboxId: web[:12]})
	if err != nil {
		t.Fatal(err)
	}
	st := resp.Stats
	if st.GetAttributes().GetId() != web || st.GetAttributes().GetMetadata().GetName() != "web" || st.GetAttributes().GetLabels()["app"] != "web" {
		t.Errorf("attributes %v, want web's", st.GetAttributes())
	}
	linux := st.GetLinux()
	if len(linux.GetContainers()) != 3 {
		t.Errorf("%d container stats, want web's 3", len(linux.GetContainers()))
	}
	if got := linux.GetCpu().GetUsageNanoCores().GetValue(); got != 2*cpuNanoCores {
		t.Errorf("pod CPU %d nanocores, want the sum of its 2 running containers', %d", got, 2*cpuNanoCores)
	}
	if got := linux.GetProcess().GetProcessCount().GetValue(); got != 2 {
		t.Errorf("process count %d, want 2", got)
	}
	var sum uint64
	for _, c := range linux.GetContainers() {
		sum += c.GetMemory().GetWorkingSetBytes().GetValue()
	}
	if got := linux.GetMemory().GetWorkingSetBytes().GetValue(); got != sum || got == 0 {
		t.Errorf("pod working set %d, want the containers' sum %d (non-zero)", got, sum)
	}
	if linux.GetNetwork().GetDefaultInterface().GetRxBytes().GetValue() == 0 {
		t.Errorf("network %v: want traffic for a pod up 2s", linux.GetNetwork())
	}
	// A host-network pod has no netns to read: containerd reports no
	// network usage for it.
	hostPC := podConfig("host")
	hostPC.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE}}}
	host := ts.criRunPodConfig(hostPC)
	hostResp, err := ts.rt.PodSandboxStats(ts.ctx(time.Minute), &runtime.PodSandboxStatsRequest{PodSandboxId: host})
	if err != nil {
		t.Fatal(err)
	}
	if n := hostResp.GetStats().GetLinux().GetNetwork(); n != nil {
		t.Errorf("host-network pod's network usage %v, want none", n)
	}
	for _, tc := range []struct {
		name, id string
		code     codes.Code
	}{{"empty id", "", codes.InvalidArgument}, {"missing", criMissingID, codes.NotFound}} {
		_, err := ts.rt.PodSandboxStats(ts.ctx(time.Minute), &runtime.PodSandboxStatsRequest{PodSandboxId: tc.id})
		criWantCode(t, "PodSandboxStats "+tc.name, err, tc.code)
	}

	cases := []struct {
		name   string
		filter *runtime.PodSandboxStatsFilter
		want   []string
	}{
		{name: "no filter", want: []string{web, db, host}},
		{name: "id", filter: &runtime.PodSandboxStatsFilter{Id: db}, want: []string{db}},
		{name: "id prefix", filter: &runtime.PodSandboxStatsFilter{Id: web[:10]}, want: []string{web}},
		{name: "missing id", filter: &runtime.PodSandboxStatsFilter{Id: criMissingID}},
		{name: "label", filter: &runtime.PodSandboxStatsFilter{LabelSelector: map[string]string{"app": "web"}}, want: []string{web}},
		{name: "label and other id", filter: &runtime.PodSandboxStatsFilter{Id: db, LabelSelector: map[string]string{"app": "web"}}},
	}
	for _, tc := range cases {
		t.Run("list "+tc.name, func(t *testing.T) {
			resp, err := ts.rt.ListPodSandboxStats(ts.ctx(time.Minute), &runtime.ListPodSandboxStatsRequest{Filter: tc.filter})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range resp.Stats {
				got = append(got, s.GetAttributes().GetId())
			}
			if !slices.Equal(criSorted(got), criSorted(tc.want)) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestCRIGetContainerEvents follows one container through its life on an
// event stream, as Evented PLEG does.
func TestCRIGetContainerEvents(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := ts.rt.GetContainerEvents(ctx, &runtime.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The server builds events only once a stream is subscribed.
	deadline := ts.clock.Now().Add(time.Minute)
	for !ts.srv.cri.events.active() {
		if ts.clock.Now().After(deadline) {
			t.Fatal("the event stream never subscribed")
		}
		_ = ts.clock.Sleep(context.Background(), 100*time.Millisecond)
	}
	events := make(chan *runtime.ContainerEventResponse, 100)
	go func() {
		defer close(events)
		for {
			e, err := stream.Recv()
			if err != nil {
				return
			}
			events <- e
		}
	}()
	var lastAt int64
	// next takes the next event and checks it is typ for id.
	next := func(typ runtime.ContainerEventType, id string) *runtime.ContainerEventResponse {
		t.Helper()
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("stream ended waiting for %v of %s", typ, id)
			}
			if e.ContainerEventType != typ || e.ContainerId != id {
				t.Fatalf("event %v for %s, want %v for %s", e.ContainerEventType, e.ContainerId, typ, id)
			}
			if e.CreatedAt < lastAt {
				t.Errorf("event %v at %d, before the previous one at %d", typ, e.CreatedAt, lastAt)
			}
			lastAt = e.CreatedAt
			return e
		case <-ts.clock.After(5 * time.Minute):
			t.Fatalf("no %v event for %s", typ, id)
		}
		return nil
	}
	// statusOf finds a container's status in an event.
	statusOf := func(e *runtime.ContainerEventResponse, id string) *runtime.ContainerStatus {
		for _, s := range e.ContainersStatuses {
			if s.Id == id {
				return s
			}
		}
		return nil
	}

	podID, pc := ts.runPod("events")
	e := next(runtime.ContainerEventType_CONTAINER_STARTED_EVENT, podID)
	if e.GetPodSandboxStatus().GetState() != runtime.PodSandboxState_SANDBOX_READY {
		t.Errorf("sandbox started event: sandbox %v, want READY", e.GetPodSandboxStatus())
	}

	id := ts.createContainer(podID, pc, "app", nil)
	steps := []struct {
		typ   runtime.ContainerEventType
		do    func()
		state runtime.ContainerState // the container in the event; -1 absent
	}{
		{typ: runtime.ContainerEventType_CONTAINER_CREATED_EVENT, state: runtime.ContainerState_CONTAINER_CREATED},
		{typ: runtime.ContainerEventType_CONTAINER_STARTED_EVENT, state: runtime.ContainerState_CONTAINER_RUNNING, do: func() {
			if _, err := ts.rt.StartContainer(ts.ctx(time.Minute), &runtime.StartContainerRequest{ContainerId: id}); err != nil {
				t.Fatal(err)
			}
		}},
		{typ: runtime.ContainerEventType_CONTAINER_STOPPED_EVENT, state: runtime.ContainerState_CONTAINER_EXITED, do: func() { ts.criStop(id, 10) }},
		{typ: runtime.ContainerEventType_CONTAINER_DELETED_EVENT, state: -1, do: func() {
			if _, err := ts.rt.RemoveContainer(ts.ctx(time.Minute), &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, s := range steps {
		if s.do != nil {
			s.do()
		}
		e := next(s.typ, id)
		// kubelet's Evented PLEG drops events without sandbox metadata.
		if e.GetPodSandboxStatus().GetMetadata() == nil || e.PodSandboxStatus.Id != podID || e.PodSandboxStatus.Metadata.Name != "events" {
			t.Errorf("%v event: sandbox status %v, want the pod's with metadata", s.typ, e.GetPodSandboxStatus())
		}
		cs := statusOf(e, id)
		switch {
		case s.state == -1 && cs != nil:
			t.Errorf("%v event still lists the container: %v", s.typ, cs)
		case s.state != -1 && (cs == nil || cs.State != s.state):
			t.Errorf("%v event lists the container as %v, want %v", s.typ, cs, s.state)
		}
		if s.typ == runtime.ContainerEventType_CONTAINER_STOPPED_EVENT && cs.GetExitCode() != 143 {
			t.Errorf("stopped event exit code %d, want 143", cs.GetExitCode())
		}
	}

	// A container that exits by itself is reported too.
	self := ts.startContainer(podID, pc, "self", map[string]string{shim.AnnotationExitAfter: "5s", shim.AnnotationExitCode: "2"})
	next(runtime.ContainerEventType_CONTAINER_CREATED_EVENT, self)
	next(runtime.ContainerEventType_CONTAINER_STARTED_EVENT, self)
	e = next(runtime.ContainerEventType_CONTAINER_STOPPED_EVENT, self)
	if cs := statusOf(e, self); cs.GetExitCode() != 2 || cs.GetReason() != "Error" {
		t.Errorf("self-exit event status %v, want exit 2 reason Error", cs)
	}

	// Stopping the pod reports the sandbox (id = sandbox id).
	ts.criStopPod(podID)
	e = next(runtime.ContainerEventType_CONTAINER_STOPPED_EVENT, podID)
	if e.GetPodSandboxStatus().GetState() != runtime.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("sandbox stopped event: sandbox %v, want NOTREADY", e.GetPodSandboxStatus())
	}

	// Closing the stream unsubscribes.
	cancel()
	deadline = ts.clock.Now().Add(time.Minute)
	for ts.srv.cri.events.active() {
		if ts.clock.Now().After(deadline) {
			t.Fatal("the server still has a subscriber after the client closed its stream")
		}
		_ = ts.clock.Sleep(context.Background(), 100*time.Millisecond)
	}
}

// TestCRIImageService exercises the ImageService over gRPC; image_test.go
// covers naming and identity in depth.
func TestCRIImageService(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	ctx := func() context.Context { return ts.ctx(time.Minute) }
	imageStatus := func(ref string) *runtime.Image {
		t.Helper()
		resp, err := ts.img.ImageStatus(ctx(), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: ref}})
		if err != nil {
			t.Fatalf("ImageStatus %s: %v", ref, err)
		}
		return resp.Image
	}
	listIDs := func(filter string) []string {
		t.Helper()
		req := &runtime.ListImagesRequest{}
		if filter != "" {
			req.Filter = &runtime.ImageFilter{Image: &runtime.ImageSpec{Image: filter}}
		}
		resp, err := ts.img.ListImages(ctx(), req)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, img := range resp.Images {
			ids = append(ids, img.Id)
		}
		return ids
	}
	fsUsed := func() (uint64, uint64) {
		t.Helper()
		resp, err := ts.img.ImageFsInfo(ctx(), &runtime.ImageFsInfoRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.ImageFilesystems) != 1 {
			t.Fatalf("ImageFsInfo: %d filesystems, want 1", len(resp.ImageFilesystems))
		}
		fs := resp.ImageFilesystems[0]
		if fs.GetFsId().GetMountpoint() != filepath.Join(ts.cfg.Root, snapshotPluginDir) || fs.Timestamp == 0 {
			t.Errorf("image fs %v: want the overlayfs snapshotter dir and a timestamp", fs)
		}
		return fs.GetUsedBytes().GetValue(), fs.GetInodesUsed().GetValue()
	}

	if used, inodes := fsUsed(); used != 0 || inodes != 0 {
		t.Errorf("ImageFsInfo with no images: %d bytes %d inodes, want 0", used, inodes)
	}
	pull, err := ts.img.PullImage(ctx(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "busybox:1.36"}})
	if err != nil {
		t.Fatal(err)
	}
	id := pull.ImageRef
	if !strings.HasPrefix(id, "sha256:") || len(id) != len("sha256:")+64 {
		t.Fatalf("PullImage ref %q, want an image id", id)
	}
	img := imageStatus("busybox:1.36")
	if img == nil || img.Id != id || !slices.Equal(img.RepoTags, []string{"docker.io/library/busybox:1.36"}) ||
		len(img.RepoDigests) != 1 || !strings.HasPrefix(img.RepoDigests[0], "docker.io/library/busybox@sha256:") || img.Size == 0 {
		t.Fatalf("ImageStatus = %v, want %s tagged docker.io/library/busybox:1.36 with one digest and a size", img, id)
	}
	// Every name of the image finds it.
	for _, ref := range []string{id, id[:len("sha256:")+12], strings.TrimPrefix(id, "sha256:")[:12], "docker.io/library/busybox:1.36", img.RepoDigests[0]} {
		if got := imageStatus(ref); got == nil || got.Id != id {
			t.Errorf("ImageStatus %q = %v, want %s", ref, got, id)
		}
	}
	// Verbose info carries the image config.
	resp, err := ts.img.ImageStatus(ctx(), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: id}, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.Info["info"], `"imageSpec"`) {
		t.Errorf("verbose image info %q, want the image spec", resp.Info["info"])
	}
	if got := imageStatus("busybox:0.0-missing"); got != nil {
		t.Errorf("ImageStatus of a missing image = %v, want nil", got)
	}

	podID, pc := ts.runPod("img") // pulls busybox:latest and the pause image
	if ids := listIDs(""); len(ids) != 3 || !slices.Contains(ids, id) {
		t.Errorf("ListImages = %v, want busybox:1.36, busybox:latest and pause", ids)
	}
	if ids := listIDs("busybox:1.36"); !slices.Equal(ids, []string{id}) {
		t.Errorf("ListImages filtered on busybox:1.36 = %v, want [%s]", ids, id)
	}
	if ids := listIDs("nothing:here"); len(ids) != 0 {
		t.Errorf("ListImages filtered on a missing image = %v, want none", ids)
	}
	pause := imageStatus(ts.cfg.Plugins.CRI.SandboxImage)
	if pause == nil || !pause.Pinned {
		t.Errorf("sandbox image status %v, want it pulled and pinned", pause)
	}
	used, inodes := fsUsed()
	var want uint64
	list, err := ts.img.ListImages(ctx(), &runtime.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range list.Images {
		want += img.Size
	}
	if used != want || inodes != 3*inodesPerImage {
		t.Errorf("ImageFsInfo used %d bytes %d inodes, want the images' %d bytes and %d inodes", used, inodes, want, 3*inodesPerImage)
	}

	if _, err := ts.img.RemoveImage(ctx(), &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: "docker.io/library/busybox:1.36"}}); err != nil {
		t.Fatal(err)
	}
	if got := imageStatus(id); got != nil {
		t.Errorf("ImageStatus by id after remove = %v, want nil", got)
	}
	if ids := listIDs(""); len(ids) != 2 || slices.Contains(ids, id) {
		t.Errorf("ListImages after remove = %v, want 2 images without %s", ids, id)
	}
	if after, _ := fsUsed(); after != used-img.Size {
		t.Errorf("ImageFsInfo after remove: %d bytes, want %d", after, used-img.Size)
	}
	// A container cannot be made from a removed image.
	cfg := containerConfig("gone", nil)
	cfg.Image.Image = "busybox:1.36"
	_, err = ts.rt.CreateContainer(ctx(), &runtime.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pc})
	criWantCode(t, "CreateContainer from a removed image", err, codes.NotFound)

	for _, tc := range []struct {
		name string
		call func() error
		code codes.Code
	}{
		{"PullImage nil spec", func() error { _, err := ts.img.PullImage(ctx(), &runtime.PullImageRequest{}); return err }, codes.InvalidArgument},
		{"PullImage empty", func() error {
			_, err := ts.img.PullImage(ctx(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{}})
			return err
		}, codes.InvalidArgument},
		{"PullImage malformed", func() error {
			_, err := ts.img.PullImage(ctx(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "Busybox::x"}})
			return err
		}, codes.InvalidArgument},
		{"ImageStatus nil spec", func() error { _, err := ts.img.ImageStatus(ctx(), &runtime.ImageStatusRequest{}); return err }, codes.InvalidArgument},
		{"RemoveImage nil spec", func() error { _, err := ts.img.RemoveImage(ctx(), &runtime.RemoveImageRequest{}); return err }, codes.InvalidArgument},
		{"RemoveImage again", func() error {
			_, err := ts.img.RemoveImage(ctx(), &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: id}})
			return err
		}, codes.OK},
		{"RemoveImage missing", func() error {
			_, err := ts.img.RemoveImage(ctx(), &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: "never:pulled"}})
			return err
		}, codes.OK},
	} {
		criWantCode(t, tc.name, tc.call(), tc.code)
	}
}

// TestCRIPodIPsStayUnique: a pod IP goes back to the pool once, when its
// sandbox stops; removing the stopped sandbox later must not free it again
// after another pod has been given it.
func TestCRIPodIPsStayUnique(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	// A /29 hands out .2 to .6, so the pool wraps quickly.
	if _, err := ts.rt.UpdateRuntimeConfig(ts.ctx(time.Minute), &runtime.UpdateRuntimeConfigRequest{
		RuntimeConfig: &runtime.RuntimeConfig{NetworkConfig: &runtime.NetworkConfig{PodCidr: "10.77.0.0/29"}},
	}); err != nil {
		t.Fatal(err)
	}
	ready := map[string]string{} // pod id -> IP
	run := func(name string) (string, error) {
		resp, err := ts.rt.RunPodSandbox(ts.ctx(time.Minute), &runtime.RunPodSandboxRequest{Config: podConfig(name)})
		if err != nil {
			return "", err
		}
		ip := ts.criPodStatus(resp.PodSandboxId).GetNetwork().GetIp()
		for other, otherIP := range ready {
			if otherIP == ip {
				t.Errorf("pod %s got %s, the IP of ready pod %s", name, ip, other)
			}
		}
		ready[resp.PodSandboxId] = ip
		return resp.PodSandboxId, nil
	}
	first, err := run("first")
	if err != nil {
		t.Fatal(err)
	}
	ts.criStopPod(first)
	delete(ready, first)
	var pods []string
	for _, name := range []string{"b", "c", "d", "e", "f"} { // the last takes first's IP
		id, err := run(name)
		if err != nil {
			t.Fatalf("run %s: %v", name, err)
		}
		pods = append(pods, id)
	}
	if _, err := ts.rt.RemovePodSandbox(ts.ctx(time.Minute), &runtime.RemovePodSandboxRequest{PodSandboxId: first}); err != nil {
		t.Fatal(err)
	}
	// The pool is full: a new pod either fails or gets an unused IP.
	if _, err := run("g"); err == nil {
		t.Errorf("a pod ran with all 5 IPs of the /29 in use")
	}
	// Stopping one frees exactly its IP.
	ts.criStopPod(pods[0])
	freed := ready[pods[0]]
	delete(ready, pods[0])
	if _, err := run("h"); err != nil {
		t.Errorf("run after a stop freed %s: %v", freed, err)
	}
}
