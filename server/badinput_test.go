package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/shim"
)

// Malformed requests to every CRI method, over the real gRPC stubs. Each
// must end in a clear code, change nothing the server shows (pods,
// containers, images, armed faults, pod CIDR), and leave no goroutine
// behind. A panic in a handler would take the whole test binary down (gRPC
// does not recover handler panics), so reaching the end is the "no panic"
// check.

// goroutineSlack is how many goroutines more than before a call may still
// be running once it settled. Server-side, a unary call's handler goroutine
// ends with the call; what may legitimately linger for a moment is
// grpc-go's transport bookkeeping for the stream (its flow-control and
// keepalive goroutines are per connection, and the connection is shared
// and long-lived) and a context.AfterFunc-style timer callback that fires
// after the call returned. Two covers those without hiding a per-call
// leak: the whole table is checked against the same slack at the end, so
// one goroutine leaked per call would add up to well over it.
const goroutineSlack = 2

// settleGoroutines waits up to 5 s for the goroutine count to come down to
// at most limit, and returns the count it saw last.
func settleGoroutines(limit int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := goruntime.NumGoroutine()
		if n <= limit || time.Now().After(deadline) {
			return n
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// goroutineBaseline is the goroutine count once it has stopped changing
// (the same over 3 samples 20 ms apart, within 2 s).
func goroutineBaseline() int {
	last, same := goruntime.NumGoroutine(), 0
	for deadline := time.Now().Add(2 * time.Second); same < 3 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		n := goruntime.NumGoroutine()
		if n == last {
			same++
		} else {
			last, same = n, 0
		}
	}
	return last
}

// badFixture is a server with an object in every state a malformed request
// could be about, and ids that are ambiguous as 1-character prefixes.
type badFixture struct {
	ts        *testServer
	logDir    string
	podA      string // ready, with a log directory
	pcA       *runtime.PodSandboxConfig
	podB      string // stopped
	pcB       *runtime.PodSandboxConfig
	running   string
	created   string
	exited    string
	ctrPrefix string // a prefix two containers share
	podPrefix string // a prefix two sandboxes share
	imgPrefix string // "sha256:<c>", a prefix two images share
}

func newBadFixture(ts *testServer) *badFixture {
	t := ts.t
	t.Helper()
	fx := &badFixture{ts: ts, logDir: filepath.Join(ts.dir, "pods", "a")}
	fx.pcA = podConfig("a")
	fx.pcA.LogDirectory = fx.logDir
	fx.podA = ts.criRunPodConfig(fx.pcA)
	fx.running = ts.startContainer(fx.podA, fx.pcA, "running", nil)
	fx.exited = ts.startContainer(fx.podA, fx.pcA, "exited", map[string]string{shim.AnnotationExitAfter: "1ms", shim.AnnotationExitCode: "3"})
	ts.waitState(fx.exited, runtime.ContainerState_CONTAINER_EXITED, time.Minute)
	fx.created = ts.createContainer(fx.podA, fx.pcA, "created", nil)
	fx.podB, fx.pcB = ts.runPod("b")
	ts.criStopPod(fx.podB)

	// 17 hex ids cannot all start differently.
	ids := []string{fx.running, fx.exited, fx.created}
	var ok bool
	for i := 0; ; i++ {
		if fx.ctrPrefix, ok = sharedFirstChar(ids); ok {
			break
		}
		ids = append(ids, ts.createContainer(fx.podA, fx.pcA, fmt.Sprintf("amb%d", i), nil))
	}
	pods := []string{fx.podA, fx.podB}
	for i := 0; ; i++ {
		if fx.podPrefix, ok = sharedFirstChar(pods); ok {
			break
		}
		id, _ := ts.runPod(fmt.Sprintf("amb%d", i))
		pods = append(pods, id)
	}
	var imgs []string
	for i := 0; ; i++ {
		resp, err := ts.img.PullImage(ts.ctx(time.Minute), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: fmt.Sprintf("amb%d:1", i)}})
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, strings.TrimPrefix(resp.ImageRef, "sha256:"))
		if p, ok := sharedFirstChar(imgs); ok {
			fx.imgPrefix = "sha256:" + p
			break
		}
	}
	return fx
}

// badSnapshot is everything a malformed request must not change.
type badSnapshot struct {
	pods       []*runtime.PodSandbox
	podStatus  map[string]*runtime.PodSandboxStatus
	containers []*runtime.Container
	ctrStatus  map[string]*runtime.ContainerStatus
	images     []*runtime.Image
	faults     []faults.Info
	podCIDR    string
}

func (fx *badFixture) snapshot(t *testing.T) badSnapshot {
	t.Helper()
	ts := fx.ts
	ctx := ts.ctx(time.Minute)
	s := badSnapshot{podStatus: map[string]*runtime.PodSandboxStatus{}, ctrStatus: map[string]*runtime.ContainerStatus{}}
	pods, err := ts.rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	s.pods = pods.Items
	slices.SortFunc(s.pods, func(a, b *runtime.PodSandbox) int { return strings.Compare(a.Id, b.Id) })
	for _, p := range s.pods {
		st, err := ts.rt.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: p.Id})
		if err != nil {
			t.Fatal(err)
		}
		s.podStatus[p.Id] = st.Status
	}
	ctrs, err := ts.rt.ListContainers(ctx, &runtime.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	s.containers = ctrs.Containers
	slices.SortFunc(s.containers, func(a, b *runtime.Container) int { return strings.Compare(a.Id, b.Id) })
	for _, c := range s.containers {
		st, err := ts.rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: c.Id})
		if err != nil {
			t.Fatal(err)
		}
		s.ctrStatus[c.Id] = st.Status
	}
	imgs, err := ts.img.ListImages(ctx, &runtime.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	s.images = imgs.Images
	s.faults = ts.srv.cri.faults.List()
	ts.srv.cri.mu.Lock()
	s.podCIDR = ts.srv.cri.podCIDR
	ts.srv.cri.mu.Unlock()
	return s
}

// diff describes how b differs from a, or "".
func (a badSnapshot) diff(b badSnapshot) string {
	var out []string
	eq := func(what string, x, y []proto.Message) {
		if len(x) != len(y) {
			out = append(out, fmt.Sprintf("%s: %d, then %d", what, len(x), len(y)))
			return
		}
		for i := range x {
			if !proto.Equal(x[i], y[i]) {
				out = append(out, fmt.Sprintf("%s: %v\n  became %v", what, x[i], y[i]))
			}
		}
	}
	eq("pods", msgs(a.pods), msgs(b.pods))
	eq("containers", msgs(a.containers), msgs(b.containers))
	eq("images", msgs(a.images), msgs(b.images))
	for id, st := range a.podStatus {
		if !proto.Equal(st, b.podStatus[id]) {
			out = append(out, fmt.Sprintf("pod %s status: %v\n  became %v", id, st, b.podStatus[id]))
		}
	}
	for id, st := range a.ctrStatus {
		if !proto.Equal(st, b.ctrStatus[id]) {
			out = append(out, fmt.Sprintf("container %s status: %v\n  became %v", id, st, b.ctrStatus[id]))
		}
	}
	if !slices.Equal(a.faults, b.faults) {
		out = append(out, fmt.Sprintf("armed faults: %v, then %v", a.faults, b.faults))
	}
	if a.podCIDR != b.podCIDR {
		out = append(out, fmt.Sprintf("pod CIDR: %q, then %q", a.podCIDR, b.podCIDR))
	}
	return strings.Join(out, "\n")
}

func msgs[M proto.Message](in []M) []proto.Message {
	out := make([]proto.Message, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}

// badCase is one malformed (or merely odd) request and the code it must
// get. A list method that must answer with nothing returns errNotEmpty
// when it answers with something.
type badCase struct {
	method string // the method's name in the service descriptor
	name   string
	call   func(ctx context.Context) error
	want   codes.Code
}

func errNotEmpty(what string, n int) error {
	if n == 0 {
		return nil
	}
	return status.Errorf(codes.Internal, "%s: %d items, want none", what, n)
}

// unimplementedMethods are the CRI methods the fake does not serve (no
// checkpointing, no metrics or list streaming): each answers
// Unimplemented, whatever it is sent.
var unimplementedMethods = []string{
	"CheckpointContainer", "ListMetricDescriptors", "ListPodSandboxMetrics",
	"StreamPodSandboxes", "StreamContainers", "StreamContainerStats", "StreamPodSandboxStats",
	"StreamPodSandboxMetrics", "StreamImages", "UpdatePodSandboxResources",
}

func (fx *badFixture) cases() []badCase {
	ts := fx.ts
	rt, img := ts.rt, ts.img
	giant := strings.Repeat("x", maxLabelBytesTotal+1)
	half := strings.Repeat("y", maxLabelBytesTotal/2+1)
	longKey := strings.Repeat("k", maxKeyLength+1)
	missing := criMissingID

	// Pod configs: each a fresh valid one with one thing wrong, under a
	// name of its own so a leaked name reservation shows at the end.
	pod := func(name string, f func(*runtime.PodSandboxConfig)) *runtime.PodSandboxConfig {
		pc := podConfig(name)
		if f != nil {
			f(pc)
		}
		return pc
	}
	runp := func(pc *runtime.PodSandboxConfig, handler string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: pc, RuntimeHandler: handler})
			return err
		}
	}
	ctr := func(f func(*runtime.ContainerConfig)) *runtime.ContainerConfig {
		cfg := containerConfig("bad", nil)
		if f != nil {
			f(cfg)
		}
		return cfg
	}
	create := func(podID string, cfg *runtime.ContainerConfig) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: fx.pcA})
			return err
		}
	}
	res := func(f func(*runtime.LinuxContainerResources)) *runtime.LinuxContainerResources {
		r := &runtime.LinuxContainerResources{}
		f(r)
		return r
	}
	update := func(id string, r *runtime.LinuxContainerResources) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := rt.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: id, Linux: r})
			return err
		}
	}
	// The methods that take one container id, with what each answers to an
	// id that is empty, unknown, an ambiguous prefix, or not an id at all.
	type idMethod struct {
		name                string
		call                func(ctx context.Context, id string) error
		missing, notAnID    codes.Code
		created, exited     codes.Code // on a container in that state
		checkCreated, check bool
	}
	containerMethods := []idMethod{
		{name: "StartContainer", missing: codes.NotFound, notAnID: codes.NotFound, check: true, exited: codes.Unknown,
			call: func(ctx context.Context, id string) error {
				_, err := rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id})
				return err
			}},
		{name: "StopContainer", missing: codes.OK, notAnID: codes.OK,
			call: func(ctx context.Context, id string) error {
				_, err := rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: 1})
				return err
			}},
		{name: "RemoveContainer", missing: codes.OK, notAnID: codes.OK,
			call: func(ctx context.Context, id string) error {
				_, err := rt.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id})
				return err
			}},
		{name: "ContainerStatus", missing: codes.NotFound, notAnID: codes.NotFound,
			call: func(ctx context.Context, id string) error {
				_, err := rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id, Verbose: true})
				return err
			}},
		{name: "UpdateContainerResources", missing: codes.NotFound, notAnID: codes.NotFound,
			call: func(ctx context.Context, id string) error {
				_, err := rt.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: id})
				return err
			}},
		{name: "ReopenContainerLog", missing: codes.NotFound, notAnID: codes.NotFound,
			checkCreated: true, created: codes.Unknown, check: true, exited: codes.Unknown,
			call: func(ctx context.Context, id string) error {
				_, err := rt.ReopenContainerLog(ctx, &runtime.ReopenContainerLogRequest{ContainerId: id})
				return err
			}},
		{name: "Exec", missing: codes.NotFound, notAnID: codes.NotFound,
			checkCreated: true, created: codes.Unknown, check: true, exited: codes.Unknown,
			call: func(ctx context.Context, id string) error {
				_, err := rt.Exec(ctx, &runtime.ExecRequest{ContainerId: id, Cmd: []string{"true"}, Stdout: true})
				return err
			}},
		{name: "Attach", missing: codes.NotFound, notAnID: codes.NotFound,
			checkCreated: true, created: codes.Unknown, check: true, exited: codes.Unknown,
			call: func(ctx context.Context, id string) error {
				_, err := rt.Attach(ctx, &runtime.AttachRequest{ContainerId: id, Stdout: true})
				return err
			}},
		{name: "ExecSync", missing: codes.NotFound, notAnID: codes.NotFound,
			checkCreated: true, created: codes.Unknown, check: true, exited: codes.Unknown,
			call: func(ctx context.Context, id string) error {
				_, err := rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"true"}, Timeout: 1})
				return err
			}},
		{name: "ContainerStats", missing: codes.NotFound, notAnID: codes.NotFound,
			call: func(ctx context.Context, id string) error {
				_, err := rt.ContainerStats(ctx, &runtime.ContainerStatsRequest{ContainerId: id})
				return err
			}},
	}
	podMethods := []idMethod{
		{name: "StopPodSandbox", missing: codes.OK, notAnID: codes.OK,
			call: func(ctx context.Context, id string) error {
				_, err := rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id})
				return err
			}},
		{name: "RemovePodSandbox", missing: codes.OK, notAnID: codes.OK,
			call: func(ctx context.Context, id string) error {
				_, err := rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id})
				return err
			}},
		{name: "PodSandboxStatus", missing: codes.NotFound, notAnID: codes.NotFound,
			call: func(ctx context.Context, id string) error {
				_, err := rt.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
				return err
			}},
		{name: "PodSandboxStats", missing: codes.NotFound, notAnID: codes.NotFound,
			call: func(ctx context.Context, id string) error {
				_, err := rt.PodSandboxStats(ctx, &runtime.PodSandboxStatsRequest{PodSandboxId: id})
				return err
			}},
		{name: "PortForward", missing: codes.NotFound, notAnID: codes.NotFound,
			call: func(ctx context.Context, id string) error {
				_, err := rt.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: id, Port: []int32{80}})
				return err
			}},
		{name: "CreateContainer", missing: codes.NotFound, notAnID: codes.NotFound,
			call: func(ctx context.Context, id string) error { return create(id, ctr(nil))(ctx) }},
	}

	var cs []badCase
	add := func(method, name string, want codes.Code, call func(ctx context.Context) error) {
		cs = append(cs, badCase{method: method, name: name, call: call, want: want})
	}
	idCases := func(ms []idMethod, prefix string) {
		for _, m := range ms {
			bind := func(id string) func(ctx context.Context) error {
				return func(ctx context.Context) error { return m.call(ctx, id) }
			}
			add(m.name, "empty id", codes.InvalidArgument, bind(""))
			add(m.name, "unknown id", m.missing, bind(missing))
			add(m.name, "ambiguous 1-char prefix", codes.InvalidArgument, bind(prefix))
			add(m.name, "path as id", m.notAnID, bind("../../etc/passwd"))
			add(m.name, "1 MiB id", m.notAnID, bind(strings.Repeat("f", 1<<20)))
			if m.checkCreated {
				add(m.name, "created container", m.created, bind(fx.created))
			}
			if m.check {
				add(m.name, "exited container", m.exited, bind(fx.exited))
			}
		}
	}
	idCases(containerMethods, fx.ctrPrefix)
	idCases(podMethods, fx.podPrefix)

	// RunPodSandbox
	for _, c := range []struct {
		name    string
		pc      *runtime.PodSandboxConfig
		handler string
	}{
		{"nil config", nil, ""},
		{"nil metadata", pod("r-nilmd", func(pc *runtime.PodSandboxConfig) { pc.Metadata = nil }), ""},
		{"empty name", pod("r-x", func(pc *runtime.PodSandboxConfig) { pc.Metadata.Name = "" }), ""},
		{"empty namespace", pod("r-nons", func(pc *runtime.PodSandboxConfig) { pc.Metadata.Namespace = "" }), ""},
		{"empty uid", pod("r-nouid", func(pc *runtime.PodSandboxConfig) { pc.Metadata.Uid = "" }), ""},
		{"name with a slash", pod("r/slash", nil), ""},
		{"name ..", pod("..", nil), ""},
		{"namespace with a backslash", pod("r-bs", func(pc *runtime.PodSandboxConfig) { pc.Metadata.Namespace = `a\b` }), ""},
		{"uid with NUL", pod("r-nul", func(pc *runtime.PodSandboxConfig) { pc.Metadata.Uid = "a\x00b" }), ""},
		{"name of 300 bytes", pod(strings.Repeat("n", 300), nil), ""},
		{"empty label key", pod("r-lk", func(pc *runtime.PodSandboxConfig) { pc.Labels[""] = "v" }), ""},
		{"label key too long", pod("r-lkl", func(pc *runtime.PodSandboxConfig) { pc.Labels[longKey] = "v" }), ""},
		{"giant label", pod("r-gl", func(pc *runtime.PodSandboxConfig) { pc.Labels["big"] = giant }), ""},
		{"giant annotation", pod("r-ga", func(pc *runtime.PodSandboxConfig) { pc.Annotations = map[string]string{"big": giant} }), ""},
		{"labels and annotations too big together", pod("r-gla", func(pc *runtime.PodSandboxConfig) {
			pc.Labels["big"] = half
			pc.Annotations = map[string]string{"big": half}
		}), ""},
		{"bad fault annotation", pod("r-fa", func(pc *runtime.PodSandboxConfig) {
			pc.Annotations = map[string]string{annotationFaultPrefix + "cni.setup": "delay(forever)"}
		}), ""},
		{"fault annotation at no point", pod("r-fp", func(pc *runtime.PodSandboxConfig) {
			pc.Annotations = map[string]string{annotationFaultPrefix + "no.such.point": "delay(1s)"}
		}), ""},
		{"unknown runtime handler", pod("r-rh", nil), "no-such-handler"},
		{"relative log directory", pod("r-rel", func(pc *runtime.PodSandboxConfig) { pc.LogDirectory = "relative/logs" }), ""},
	} {
		add("RunPodSandbox", c.name, codes.InvalidArgument, runp(c.pc, c.handler))
	}

	// CreateContainer
	for _, c := range []struct {
		name string
		pod  string
		cfg  *runtime.ContainerConfig
		want codes.Code
	}{
		{"nil config", fx.podA, nil, codes.InvalidArgument},
		{"nil metadata", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.Metadata = nil }), codes.InvalidArgument},
		{"empty name", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.Metadata.Name = "" }), codes.InvalidArgument},
		{"name with a slash", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.Metadata.Name = "a/b" }), codes.InvalidArgument},
		{"name ..", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.Metadata.Name = ".." }), codes.InvalidArgument},
		{"nil image", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.Image = nil }), codes.InvalidArgument},
		{"empty image", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.Image.Image = "" }), codes.InvalidArgument},
		{"image not pulled", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.Image.Image = "nginx:1.25" }), codes.NotFound},
		{"image by ambiguous id prefix", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.Image.Image = fx.imgPrefix }), codes.InvalidArgument},
		{"giant label", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.Labels["big"] = giant }), codes.InvalidArgument},
		{"giant annotation", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.Annotations = map[string]string{"big": giant} }), codes.InvalidArgument},
		{"label key too long", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.Labels[longKey] = "v" }), codes.InvalidArgument},
		{"bad behaviour annotation", fx.podA, ctr(func(c *runtime.ContainerConfig) {
			c.Annotations = map[string]string{shim.AnnotationExitAfter: "-5s"}
		}), codes.InvalidArgument},
		{"bad fault annotation", fx.podA, ctr(func(c *runtime.ContainerConfig) {
			c.Annotations = map[string]string{annotationFaultPrefix + "shim.unmount": "3*"}
		}), codes.InvalidArgument},
		{"log path with ..", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.LogPath = "../escape.log" }), codes.InvalidArgument},
		{"log path climbing out", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.LogPath = "c/../../../escape.log" }), codes.InvalidArgument},
		{"absolute log path", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.LogPath = filepath.Join(ts.dir, "escape.log") }), codes.InvalidArgument},
		{"log path .", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.LogPath = "." }), codes.InvalidArgument},
		{"negative cpu shares", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.Linux.Resources.CpuShares = -1 }), codes.InvalidArgument},
		{"negative memory limit", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.Linux.Resources.MemoryLimitInBytes = -1 }), codes.InvalidArgument},
		{"cpu quota below -1", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.Linux.Resources.CpuQuota = -2 }), codes.InvalidArgument},
		{"oom score adj out of range", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.Linux.Resources.OomScoreAdj = 1001 }), codes.InvalidArgument},
		{"cpuset not a list", fx.podA, ctr(func(c *runtime.ContainerConfig) { c.Linux.Resources.CpusetCpus = "all" }), codes.InvalidArgument},
		{"stopped pod", fx.podB, ctr(nil), codes.NotFound},
		{"name in use", fx.podA, containerConfig("running", nil), codes.AlreadyExists},
	} {
		add("CreateContainer", c.name, c.want, create(c.pod, c.cfg))
	}

	// Containers: negative timeouts and invalid resources.
	add("StopContainer", "negative timeout", codes.InvalidArgument, func(ctx context.Context) error {
		_, err := rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: fx.running, Timeout: -1})
		return err
	})
	add("StopContainer", "most negative timeout", codes.InvalidArgument, func(ctx context.Context) error {
		_, err := rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: fx.running, Timeout: math.MinInt64})
		return err
	})
	add("ExecSync", "negative timeout", codes.InvalidArgument, func(ctx context.Context) error {
		_, err := rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: fx.running, Cmd: []string{"true"}, Timeout: -1})
		return err
	})
	add("ExecSync", "no command", codes.InvalidArgument, func(ctx context.Context) error {
		_, err := rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: fx.running})
		return err
	})
	for _, c := range []struct {
		name string
		r    *runtime.LinuxContainerResources
	}{
		{"negative cpu period", res(func(r *runtime.LinuxContainerResources) { r.CpuPeriod = -1 })},
		{"cpu quota below -1", res(func(r *runtime.LinuxContainerResources) { r.CpuQuota = math.MinInt64 })},
		{"negative cpu shares", res(func(r *runtime.LinuxContainerResources) { r.CpuShares = -2 })},
		{"negative memory limit", res(func(r *runtime.LinuxContainerResources) { r.MemoryLimitInBytes = math.MinInt64 })},
		{"swap below -1", res(func(r *runtime.LinuxContainerResources) { r.MemorySwapLimitInBytes = -2 })},
		{"oom score adj out of range", res(func(r *runtime.LinuxContainerResources) { r.OomScoreAdj = -1001 })},
		{"cpuset backwards range", res(func(r *runtime.LinuxContainerResources) { r.CpusetCpus = "3-1" })},
		{"cpuset mems garbage", res(func(r *runtime.LinuxContainerResources) { r.CpusetMems = "0,,1" })},
		{"cpuset beyond uint16", res(func(r *runtime.LinuxContainerResources) { r.CpusetCpus = "70000" })},
	} {
		add("UpdateContainerResources", c.name+" (running)", codes.InvalidArgument, update(fx.running, c.r))
		add("UpdateContainerResources", c.name+" (exited)", codes.InvalidArgument, update(fx.exited, c.r))
	}

	// Lists: filters that select nothing answer nothing, as containerd's
	// (an unknown state, an id or pod that resolves to no single object,
	// a selector no object has).
	bigSelector := map[string]string{"big": giant}
	for _, c := range []struct {
		name string
		f    *runtime.ContainerFilter
	}{
		{"unknown state", &runtime.ContainerFilter{State: &runtime.ContainerStateValue{State: 99}}},
		{"negative state", &runtime.ContainerFilter{State: &runtime.ContainerStateValue{State: -1}}},
		{"unknown id", &runtime.ContainerFilter{Id: missing}},
		{"ambiguous id prefix", &runtime.ContainerFilter{Id: fx.ctrPrefix}},
		{"path as id", &runtime.ContainerFilter{Id: "../" + fx.running}},
		{"unknown pod", &runtime.ContainerFilter{PodSandboxId: missing}},
		{"ambiguous pod prefix with a container's id", &runtime.ContainerFilter{PodSandboxId: fx.podPrefix, Id: fx.running + "x"}},
		{"giant label selector", &runtime.ContainerFilter{LabelSelector: bigSelector}},
		{"empty-key label selector", &runtime.ContainerFilter{LabelSelector: map[string]string{"": ""}}},
	} {
		f := c.f
		add("ListContainers", c.name, codes.OK, func(ctx context.Context) error {
			resp, err := rt.ListContainers(ctx, &runtime.ListContainersRequest{Filter: f})
			if err != nil {
				return err
			}
			return errNotEmpty("ListContainers", len(resp.Containers))
		})
		sf := &runtime.ContainerStatsFilter{Id: f.Id, PodSandboxId: f.PodSandboxId, LabelSelector: f.LabelSelector}
		if f.State != nil {
			continue // stats filters have no state
		}
		add("ListContainerStats", c.name, codes.OK, func(ctx context.Context) error {
			resp, err := rt.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{Filter: sf})
			if err != nil {
				return err
			}
			return errNotEmpty("ListContainerStats", len(resp.Stats))
		})
	}
	for _, c := range []struct {
		name string
		f    *runtime.PodSandboxFilter
	}{
		{"unknown state", &runtime.PodSandboxFilter{State: &runtime.PodSandboxStateValue{State: 7}}},
		{"unknown id", &runtime.PodSandboxFilter{Id: missing}},
		{"ambiguous id prefix", &runtime.PodSandboxFilter{Id: fx.podPrefix}},
		{"path as id", &runtime.PodSandboxFilter{Id: "/" + fx.podA}},
		{"giant label selector", &runtime.PodSandboxFilter{LabelSelector: bigSelector}},
	} {
		f := c.f
		add("ListPodSandbox", c.name, codes.OK, func(ctx context.Context) error {
			resp, err := rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: f})
			if err != nil {
				return err
			}
			return errNotEmpty("ListPodSandbox", len(resp.Items))
		})
		if f.State != nil {
			continue
		}
		sf := &runtime.PodSandboxStatsFilter{Id: f.Id, LabelSelector: f.LabelSelector}
		add("ListPodSandboxStats", c.name, codes.OK, func(ctx context.Context) error {
			resp, err := rt.ListPodSandboxStats(ctx, &runtime.ListPodSandboxStatsRequest{Filter: sf})
			if err != nil {
				return err
			}
			return errNotEmpty("ListPodSandboxStats", len(resp.Stats))
		})
	}

	// Runtime-wide methods.
	add("Version", "unknown API version", codes.OK, func(ctx context.Context) error {
		_, err := rt.Version(ctx, &runtime.VersionRequest{Version: strings.Repeat("v9", 1000)})
		return err
	})
	add("Status", "verbose", codes.OK, func(ctx context.Context) error {
		_, err := rt.Status(ctx, &runtime.StatusRequest{Verbose: true})
		return err
	})
	add("RuntimeConfig", "empty", codes.OK, func(ctx context.Context) error {
		_, err := rt.RuntimeConfig(ctx, &runtime.RuntimeConfigRequest{})
		return err
	})
	for _, cidr := range []string{"not-a-cidr", "10.0.0.0/33", "10.0.0.300/24", "fd00::/64", "10.1.0.0/16,garbage", ","} {
		cidr := cidr
		add("UpdateRuntimeConfig", fmt.Sprintf("pod CIDR %q", cidr), codes.InvalidArgument, func(ctx context.Context) error {
			_, err := rt.UpdateRuntimeConfig(ctx, &runtime.UpdateRuntimeConfigRequest{RuntimeConfig: &runtime.RuntimeConfig{
				NetworkConfig: &runtime.NetworkConfig{PodCidr: cidr},
			}})
			return err
		})
	}

	// Images.
	pull := func(ref string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := img.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}})
			return err
		}
	}
	add("PullImage", "nil image", codes.InvalidArgument, func(ctx context.Context) error {
		_, err := img.PullImage(ctx, &runtime.PullImageRequest{})
		return err
	})
	for _, c := range []struct {
		ref  string
		want codes.Code
	}{
		{"", codes.InvalidArgument},
		{"library/BusyBox", codes.InvalidArgument},
		{"a b", codes.InvalidArgument},
		{"busybox:", codes.InvalidArgument},
		{"busybox@sha256:xyz", codes.InvalidArgument},
		{"../../etc/passwd", codes.InvalidArgument},
		{strings.Repeat("a", 300), codes.InvalidArgument},
		{"busybox:" + strings.Repeat("t", 200), codes.InvalidArgument},
		{strings.Repeat("0", 64), codes.InvalidArgument},
		{"sha256:" + strings.Repeat("0", 64), codes.NotFound},
	} {
		add("PullImage", fmt.Sprintf("reference %.40q", c.ref), c.want, pull(c.ref))
	}
	imageStatus := func(spec *runtime.ImageSpec) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			resp, err := img.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: spec, Verbose: true})
			if err != nil {
				return err
			}
			if resp.Image != nil {
				return status.Errorf(codes.Internal, "ImageStatus answered with image %s", resp.Image.Id)
			}
			return nil
		}
	}
	add("ImageStatus", "nil image", codes.InvalidArgument, imageStatus(nil))
	add("ImageStatus", "ambiguous id prefix", codes.InvalidArgument, imageStatus(&runtime.ImageSpec{Image: fx.imgPrefix}))
	add("ImageStatus", "unknown image", codes.OK, imageStatus(&runtime.ImageSpec{Image: "nginx:1.25"}))
	add("ImageStatus", "invalid reference", codes.OK, imageStatus(&runtime.ImageSpec{Image: "library/BusyBox"}))
	add("ImageStatus", "path", codes.OK, imageStatus(&runtime.ImageSpec{Image: "../../etc/passwd"}))
	removeImage := func(spec *runtime.ImageSpec) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := img.RemoveImage(ctx, &runtime.RemoveImageRequest{Image: spec})
			return err
		}
	}
	add("RemoveImage", "nil image", codes.InvalidArgument, removeImage(nil))
	add("RemoveImage", "ambiguous id prefix", codes.InvalidArgument, removeImage(&runtime.ImageSpec{Image: fx.imgPrefix}))
	add("RemoveImage", "unknown image", codes.OK, removeImage(&runtime.ImageSpec{Image: "nginx:1.25"}))
	add("RemoveImage", "path", codes.OK, removeImage(&runtime.ImageSpec{Image: "../../etc/passwd"}))
	add("ListImages", "ambiguous id prefix", codes.InvalidArgument, func(ctx context.Context) error {
		_, err := img.ListImages(ctx, &runtime.ListImagesRequest{Filter: &runtime.ImageFilter{Image: &runtime.ImageSpec{Image: fx.imgPrefix}}})
		return err
	})
	add("ListImages", "unknown image", codes.OK, func(ctx context.Context) error {
		resp, err := img.ListImages(ctx, &runtime.ListImagesRequest{Filter: &runtime.ImageFilter{Image: &runtime.ImageSpec{Image: "nginx:1.25"}}})
		if err != nil {
			return err
		}
		return errNotEmpty("ListImages", len(resp.Images))
	})
	add("ImageFsInfo", "empty", codes.OK, func(ctx context.Context) error {
		_, err := img.ImageFsInfo(ctx, &runtime.ImageFsInfoRequest{})
		return err
	})

	// Streams: a GetContainerEvents the caller gives up on ends.
	add("GetContainerEvents", "caller cancels", codes.Canceled, func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		stream, err := rt.GetContainerEvents(ctx, &runtime.GetEventsRequest{})
		if err != nil {
			cancel()
			return err
		}
		time.AfterFunc(50*time.Millisecond, cancel)
		for {
			if _, err := stream.Recv(); err != nil {
				return err
			}
		}
	})

	// Every method, sent an empty request (what a nil request marshals
	// to), through the raw connection so that methods without a typed
	// stub are reached the same way.
	empty := map[string]codes.Code{
		"Version": codes.OK, "Status": codes.OK, "RuntimeConfig": codes.OK, "UpdateRuntimeConfig": codes.OK,
		"RunPodSandbox": codes.InvalidArgument, "StopPodSandbox": codes.InvalidArgument, "RemovePodSandbox": codes.InvalidArgument,
		"PodSandboxStatus": codes.InvalidArgument, "ListPodSandbox": codes.OK,
		"CreateContainer": codes.InvalidArgument, "StartContainer": codes.InvalidArgument, "StopContainer": codes.InvalidArgument,
		"RemoveContainer": codes.InvalidArgument, "ListContainers": codes.OK, "ContainerStatus": codes.InvalidArgument,
		"UpdateContainerResources": codes.InvalidArgument, "ReopenContainerLog": codes.InvalidArgument,
		"ExecSync": codes.InvalidArgument, "Exec": codes.InvalidArgument, "Attach": codes.InvalidArgument,
		"PortForward": codes.InvalidArgument, "ContainerStats": codes.InvalidArgument, "ListContainerStats": codes.OK,
		"PodSandboxStats": codes.InvalidArgument, "ListPodSandboxStats": codes.OK,
		"PullImage": codes.InvalidArgument, "ImageStatus": codes.InvalidArgument, "ListImages": codes.OK,
		"RemoveImage": codes.InvalidArgument, "ImageFsInfo": codes.OK,
		"GetContainerEvents": codes.DeadlineExceeded, // a stream: it runs until the caller's deadline
	}
	for _, m := range unimplementedMethods {
		empty[m] = codes.Unimplemented
	}
	for _, sd := range []grpc.ServiceDesc{runtime.RuntimeService_ServiceDesc, runtime.ImageService_ServiceDesc} {
		for _, m := range sd.Methods {
			full := "/" + sd.ServiceName + "/" + m.MethodName
			want, ok := empty[m.MethodName]
			if !ok {
				want = codes.Unimplemented // unknown to this test: caught by the coverage check
			}
			add(m.MethodName, "empty request", want, func(ctx context.Context) error {
				return ts.conn.Invoke(ctx, full, &emptypb.Empty{}, &emptypb.Empty{})
			})
		}
		for _, s := range sd.Streams {
			full := "/" + sd.ServiceName + "/" + s.StreamName
			desc := &grpc.StreamDesc{StreamName: s.StreamName, ServerStreams: s.ServerStreams, ClientStreams: s.ClientStreams}
			want, ok := empty[s.StreamName]
			if !ok {
				want = codes.Unimplemented
			}
			add(s.StreamName, "empty request", want, func(ctx context.Context) error {
				ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancel()
				st, err := ts.conn.NewStream(ctx, desc, full)
				if err != nil {
					return err
				}
				if err := st.SendMsg(&emptypb.Empty{}); err != nil {
					return err
				}
				if err := st.CloseSend(); err != nil {
					return err
				}
				for {
					if err := st.RecvMsg(&emptypb.Empty{}); err != nil {
						// containerd's handler returns nil once the
						// stream's context ends, so the server may end
						// the stream cleanly just before the caller's
						// own deadline fires: the same outcome.
						if errors.Is(err, io.EOF) && ctx.Err() != nil {
							return status.FromContextError(ctx.Err()).Err()
						}
						return err
					}
				}
			})
		}
	}
	return cs
}

// TestBadInput sends every CRI method malformed requests and checks the
// code, that nothing changed and that no goroutine was left behind.
func TestBadInput(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	fx := newBadFixture(ts)
	cases := fx.cases()

	// Every method of both services has cases, and the methods the fake
	// does not serve are known.
	byMethod := map[string]int{}
	for _, c := range cases {
		byMethod[c.method]++
	}
	for _, sd := range []grpc.ServiceDesc{runtime.RuntimeService_ServiceDesc, runtime.ImageService_ServiceDesc} {
		var names []string
		for _, m := range sd.Methods {
			names = append(names, m.MethodName)
		}
		for _, s := range sd.Streams {
			names = append(names, s.StreamName)
		}
		for _, n := range names {
			if byMethod[n] < 2 && !slices.Contains(unimplementedMethods, n) {
				t.Errorf("%s.%s has no malformed-request case beyond the empty request", sd.ServiceName, n)
			}
		}
	}

	before := fx.snapshot(t)
	if len(before.containers) < 3 || len(before.pods) < 2 || len(before.images) < 2 {
		t.Fatalf("fixture: %d pods, %d containers, %d images", len(before.pods), len(before.containers), len(before.images))
	}
	baseline := goroutineBaseline()
	for _, tc := range cases {
		t.Run(tc.method+"/"+tc.name, func(t *testing.T) {
			g0 := goruntime.NumGoroutine()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := tc.call(ctx)
			cancel()
			if got := status.Code(err); got != tc.want {
				t.Errorf("code %v, want %v (err: %.300v)", got, tc.want, err)
			}
			// A refused call says why, in a message of its own.
			if tc.want != codes.OK && tc.want != codes.Unimplemented && tc.want != codes.Canceled && tc.want != codes.DeadlineExceeded {
				if msg := status.Convert(err).Message(); msg == "" || strings.HasPrefix(msg, "rpc error:") {
					t.Errorf("message %q: want a plain reason", msg)
				}
			}
			if d := before.diff(fx.snapshot(t)); d != "" {
				t.Errorf("the call changed the server:\n%s", d)
			}
			if n := settleGoroutines(g0 + goroutineSlack); n > g0+goroutineSlack {
				t.Errorf("%d goroutines after the call, %d before", n, g0)
			}
		})
	}
	if n := settleGoroutines(baseline + goroutineSlack); n > baseline+goroutineSlack {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after %d malformed calls, %d before\n%s", n, len(cases), baseline, buf[:goruntime.Stack(buf, true)])
	}
	t.Logf("%d malformed requests to %d methods; goroutines %d before, %d after", len(cases), len(byMethod), baseline, goruntime.NumGoroutine())

	// Nothing was written outside the pod's log directory, and nothing
	// in it but what the fixture's containers logged.
	err := filepath.WalkDir(ts.dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(d.Name(), "escape") {
			t.Errorf("%s exists: a log path left the pod's log directory", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("relative"); err == nil {
		t.Errorf("a relative log directory was created in the test's working directory")
	}

	// Refused sandboxes left no name behind: each name can be used now.
	for _, name := range []string{"r-rh", "r-fa", "r-rel", "r-gl"} {
		if _, err := ts.rt.RunPodSandbox(ts.ctx(time.Minute), &runtime.RunPodSandboxRequest{Config: podConfig(name)}); err != nil {
			t.Errorf("RunPodSandbox %s after it was refused: %v", name, err)
		}
	}
	if _, err := ts.rt.CreateContainer(ts.ctx(time.Minute), &runtime.CreateContainerRequest{
		PodSandboxId: fx.podA, Config: containerConfig("bad", nil), SandboxConfig: fx.pcA,
	}); err != nil {
		t.Errorf("CreateContainer bad after it was refused: %v", err)
	}
}

// TestStopContainerHugeTimeout: a timeout in seconds too large for a
// time.Duration once multiplied used to overflow to a negative timeout,
// which StopContainer reads as "SIGKILL at once". It must be the longest
// wait there is: the container gets its stop signal and exits on it.
func TestStopContainerHugeTimeout(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	podID, pc := ts.runPod("huge")
	for _, timeout := range []int64{math.MaxInt64, 9223372037, 1 << 40} {
		id := ts.startContainer(podID, pc, fmt.Sprintf("c%d", timeout%1000), map[string]string{shim.AnnotationStopGrace: "1s"})
		if _, err := ts.rt.StopContainer(ts.ctx(time.Minute), &runtime.StopContainerRequest{ContainerId: id, Timeout: timeout}); err != nil {
			t.Fatalf("StopContainer with timeout %d: %v", timeout, err)
		}
		st := ts.criStatus(id)
		if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 128+15 {
			t.Errorf("StopContainer with timeout %d: %v, exit code %d; want EXITED by SIGTERM (143), not SIGKILL (137)", timeout, st.State, st.ExitCode)
		}
	}
}
