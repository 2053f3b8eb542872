package server

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/faults"
)

// instrumentedService is the gRPC face of criService: every CRI method goes
// through instrument, which logs entry and exit at the level containerd
// uses for that method and converts the error to a gRPC status once, at the
// edge. The method files stay about the method.
type instrumentedService struct {
	runtime.UnimplementedRuntimeServiceServer
	runtime.UnimplementedImageServiceServer
	c *criService
}

// Polled methods log at trace, lifecycle methods at info, as containerd.
const (
	polled    = logrus.TraceLevel
	lifecycle = logrus.InfoLevel
)

func instrument[Req any, Resp any](in *instrumentedService, ctx context.Context, method string, level logrus.Level, id string, req Req, call func(context.Context, Req) (Resp, error)) (Resp, error) {
	log := in.c.log.WithField("method", method)
	if id != "" {
		log = log.WithField("id", id)
	}
	log.Logf(level, "%s with %+v", method, req)
	start := in.c.clock.Now()
	c := in.c
	var target *faults.Target
	targetOf := func() faults.Target {
		if target == nil {
			t := c.requestTarget(req)
			target = &t
		}
		return *target
	}
	if c.faults.Active(faults.PointMetadataCommit) {
		// Metadata commits deep in the call match on the request's object.
		ctx = faults.WithTarget(ctx, targetOf())
	}
	err := c.fire(ctx, faults.CRIPoint(method, false), targetOf)
	var resp Resp
	if err == nil {
		resp, err = call(ctx, req)
	}
	if err == nil {
		err = c.fire(ctx, faults.CRIPoint(method, true), targetOf)
	}
	cost := in.c.clock.Since(start)
	if err != nil {
		log.WithError(err).WithField("cost", cost).Errorf("%s failed", method)
		gerr := toGRPC(err)
		c.metrics.observeCRI(method, status.Code(gerr), cost)
		var zero Resp
		return zero, gerr
	}
	c.metrics.observeCRI(method, codes.OK, cost)
	log.WithField("cost", cost).Logf(level, "%s returns successfully", method)
	return resp, nil
}

func (in *instrumentedService) Version(ctx context.Context, r *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	return instrument(in, ctx, "Version", polled, "", r, in.c.Version)
}

func (in *instrumentedService) Status(ctx context.Context, r *runtime.StatusRequest) (*runtime.StatusResponse, error) {
	return instrument(in, ctx, "Status", polled, "", r, in.c.Status)
}

func (in *instrumentedService) RuntimeConfig(ctx context.Context, r *runtime.RuntimeConfigRequest) (*runtime.RuntimeConfigResponse, error) {
	return instrument(in, ctx, "RuntimeConfig", polled, "", r, in.c.RuntimeConfig)
}

func (in *instrumentedService) UpdateRuntimeConfig(ctx context.Context, r *runtime.UpdateRuntimeConfigRequest) (*runtime.UpdateRuntimeConfigResponse, error) {
	return instrument(in, ctx, "UpdateRuntimeConfig", lifecycle, "", r, in.c.UpdateRuntimeConfig)
}

func (in *instrumentedService) RunPodSandbox(ctx context.Context, r *runtime.RunPodSandboxRequest) (*runtime.RunPodSandboxResponse, error) {
	return instrument(in, ctx, "RunPodSandbox", lifecycle, "", r, in.c.RunPodSandbox)
}

func (in *instrumentedService) StopPodSandbox(ctx context.Context, r *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	return instrument(in, ctx, "StopPodSandbox", lifecycle, r.GetPodSandboxId(), r, in.c.StopPodSandbox)
}

func (in *instrumentedService) RemovePodSandbox(ctx context.Context, r *runtime.RemovePodSandboxRequest) (*runtime.RemovePodSandboxResponse, error) {
	return instrument(in, ctx, "RemovePodSandbox", lifecycle, r.GetPodSandboxId(), r, in.c.RemovePodSandbox)
}

func (in *instrumentedService) PodSandboxStatus(ctx context.Context, r *runtime.PodSandboxStatusRequest) (*runtime.PodSandboxStatusResponse, error) {
	return instrument(in, ctx, "PodSandboxStatus", polled, r.GetPodSandboxId(), r, in.c.PodSandboxStatus)
}

func (in *instrumentedService) ListPodSandbox(ctx context.Context, r *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	return instrument(in, ctx, "ListPodSandbox", polled, "", r, in.c.ListPodSandbox)
}

func (in *instrumentedService) CreateContainer(ctx context.Context, r *runtime.CreateContainerRequest) (*runtime.CreateContainerResponse, error) {
	return instrument(in, ctx, "CreateContainer", lifecycle, r.GetPodSandboxId(), r, in.c.CreateContainer)
}

func (in *instrumentedService) StartContainer(ctx context.Context, r *runtime.StartContainerRequest) (*runtime.StartContainerResponse, error) {
	return instrument(in, ctx, "StartContainer", lifecycle, r.GetContainerId(), r, in.c.StartContainer)
}

func (in *instrumentedService) StopContainer(ctx context.Context, r *runtime.StopContainerRequest) (*runtime.StopContainerResponse, error) {
	return instrument(in, ctx, "StopContainer", lifecycle, r.GetContainerId(), r, in.c.StopContainer)
}

func (in *instrumentedService) RemoveContainer(ctx context.Context, r *runtime.RemoveContainerRequest) (*runtime.RemoveContainerResponse, error) {
	return instrument(in, ctx, "RemoveContainer", lifecycle, r.GetContainerId(), r, in.c.RemoveContainer)
}

func (in *instrumentedService) ListContainers(ctx context.Context, r *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	return instrument(in, ctx, "ListContainers", polled, "", r, in.c.ListContainers)
}

// encodedLists is the gRPC server's unary interceptor: a ListContainers
// from the wire is answered in its encoded form (encodeListed: the same
// handler, locks, faults, logs and metrics, a cheaper response to marshal).
// A call from inside this process gets the plain response.
func (in *instrumentedService) encodedLists(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if info.FullMethod == runtime.RuntimeService_ListContainers_FullMethodName {
		ctx = withEncodedList(ctx)
	}
	return handler(ctx, req)
}

func (in *instrumentedService) ContainerStatus(ctx context.Context, r *runtime.ContainerStatusRequest) (*runtime.ContainerStatusResponse, error) {
	return instrument(in, ctx, "ContainerStatus", polled, r.GetContainerId(), r, in.c.ContainerStatus)
}

func (in *instrumentedService) UpdateContainerResources(ctx context.Context, r *runtime.UpdateContainerResourcesRequest) (*runtime.UpdateContainerResourcesResponse, error) {
	return instrument(in, ctx, "UpdateContainerResources", lifecycle, r.GetContainerId(), r, in.c.UpdateContainerResources)
}

func (in *instrumentedService) ReopenContainerLog(ctx context.Context, r *runtime.ReopenContainerLogRequest) (*runtime.ReopenContainerLogResponse, error) {
	return instrument(in, ctx, "ReopenContainerLog", lifecycle, r.GetContainerId(), r, in.c.ReopenContainerLog)
}

func (in *instrumentedService) ExecSync(ctx context.Context, r *runtime.ExecSyncRequest) (*runtime.ExecSyncResponse, error) {
	return instrument(in, ctx, "ExecSync", logrus.DebugLevel, r.GetContainerId(), r, in.c.ExecSync)
}

func (in *instrumentedService) ContainerStats(ctx context.Context, r *runtime.ContainerStatsRequest) (*runtime.ContainerStatsResponse, error) {
	return instrument(in, ctx, "ContainerStats", polled, r.GetContainerId(), r, in.c.ContainerStats)
}

func (in *instrumentedService) ListContainerStats(ctx context.Context, r *runtime.ListContainerStatsRequest) (*runtime.ListContainerStatsResponse, error) {
	return instrument(in, ctx, "ListContainerStats", polled, "", r, in.c.ListContainerStats)
}

func (in *instrumentedService) PodSandboxStats(ctx context.Context, r *runtime.PodSandboxStatsRequest) (*runtime.PodSandboxStatsResponse, error) {
	return instrument(in, ctx, "PodSandboxStats", polled, r.GetPodSandboxId(), r, in.c.PodSandboxStats)
}

func (in *instrumentedService) ListPodSandboxStats(ctx context.Context, r *runtime.ListPodSandboxStatsRequest) (*runtime.ListPodSandboxStatsResponse, error) {
	return instrument(in, ctx, "ListPodSandboxStats", polled, "", r, in.c.ListPodSandboxStats)
}

func (in *instrumentedService) GetContainerEvents(r *runtime.GetEventsRequest, s grpc.ServerStreamingServer[runtime.ContainerEventResponse]) error {
	in.c.log.WithField("method", "GetContainerEvents").Debug("GetContainerEvents stream opened")
	if err := in.c.fire(s.Context(), faults.CRIPoint("GetContainerEvents", false), func() faults.Target { return faults.Target{} }); err != nil {
		return toGRPC(err)
	}
	err := in.c.GetContainerEvents(r, s)
	in.c.log.WithField("method", "GetContainerEvents").WithError(err).Debug("GetContainerEvents stream closed")
	return toGRPC(err)
}

func (in *instrumentedService) PullImage(ctx context.Context, r *runtime.PullImageRequest) (*runtime.PullImageResponse, error) {
	return instrument(in, ctx, "PullImage", lifecycle, r.GetImage().GetImage(), r, in.c.PullImage)
}

func (in *instrumentedService) ImageStatus(ctx context.Context, r *runtime.ImageStatusRequest) (*runtime.ImageStatusResponse, error) {
	return instrument(in, ctx, "ImageStatus", polled, r.GetImage().GetImage(), r, in.c.ImageStatus)
}

func (in *instrumentedService) ListImages(ctx context.Context, r *runtime.ListImagesRequest) (*runtime.ListImagesResponse, error) {
	return instrument(in, ctx, "ListImages", polled, "", r, in.c.ListImages)
}

func (in *instrumentedService) RemoveImage(ctx context.Context, r *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error) {
	return instrument(in, ctx, "RemoveImage", lifecycle, r.GetImage().GetImage(), r, in.c.RemoveImage)
}

func (in *instrumentedService) ImageFsInfo(ctx context.Context, r *runtime.ImageFsInfoRequest) (*runtime.ImageFsInfoResponse, error) {
	return instrument(in, ctx, "ImageFsInfo", polled, "", r, in.c.ImageFsInfo)
}

// timing writes a timing log in the shape the field used to find incident 1
// ("[ListContainers] all list containers cost 1m29s"), at debug level and
// only for costs at or above timing_log_threshold, so a healthy run is
// quiet.
func (c *criService) timing(method, id string, cost time.Duration, format string, args ...any) {
	if cost < c.config.Plugins.Fake.TimingLogThreshold.Duration() || !c.log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		return
	}
	fields := logrus.Fields{"method": method, "cost": cost}
	if id != "" {
		fields["id"] = id
	}
	c.log.WithFields(fields).Debugf(format+" cost %s", append(args, cost)...)
}
