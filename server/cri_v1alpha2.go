package server

import (
	"context"
	"slices"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRI v1alpha2, the API kubelets before 1.23 speak only (1.23 to 1.25 fall
// back to it; 1.26 dropped it). containerd 1.6 serves it beside v1: each
// alpha method marshals the request, unmarshals it as the v1 type, runs the
// v1 method and converts the response back the same way
// (pkg/cri/server/instrumented_service.go), which works because v1 was
// cut from v1alpha2 with the same messages and field numbers. The fake
// does the same conversion on the wire: the v1 handlers, under the alpha
// service names, decode the alpha bytes straight into the v1 types; fields
// v1 added later are unknown to an alpha client and skipped by it. The
// calls go through the same instrumentation, locks, faults and logs as v1
// (the handlers name the v1 method). Only Version differs, as in
// containerd's AlphaVersion: it reports runtime_api_version "v1alpha2".
const (
	alphaRuntimeService = "runtime.v1alpha2.RuntimeService"
	alphaImageService   = "runtime.v1alpha2.ImageService"
	alphaAPIVersion     = "v1alpha2"
)

// The methods v1alpha2 has (k8s.io/cri-api v0.25, its last release); the
// later v1 ones (RuntimeConfig, CheckpointContainer, the metrics and
// streaming calls) are not served under the alpha names.
var (
	alphaRuntimeMethods = []string{
		"Version", "RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "PodSandboxStatus", "ListPodSandbox",
		"CreateContainer", "StartContainer", "StopContainer", "RemoveContainer", "ListContainers", "ContainerStatus",
		"UpdateContainerResources", "ReopenContainerLog", "ExecSync", "Exec", "Attach", "PortForward",
		"ContainerStats", "ListContainerStats", "PodSandboxStats", "ListPodSandboxStats", "UpdateRuntimeConfig", "Status",
	}
	alphaImageMethods = []string{"ListImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo"}
)

// alphaDesc is desc under the alpha service name, with only the methods
// v1alpha2 has.
func alphaDesc(desc grpc.ServiceDesc, name string, methods []string) *grpc.ServiceDesc {
	d := desc
	d.ServiceName = name
	d.Methods = nil
	for _, m := range desc.Methods {
		if slices.Contains(methods, m.MethodName) {
			d.Methods = append(d.Methods, m)
		}
	}
	d.Streams = nil
	d.Metadata = "k8s.io/cri-api/pkg/apis/runtime/v1alpha2/api.proto"
	return &d
}

// alphaRuntime is the v1 service with Version answering as v1alpha2.
type alphaRuntime struct{ *instrumentedService }

func (a alphaRuntime) Version(ctx context.Context, r *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	resp, err := a.instrumentedService.Version(ctx, r)
	if err != nil {
		return nil, err
	}
	resp.RuntimeApiVersion = alphaAPIVersion // a fresh response each call
	return resp, nil
}

// registerV1alpha2 serves the alpha runtime and image services on s.
func registerV1alpha2(s *grpc.Server, in *instrumentedService) {
	s.RegisterService(alphaDesc(runtime.RuntimeService_ServiceDesc, alphaRuntimeService, alphaRuntimeMethods), alphaRuntime{in})
	s.RegisterService(alphaDesc(runtime.ImageService_ServiceDesc, alphaImageService, alphaImageMethods), in)
}
