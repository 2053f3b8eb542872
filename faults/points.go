package faults

import (
	"fmt"
	"sort"
	"strings"
)

// Named fault points. Each sits where the real delay or failure happens;
// the comment says where.
const (
	// PointStatusLockRead and PointStatusLockWrite fire just before a
	// container's status lock is taken (Get; Update and UpdateSync).
	PointStatusLockRead  = "status.lock.read"
	PointStatusLockWrite = "status.lock.write"
	// PointStatusFsync fires inside UpdateSync, under the write lock, at the
	// fsync of the status checkpoint.
	PointStatusFsync = "status.fsync"
	// PointMetadataCommit fires inside a metadata (bbolt) write transaction,
	// just before it commits: the writer holds bbolt's write lock.
	PointMetadataCommit = "metadata.commit"
	// PointShimUnmount fires once in the shim's Delete, under the process
	// lock, at the start of the rootfs unmount (mount.UnmountAll).
	PointShimUnmount = "shim.unmount"
	// PointShimUmount2 fires at the entry of each umount2 syscall of that
	// unmount: runc-shim calls umount2 until EINVAL, so twice per Delete,
	// and the field's strace delay_enter on umount2 is paid twice.
	PointShimUmount2 = "shim.umount2"
	// PointSandboxCreate and PointContainerCreate fire in the shim's Create,
	// where runc create runs (the runc/D-Bus hang of incident 4).
	PointSandboxCreate   = "sandbox.create"
	PointContainerCreate = "container.create"
	// PointCNISetup and PointCNITeardown fire where RunPodSandbox and
	// StopPodSandbox call the CNI plugin.
	PointCNISetup    = "cni.setup"
	PointCNITeardown = "cni.teardown"
	// PointImagePull fires at the registry round trip, PointImageUnpack
	// inside the unpack's metadata write transaction.
	PointImagePull   = "image.pull"
	PointImageUnpack = "image.unpack"
	// PointContainerStatus fires in ContainerStatus after the container is
	// found: one container whose inspect hangs (the stuck mount of
	// incident 3).
	PointContainerStatus = "container.status"
)

// CRIMethods are the CRI methods with a "cri.<Method>.before" and
// "cri.<Method>.after" point each.
var CRIMethods = []string{
	"Version", "Status", "RuntimeConfig", "UpdateRuntimeConfig",
	"RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "PodSandboxStatus", "ListPodSandbox",
	"CreateContainer", "StartContainer", "StopContainer", "RemoveContainer", "ListContainers", "ContainerStatus",
	"UpdateContainerResources", "ReopenContainerLog", "ExecSync", "ContainerStats", "ListContainerStats",
	"PodSandboxStats", "ListPodSandboxStats", "GetContainerEvents",
	"PullImage", "ImageStatus", "ListImages", "RemoveImage", "ImageFsInfo",
}

// ShimMethods are the task methods with a "shim.<Method>" point each.
var ShimMethods = []string{
	"State", "Create", "Start", "Delete", "Pids", "Pause", "Resume", "Checkpoint", "Kill", "Exec",
	"ResizePty", "CloseIO", "Update", "Wait", "Stats", "Connect", "Shutdown",
}

// CRIPoint names the point before or after a CRI method's work.
func CRIPoint(method string, after bool) string {
	if after {
		return "cri." + method + ".after"
	}
	return "cri." + method + ".before"
}

// ShimPoint names the point of a shim task method.
func ShimPoint(method string) string { return "shim." + method }

// Points lists every point name, sorted.
func Points() []string {
	out := []string{
		PointStatusLockRead, PointStatusLockWrite, PointStatusFsync, PointMetadataCommit,
		PointShimUnmount, PointShimUmount2, PointSandboxCreate, PointContainerCreate, PointCNISetup, PointCNITeardown,
		PointImagePull, PointImageUnpack, PointContainerStatus,
	}
	for _, m := range CRIMethods {
		out = append(out, CRIPoint(m, false), CRIPoint(m, true))
	}
	for _, m := range ShimMethods {
		out = append(out, ShimPoint(m))
	}
	sort.Strings(out)
	return out
}

// ValidatePoint says whether a point name exists, suggesting close names.
func ValidatePoint(p string) error {
	for _, q := range Points() {
		if q == p {
			return nil
		}
	}
	var close []string
	for _, q := range Points() {
		if strings.Contains(q, p) || strings.Contains(p, q) {
			close = append(close, q)
		}
	}
	if len(close) > 0 && len(close) <= 6 {
		return fmt.Errorf("unknown fault point %q (did you mean %s?)", p, strings.Join(close, ", "))
	}
	return fmt.Errorf("unknown fault point %q (`fakecontainerd fault points` lists them)", p)
}

// panicPoints are where a panic models a real crash: a shim process dying.
func panicAllowed(point string) bool { return strings.HasPrefix(point, "shim.") }
