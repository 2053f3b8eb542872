package server

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/containerd/api/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/shim"
	imagestore "github.com/fakecontainerd/fakecontainerd/store/image"
)

// rootfsMounts is what the overlayfs snapshotter returns for an active
// snapshot: one overlay mount whose options end with the configured
// mount_options. That is how "volatile" reaches the shim's unmount.
func (c *criService) rootfsMounts(key string) []*types.Mount {
	dir := filepath.Join(c.config.Root, snapshotPluginDir, "snapshots", key)
	opts := []string{
		"index=off",
		"lowerdir=" + filepath.Join(c.config.Root, snapshotPluginDir, "snapshots", "base", "fs"),
		"upperdir=" + filepath.Join(dir, "fs"),
		"workdir=" + filepath.Join(dir, "work"),
	}
	opts = append(opts, c.config.MountOptions()...)
	// The volatile fix: overlayfs skips syncfs on unmount (PR #8676 made
	// mount_options configurable; "volatile" is the operator's choice).
	if c.toggles.Enabled(faults.FixVolatile) && !slices.Contains(opts, "volatile") {
		opts = append(opts, "volatile")
	}
	return []*types.Mount{{Type: "overlay", Source: "overlay", Options: opts}}
}

// sandboxSpec is the pause container's spec. The pause process writes
// nothing, so its rootfs never has anything to sync.
func (c *criService) sandboxSpec(id string, config *runtime.PodSandboxConfig, img imagestore.Image) *specs.Spec {
	annotations := map[string]string{
		annotationContainerType:                   containerTypeSandbox,
		annotationSandboxID:                       id,
		"io.kubernetes.cri.sandbox-name":          config.GetMetadata().GetName(),
		"io.kubernetes.cri.sandbox-namespace":     config.GetMetadata().GetNamespace(),
		"io.kubernetes.cri.sandbox-uid":           config.GetMetadata().GetUid(),
		"io.kubernetes.cri.sandbox-log-directory": config.GetLogDirectory(),
		annotationImageName:                       c.config.Plugins.CRI.SandboxImage,
		shim.AnnotationWriteRate:                  "0",
	}
	args := slices.Concat(img.Config.Entrypoint, img.Config.Cmd)
	if len(args) == 0 {
		args = []string{"/pause"}
	}
	return &specs.Spec{
		Version:     specs.Version,
		Process:     &specs.Process{Args: args, Cwd: "/", Env: img.Config.Env},
		Root:        &specs.Root{Path: "rootfs", Readonly: true},
		Hostname:    config.GetHostname(),
		Annotations: annotations,
		Linux:       &specs.Linux{CgroupsPath: config.GetLinux().GetCgroupParent(), Sysctl: config.GetLinux().GetSysctls()},
	}
}

// containerSpec is a container's spec: its command, env, resources and the
// CRI annotations (the fakecontainerd.io/ ones script the fake process).
// podAnnotations are the sandbox config's: their fakecontainerd.io/ keys
// script the container too (see podBehaviourAnnotations), under the
// container's own annotations.
func (c *criService) containerSpec(id, sandboxID string, config *runtime.ContainerConfig, img imagestore.Image, podAnnotations map[string]string) *specs.Spec {
	annotations := podBehaviourAnnotations(podAnnotations, config.GetMetadata().GetName())
	for k, v := range config.GetAnnotations() {
		annotations[k] = v
	}
	annotations[annotationContainerType] = containerTypeContainer
	annotations[annotationSandboxID] = sandboxID
	annotations[annotationContainerName] = config.GetMetadata().GetName()
	annotations[annotationImageName] = config.GetImage().GetImage()

	args := slices.Concat(config.GetCommand(), config.GetArgs())
	if len(config.GetCommand()) == 0 {
		entry := img.Config.Entrypoint
		cmd := img.Config.Cmd
		if len(config.GetArgs()) > 0 {
			cmd = config.GetArgs()
		}
		args = slices.Concat(entry, cmd)
	}
	env := slices.Clone(img.Config.Env)
	for _, kv := range config.GetEnvs() {
		env = append(env, kv.GetKey()+"="+string(kv.GetValue()))
	}
	cwd := config.GetWorkingDir()
	if cwd == "" {
		cwd = img.Config.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	var mounts []specs.Mount
	for _, m := range config.GetMounts() {
		opts := []string{"rbind"}
		if m.GetReadonly() {
			opts = append(opts, "ro")
		}
		mounts = append(mounts, specs.Mount{Destination: m.GetContainerPath(), Source: m.GetHostPath(), Type: "bind", Options: opts})
	}
	return &specs.Spec{
		Version:     specs.Version,
		Process:     &specs.Process{Args: args, Env: env, Cwd: cwd, Terminal: config.GetTty()},
		Root:        &specs.Root{Path: "rootfs", Readonly: config.GetLinux().GetSecurityContext().GetReadonlyRootfs()},
		Mounts:      mounts,
		Annotations: annotations,
		Linux:       &specs.Linux{Resources: toOCIResources(config.GetLinux().GetResources())},
	}
}

// fakeAnnotationPrefix starts every annotation that scripts a fake process.
const fakeAnnotationPrefix = "fakecontainerd.io/"

// podBehaviourAnnotations picks the fakecontainerd.io/ annotations of a pod
// sandbox config that apply to the container named name. kubelet copies a
// pod's annotations to its sandbox config only, never to a container's, so
// this is how a pod manifest scripts its containers:
//
//	fakecontainerd.io/exit-after: "30s"      every container of the pod
//	fakecontainerd.io/exit-after.job: "5s"   only the container named "job"
//
// The container-scoped key wins over the pod-wide one; annotations on the
// container config itself win over both (containerSpec applies them last).
// Other pod annotations are not copied.
func podBehaviourAnnotations(pod map[string]string, name string) map[string]string {
	out := map[string]string{}
	scoped := map[string]string{}
	for k, v := range pod {
		key, ok := strings.CutPrefix(k, fakeAnnotationPrefix)
		// Fault annotations arm faults on the pod itself (faults.go), not
		// behaviour of its containers.
		if !ok || strings.HasPrefix(k, annotationFaultPrefix) {
			continue
		}
		base, target, isScoped := strings.Cut(key, ".")
		switch {
		case !isScoped:
			out[k] = v
		case target == name:
			scoped[fakeAnnotationPrefix+base] = v
		}
	}
	for k, v := range scoped {
		out[k] = v
	}
	return out
}

// toOCIResources converts CRI Linux resources as containerd's
// opts.WithResources does.
func toOCIResources(r *runtime.LinuxContainerResources) *specs.LinuxResources {
	out := &specs.LinuxResources{CPU: &specs.LinuxCPU{}, Memory: &specs.LinuxMemory{}}
	if r == nil {
		return out
	}
	if r.CpuPeriod != 0 {
		p := uint64(r.CpuPeriod)
		out.CPU.Period = &p
	}
	if r.CpuQuota != 0 {
		q := r.CpuQuota
		out.CPU.Quota = &q
	}
	if r.CpuShares != 0 {
		s := uint64(r.CpuShares)
		out.CPU.Shares = &s
	}
	out.CPU.Cpus, out.CPU.Mems = r.CpusetCpus, r.CpusetMems
	if r.MemoryLimitInBytes != 0 {
		m := r.MemoryLimitInBytes
		out.Memory.Limit = &m
		// containerd's WithResources: swap equal to the memory limit keeps
		// the container from swapping by default (it checks for the swap
		// controller first; the fake's node is taken to have one).
		if r.MemorySwapLimitInBytes == 0 {
			out.Memory.Swap = &m
		}
	}
	if r.MemorySwapLimitInBytes != 0 {
		s := r.MemorySwapLimitInBytes
		out.Memory.Swap = &s
	}
	for _, h := range r.HugepageLimits {
		out.HugepageLimits = append(out.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.PageSize, Limit: h.Limit})
	}
	if len(r.Unified) > 0 {
		out.Unified = map[string]string{}
		for k, v := range r.Unified {
			out.Unified[k] = v
		}
	}
	return out
}

// toCRIResources is the reverse, for ContainerStatus.Resources, as
// containerd's copyResourcesToStatus.
func toCRIResources(r *specs.LinuxResources) *runtime.ContainerResources {
	if r == nil {
		return nil
	}
	l := &runtime.LinuxContainerResources{}
	if r.CPU != nil {
		if r.CPU.Period != nil {
			l.CpuPeriod = int64(*r.CPU.Period)
		}
		if r.CPU.Quota != nil {
			l.CpuQuota = *r.CPU.Quota
		}
		if r.CPU.Shares != nil {
			l.CpuShares = int64(*r.CPU.Shares)
		}
		l.CpusetCpus, l.CpusetMems = r.CPU.Cpus, r.CPU.Mems
	}
	if r.Memory != nil {
		if r.Memory.Limit != nil {
			l.MemoryLimitInBytes = *r.Memory.Limit
		}
		if r.Memory.Swap != nil {
			l.MemorySwapLimitInBytes = *r.Memory.Swap
		}
	}
	for _, h := range r.HugepageLimits {
		l.HugepageLimits = append(l.HugepageLimits, &runtime.HugepageLimit{PageSize: h.Pagesize, Limit: h.Limit})
	}
	if len(r.Unified) > 0 {
		l.Unified = map[string]string{}
		for k, v := range r.Unified {
			l.Unified[k] = v
		}
	}
	return &runtime.ContainerResources{Linux: l}
}

// validateResources refuses values no kernel would take, before any lock.
func validateResources(r *runtime.LinuxContainerResources) error {
	if r == nil {
		return nil
	}
	switch {
	case r.CpuPeriod < 0:
		return errInvalid("linux.cpu_period %d: must not be negative", r.CpuPeriod)
	case r.CpuQuota < -1:
		return errInvalid("linux.cpu_quota %d: must be -1 (unlimited) or more", r.CpuQuota)
	case r.CpuShares < 0:
		return errInvalid("linux.cpu_shares %d: must not be negative", r.CpuShares)
	case r.MemoryLimitInBytes < 0:
		return errInvalid("linux.memory_limit_in_bytes %d: must not be negative", r.MemoryLimitInBytes)
	case r.MemorySwapLimitInBytes < -1:
		return errInvalid("linux.memory_swap_limit_in_bytes %d: must be -1 (unlimited) or more", r.MemorySwapLimitInBytes)
	case r.OomScoreAdj < -1000 || r.OomScoreAdj > 1000:
		return errInvalid("linux.oom_score_adj %d: must be in -1000..1000", r.OomScoreAdj)
	}
	for _, field := range []struct{ name, v string }{{"cpuset_cpus", r.CpusetCpus}, {"cpuset_mems", r.CpusetMems}} {
		if err := validateCPUSet(field.v); err != nil {
			return errInvalid("linux.%s %q: %v", field.name, field.v, err)
		}
	}
	return nil
}

// validateCPUSet checks the kernel's list format: "0-3,5,7-8".
func validateCPUSet(s string) error {
	if s == "" {
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return fmt.Errorf("bad cpu %q", lo)
		}
		if isRange {
			if b, err := strconv.ParseUint(hi, 10, 16); err != nil || b < a {
				return fmt.Errorf("bad range %q", part)
			}
		}
	}
	return nil
}
