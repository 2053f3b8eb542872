package server

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/shim"
)

// criSnapshot is what a client sees of the server: every sandbox's and
// container's status and every image.
type criSnapshot struct {
	pods       map[string]*runtime.PodSandboxStatus
	containers map[string]*runtime.ContainerStatus
	images     []*runtime.Image
}

func (ts *testServer) criSnapshot() criSnapshot {
	t := ts.t
	t.Helper()
	snap := criSnapshot{pods: map[string]*runtime.PodSandboxStatus{}, containers: map[string]*runtime.ContainerStatus{}}
	pods, err := ts.rt.ListPodSandbox(ts.ctx(time.Minute), &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		snap.pods[p.Id] = ts.criPodStatus(p.Id)
	}
	cs, err := ts.rt.ListContainers(ts.ctx(time.Minute), &runtime.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs.Containers {
		snap.containers[c.Id] = ts.criStatus(c.Id)
	}
	imgs, err := ts.img.ListImages(ts.ctx(time.Minute), &runtime.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	snap.images = imgs.Images
	return snap
}

// TestCRIRestartRecovers restarts the server on the same root and state and
// checks that clients see the same pods, containers and images, and that
// the recovered objects still work.
func TestCRIRestartRecovers(t *testing.T) {
	ts := newTestServer(t, criScale, nil)
	if _, err := ts.img.PullImage(ts.ctx(time.Minute), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "alpine:3.19"}}); err != nil {
		t.Fatal(err)
	}
	podID, pc := ts.runPod("keep")
	hostID := ts.criRunPodConfig(criNSPodConfig("host", &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE}))
	downID, downPC := ts.runPod("down")
	inside := ts.startContainer(downID, downPC, "inside", nil)
	ts.criStopPod(downID)

	running := ts.startContainer(podID, pc, "running", nil)
	stubborn := ts.startContainer(podID, pc, "stubborn", map[string]string{shim.AnnotationStopGrace: "never"})
	updated := ts.startContainer(podID, pc, "updated", nil)
	if _, err := ts.rt.UpdateContainerResources(ts.ctx(time.Minute), &runtime.UpdateContainerResourcesRequest{
		ContainerId: updated, Linux: &runtime.LinuxContainerResources{CpuShares: 700, MemoryLimitInBytes: 300 << 20},
	}); err != nil {
		t.Fatal(err)
	}
	exited := ts.startContainer(podID, pc, "exited", map[string]string{shim.AnnotationExitAfter: "1ms", shim.AnnotationExitCode: "7"})
	ts.waitState(exited, runtime.ContainerState_CONTAINER_EXITED, 5*time.Minute)
	stopped := ts.startContainer(podID, pc, "stopped", nil)
	ts.criStop(stopped, 10)
	created := ts.createContainer(podID, pc, "created", nil)
	// Exits by itself after the restart, on its original schedule.
	later := ts.createContainer(podID, pc, "later", map[string]string{shim.AnnotationExitAfter: "60s", shim.AnnotationExitCode: "9"})
	laterStart := ts.clock.Now()
	if _, err := ts.rt.StartContainer(ts.ctx(time.Minute), &runtime.StartContainerRequest{ContainerId: later}); err != nil {
		t.Fatal(err)
	}

	before := ts.criSnapshot()
	if len(before.pods) != 3 || len(before.containers) != 8 || len(before.images) != 3 {
		t.Fatalf("before restart: %d pods %d containers %d images, want 3 8 3", len(before.pods), len(before.containers), len(before.images))
	}
	ts.restart()
	restarted := ts.clock.Since(laterStart)
	after := ts.criSnapshot()

	if got, want := slices.Sorted(maps.Keys(after.pods)), slices.Sorted(maps.Keys(before.pods)); !slices.Equal(got, want) {
		t.Errorf("sandboxes after restart %v, want %v", got, want)
	}
	for id, want := range before.pods {
		if got := after.pods[id]; !proto.Equal(got, want) {
			t.Errorf("sandbox %s after restart:\n got %v\nwant %v", want.Metadata.GetName(), got, want)
		}
	}
	if got, want := slices.Sorted(maps.Keys(after.containers)), slices.Sorted(maps.Keys(before.containers)); !slices.Equal(got, want) {
		t.Errorf("containers after restart %v, want %v", got, want)
	}
	for id, want := range before.containers {
		got := after.containers[id]
		if id == later && got.GetState() == runtime.ContainerState_CONTAINER_EXITED {
			continue // it may have reached its exit already
		}
		if !proto.Equal(got, want) {
			t.Errorf("container %s after restart:\n got %v\nwant %v", want.Metadata.GetName(), got, want)
		}
	}
	if len(after.images) != len(before.images) {
		t.Errorf("%d images after restart, want %d", len(after.images), len(before.images))
	}
	for i := range min(len(after.images), len(before.images)) {
		if !proto.Equal(after.images[i], before.images[i]) {
			t.Errorf("image after restart:\n got %v\nwant %v", after.images[i], before.images[i])
		}
	}
	// Spot checks of what the comparison covers, so a snapshot that lost
	// everything on both sides cannot pass.
	if st := after.containers[exited]; st.GetState() != runtime.ContainerState_CONTAINER_EXITED || st.GetExitCode() != 7 || st.GetReason() != "Error" {
		t.Errorf("exited container after restart: %v", st)
	}
	if st := after.containers[stopped]; st.GetState() != runtime.ContainerState_CONTAINER_EXITED || st.GetExitCode() != 143 {
		t.Errorf("stopped container after restart: %v", st)
	}
	if st := after.containers[created]; st.GetState() != runtime.ContainerState_CONTAINER_CREATED {
		t.Errorf("created container after restart: %v", st)
	}
	if st := after.containers[updated]; st.GetState() != runtime.ContainerState_CONTAINER_RUNNING || st.GetResources().GetLinux().GetCpuShares() != 700 {
		t.Errorf("updated container after restart: %v", st)
	}
	if st := after.containers[inside]; st.GetState() != runtime.ContainerState_CONTAINER_EXITED || st.GetExitCode() != 137 {
		t.Errorf("container of the stopped pod after restart: %v", st)
	}
	if st := after.pods[podID]; st.GetState() != runtime.PodSandboxState_SANDBOX_READY || st.GetNetwork().GetIp() == "" {
		t.Errorf("running pod after restart: %v", st)
	}
	if st := after.pods[downID]; st.GetState() != runtime.PodSandboxState_SANDBOX_NOTREADY || st.GetNetwork().GetIp() != "" {
		t.Errorf("stopped pod after restart: %v", st)
	}
	if st := after.pods[hostID]; st.GetState() != runtime.PodSandboxState_SANDBOX_READY || st.GetNetwork().GetIp() != "" {
		t.Errorf("host-network pod after restart: %v", st)
	}
	if img, err := ts.img.ImageStatus(ts.ctx(time.Minute), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: "alpine:3.19"}}); err != nil ||
		img.Image == nil || !slices.Contains(img.Image.RepoTags, "docker.io/library/alpine:3.19") {
		t.Errorf("pulled image after restart: %v %v", img.GetImage(), err)
	}

	// The running containers still run, and are still watched: a stop
	// returns once the exit is recorded.
	if _, err := ts.rt.ExecSync(ts.ctx(time.Minute), &runtime.ExecSyncRequest{ContainerId: running, Cmd: []string{"true"}}); err != nil {
		t.Errorf("ExecSync in a recovered running container: %v", err)
	}
	stats, err := ts.rt.ContainerStats(ts.ctx(time.Minute), &runtime.ContainerStatsRequest{ContainerId: running})
	if err != nil || stats.GetStats().GetCpu().GetUsageNanoCores().GetValue() == 0 {
		t.Errorf("stats of a recovered running container: %v %v, want CPU use", stats.GetStats().GetCpu(), err)
	}
	for _, c := range []struct {
		id       string
		timeout  int64
		code     int32
		min, max time.Duration
	}{
		{running, 60, 143, 0, 30 * time.Second},
		// Its annotations still script it: SIGTERM is ignored.
		{stubborn, 10, 137, 10 * time.Second, 40 * time.Second},
	} {
		start := ts.clock.Now()
		ts.criStop(c.id, c.timeout)
		if took := ts.clock.Since(start); took < c.min || took > c.max {
			t.Errorf("stop after restart took %v, want %v..%v", took, c.min, c.max)
		}
		if st := ts.criStatus(c.id); st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != c.code {
			t.Errorf("after stop: %v exit %d, want EXITED %d", st.State, st.ExitCode, c.code)
		}
	}
	// Its scripted exit comes 60s after its start, or at once on recovery
	// if the restart took longer; not 60s after the restart.
	ts.waitState(later, runtime.ContainerState_CONTAINER_EXITED, 5*time.Minute)
	st := ts.criStatus(later)
	ran := time.Unix(0, st.FinishedAt).Sub(laterStart)
	if st.ExitCode != 9 || ran < 60*time.Second || ran > max(60*time.Second, restarted)+30*time.Second {
		t.Errorf("self-exiting container after restart: exit %d %v after its start (restart done at %v), want 9 after 60s", st.ExitCode, ran, restarted)
	}
	// The created container can start.
	if _, err := ts.rt.StartContainer(ts.ctx(time.Minute), &runtime.StartContainerRequest{ContainerId: created}); err != nil {
		t.Errorf("start a recovered created container: %v", err)
	} else if got := ts.containerState(created); got != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("recovered created container after start: %v", got)
	}

	// Names and IPs are still reserved.
	_, err = ts.rt.CreateContainer(ts.ctx(time.Minute), &runtime.CreateContainerRequest{PodSandboxId: podID, Config: containerConfig("running", nil), SandboxConfig: pc})
	criWantCode(t, "CreateContainer with a recovered container's name", err, codes.AlreadyExists)
	_, err = ts.rt.RunPodSandbox(ts.ctx(time.Minute), &runtime.RunPodSandboxRequest{Config: podConfig("keep")})
	criWantCode(t, "RunPodSandbox with a recovered sandbox's name", err, codes.AlreadyExists)
	fresh, _ := ts.runPod("fresh")
	if ip := ts.criPodStatus(fresh).GetNetwork().GetIp(); ip == "" || ip == after.pods[podID].GetNetwork().GetIp() {
		t.Errorf("new pod IP %q; the recovered pod has %q", ip, after.pods[podID].GetNetwork().GetIp())
	}

	// The recovered sandboxes can be stopped and removed.
	ts.criStopPod(podID)
	if st := ts.criPodStatus(podID); st.State != runtime.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("recovered pod after stop: %v", st.State)
	}
	if got := ts.criStatus(created); got.State != runtime.ContainerState_CONTAINER_EXITED || got.ExitCode != 137 {
		t.Errorf("container started after restart, after its pod stopped: %v exit %d, want EXITED 137", got.State, got.ExitCode)
	}
	if _, err := ts.rt.RemovePodSandbox(ts.ctx(time.Minute), &runtime.RemovePodSandboxRequest{PodSandboxId: downID}); err != nil {
		t.Errorf("remove the recovered stopped pod: %v", err)
	}
	_, err = ts.rt.ContainerStatus(ts.ctx(time.Minute), &runtime.ContainerStatusRequest{ContainerId: inside})
	criWantCode(t, "ContainerStatus of a removed recovered pod's container", err, codes.NotFound)

	// A second restart sees the changes made after the first.
	ts.restart()
	final := ts.criSnapshot()
	if _, ok := final.pods[downID]; ok {
		t.Error("removed pod is back after a second restart")
	}
	if st := final.containers[running]; st.GetState() != runtime.ContainerState_CONTAINER_EXITED || st.GetExitCode() != 143 {
		t.Errorf("container stopped between restarts: %v", st)
	}
	if st := final.pods[fresh]; st.GetState() != runtime.PodSandboxState_SANDBOX_READY || !strings.HasPrefix(st.GetNetwork().GetIp(), "10.88.") {
		t.Errorf("pod run between restarts: %v", st)
	}
}
