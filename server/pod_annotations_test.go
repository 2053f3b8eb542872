package server

import (
	"maps"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/shim"
	imagestore "github.com/fakecontainerd/fakecontainerd/store/image"
)

// kubelet copies a pod's annotations to the sandbox config only, so a pod
// manifest scripts its containers through the sandbox's fakecontainerd.io/
// annotations: pod-wide keys, container-scoped keys ("<key>.<container>")
// that win over them, and the container config's own keys over both.
func TestPodBehaviourAnnotations(t *testing.T) {
	pod := map[string]string{
		shim.AnnotationExitAfter:             "30s",
		shim.AnnotationExitAfter + ".job":    "5s",
		shim.AnnotationExitCode + ".job":     "3",
		shim.AnnotationDirtyBytes + ".other": "1GiB",
		"fakecontainerd.io/stop-grace":       "never",
		"io.kubernetes.pod.uid":              "not copied",
		"example.com/exit-after.job":         "not ours",
		"fakecontainerd.io/write-rate.job.x": "names no container",
	}
	cases := []struct {
		name string
		want map[string]string
	}{
		{"job", map[string]string{
			shim.AnnotationExitAfter: "5s", shim.AnnotationExitCode: "3", shim.AnnotationStopGrace: "never",
		}},
		{"sidecar", map[string]string{shim.AnnotationExitAfter: "30s", shim.AnnotationStopGrace: "never"}},
		{"other", map[string]string{
			shim.AnnotationExitAfter: "30s", shim.AnnotationDirtyBytes: "1GiB", shim.AnnotationStopGrace: "never",
		}},
	}
	for _, tc := range cases {
		if got := podBehaviourAnnotations(pod, tc.name); !maps.Equal(got, tc.want) {
			t.Errorf("container %q: got %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := podBehaviourAnnotations(nil, "job"); len(got) != 0 {
		t.Errorf("no pod annotations: got %v", got)
	}

	// The container config's own annotations win, and the rest stay.
	spec := (&criService{}).containerSpec("c1", "s1", &runtime.ContainerConfig{
		Metadata:    &runtime.ContainerMetadata{Name: "job"},
		Image:       &runtime.ImageSpec{Image: "busybox:latest"},
		Annotations: map[string]string{shim.AnnotationExitAfter: "1s", "a": "b"},
	}, imagestore.Image{}, pod)
	for k, want := range map[string]string{shim.AnnotationExitAfter: "1s", shim.AnnotationExitCode: "3", "a": "b"} {
		if got := spec.Annotations[k]; got != want {
			t.Errorf("spec annotation %s = %q, want %q", k, got, want)
		}
	}
	if _, ok := spec.Annotations["io.kubernetes.pod.uid"]; ok {
		t.Errorf("a pod annotation that is not fakecontainerd's reached the container spec")
	}
}

// Through the CRI: a pod-scoped exit-after makes the named container exit
// with the scripted code while its sibling keeps running, and a bad pod
// value is refused at CreateContainer like a bad container value.
func TestPodAnnotationsScriptContainers(t *testing.T) {
	ts := newTestServer(t, 0.01, nil)
	if _, err := ts.img.PullImage(ts.ctx(time.Minute), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "busybox:latest"}}); err != nil {
		t.Fatalf("pull: %v", err)
	}
	pc := podConfig("scripted")
	pc.Annotations = map[string]string{
		shim.AnnotationExitAfter + ".job": "5s",
		shim.AnnotationExitCode + ".job":  "7",
		shim.AnnotationExitCode + ".bad":  "not-a-code",
	}
	resp, err := ts.rt.RunPodSandbox(ts.ctx(time.Minute), &runtime.RunPodSandboxRequest{Config: pc})
	if err != nil {
		t.Fatalf("runp: %v", err)
	}
	podID := resp.PodSandboxId
	job := ts.startContainer(podID, pc, "job", nil)
	sidecar := ts.startContainer(podID, pc, "sidecar", nil)

	ts.waitState(job, runtime.ContainerState_CONTAINER_EXITED, time.Minute)
	st, err := ts.rt.ContainerStatus(ts.ctx(time.Minute), &runtime.ContainerStatusRequest{ContainerId: job})
	if err != nil || st.Status.ExitCode != 7 {
		t.Errorf("job: %v, exit code %d; want 7", err, st.GetStatus().GetExitCode())
	}
	if got := ts.containerState(sidecar); got != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("sidecar is %v; only the job is scripted to exit", got)
	}

	_, err = ts.rt.CreateContainer(ts.ctx(time.Minute), &runtime.CreateContainerRequest{
		PodSandboxId: podID, Config: containerConfig("bad", nil), SandboxConfig: pc,
	})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("create with a bad pod-scoped exit code: %v, want InvalidArgument", err)
	}
}
