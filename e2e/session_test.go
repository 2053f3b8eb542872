package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-client/pkg/logs"
)

// TestConfigFilesDecode pins how crictl reads its JSON config files: the
// snake_case keys of its docs decode with encoding/json (what crictl uses,
// through sigs.k8s.io/yaml), and protojson reads them the same way.
func TestConfigFilesDecode(t *testing.T) {
	t.Parallel()
	pc, err := loadPodSandboxConfig(filepath.Join("testdata", "pod-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	wantPod := &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: "nginx-sandbox", Namespace: "default", Attempt: 1, Uid: "hdishd83djaidwnduwk28bcsb"},
		LogDirectory: "/tmp",
		Linux:        &runtime.LinuxPodSandboxConfig{},
	}
	if !proto.Equal(pc, wantPod) {
		t.Errorf("pod-config.json decoded as %v, want %v", pc, wantPod)
	}
	cc, err := loadContainerConfig(filepath.Join("testdata", "container-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	wantCtr := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "busybox"},
		Image:    &runtime.ImageSpec{Image: "busybox", UserSpecifiedImage: "busybox"},
		Command:  []string{"top"},
		LogPath:  "busybox.0.log",
		Linux:    &runtime.LinuxContainerConfig{},
	}
	if !proto.Equal(cc, wantCtr) {
		t.Errorf("container-config.json decoded as %v, want %v", cc, wantCtr)
	}
	for _, tc := range []struct {
		file string
		want proto.Message
		got  proto.Message
	}{
		{"pod-config.json", pc, &runtime.PodSandboxConfig{}},
		{"container-config.json", cc, &runtime.ContainerConfig{}},
	} {
		data, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		if err := protojson.Unmarshal(data, tc.got); err != nil {
			t.Errorf("protojson %s: %v", tc.file, err)
			continue
		}
		if c, ok := tc.got.(*runtime.ContainerConfig); ok {
			c.Image.UserSpecifiedImage = c.Image.Image
		}
		if !proto.Equal(tc.got, tc.want) {
			t.Errorf("protojson read %s as %v, encoding/json as %v", tc.file, tc.got, tc.want)
		}
	}
}

// criLogLine is one line of the CRI log format: "<RFC3339Nano> <stream> <P|F> <text>".
var criLogLine = regexp.MustCompile(`^(\S+) (stdout|stderr) (P|F) (.*)$`)

// TestCrictlSession is the crictl walk-through of containerd's docs
// (docs/cri/crictl.md), command by command, each checked against what
// crictl would show.
func TestCrictlSession(t *testing.T) {
	t.Parallel()
	d := newDaemon(t)
	logDir := filepath.Join(d.dir, "pod-logs")
	var (
		imageRef, podID, ctrID string
		pc                     *runtime.PodSandboxConfig
		cc                     *runtime.ContainerConfig
		startedAt              int64
	)
	// Each step is a subtest; the daemon's helpers fail the step's t.
	step := func(name string, f func(t *testing.T, d *daemon)) {
		if !t.Run(name, func(t *testing.T) { f(t, d.on(t)) }) {
			t.FailNow()
		}
	}
	// Timestamps are wall-clock at time scale 1: crictl prints them as
	// "N seconds ago".
	recent := func(t *testing.T, what string, ns int64) {
		t.Helper()
		if age := time.Since(time.Unix(0, ns)); age < -time.Second || age > time.Minute {
			t.Errorf("%s = %v, %v from now; want a moment ago", what, time.Unix(0, ns), -age)
		}
	}

	step("version", func(t *testing.T, d *daemon) {
		v, err := d.rt.Version(d.ctx(), "v1")
		if err != nil {
			t.Fatal(err)
		}
		if v.Version != "0.1.0" || v.RuntimeName != "fakecontainerd" || v.RuntimeApiVersion != "v1" || v.RuntimeVersion != buildVersion {
			t.Errorf("crictl version: Version %q RuntimeName %q RuntimeVersion %q RuntimeApiVersion %q; want 0.1.0 fakecontainerd %s v1",
				v.Version, v.RuntimeName, v.RuntimeVersion, v.RuntimeApiVersion, buildVersion)
		}
	})
	step("info", func(t *testing.T, d *daemon) {
		st, err := d.rt.Status(d.ctx(), true)
		if err != nil {
			t.Fatal(err)
		}
		conds := map[string]bool{}
		for _, c := range st.GetStatus().GetConditions() {
			conds[c.Type] = c.Status
		}
		if !conds[runtime.RuntimeReady] || !conds[runtime.NetworkReady] {
			t.Errorf("conditions %v: want RuntimeReady and NetworkReady true", st.GetStatus().GetConditions())
		}
		// crictl info parses every info value that starts with "{" as JSON.
		// config is containerd's CRI config (words_test.go checks its
		// shape), the directories in containerd's names.
		var cfg struct {
			Root    string `json:"containerdRootDir"`
			Address string `json:"containerdEndpoint"`
		}
		raw := st.GetInfo()["config"]
		if err := json.Unmarshal([]byte(raw), &cfg); err != nil || !strings.HasPrefix(raw, "{") {
			t.Fatalf("info[config] is not a JSON object (%v): %q", err, raw)
		}
		if cfg.Root != d.root || cfg.Address != d.sock {
			t.Errorf("info[config]: containerdRootDir %q, containerdEndpoint %q; want the flags' %q, %q", cfg.Root, cfg.Address, d.root, d.sock)
		}
		for k, v := range st.GetInfo() {
			if strings.HasPrefix(v, "{") && !json.Valid([]byte(v)) {
				t.Errorf("info[%s] starts like JSON but is not: %q", k, v)
			}
		}
	})
	step("pull", func(t *testing.T, d *daemon) {
		imageRef = d.pull("busybox")
		if !strings.HasPrefix(imageRef, "sha256:") || len(imageRef) != len("sha256:")+64 {
			t.Errorf("crictl pull busybox: image ref %q, want sha256:<64 hex>", imageRef)
		}
		// A second pull of the same reference is the same image.
		if again := d.pull("docker.io/library/busybox:latest"); again != imageRef {
			t.Errorf("pull of the full reference gave %q, the short one %q", again, imageRef)
		}
	})
	step("images", func(t *testing.T, d *daemon) {
		imgs := d.images()
		if len(imgs) != 1 {
			t.Fatalf("crictl images: %d images, want just busybox: %v", len(imgs), imgs)
		}
		img := imgs[0]
		if img.Id != imageRef || !slices.Equal(img.RepoTags, []string{"docker.io/library/busybox:latest"}) || img.Size == 0 {
			t.Errorf("crictl images: id %q tags %v size %d; want %q [docker.io/library/busybox:latest] > 0", img.Id, img.RepoTags, img.Size, imageRef)
		}
		if len(img.RepoDigests) != 1 || !strings.HasPrefix(img.RepoDigests[0], "docker.io/library/busybox@sha256:") {
			t.Errorf("crictl images: repo digests %v, want one docker.io/library/busybox@sha256:...", img.RepoDigests)
		}
		// crictl inspecti
		st, err := d.img.ImageStatus(d.ctx(), &runtime.ImageSpec{Image: "busybox"}, true)
		if err != nil || st.GetImage().GetId() != imageRef {
			t.Errorf("crictl inspecti busybox: %v, id %q; want %q", err, st.GetImage().GetId(), imageRef)
		}
	})
	step("runp", func(t *testing.T, d *daemon) {
		pc = d.podConfig("nginx-sandbox", logDir)
		podID = d.runp(pc)
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(podID) {
			t.Errorf("crictl runp printed %q, want a 64-hex id", podID)
		}
	})
	step("create", func(t *testing.T, d *daemon) {
		cc = d.containerConfig("busybox", nil)
		ctrID = d.create(podID, cc, pc)
		if st := d.inspect(ctrID); st.State != runtime.ContainerState_CONTAINER_CREATED {
			t.Errorf("after create: %v, want CONTAINER_CREATED", st.State)
		}
	})
	step("start", func(t *testing.T, d *daemon) {
		d.startContainer(ctrID)
	})
	step("ps", func(t *testing.T, d *daemon) {
		// crictl ps: only running containers by default.
		cs, err := d.rt.ListContainers(d.ctx(), &runtime.ContainerFilter{State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING}})
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != 1 {
			t.Fatalf("crictl ps: %d containers, want 1: %v", len(cs), cs)
		}
		c := cs[0]
		if c.Id != ctrID || c.PodSandboxId != podID || c.State != runtime.ContainerState_CONTAINER_RUNNING ||
			c.GetMetadata().GetName() != "busybox" || c.GetImage().GetImage() != "busybox" || c.ImageRef != imageRef {
			t.Errorf("crictl ps: %v; want %s in %s RUNNING, name busybox, image busybox (%s)", c, ctrID, podID, imageRef)
		}
		recent(t, "container CreatedAt", c.CreatedAt)
		// crictl ps --id <prefix> and --pod <prefix> resolve truncated ids.
		cs, err = d.rt.ListContainers(d.ctx(), &runtime.ContainerFilter{Id: ctrID[:13], PodSandboxId: podID[:13]})
		if err != nil || len(cs) != 1 || cs[0].Id != ctrID {
			t.Errorf("crictl ps --id %s --pod %s: %v %v", ctrID[:13], podID[:13], cs, err)
		}
	})
	step("pods", func(t *testing.T, d *daemon) {
		ps := d.pods()
		if len(ps) != 1 {
			t.Fatalf("crictl pods: %d pods, want 1: %v", len(ps), ps)
		}
		p := ps[0]
		if p.Id != podID || p.State != runtime.PodSandboxState_SANDBOX_READY || !proto.Equal(p.Metadata, pc.Metadata) {
			t.Errorf("crictl pods: %v; want %s READY with metadata %v", p, podID, pc.Metadata)
		}
		recent(t, "pod CreatedAt", p.CreatedAt)
	})
	step("inspect", func(t *testing.T, d *daemon) {
		resp, err := d.rt.ContainerStatus(d.ctx(), ctrID, true)
		if err != nil {
			t.Fatal(err)
		}
		st := resp.GetStatus()
		startedAt = st.StartedAt
		wantLog := filepath.Join(logDir, "busybox.0.log")
		if st.Id != ctrID || st.State != runtime.ContainerState_CONTAINER_RUNNING || st.GetMetadata().GetName() != "busybox" ||
			st.LogPath != wantLog || st.GetImage().GetImage() != "docker.io/library/busybox:latest" ||
			!strings.HasPrefix(st.ImageRef, "docker.io/library/busybox@sha256:") || st.ExitCode != 0 || st.FinishedAt != 0 {
			t.Errorf("crictl inspect: %v\nwant RUNNING busybox, log %s, image docker.io/library/busybox:latest, a repo digest ref", st, wantLog)
		}
		recent(t, "StartedAt", st.StartedAt)
		if st.StartedAt < st.CreatedAt {
			t.Errorf("StartedAt %d before CreatedAt %d", st.StartedAt, st.CreatedAt)
		}
		var info struct {
			SandboxID   string `json:"sandboxID"`
			Pid         int    `json:"pid"`
			RuntimeSpec struct {
				Process struct {
					Args []string `json:"args"`
				} `json:"process"`
			} `json:"runtimeSpec"`
			Config json.RawMessage `json:"config"`
		}
		if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil {
			t.Fatalf("crictl inspect: info[info] is not JSON (%v): %q", err, resp.GetInfo()["info"])
		}
		if info.SandboxID != podID || info.Pid <= 0 || !slices.Equal(info.RuntimeSpec.Process.Args, []string{"top"}) {
			t.Errorf("crictl inspect info: sandboxID %q pid %d args %v; want %s, a pid, [top]", info.SandboxID, info.Pid, info.RuntimeSpec.Process.Args, podID)
		}
		var cfg runtime.ContainerConfig
		if err := protojson.Unmarshal(info.Config, &cfg); err != nil || !proto.Equal(&cfg, cc) {
			t.Errorf("crictl inspect info.config = %s (%v), want the create request's config %v", info.Config, err, cc)
		}
	})
	step("inspectp", func(t *testing.T, d *daemon) {
		resp, err := d.rt.PodSandboxStatus(d.ctx(), podID, true)
		if err != nil {
			t.Fatal(err)
		}
		st := resp.GetStatus()
		if st.Id != podID || st.State != runtime.PodSandboxState_SANDBOX_READY || !proto.Equal(st.Metadata, pc.Metadata) {
			t.Errorf("crictl inspectp: %v; want %s READY", st, podID)
		}
		if ip, err := netip.ParseAddr(st.GetNetwork().GetIp()); err != nil || !netip.MustParsePrefix("10.88.0.0/16").Contains(ip) {
			t.Errorf("crictl inspectp: pod IP %q (%v), want one in the default pod_cidr 10.88.0.0/16", st.GetNetwork().GetIp(), err)
		}
		if st.GetLinux().GetNamespaces().GetOptions() == nil {
			t.Errorf("crictl inspectp: no linux.namespaces.options; kubelet compares them")
		}
		var info map[string]any
		if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil || info["pid"] == nil {
			t.Errorf("crictl inspectp: info[info] = %q (%v), want JSON with a pid", resp.GetInfo()["info"], err)
		}
	})
	step("update", func(t *testing.T, d *daemon) {
		want := &runtime.LinuxContainerResources{
			CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 256 << 20, CpusetCpus: "0", CpusetMems: "0",
		}
		// crictl update --cpu-period 100000 --cpu-quota 50000 --cpu-share 512 --memory 268435456 --cpuset-cpus 0 --cpuset-mems 0
		if err := d.rt.UpdateContainerResources(d.ctx(), ctrID, &runtime.ContainerResources{Linux: want}); err != nil {
			t.Fatal(err)
		}
		got := d.inspect(ctrID).GetResources().GetLinux()
		if got.GetCpuPeriod() != want.CpuPeriod || got.GetCpuQuota() != want.CpuQuota || got.GetCpuShares() != want.CpuShares ||
			got.GetMemoryLimitInBytes() != want.MemoryLimitInBytes || got.GetCpusetCpus() != want.CpusetCpus || got.GetCpusetMems() != want.CpusetMems {
			t.Errorf("ContainerStatus resources after update: %v, want %v", got, want)
		}
	})
	step("stats", func(t *testing.T, d *daemon) {
		check := func(how string, s *runtime.ContainerStats) {
			t.Helper()
			if s.GetAttributes().GetId() != ctrID || s.GetAttributes().GetMetadata().GetName() != "busybox" {
				t.Errorf("%s: attributes %v, want %s busybox", how, s.GetAttributes(), ctrID)
			}
			if s.GetMemory().GetWorkingSetBytes().GetValue() == 0 || s.GetMemory().GetTimestamp() == 0 ||
				s.GetCpu().GetTimestamp() == 0 || s.GetCpu().GetUsageNanoCores().GetValue() == 0 {
				t.Errorf("%s: cpu %v memory %v; want non-zero working set, CPU use and timestamps", how, s.GetCpu(), s.GetMemory())
			}
			recent(t, how+" memory timestamp", s.GetMemory().GetTimestamp())
		}
		s, err := d.rt.ContainerStats(d.ctx(), ctrID)
		if err != nil {
			t.Fatal(err)
		}
		check("ContainerStats", s)
		// crictl stats --id: ListContainerStats with an id filter.
		list, err := d.rt.ListContainerStats(d.ctx(), &runtime.ContainerStatsFilter{Id: ctrID})
		if err != nil || len(list) != 1 {
			t.Fatalf("crictl stats --id %s: %v %v", ctrID, list, err)
		}
		check("ListContainerStats", list[0])
	})
	step("logs", func(t *testing.T, d *daemon) {
		// crictl logs: ContainerStatus for the log path, then cri-client's
		// log reader on it.
		st := d.inspect(ctrID)
		var stdout, stderr bytes.Buffer
		if err := logs.ReadLogs(d.ctx(), st.LogPath, st.Id, &logs.LogOptions{}, d.rt, &stdout, &stderr); err != nil {
			t.Fatalf("crictl logs: %v", err)
		}
		if stdout.String() != "fakecontainerd: container started\n" || stderr.Len() != 0 {
			t.Errorf("crictl logs: stdout %q stderr %q; want the default log_lines on stdout", stdout.String(), stderr.String())
		}
		f, err := os.Open(st.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		n := 0
		for sc := bufio.NewScanner(f); sc.Scan(); n++ {
			m := criLogLine.FindStringSubmatch(sc.Text())
			if m == nil {
				t.Errorf("log line %q is not in the CRI format", sc.Text())
				continue
			}
			ts, err := time.Parse(time.RFC3339Nano, m[1])
			if err != nil {
				t.Errorf("log line %q: timestamp: %v", sc.Text(), err)
			} else if ts.UnixNano() < startedAt-int64(time.Second) {
				t.Errorf("log line %q is stamped before the container started (%v)", sc.Text(), time.Unix(0, startedAt))
			}
		}
		if n == 0 {
			t.Errorf("log file %s is empty", st.LogPath)
		}
	})
	step("exec --sync", func(t *testing.T, d *daemon) {
		stdout, stderr, err := d.rt.ExecSync(d.ctx(), ctrID, []string{"echo", "hello"}, 0)
		if err != nil {
			t.Fatalf("crictl exec --sync: %v (exit code 0 expected)", err)
		}
		t.Logf("exec --sync echo hello: stdout %q stderr %q", stdout, stderr)
	})
	step("stop", func(t *testing.T, d *daemon) {
		// crictl stop: timeout 0 by default.
		if err := d.rt.StopContainer(d.ctx(), ctrID, 0); err != nil {
			t.Fatal(err)
		}
		st := d.inspect(ctrID)
		if st.State != runtime.ContainerState_CONTAINER_EXITED || st.FinishedAt < st.StartedAt || st.StartedAt != startedAt {
			t.Errorf("after crictl stop: %v; want EXITED, finished after its unchanged start", st)
		}
		recent(t, "FinishedAt", st.FinishedAt)
		t.Logf("stopped: exit code %d, reason %q", st.ExitCode, st.Reason)
		// Stopping again is a no-op.
		if err := d.rt.StopContainer(d.ctx(), ctrID, 0); err != nil {
			t.Errorf("second crictl stop: %v", err)
		}
		// crictl ps shows nothing running; ps -a shows it exited.
		if cs := d.psAll(); len(cs) != 1 || cs[0].State != runtime.ContainerState_CONTAINER_EXITED {
			t.Errorf("crictl ps -a after stop: %v", cs)
		}
		if _, _, err := d.rt.ExecSync(d.ctx(), ctrID, []string{"true"}, 0); err == nil {
			t.Errorf("exec --sync in an exited container succeeded")
		}
	})
	step("rm", func(t *testing.T, d *daemon) {
		if err := d.rt.RemoveContainer(d.ctx(), ctrID); err != nil {
			t.Fatal(err)
		}
		if _, err := d.rt.ContainerStatus(d.ctx(), ctrID, false); !isNotFound(err) {
			t.Errorf("crictl inspect after rm: %v, want NotFound", err)
		}
		if err := d.rt.RemoveContainer(d.ctx(), ctrID); err != nil {
			t.Errorf("second crictl rm: %v, want a no-op", err)
		}
	})
	step("stopp", func(t *testing.T, d *daemon) {
		if err := d.rt.StopPodSandbox(d.ctx(), podID); err != nil {
			t.Fatal(err)
		}
		st := d.inspectp(podID)
		if st.State != runtime.PodSandboxState_SANDBOX_NOTREADY || st.GetNetwork().GetIp() != "" {
			t.Errorf("crictl inspectp after stopp: %v; want NOTREADY without an IP", st)
		}
	})
	step("rmp", func(t *testing.T, d *daemon) {
		if err := d.rt.RemovePodSandbox(d.ctx(), podID); err != nil {
			t.Fatal(err)
		}
		if _, err := d.rt.PodSandboxStatus(d.ctx(), podID, false); !isNotFound(err) {
			t.Errorf("crictl inspectp after rmp: %v, want NotFound", err)
		}
		if err := d.rt.StopPodSandbox(d.ctx(), podID); err != nil {
			t.Errorf("crictl stopp of a removed pod: %v, want a no-op", err)
		}
	})
	step("empty", func(t *testing.T, d *daemon) {
		if cs := d.psAll(); len(cs) != 0 {
			t.Errorf("crictl ps -a: %v, want nothing", cs)
		}
		if ps := d.pods(); len(ps) != 0 {
			t.Errorf("crictl pods: %v, want nothing", ps)
		}
		// The images stay: busybox and the sandbox image runp pulled.
		var tags []string
		for _, img := range d.images() {
			tags = append(tags, img.RepoTags...)
		}
		slices.Sort(tags)
		if want := []string{"docker.io/library/busybox:latest", "registry.k8s.io/pause:3.10"}; !slices.Equal(tags, want) {
			t.Errorf("crictl images after the session: %v, want %v", tags, want)
		}
	})
	step("graceful stop", func(t *testing.T, d *daemon) {
		start := time.Now()
		d.stop()
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("SIGTERM with nothing in flight took %v", took)
		}
		if _, err := os.Stat(d.sock); !os.IsNotExist(err) {
			t.Errorf("CRI socket %s still there after a graceful stop: %v", d.sock, err)
		}
	})
}
