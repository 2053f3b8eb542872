package e2e

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// snapshot is everything crictl shows about a node.
type snapshot struct {
	pods       map[string]*runtime.PodSandboxStatus
	containers map[string]*runtime.ContainerStatus
	images     map[string]*runtime.Image
}

func (d *daemon) snapshot() snapshot {
	d.t.Helper()
	s := snapshot{pods: map[string]*runtime.PodSandboxStatus{}, containers: map[string]*runtime.ContainerStatus{}, images: map[string]*runtime.Image{}}
	for _, p := range d.pods() {
		s.pods[p.Id] = d.inspectp(p.Id)
	}
	for _, c := range d.psAll() {
		s.containers[c.Id] = d.inspect(c.Id)
	}
	for _, img := range d.images() {
		s.images[img.Id] = img
	}
	return s
}

// TestKillRestartKeepsEverything kill -9s the server with pods and
// containers in every state and checks that a server started again on the
// same root and state shows exactly what the first one did, then that it
// can still drive all of it to the end.
func TestKillRestartKeepsEverything(t *testing.T) {
	t.Parallel()
	// 1 scenario second is 0.1 s of wall time.
	d := newDaemon(t, "--time-scale", "0.1")
	logDir := d.dir + "/pod-logs"
	imageRef := d.pull("busybox")

	pcA := d.podConfig("pod-a", logDir+"/a")
	podA := d.runp(pcA)
	pcB := d.podConfig("pod-b", logDir+"/b")
	podB := d.runp(pcB)

	running := d.create(podA, d.containerConfig("running", nil), pcA)
	d.startContainer(running)
	exited := d.create(podA, d.containerConfig("exited", map[string]string{
		"fakecontainerd.io/exit-after": "1s", "fakecontainerd.io/exit-code": "3",
	}), pcA)
	d.startContainer(exited)
	runningB := d.create(podB, d.containerConfig("running-b", nil), pcB)
	d.startContainer(runningB)
	created := d.create(podB, d.containerConfig("created", nil), pcB)

	d.waitState(exited, runtime.ContainerState_CONTAINER_EXITED, 10*time.Second)
	before := d.snapshot()
	want := map[string]runtime.ContainerState{
		running: runtime.ContainerState_CONTAINER_RUNNING, runningB: runtime.ContainerState_CONTAINER_RUNNING,
		exited: runtime.ContainerState_CONTAINER_EXITED, created: runtime.ContainerState_CONTAINER_CREATED,
	}
	checkStates := func(when string, s snapshot) {
		t.Helper()
		if len(s.containers) != len(want) {
			t.Errorf("%s: %d containers, want %d", when, len(s.containers), len(want))
		}
		for id, st := range want {
			if got := s.containers[id]; got.GetState() != st {
				t.Errorf("%s: container %s is %v, want %v", when, got.GetMetadata().GetName(), got.GetState(), st)
			}
		}
		if st := s.containers[exited]; st.GetExitCode() != 3 || st.GetReason() != "Error" || st.GetFinishedAt() == 0 {
			t.Errorf("%s: exited container: exit code %d reason %q finished %d; want 3, Error, a time", when, st.GetExitCode(), st.GetReason(), st.GetFinishedAt())
		}
		if len(s.pods) != 2 || s.pods[podA].GetState() != runtime.PodSandboxState_SANDBOX_READY || s.pods[podB].GetState() != runtime.PodSandboxState_SANDBOX_READY {
			t.Errorf("%s: pods %v, want %s and %s READY", when, s.pods, podA, podB)
		}
		if _, ok := s.images[imageRef]; !ok || len(s.images) != 2 {
			t.Errorf("%s: images %v, want busybox (%s) and the sandbox image", when, s.images, imageRef)
		}
	}
	checkStates("before the kill", before)
	if t.Failed() {
		t.FailNow()
	}

	d.kill()
	d.start()

	after := d.snapshot()
	checkStates("after kill -9 and restart", after)
	// Not just the states: every field crictl inspect, inspectp and
	// images show is what it was.
	for id, st := range before.containers {
		if !proto.Equal(st, after.containers[id]) {
			t.Errorf("container %s changed across the restart:\nbefore %v\nafter  %v", st.GetMetadata().GetName(), st, after.containers[id])
		}
	}
	for id, st := range before.pods {
		// Known difference (see the report): RunPodSandbox stamps the pod
		// with the clock after its task started, a restart with the
		// metadata record's creation time, a little earlier; containerd
		// uses the record's time both ways. Allow that drift, no more.
		b, a := proto.Clone(st).(*runtime.PodSandboxStatus), proto.Clone(after.pods[id]).(*runtime.PodSandboxStatus)
		if drift := time.Duration(b.GetCreatedAt() - a.GetCreatedAt()); drift < 0 || drift > 30*time.Second {
			t.Errorf("pod %s CreatedAt moved by %v across the restart (%d -> %d)", st.GetMetadata().GetName(), -drift, b.GetCreatedAt(), a.GetCreatedAt())
		} else if drift != 0 {
			t.Logf("pod %s CreatedAt moved back %v (scenario time) across the restart", st.GetMetadata().GetName(), drift)
		}
		b.CreatedAt, a.CreatedAt = 0, 0
		if !proto.Equal(b, a) {
			t.Errorf("pod %s changed across the restart:\nbefore %v\nafter  %v", st.GetMetadata().GetName(), st, after.pods[id])
		}
	}
	for id, img := range before.images {
		if !proto.Equal(img, after.images[id]) {
			t.Errorf("image %s changed across the restart:\nbefore %v\nafter  %v", id, img, after.images[id])
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The names are still taken, as in containerd: a second runp of the
	// same pod config is refused.
	if _, err := d.rt.RunPodSandbox(d.ctx(), pcA, ""); err == nil {
		t.Errorf("runp of pod-a's config again after the restart succeeded; its name should still be reserved")
	}
	// A new pod does not get a recovered pod's IP.
	pcC := d.podConfig("pod-c", logDir+"/c")
	podC := d.runp(pcC)
	ipC := d.inspectp(podC).GetNetwork().GetIp()
	if ipC == "" || ipC == after.pods[podA].GetNetwork().GetIp() || ipC == after.pods[podB].GetNetwork().GetIp() {
		t.Errorf("new pod got IP %q; recovered pods have %q and %q", ipC, after.pods[podA].GetNetwork().GetIp(), after.pods[podB].GetNetwork().GetIp())
	}

	// The recovered server can still drive everything: start the created
	// container, exec in and stop the running ones, remove it all.
	d.startContainer(created)
	d.waitState(created, runtime.ContainerState_CONTAINER_RUNNING, 5*time.Second)
	for _, id := range []string{running, runningB, created} {
		if _, _, err := d.rt.ExecSync(d.ctx(), id, []string{"true"}, 0); err != nil {
			t.Errorf("exec --sync in %s after the restart: %v", after.containers[id].GetMetadata().GetName(), err)
		}
		if err := d.rt.StopContainer(d.ctx(), id, 0); err != nil {
			t.Fatalf("crictl stop %s after the restart: %v", id, err)
		}
		if st := d.inspect(id); st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 {
			t.Errorf("after crictl stop: %s is %v with exit code %d, want EXITED 137 (SIGKILL at timeout 0)", st.GetMetadata().GetName(), st.State, st.ExitCode)
		}
	}
	for _, id := range []string{running, runningB, created, exited} {
		if err := d.rt.RemoveContainer(d.ctx(), id); err != nil {
			t.Errorf("crictl rm %s: %v", id, err)
		}
	}
	for _, id := range []string{podA, podB, podC} {
		if err := d.rt.StopPodSandbox(d.ctx(), id); err != nil {
			t.Errorf("crictl stopp %s: %v", id, err)
		}
		if err := d.rt.RemovePodSandbox(d.ctx(), id); err != nil {
			t.Errorf("crictl rmp %s: %v", id, err)
		}
	}
	if cs, ps := d.psAll(), d.pods(); len(cs) != 0 || len(ps) != 0 {
		t.Errorf("after removing everything: containers %v, pods %v", cs, ps)
	}

	// And that, too, survives a restart: nothing comes back.
	d.kill()
	d.start()
	if cs, ps := d.psAll(), d.pods(); len(cs) != 0 || len(ps) != 0 {
		t.Errorf("removed containers %v or pods %v came back after a restart", cs, ps)
	}
	var ids []string
	for _, img := range d.images() {
		ids = append(ids, img.Id)
	}
	if !slices.Contains(ids, imageRef) {
		t.Errorf("images after the last restart: %v, want busybox %s still there", ids, imageRef)
	}
}
