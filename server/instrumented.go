package server

import (
	"context"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/server/gogofmt"
)

// instrumentedService is the gRPC face of criService: every CRI method goes
// through instrument, which logs entry and exit with containerd's texts at
// the level containerd uses for that method and converts the error to a gRPC status once, at the
// edge. The method files stay about the method.
type instrumentedService struct {
	runtime.UnimplementedRuntimeServiceServer
	runtime.UnimplementedImageServiceServer
	c *criService
}

// callLog is what containerd logs around one CRI call: the line on entry,
// the line on failure (at error level, with the error as a field) and the
// line on success, with the texts and levels of containerd v1.6.20's
// instrumented_service.go, so a user's grep for containerd's words finds
// the fake's lines too. Messages are printed as containerd 1.6 prints them
// (gogo's String() form, see gogofmt). A nil enter logs nothing on entry.
type callLog[Req any, Resp any] struct {
	level  logrus.Level
	enter  func(Req) string
	failed func(Req) string
	ok     func(Req, Resp) string
}

func instrument[Req any, Resp any](in *instrumentedService, ctx context.Context, method string, id string, req Req, texts callLog[Req, Resp], call func(context.Context, Req) (Resp, error)) (Resp, error) {
	log := in.c.log.WithField("method", method)
	if id != "" {
		log = log.WithField("id", id)
	}
	enabled := log.Logger.IsLevelEnabled(texts.level)
	if enabled && texts.enter != nil {
		log.Log(texts.level, texts.enter(req))
	}
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
	if err == nil {
		// containerd's own work for the call: gRPC, the handler, the reply.
		err = c.onCPU(ctx, method, c.config.Plugins.Fake.CPU.Call.Duration())
	}
	var resp Resp
	if err == nil {
		resp, err = call(ctx, req)
	}
	if err == nil {
		err = c.fire(ctx, faults.CRIPoint(method, true), targetOf)
	}
	cost := in.c.clock.Since(start)
	if err != nil {
		gerr := toGRPC(err)
		if c.containerdV2() {
			// 2.x logs the error after errgrpc.ToGRPC made it a status
			// ("rpc error: code = Unknown desc = ...").
			log.WithError(gerr).WithField("cost", cost).Error(texts.failed(req))
		} else {
			log.WithError(err).WithField("cost", cost).Error(texts.failed(req))
		}
		c.metrics.observeCRI(method, status.Code(gerr), cost)
		var zero Resp
		return zero, gerr
	}
	c.metrics.observeCRI(method, codes.OK, cost)
	if enabled {
		log.WithField("cost", cost).Log(texts.level, texts.ok(req, resp))
	}
	return resp, nil
}

// g is a message as containerd prints it with %+v: 1.6's (and 1.7's)
// gogo String() form, or 2.x's protobuf text form ("cpu_shares:512"),
// "<nil>" for none.
func (in *instrumentedService) g(m proto.Message) string {
	if in.c.containerdV2() {
		return protoText(m)
	}
	return gogofmt.String(m)
}

func (in *instrumentedService) Version(ctx context.Context, r *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	return instrument(in, ctx, "Version", "", r, callLog[*runtime.VersionRequest, *runtime.VersionResponse]{
		level: logrus.TraceLevel,
		enter: func(r *runtime.VersionRequest) string {
			return fmt.Sprintf("Version with client side version %q", r.GetVersion())
		},
		failed: func(*runtime.VersionRequest) string { return "Version failed" },
		ok: func(_ *runtime.VersionRequest, res *runtime.VersionResponse) string {
			return "Version returns " + in.g(res)
		},
	}, in.c.Version)
}

func (in *instrumentedService) Status(ctx context.Context, r *runtime.StatusRequest) (*runtime.StatusResponse, error) {
	return instrument(in, ctx, "Status", "", r, callLog[*runtime.StatusRequest, *runtime.StatusResponse]{
		level:  logrus.TraceLevel,
		enter:  func(*runtime.StatusRequest) string { return "Status" },
		failed: func(*runtime.StatusRequest) string { return "Status failed" },
		ok: func(_ *runtime.StatusRequest, res *runtime.StatusResponse) string {
			return "Status returns status " + in.g(res.GetStatus())
		},
	}, in.c.Status)
}

// RuntimeConfig came after containerd 1.6; the texts are 2.0's.
func (in *instrumentedService) RuntimeConfig(ctx context.Context, r *runtime.RuntimeConfigRequest) (*runtime.RuntimeConfigResponse, error) {
	return instrument(in, ctx, "RuntimeConfig", "", r, callLog[*runtime.RuntimeConfigRequest, *runtime.RuntimeConfigResponse]{
		level:  logrus.TraceLevel,
		enter:  func(*runtime.RuntimeConfigRequest) string { return "RuntimeConfig" },
		failed: func(*runtime.RuntimeConfigRequest) string { return "RuntimeConfig failed" },
		ok: func(_ *runtime.RuntimeConfigRequest, res *runtime.RuntimeConfigResponse) string {
			return "RuntimeConfig returns config " + in.g(res)
		},
	}, in.c.RuntimeConfig)
}

func (in *instrumentedService) UpdateRuntimeConfig(ctx context.Context, r *runtime.UpdateRuntimeConfigRequest) (*runtime.UpdateRuntimeConfigResponse, error) {
	return instrument(in, ctx, "UpdateRuntimeConfig", "", r, callLog[*runtime.UpdateRuntimeConfigRequest, *runtime.UpdateRuntimeConfigResponse]{
		level: logrus.DebugLevel,
		enter: func(r *runtime.UpdateRuntimeConfigRequest) string {
			return "UpdateRuntimeConfig with config " + in.g(r.GetRuntimeConfig())
		},
		failed: func(*runtime.UpdateRuntimeConfigRequest) string { return "UpdateRuntimeConfig failed" },
		ok: func(*runtime.UpdateRuntimeConfigRequest, *runtime.UpdateRuntimeConfigResponse) string {
			return "UpdateRuntimeConfig returns successfully"
		},
	}, in.c.UpdateRuntimeConfig)
}

func (in *instrumentedService) RunPodSandbox(ctx context.Context, r *runtime.RunPodSandboxRequest) (*runtime.RunPodSandboxResponse, error) {
	return instrument(in, ctx, "RunPodSandbox", "", r, callLog[*runtime.RunPodSandboxRequest, *runtime.RunPodSandboxResponse]{
		level: logrus.InfoLevel,
		enter: func(r *runtime.RunPodSandboxRequest) string {
			return "RunPodSandbox for " + in.g(r.GetConfig().GetMetadata())
		},
		failed: func(r *runtime.RunPodSandboxRequest) string {
			return "RunPodSandbox for " + in.g(r.GetConfig().GetMetadata()) + " failed, error"
		},
		ok: func(r *runtime.RunPodSandboxRequest, res *runtime.RunPodSandboxResponse) string {
			return fmt.Sprintf("RunPodSandbox for %s returns sandbox id %q", in.g(r.GetConfig().GetMetadata()), res.GetPodSandboxId())
		},
	}, in.c.RunPodSandbox)
}

// sandboxCall is the texts of a call about one sandbox: "<Method> for
// "<id>"", "... failed", and "<Method> for "<id>" returns successfully"
// (RemovePodSandbox drops the "for" there, as containerd does).
func sandboxCall[Req interface{ GetPodSandboxId() string }, Resp any](method string, level logrus.Level) callLog[Req, Resp] {
	okFor := " for"
	if method == "RemovePodSandbox" {
		okFor = ""
	}
	return callLog[Req, Resp]{
		level:  level,
		enter:  func(r Req) string { return fmt.Sprintf("%s for %q", method, r.GetPodSandboxId()) },
		failed: func(r Req) string { return fmt.Sprintf("%s for %q failed", method, r.GetPodSandboxId()) },
		ok: func(r Req, _ Resp) string {
			return fmt.Sprintf("%s%s %q returns successfully", method, okFor, r.GetPodSandboxId())
		},
	}
}

// containerCall is the same for a call about one container.
func containerCall[Req interface{ GetContainerId() string }, Resp any](method string, level logrus.Level) callLog[Req, Resp] {
	return callLog[Req, Resp]{
		level:  level,
		enter:  func(r Req) string { return fmt.Sprintf("%s for %q", method, r.GetContainerId()) },
		failed: func(r Req) string { return fmt.Sprintf("%s for %q failed", method, r.GetContainerId()) },
		ok: func(r Req, _ Resp) string {
			return fmt.Sprintf("%s for %q returns successfully", method, r.GetContainerId())
		},
	}
}

func (in *instrumentedService) StopPodSandbox(ctx context.Context, r *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	return instrument(in, ctx, "StopPodSandbox", r.GetPodSandboxId(), r,
		sandboxCall[*runtime.StopPodSandboxRequest, *runtime.StopPodSandboxResponse]("StopPodSandbox", logrus.InfoLevel), in.c.StopPodSandbox)
}

func (in *instrumentedService) RemovePodSandbox(ctx context.Context, r *runtime.RemovePodSandboxRequest) (*runtime.RemovePodSandboxResponse, error) {
	return instrument(in, ctx, "RemovePodSandbox", r.GetPodSandboxId(), r,
		sandboxCall[*runtime.RemovePodSandboxRequest, *runtime.RemovePodSandboxResponse]("RemovePodSandbox", logrus.InfoLevel), in.c.RemovePodSandbox)
}

func (in *instrumentedService) PodSandboxStatus(ctx context.Context, r *runtime.PodSandboxStatusRequest) (*runtime.PodSandboxStatusResponse, error) {
	texts := sandboxCall[*runtime.PodSandboxStatusRequest, *runtime.PodSandboxStatusResponse]("PodSandboxStatus", logrus.TraceLevel)
	texts.ok = func(r *runtime.PodSandboxStatusRequest, res *runtime.PodSandboxStatusResponse) string {
		return fmt.Sprintf("PodSandboxStatus for %q returns status %s", r.GetPodSandboxId(), in.g(res.GetStatus()))
	}
	return instrument(in, ctx, "PodSandboxStatus", r.GetPodSandboxId(), r, texts, in.c.PodSandboxStatus)
}

func (in *instrumentedService) ListPodSandbox(ctx context.Context, r *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	return instrument(in, ctx, "ListPodSandbox", "", r, callLog[*runtime.ListPodSandboxRequest, *runtime.ListPodSandboxResponse]{
		level: logrus.TraceLevel,
		enter: func(r *runtime.ListPodSandboxRequest) string {
			return "ListPodSandbox with filter " + in.g(r.GetFilter())
		},
		failed: func(*runtime.ListPodSandboxRequest) string { return "ListPodSandbox failed" },
		ok: func(_ *runtime.ListPodSandboxRequest, res *runtime.ListPodSandboxResponse) string {
			return "ListPodSandbox returns pod sandboxes " + gogofmt.Slice(res.GetItems()).String()
		},
	}, in.c.ListPodSandbox)
}

func (in *instrumentedService) CreateContainer(ctx context.Context, r *runtime.CreateContainerRequest) (*runtime.CreateContainerResponse, error) {
	return instrument(in, ctx, "CreateContainer", r.GetPodSandboxId(), r, callLog[*runtime.CreateContainerRequest, *runtime.CreateContainerResponse]{
		level: logrus.InfoLevel,
		enter: func(r *runtime.CreateContainerRequest) string {
			return fmt.Sprintf("CreateContainer within sandbox %q for container %s", r.GetPodSandboxId(), in.g(r.GetConfig().GetMetadata()))
		},
		failed: func(r *runtime.CreateContainerRequest) string {
			return fmt.Sprintf("CreateContainer within sandbox %q for %s failed", r.GetPodSandboxId(), in.g(r.GetConfig().GetMetadata()))
		},
		ok: func(r *runtime.CreateContainerRequest, res *runtime.CreateContainerResponse) string {
			return fmt.Sprintf("CreateContainer within sandbox %q for %s returns container id %q",
				r.GetPodSandboxId(), in.g(r.GetConfig().GetMetadata()), res.GetContainerId())
		},
	}, in.c.CreateContainer)
}

func (in *instrumentedService) StartContainer(ctx context.Context, r *runtime.StartContainerRequest) (*runtime.StartContainerResponse, error) {
	return instrument(in, ctx, "StartContainer", r.GetContainerId(), r,
		containerCall[*runtime.StartContainerRequest, *runtime.StartContainerResponse]("StartContainer", logrus.InfoLevel), in.c.StartContainer)
}

func (in *instrumentedService) StopContainer(ctx context.Context, r *runtime.StopContainerRequest) (*runtime.StopContainerResponse, error) {
	texts := containerCall[*runtime.StopContainerRequest, *runtime.StopContainerResponse]("StopContainer", logrus.InfoLevel)
	texts.enter = func(r *runtime.StopContainerRequest) string {
		return fmt.Sprintf("StopContainer for %q with timeout %d (s)", r.GetContainerId(), r.GetTimeout())
	}
	return instrument(in, ctx, "StopContainer", r.GetContainerId(), r, texts, in.c.StopContainer)
}

func (in *instrumentedService) RemoveContainer(ctx context.Context, r *runtime.RemoveContainerRequest) (*runtime.RemoveContainerResponse, error) {
	return instrument(in, ctx, "RemoveContainer", r.GetContainerId(), r,
		containerCall[*runtime.RemoveContainerRequest, *runtime.RemoveContainerResponse]("RemoveContainer", logrus.InfoLevel), in.c.RemoveContainer)
}

func (in *instrumentedService) ListContainers(ctx context.Context, r *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	return instrument(in, ctx, "ListContainers", "", r, callLog[*runtime.ListContainersRequest, *runtime.ListContainersResponse]{
		level: logrus.TraceLevel,
		enter: func(r *runtime.ListContainersRequest) string {
			return "ListContainers with filter " + in.g(r.GetFilter())
		},
		failed: func(r *runtime.ListContainersRequest) string {
			return "ListContainers with filter " + in.g(r.GetFilter()) + " failed"
		},
		ok: func(r *runtime.ListContainersRequest, res *runtime.ListContainersResponse) string {
			return "ListContainers with filter " + in.g(r.GetFilter()) + " returns containers " + gogofmt.Slice(listedContainers(res)).String()
		},
	}, in.c.ListContainers)
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
	texts := containerCall[*runtime.ContainerStatusRequest, *runtime.ContainerStatusResponse]("ContainerStatus", logrus.TraceLevel)
	texts.ok = func(r *runtime.ContainerStatusRequest, res *runtime.ContainerStatusResponse) string {
		return fmt.Sprintf("ContainerStatus for %q returns status %s", r.GetContainerId(), in.g(res.GetStatus()))
	}
	return instrument(in, ctx, "ContainerStatus", r.GetContainerId(), r, texts, in.c.ContainerStatus)
}

func (in *instrumentedService) UpdateContainerResources(ctx context.Context, r *runtime.UpdateContainerResourcesRequest) (*runtime.UpdateContainerResourcesResponse, error) {
	texts := containerCall[*runtime.UpdateContainerResourcesRequest, *runtime.UpdateContainerResourcesResponse]("UpdateContainerResources", logrus.InfoLevel)
	texts.enter = func(r *runtime.UpdateContainerResourcesRequest) string {
		return fmt.Sprintf("UpdateContainerResources for %q with Linux: %s / Windows: %s", r.GetContainerId(), in.g(r.GetLinux()), in.g(r.GetWindows()))
	}
	return instrument(in, ctx, "UpdateContainerResources", r.GetContainerId(), r, texts, in.c.UpdateContainerResources)
}

func (in *instrumentedService) ReopenContainerLog(ctx context.Context, r *runtime.ReopenContainerLogRequest) (*runtime.ReopenContainerLogResponse, error) {
	return instrument(in, ctx, "ReopenContainerLog", r.GetContainerId(), r,
		containerCall[*runtime.ReopenContainerLogRequest, *runtime.ReopenContainerLogResponse]("ReopenContainerLog", logrus.DebugLevel), in.c.ReopenContainerLog)
}

func (in *instrumentedService) ExecSync(ctx context.Context, r *runtime.ExecSyncRequest) (*runtime.ExecSyncResponse, error) {
	texts := containerCall[*runtime.ExecSyncRequest, *runtime.ExecSyncResponse]("ExecSync", logrus.DebugLevel)
	texts.enter = func(r *runtime.ExecSyncRequest) string {
		return fmt.Sprintf("ExecSync for %q with command %+v and timeout %d (s)", r.GetContainerId(), r.GetCmd(), r.GetTimeout())
	}
	texts.ok = func(r *runtime.ExecSyncRequest, res *runtime.ExecSyncResponse) string {
		return fmt.Sprintf("ExecSync for %q returns with exit code %d", r.GetContainerId(), res.GetExitCode())
	}
	return instrument(in, ctx, "ExecSync", r.GetContainerId(), r, texts, in.c.ExecSync)
}

func (in *instrumentedService) Exec(ctx context.Context, r *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	texts := containerCall[*runtime.ExecRequest, *runtime.ExecResponse]("Exec", logrus.DebugLevel)
	texts.enter = func(r *runtime.ExecRequest) string {
		return fmt.Sprintf("Exec for %q with command %+v, tty %v and stdin %v", r.GetContainerId(), r.GetCmd(), r.GetTty(), r.GetStdin())
	}
	texts.ok = func(r *runtime.ExecRequest, res *runtime.ExecResponse) string {
		return fmt.Sprintf("Exec for %q returns URL %q", r.GetContainerId(), res.GetUrl())
	}
	return instrument(in, ctx, "Exec", r.GetContainerId(), r, texts, in.c.Exec)
}

func (in *instrumentedService) Attach(ctx context.Context, r *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	texts := containerCall[*runtime.AttachRequest, *runtime.AttachResponse]("Attach", logrus.DebugLevel)
	texts.enter = func(r *runtime.AttachRequest) string {
		return fmt.Sprintf("Attach for %q with tty %v and stdin %v", r.GetContainerId(), r.GetTty(), r.GetStdin())
	}
	texts.ok = func(r *runtime.AttachRequest, res *runtime.AttachResponse) string {
		return fmt.Sprintf("Attach for %q returns URL %q", r.GetContainerId(), res.GetUrl())
	}
	return instrument(in, ctx, "Attach", r.GetContainerId(), r, texts, in.c.Attach)
}

func (in *instrumentedService) PortForward(ctx context.Context, r *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	texts := sandboxCall[*runtime.PortForwardRequest, *runtime.PortForwardResponse]("Portforward", logrus.InfoLevel)
	texts.enter = func(r *runtime.PortForwardRequest) string {
		return fmt.Sprintf("Portforward for %q port %v", r.GetPodSandboxId(), r.GetPort())
	}
	texts.ok = func(r *runtime.PortForwardRequest, res *runtime.PortForwardResponse) string {
		return fmt.Sprintf("Portforward for %q returns URL %q", r.GetPodSandboxId(), res.GetUrl())
	}
	return instrument(in, ctx, "PortForward", r.GetPodSandboxId(), r, texts, in.c.PortForward)
}

func (in *instrumentedService) ContainerStats(ctx context.Context, r *runtime.ContainerStatsRequest) (*runtime.ContainerStatsResponse, error) {
	texts := containerCall[*runtime.ContainerStatsRequest, *runtime.ContainerStatsResponse]("ContainerStats", logrus.DebugLevel)
	texts.ok = func(r *runtime.ContainerStatsRequest, res *runtime.ContainerStatsResponse) string {
		return fmt.Sprintf("ContainerStats for %q returns stats %s", r.GetContainerId(), in.g(res.GetStats()))
	}
	return instrument(in, ctx, "ContainerStats", r.GetContainerId(), r, texts, in.c.ContainerStats)
}

func (in *instrumentedService) ListContainerStats(ctx context.Context, r *runtime.ListContainerStatsRequest) (*runtime.ListContainerStatsResponse, error) {
	return instrument(in, ctx, "ListContainerStats", "", r, callLog[*runtime.ListContainerStatsRequest, *runtime.ListContainerStatsResponse]{
		level: logrus.TraceLevel,
		enter: func(r *runtime.ListContainerStatsRequest) string {
			return "ListContainerStats with filter " + in.g(r.GetFilter())
		},
		failed: func(*runtime.ListContainerStatsRequest) string { return "ListContainerStats failed" },
		ok: func(_ *runtime.ListContainerStatsRequest, res *runtime.ListContainerStatsResponse) string {
			return "ListContainerStats returns stats " + gogofmt.Slice(res.GetStats()).String()
		},
	}, in.c.ListContainerStats)
}

func (in *instrumentedService) PodSandboxStats(ctx context.Context, r *runtime.PodSandboxStatsRequest) (*runtime.PodSandboxStatsResponse, error) {
	texts := sandboxCall[*runtime.PodSandboxStatsRequest, *runtime.PodSandboxStatsResponse]("PodSandboxStats", logrus.DebugLevel)
	texts.ok = func(r *runtime.PodSandboxStatsRequest, res *runtime.PodSandboxStatsResponse) string {
		return fmt.Sprintf("PodSandboxStats for %q returns stats %s", r.GetPodSandboxId(), in.g(res.GetStats()))
	}
	return instrument(in, ctx, "PodSandboxStats", r.GetPodSandboxId(), r, texts, in.c.PodSandboxStats)
}

func (in *instrumentedService) ListPodSandboxStats(ctx context.Context, r *runtime.ListPodSandboxStatsRequest) (*runtime.ListPodSandboxStatsResponse, error) {
	return instrument(in, ctx, "ListPodSandboxStats", "", r, callLog[*runtime.ListPodSandboxStatsRequest, *runtime.ListPodSandboxStatsResponse]{
		level: logrus.TraceLevel,
		enter: func(r *runtime.ListPodSandboxStatsRequest) string {
			return "ListPodSandboxStats with filter " + in.g(r.GetFilter())
		},
		failed: func(*runtime.ListPodSandboxStatsRequest) string { return "ListPodSandboxStats failed" },
		ok: func(_ *runtime.ListPodSandboxStatsRequest, res *runtime.ListPodSandboxStatsResponse) string {
			return "ListPodSandboxStats returns stats " + gogofmt.Slice(res.GetStats()).String()
		},
	}, in.c.ListPodSandboxStats)
}

// listedContainers is the containers of a list response, also when it is
// in its encoded form (encodeListed), for the trace line.
func listedContainers(res *runtime.ListContainersResponse) []*runtime.Container {
	if cs := res.GetContainers(); len(cs) > 0 || res == nil {
		return cs
	}
	var dec runtime.ListContainersResponse
	if err := proto.Unmarshal(res.ProtoReflect().GetUnknown(), &dec); err != nil {
		return nil
	}
	return dec.GetContainers()
}

// GetContainerEvents logs only at its end, as containerd.
func (in *instrumentedService) GetContainerEvents(r *runtime.GetEventsRequest, s grpc.ServerStreamingServer[runtime.ContainerEventResponse]) error {
	log := in.c.log.WithField("method", "GetContainerEvents")
	err := in.c.fire(s.Context(), faults.CRIPoint("GetContainerEvents", false), func() faults.Target { return faults.Target{} })
	if err == nil {
		err = in.c.GetContainerEvents(r, s)
	}
	if err != nil {
		log.WithError(err).Error("GetContainerEvents failed, error")
	} else {
		log.Debug("GetContainerEvents returns successfully")
	}
	return toGRPC(err)
}

// imageCall is the texts of a call about one image reference.
func imageCall[Req interface{ GetImage() *runtime.ImageSpec }, Resp any](method string, level logrus.Level) callLog[Req, Resp] {
	return callLog[Req, Resp]{
		level:  level,
		enter:  func(r Req) string { return fmt.Sprintf("%s %q", method, r.GetImage().GetImage()) },
		failed: func(r Req) string { return fmt.Sprintf("%s %q failed", method, r.GetImage().GetImage()) },
		ok: func(r Req, _ Resp) string {
			return fmt.Sprintf("%s %q returns successfully", method, r.GetImage().GetImage())
		},
	}
}

func (in *instrumentedService) PullImage(ctx context.Context, r *runtime.PullImageRequest) (*runtime.PullImageResponse, error) {
	texts := imageCall[*runtime.PullImageRequest, *runtime.PullImageResponse]("PullImage", logrus.InfoLevel)
	texts.ok = func(r *runtime.PullImageRequest, res *runtime.PullImageResponse) string {
		return fmt.Sprintf("PullImage %q returns image reference %q", r.GetImage().GetImage(), res.GetImageRef())
	}
	return instrument(in, ctx, "PullImage", r.GetImage().GetImage(), r, texts, in.c.PullImage)
}

func (in *instrumentedService) ImageStatus(ctx context.Context, r *runtime.ImageStatusRequest) (*runtime.ImageStatusResponse, error) {
	return instrument(in, ctx, "ImageStatus", r.GetImage().GetImage(), r, callLog[*runtime.ImageStatusRequest, *runtime.ImageStatusResponse]{
		level: logrus.TraceLevel,
		enter: func(r *runtime.ImageStatusRequest) string {
			return fmt.Sprintf("ImageStatus for %q", r.GetImage().GetImage())
		},
		failed: func(r *runtime.ImageStatusRequest) string {
			return fmt.Sprintf("ImageStatus for %q failed", r.GetImage().GetImage())
		},
		ok: func(r *runtime.ImageStatusRequest, res *runtime.ImageStatusResponse) string {
			return fmt.Sprintf("ImageStatus for %q returns image status %s", r.GetImage().GetImage(), in.g(res.GetImage()))
		},
	}, in.c.ImageStatus)
}

func (in *instrumentedService) ListImages(ctx context.Context, r *runtime.ListImagesRequest) (*runtime.ListImagesResponse, error) {
	return instrument(in, ctx, "ListImages", "", r, callLog[*runtime.ListImagesRequest, *runtime.ListImagesResponse]{
		level: logrus.TraceLevel,
		enter: func(r *runtime.ListImagesRequest) string { return "ListImages with filter " + in.g(r.GetFilter()) },
		failed: func(r *runtime.ListImagesRequest) string {
			return "ListImages with filter " + in.g(r.GetFilter()) + " failed"
		},
		ok: func(r *runtime.ListImagesRequest, res *runtime.ListImagesResponse) string {
			return "ListImages with filter " + in.g(r.GetFilter()) + " returns image list " + gogofmt.Slice(res.GetImages()).String()
		},
	}, in.c.ListImages)
}

func (in *instrumentedService) RemoveImage(ctx context.Context, r *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error) {
	return instrument(in, ctx, "RemoveImage", r.GetImage().GetImage(), r,
		imageCall[*runtime.RemoveImageRequest, *runtime.RemoveImageResponse]("RemoveImage", logrus.InfoLevel), in.c.RemoveImage)
}

func (in *instrumentedService) ImageFsInfo(ctx context.Context, r *runtime.ImageFsInfoRequest) (*runtime.ImageFsInfoResponse, error) {
	return instrument(in, ctx, "ImageFsInfo", "", r, callLog[*runtime.ImageFsInfoRequest, *runtime.ImageFsInfoResponse]{
		level:  logrus.DebugLevel,
		enter:  func(*runtime.ImageFsInfoRequest) string { return "ImageFsInfo" },
		failed: func(*runtime.ImageFsInfoRequest) string { return "ImageFsInfo failed" },
		ok: func(_ *runtime.ImageFsInfoRequest, res *runtime.ImageFsInfoResponse) string {
			return "ImageFsInfo returns filesystem info " + gogofmt.Slice(res.GetImageFilesystems()).String()
		},
	}, in.c.ImageFsInfo)
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

// UpdatePodSandboxResources is in the CRI from v0.33; containerd 2.x
// answers errdefs.ErrNotImplemented through errgrpc ("not implemented",
// Unimplemented) without logging; 1.6 and 1.7 have no such method (gRPC's
// own Unimplemented).
func (in *instrumentedService) UpdatePodSandboxResources(ctx context.Context, r *runtime.UpdatePodSandboxResourcesRequest) (*runtime.UpdatePodSandboxResourcesResponse, error) {
	if in.c.containerdV2() {
		return nil, status.Error(codes.Unimplemented, "not implemented")
	}
	return in.UnimplementedRuntimeServiceServer.UpdatePodSandboxResources(ctx, r)
}
