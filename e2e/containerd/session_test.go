package containerd

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/proto"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// session is one runtime's side of the crictl session: the ids it chose,
// named for the normaliser.
type session struct {
	r    *runtime
	norm *normaliser
	logs string // the pods' log directory on this runtime
	pod  string
	ctr  string
	ctr2 string
	pod2 string
	ctr4 string
}

func newSession(r *runtime) (*session, error) {
	s := &session{r: r, norm: newNormaliser(), logs: filepath.Join(r.dir, "pod-logs")}
	if err := os.MkdirAll(s.logs, 0o755); err != nil {
		return nil, err
	}
	s.norm.name(s.logs, "<logdir>")
	s.norm.name(r.cgroupParent(), "<cgroup>")
	return s, nil
}

func (s *session) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// podConfig is a host-network pod (containerd here has no CNI) in crictl's
// shape.
func (s *session) podConfig(name string) *cri.PodSandboxConfig {
	return &cri.PodSandboxConfig{
		Metadata:     &cri.PodSandboxMetadata{Name: name, Namespace: "default", Uid: name + "-uid", Attempt: 0},
		LogDirectory: s.logs,
		Labels:       map[string]string{"app": "diff", "pod": name},
		Annotations:  map[string]string{"note": "differential"},
		// Kubelet always gives a cgroup parent (cgroupfs driver here);
		// containerd.sh stop removes it.
		Linux: &cri.LinuxPodSandboxConfig{CgroupParent: s.r.cgroupParent() + "/" + name, SecurityContext: &cri.LinuxSandboxSecurityContext{
			NamespaceOptions: &cri.NamespaceOption{Network: cri.NamespaceMode_NODE},
		}},
	}
}

func containerConfig(name string) *cri.ContainerConfig {
	return &cri.ContainerConfig{
		Metadata:    &cri.ContainerMetadata{Name: name},
		Image:       &cri.ImageSpec{Image: busyboxImage, UserSpecifiedImage: busyboxImage},
		Command:     []string{"/bin/sh", "-c", "while :; do sleep 1; done"},
		Labels:      map[string]string{"tier": name},
		Annotations: map[string]string{"note": name},
		LogPath:     name + ".log",
		Linux:       &cri.LinuxContainerConfig{Resources: &cri.LinuxContainerResources{CpuShares: 256}},
	}
}

func imageSpec(ref string) *cri.ImageSpec { return &cri.ImageSpec{Image: ref} }

// step is one crictl call, run on each runtime in turn.
type step struct {
	name string
	do   func(s *session) (proto.Message, error)
}

// empty is the response of calls whose cri-client method returns only an
// error.
func empty(err error) (proto.Message, error) { return nil, err }

// steps is the session: crictl's commands in a user's order, every list
// filter, and the error cases, each where it arises.
func steps() []step {
	return []step{
		{"version", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return s.r.rt.Version(ctx, "v1")
		})},
		{"status", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return s.r.rt.Status(ctx, false)
		})},
		{"info (status verbose)", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return s.r.rt.Status(ctx, true)
		})},
		{"runtime config", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return s.r.rt.RuntimeConfig(ctx)
		})},
		{"images", call(func(ctx context.Context, s *session) (proto.Message, error) {
			is, err := s.r.img.ListImages(ctx, &cri.ImageFilter{})
			return &cri.ListImagesResponse{Images: is}, err
		})},
		{"images busybox (filter)", call(func(ctx context.Context, s *session) (proto.Message, error) {
			is, err := s.r.img.ListImages(ctx, &cri.ImageFilter{Image: imageSpec("busybox")})
			return &cri.ListImagesResponse{Images: is}, err
		})},
		{"inspecti busybox", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return s.r.img.ImageStatus(ctx, imageSpec("busybox"), false)
		})},
		{"inspecti -v busybox", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return s.r.img.ImageStatus(ctx, imageSpec("busybox"), true)
		})},
		{"inspecti missing image", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return s.r.img.ImageStatus(ctx, imageSpec("nosuch:1.0"), false)
		})},
		{"imagefsinfo", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return s.r.img.ImageFsInfo(ctx)
		})},
		{"pull busybox (present)", call(func(ctx context.Context, s *session) (proto.Message, error) {
			ref, err := s.r.img.PullImage(ctx, imageSpec("busybox"), nil, nil)
			return &cri.PullImageResponse{ImageRef: ref}, err
		})},
		{"pull empty reference", call(func(ctx context.Context, s *session) (proto.Message, error) {
			ref, err := s.r.img.PullImage(ctx, imageSpec(""), nil, nil)
			return &cri.PullImageResponse{ImageRef: ref}, err
		})},
		{"runp", call(func(ctx context.Context, s *session) (proto.Message, error) {
			id, err := s.r.rt.RunPodSandbox(ctx, s.podConfig("diff"), "")
			s.pod = id
			s.norm.name(id, "<pod>")
			return &cri.RunPodSandboxResponse{PodSandboxId: id}, err
		})},
		{"runp same name (conflict)", call(func(ctx context.Context, s *session) (proto.Message, error) {
			id, err := s.r.rt.RunPodSandbox(ctx, s.podConfig("diff"), "")
			return &cri.RunPodSandboxResponse{PodSandboxId: id}, err
		})},
		{"runp bad runtime handler", call(func(ctx context.Context, s *session) (proto.Message, error) {
			id, err := s.r.rt.RunPodSandbox(ctx, s.podConfig("diff-handler"), "nosuch")
			return &cri.RunPodSandboxResponse{PodSandboxId: id}, err
		})},
		{"runp no metadata", call(func(ctx context.Context, s *session) (proto.Message, error) {
			pc := s.podConfig("x")
			pc.Metadata = nil
			id, err := s.r.rt.RunPodSandbox(ctx, pc, "")
			return &cri.RunPodSandboxResponse{PodSandboxId: id}, err
		})},
		{"inspectp", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return s.r.rt.PodSandboxStatus(ctx, s.pod, false)
		})},
		{"inspectp -v", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return s.r.rt.PodSandboxStatus(ctx, s.pod, true)
		})},
		{"pods", podList(func(s *session) *cri.PodSandboxFilter { return &cri.PodSandboxFilter{} })},
		{"pods --id", podList(func(s *session) *cri.PodSandboxFilter { return &cri.PodSandboxFilter{Id: s.pod} })},
		{"pods --id prefix", podList(func(s *session) *cri.PodSandboxFilter { return &cri.PodSandboxFilter{Id: s.pod[:12]} })},
		{"pods --state ready", podList(func(s *session) *cri.PodSandboxFilter {
			return &cri.PodSandboxFilter{State: &cri.PodSandboxStateValue{State: cri.PodSandboxState_SANDBOX_READY}}
		})},
		{"pods --state notready", podList(func(s *session) *cri.PodSandboxFilter {
			return &cri.PodSandboxFilter{State: &cri.PodSandboxStateValue{State: cri.PodSandboxState_SANDBOX_NOTREADY}}
		})},
		{"pods --label app=diff", podList(func(s *session) *cri.PodSandboxFilter {
			return &cri.PodSandboxFilter{LabelSelector: map[string]string{"app": "diff"}}
		})},
		{"pods --label app=none", podList(func(s *session) *cri.PodSandboxFilter {
			return &cri.PodSandboxFilter{LabelSelector: map[string]string{"app": "none"}}
		})},
		{"pods --id missing", podList(func(s *session) *cri.PodSandboxFilter { return &cri.PodSandboxFilter{Id: "deadbeef"} })},
		{"create", call(func(ctx context.Context, s *session) (proto.Message, error) {
			id, err := s.r.rt.CreateContainer(ctx, s.pod, containerConfig("c1"), s.podConfig("diff"))
			s.ctr = id
			s.norm.name(id, "<c1>")
			return &cri.CreateContainerResponse{ContainerId: id}, err
		})},
		{"create same name (conflict)", call(func(ctx context.Context, s *session) (proto.Message, error) {
			id, err := s.r.rt.CreateContainer(ctx, s.pod, containerConfig("c1"), s.podConfig("diff"))
			return &cri.CreateContainerResponse{ContainerId: id}, err
		})},
		{"create in missing pod", call(func(ctx context.Context, s *session) (proto.Message, error) {
			id, err := s.r.rt.CreateContainer(ctx, "deadbeef", containerConfig("c9"), s.podConfig("diff"))
			return &cri.CreateContainerResponse{ContainerId: id}, err
		})},
		{"create no metadata", call(func(ctx context.Context, s *session) (proto.Message, error) {
			cc := containerConfig("c9")
			cc.Metadata = nil
			id, err := s.r.rt.CreateContainer(ctx, s.pod, cc, s.podConfig("diff"))
			return &cri.CreateContainerResponse{ContainerId: id}, err
		})},
		{"create missing image", call(func(ctx context.Context, s *session) (proto.Message, error) {
			cc := containerConfig("c9")
			cc.Image = imageSpec("nosuch:1.0")
			id, err := s.r.rt.CreateContainer(ctx, s.pod, cc, s.podConfig("diff"))
			return &cri.CreateContainerResponse{ContainerId: id}, err
		})},
		{"inspect (created)", containerStatus(func(s *session) string { return s.ctr }, false)},
		{"ps -a --state created", ctrList(func(s *session) *cri.ContainerFilter {
			return &cri.ContainerFilter{State: &cri.ContainerStateValue{State: cri.ContainerState_CONTAINER_CREATED}}
		})},
		{"start", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.StartContainer(ctx, s.ctr))
		})},
		{"start again (running)", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.StartContainer(ctx, s.ctr))
		})},
		{"start missing", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.StartContainer(ctx, "deadbeef"))
		})},
		{"create c2", call(func(ctx context.Context, s *session) (proto.Message, error) {
			id, err := s.r.rt.CreateContainer(ctx, s.pod, containerConfig("c2"), s.podConfig("diff"))
			s.ctr2 = id
			s.norm.name(id, "<c2>")
			return &cri.CreateContainerResponse{ContainerId: id}, err
		})},
		{"inspect (running)", containerStatus(func(s *session) string { return s.ctr }, false)},
		{"inspect -v (running)", containerStatus(func(s *session) string { return s.ctr }, true)},
		{"inspect missing", containerStatus(func(s *session) string { return "deadbeef" }, false)},
		{"inspect empty id", containerStatus(func(s *session) string { return "" }, false)},
		{"ps -a", ctrList(func(s *session) *cri.ContainerFilter { return &cri.ContainerFilter{} })},
		{"ps --id", ctrList(func(s *session) *cri.ContainerFilter { return &cri.ContainerFilter{Id: s.ctr} })},
		{"ps --id prefix", ctrList(func(s *session) *cri.ContainerFilter { return &cri.ContainerFilter{Id: s.ctr[:12]} })},
		{"ps --id missing", ctrList(func(s *session) *cri.ContainerFilter { return &cri.ContainerFilter{Id: "deadbeef"} })},
		{"ps (running)", ctrList(func(s *session) *cri.ContainerFilter {
			return &cri.ContainerFilter{State: &cri.ContainerStateValue{State: cri.ContainerState_CONTAINER_RUNNING}}
		})},
		{"ps --state exited", ctrList(func(s *session) *cri.ContainerFilter {
			return &cri.ContainerFilter{State: &cri.ContainerStateValue{State: cri.ContainerState_CONTAINER_EXITED}}
		})},
		{"ps --pod", ctrList(func(s *session) *cri.ContainerFilter { return &cri.ContainerFilter{PodSandboxId: s.pod} })},
		{"ps --pod prefix", ctrList(func(s *session) *cri.ContainerFilter { return &cri.ContainerFilter{PodSandboxId: s.pod[:12]} })},
		{"ps --pod missing", ctrList(func(s *session) *cri.ContainerFilter { return &cri.ContainerFilter{PodSandboxId: "deadbeef"} })},
		{"ps --label tier=c1", ctrList(func(s *session) *cri.ContainerFilter {
			return &cri.ContainerFilter{LabelSelector: map[string]string{"tier": "c1"}}
		})},
		{"ps --label tier=none", ctrList(func(s *session) *cri.ContainerFilter {
			return &cri.ContainerFilter{LabelSelector: map[string]string{"tier": "none"}}
		})},
		{"update --cpu-share 512 --memory 64Mi", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.UpdateContainerResources(ctx, s.ctr, &cri.ContainerResources{Linux: &cri.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 64 << 20}}))
		})},
		{"inspect after update", containerStatus(func(s *session) string { return s.ctr }, false)},
		{"update missing", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.UpdateContainerResources(ctx, "deadbeef", &cri.ContainerResources{Linux: &cri.LinuxContainerResources{CpuShares: 512}}))
		})},
		{"update created (not running)", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.UpdateContainerResources(ctx, s.ctr2, &cri.ContainerResources{Linux: &cri.LinuxContainerResources{CpuShares: 512}}))
		})},
		{"stats", call(func(ctx context.Context, s *session) (proto.Message, error) {
			st, err := s.r.rt.ContainerStats(ctx, s.ctr)
			return &cri.ContainerStatsResponse{Stats: st}, err
		})},
		{"stats missing", call(func(ctx context.Context, s *session) (proto.Message, error) {
			st, err := s.r.rt.ContainerStats(ctx, "deadbeef")
			return &cri.ContainerStatsResponse{Stats: st}, err
		})},
		{"stats -a", ctrStats(func(s *session) *cri.ContainerStatsFilter { return &cri.ContainerStatsFilter{} })},
		{"stats --pod", ctrStats(func(s *session) *cri.ContainerStatsFilter { return &cri.ContainerStatsFilter{PodSandboxId: s.pod} })},
		{"stats --label tier=c1", ctrStats(func(s *session) *cri.ContainerStatsFilter {
			return &cri.ContainerStatsFilter{LabelSelector: map[string]string{"tier": "c1"}}
		})},
		{"statsp", call(func(ctx context.Context, s *session) (proto.Message, error) {
			st, err := s.r.rt.PodSandboxStats(ctx, s.pod)
			return &cri.PodSandboxStatsResponse{Stats: st}, err
		})},
		{"exec --sync echo hi", call(func(ctx context.Context, s *session) (proto.Message, error) {
			out, errOut, err := s.r.rt.ExecSync(ctx, s.ctr, []string{"echo", "hi"}, 10*time.Second)
			return &cri.ExecSyncResponse{Stdout: out, Stderr: errOut}, err
		})},
		{"exec --sync missing container", call(func(ctx context.Context, s *session) (proto.Message, error) {
			out, errOut, err := s.r.rt.ExecSync(ctx, "deadbeef", []string{"true"}, 10*time.Second)
			return &cri.ExecSyncResponse{Stdout: out, Stderr: errOut}, err
		})},
		{"exec --sync created container", call(func(ctx context.Context, s *session) (proto.Message, error) {
			out, errOut, err := s.r.rt.ExecSync(ctx, s.ctr2, []string{"true"}, 10*time.Second)
			return &cri.ExecSyncResponse{Stdout: out, Stderr: errOut}, err
		})},
		{"reopen log", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.ReopenContainerLog(ctx, s.ctr))
		})},
		{"reopen log missing", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.ReopenContainerLog(ctx, "deadbeef"))
		})},
		{"reopen log created", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.ReopenContainerLog(ctx, s.ctr2))
		})},
		{"stop -t 0", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.StopContainer(ctx, s.ctr, 0))
		})},
		{"inspect (exited)", containerStatus(func(s *session) string { return s.ctr }, false)},
		{"ps --state exited (after stop)", ctrList(func(s *session) *cri.ContainerFilter {
			return &cri.ContainerFilter{State: &cri.ContainerStateValue{State: cri.ContainerState_CONTAINER_EXITED}}
		})},
		{"stop again (exited)", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.StopContainer(ctx, s.ctr, 0))
		})},
		{"stop missing", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.StopContainer(ctx, "deadbeef", 0))
		})},
		{"start exited", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.StartContainer(ctx, s.ctr))
		})},
		{"update exited", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.UpdateContainerResources(ctx, s.ctr, &cri.ContainerResources{Linux: &cri.LinuxContainerResources{CpuShares: 300}}))
		})},
		{"reopen log exited", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.ReopenContainerLog(ctx, s.ctr))
		})},
		{"exec --sync exited", call(func(ctx context.Context, s *session) (proto.Message, error) {
			out, errOut, err := s.r.rt.ExecSync(ctx, s.ctr, []string{"true"}, 10*time.Second)
			return &cri.ExecSyncResponse{Stdout: out, Stderr: errOut}, err
		})},
		{"rm", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.RemoveContainer(ctx, s.ctr))
		})},
		{"rm again (missing)", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.RemoveContainer(ctx, s.ctr))
		})},
		{"stopp", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.StopPodSandbox(ctx, s.pod))
		})},
		{"inspectp (notready)", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return s.r.rt.PodSandboxStatus(ctx, s.pod, false)
		})},
		{"inspect c2 after stopp", containerStatus(func(s *session) string { return s.ctr2 }, false)},
		{"pods (after stopp)", podList(func(s *session) *cri.PodSandboxFilter { return &cri.PodSandboxFilter{} })},
		{"stopp again", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.StopPodSandbox(ctx, s.pod))
		})},
		{"create in stopped pod", call(func(ctx context.Context, s *session) (proto.Message, error) {
			id, err := s.r.rt.CreateContainer(ctx, s.pod, containerConfig("c3"), s.podConfig("diff"))
			return &cri.CreateContainerResponse{ContainerId: id}, err
		})},
		{"rmp", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.RemovePodSandbox(ctx, s.pod))
		})},
		{"ps -a (after rmp)", ctrList(func(s *session) *cri.ContainerFilter { return &cri.ContainerFilter{} })},
		{"rmp again (missing)", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.RemovePodSandbox(ctx, s.pod))
		})},
		{"stopp missing", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.StopPodSandbox(ctx, "deadbeef"))
		})},
		{"inspectp missing", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return s.r.rt.PodSandboxStatus(ctx, "deadbeef", false)
		})},
		{"runp diff2", call(func(ctx context.Context, s *session) (proto.Message, error) {
			id, err := s.r.rt.RunPodSandbox(ctx, s.podConfig("diff2"), "")
			s.pod2 = id
			s.norm.name(id, "<pod2>")
			return &cri.RunPodSandboxResponse{PodSandboxId: id}, err
		})},
		{"create+start c4 in diff2", call(func(ctx context.Context, s *session) (proto.Message, error) {
			id, err := s.r.rt.CreateContainer(ctx, s.pod2, containerConfig("c4"), s.podConfig("diff2"))
			s.ctr4 = id
			s.norm.name(id, "<c4>")
			if err == nil {
				err = s.r.rt.StartContainer(ctx, id)
			}
			return &cri.CreateContainerResponse{ContainerId: id}, err
		})},
		{"rm running", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.RemoveContainer(ctx, s.ctr4))
		})},
		{"create+start c5 in diff2", call(func(ctx context.Context, s *session) (proto.Message, error) {
			id, err := s.r.rt.CreateContainer(ctx, s.pod2, containerConfig("c5"), s.podConfig("diff2"))
			s.norm.name(id, "<c5>")
			if err == nil {
				err = s.r.rt.StartContainer(ctx, id)
			}
			return &cri.CreateContainerResponse{ContainerId: id}, err
		})},
		{"rmp running pod (container running)", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.rt.RemovePodSandbox(ctx, s.pod2))
		})},
		{"ps -a (after rmp running pod)", ctrList(func(s *session) *cri.ContainerFilter { return &cri.ContainerFilter{} })},
		{"rmi busybox", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.img.RemoveImage(ctx, imageSpec("busybox")))
		})},
		{"inspecti busybox (removed)", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return s.r.img.ImageStatus(ctx, imageSpec("busybox"), false)
		})},
		{"rmi again (missing)", call(func(ctx context.Context, s *session) (proto.Message, error) {
			return empty(s.r.img.RemoveImage(ctx, imageSpec("busybox")))
		})},
		{"images (after rmi)", call(func(ctx context.Context, s *session) (proto.Message, error) {
			is, err := s.r.img.ListImages(ctx, &cri.ImageFilter{})
			return &cri.ListImagesResponse{Images: is}, err
		})},
	}
}

// call gives a step crictl's context: a fresh one per call.
func call(f func(ctx context.Context, s *session) (proto.Message, error)) func(*session) (proto.Message, error) {
	return func(s *session) (proto.Message, error) {
		ctx, cancel := s.ctx()
		defer cancel()
		return f(ctx, s)
	}
}

func podList(filter func(*session) *cri.PodSandboxFilter) func(*session) (proto.Message, error) {
	return call(func(ctx context.Context, s *session) (proto.Message, error) {
		ps, err := s.r.rt.ListPodSandbox(ctx, filter(s))
		return &cri.ListPodSandboxResponse{Items: ps}, err
	})
}

func ctrList(filter func(*session) *cri.ContainerFilter) func(*session) (proto.Message, error) {
	return call(func(ctx context.Context, s *session) (proto.Message, error) {
		cs, err := s.r.rt.ListContainers(ctx, filter(s))
		return &cri.ListContainersResponse{Containers: cs}, err
	})
}

func ctrStats(filter func(*session) *cri.ContainerStatsFilter) func(*session) (proto.Message, error) {
	return call(func(ctx context.Context, s *session) (proto.Message, error) {
		st, err := s.r.rt.ListContainerStats(ctx, filter(s))
		return &cri.ListContainerStatsResponse{Stats: st}, err
	})
}

func containerStatus(id func(*session) string, verbose bool) func(*session) (proto.Message, error) {
	return call(func(ctx context.Context, s *session) (proto.Message, error) {
		return s.r.rt.ContainerStatus(ctx, id(s), verbose)
	})
}
