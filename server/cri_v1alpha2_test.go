package server

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// alphaCall invokes a CRI method under its v1alpha2 service name, as a
// kubelet before 1.23 does. The messages are v1's: v1 kept v1alpha2's field
// numbers, so the bytes on the wire are the ones an alpha client sends
// (the real-kubelet suite runs kubelet 1.19 against this).
func (ts *testServer) alphaCall(service, method string, req, resp any) error {
	return ts.conn.Invoke(ts.ctx(time.Minute), "/runtime.v1alpha2."+service+"/"+method, req, resp)
}

func TestCRIV1alpha2(t *testing.T) {
	ts := newTestServer(t, criScale, nil)

	t.Run("Version says v1alpha2 under the alpha name, v1 under v1", func(t *testing.T) {
		var alpha runtime.VersionResponse
		if err := ts.alphaCall("RuntimeService", "Version", &runtime.VersionRequest{Version: "0.1.0"}, &alpha); err != nil {
			t.Fatal(err)
		}
		if alpha.Version != "0.1.0" || alpha.RuntimeApiVersion != "v1alpha2" || alpha.RuntimeName != "fakecontainerd" {
			t.Errorf("v1alpha2 Version = %v", &alpha)
		}
		v1, err := ts.rt.Version(ts.ctx(time.Minute), &runtime.VersionRequest{Version: "0.1.0"})
		if err != nil {
			t.Fatal(err)
		}
		if v1.RuntimeApiVersion != "v1" {
			t.Errorf("v1 Version = %v after an alpha call", v1)
		}
	})

	t.Run("a pod's life over v1alpha2", func(t *testing.T) {
		if err := ts.alphaCall("ImageService", "PullImage", &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "busybox:latest"}}, &runtime.PullImageResponse{}); err != nil {
			t.Fatalf("PullImage: %v", err)
		}
		var img runtime.ImageStatusResponse
		if err := ts.alphaCall("ImageService", "ImageStatus", &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: "busybox:latest"}}, &img); err != nil || img.GetImage().GetId() == "" || img.GetImage().GetSize() == 0 {
			t.Fatalf("ImageStatus = %v, %v; want an id and a size (kubelet rejects the image otherwise)", &img, err)
		}
		pc := podConfig("alpha")
		var pod runtime.RunPodSandboxResponse
		if err := ts.alphaCall("RuntimeService", "RunPodSandbox", &runtime.RunPodSandboxRequest{Config: pc}, &pod); err != nil {
			t.Fatalf("RunPodSandbox: %v", err)
		}
		var ctr runtime.CreateContainerResponse
		if err := ts.alphaCall("RuntimeService", "CreateContainer", &runtime.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: containerConfig("c", nil), SandboxConfig: pc}, &ctr); err != nil {
			t.Fatalf("CreateContainer: %v", err)
		}
		if err := ts.alphaCall("RuntimeService", "StartContainer", &runtime.StartContainerRequest{ContainerId: ctr.ContainerId}, &runtime.StartContainerResponse{}); err != nil {
			t.Fatalf("StartContainer: %v", err)
		}
		// ListContainers from the wire takes the encoded-list path.
		var list runtime.ListContainersResponse
		if err := ts.alphaCall("RuntimeService", "ListContainers", &runtime.ListContainersRequest{}, &list); err != nil {
			t.Fatalf("ListContainers: %v", err)
		}
		if len(list.Containers) != 1 || list.Containers[0].Id != ctr.ContainerId || list.Containers[0].State != runtime.ContainerState_CONTAINER_RUNNING {
			t.Errorf("ListContainers = %v, want %s running", list.Containers, ctr.ContainerId)
		}
		var st runtime.ContainerStatusResponse
		if err := ts.alphaCall("RuntimeService", "ContainerStatus", &runtime.ContainerStatusRequest{ContainerId: ctr.ContainerId}, &st); err != nil {
			t.Fatalf("ContainerStatus: %v", err)
		}
		if st.Status.GetState() != runtime.ContainerState_CONTAINER_RUNNING || st.Status.GetMetadata().GetName() != "c" {
			t.Errorf("ContainerStatus = %v", st.Status)
		}
		// The same objects under v1: one runtime behind both names.
		if got := ts.criStatus(ctr.ContainerId); got.GetState() != runtime.ContainerState_CONTAINER_RUNNING {
			t.Errorf("v1 ContainerStatus = %v", got)
		}
		var stopped runtime.StopContainerResponse
		if err := ts.alphaCall("RuntimeService", "StopContainer", &runtime.StopContainerRequest{ContainerId: ctr.ContainerId, Timeout: 1}, &stopped); err != nil {
			t.Fatalf("StopContainer: %v", err)
		}
		if got := ts.criStatus(ctr.ContainerId); got.GetState() != runtime.ContainerState_CONTAINER_EXITED {
			t.Errorf("after an alpha StopContainer, v1 ContainerStatus = %v", got)
		}
	})

	// Methods v1 added after v1alpha2 are not served under the alpha name.
	for _, c := range []struct{ service, method string }{
		{"RuntimeService", "RuntimeConfig"},
		{"RuntimeService", "CheckpointContainer"},
		{"RuntimeService", "ListMetricDescriptors"},
		{"RuntimeService", "GetContainerEvents"},
		{"ImageService", "StreamImages"},
	} {
		t.Run("no v1alpha2 "+c.method, func(t *testing.T) {
			err := ts.alphaCall(c.service, c.method, &runtime.RuntimeConfigRequest{}, &runtime.RuntimeConfigResponse{})
			criWantCode(t, c.method, err, codes.Unimplemented)
		})
	}
}
