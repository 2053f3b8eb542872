package shim

import (
	"fmt"
	"strconv"
	"time"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/store/cpu"
	"github.com/fakecontainerd/fakecontainerd/store/disk"
)

// Annotations a user puts on a container config to script its fake process.
// They reach the shim the way every CRI annotation does in containerd: copied
// into the OCI spec's annotations in the bundle's config.json.
const (
	// AnnotationExitAfter makes the process exit by itself this long after
	// start (a Go duration, e.g. "30s").
	AnnotationExitAfter = "fakecontainerd.io/exit-after"
	// AnnotationExitCode is the exit code used with exit-after (default 0).
	AnnotationExitCode = "fakecontainerd.io/exit-code"
	// AnnotationStopGrace is how long the process takes to exit after
	// SIGTERM (a duration, or "never" to ignore SIGTERM like a PID 1 with no
	// handler). SIGKILL always stops it at once.
	AnnotationStopGrace = "fakecontainerd.io/stop-grace"
	// AnnotationWriteRate overrides the disk model's write rate (e.g. "5MiB").
	AnnotationWriteRate = "fakecontainerd.io/write-rate"
	// AnnotationDirtyBytes starts the rootfs with this many dirty bytes.
	AnnotationDirtyBytes = "fakecontainerd.io/dirty-bytes"
	// AnnotationDiskThroughput overrides the sync throughput at unmount.
	AnnotationDiskThroughput = "fakecontainerd.io/disk-throughput"
	// AnnotationDirtyLimit overrides the dirty-bytes cap.
	AnnotationDirtyLimit = "fakecontainerd.io/dirty-limit"
)

// Behaviour is what a fake process does, from the shim's defaults and the
// container's annotations.
type Behaviour struct {
	ExitAfter    time.Duration `json:"exit_after"` // 0: runs until killed
	ExitCode     uint32        `json:"exit_code"`
	StopGrace    time.Duration `json:"stop_grace"`
	IgnoreTerm   bool          `json:"ignore_term"`
	Disk         DiskModel     `json:"disk"`
	InitialDirty int64         `json:"initial_dirty"`
}

// Defaults are the shim-wide defaults that annotations override, and the
// node's disks.
type Defaults struct {
	Disk DiskModel
	// Node is the node layout's disks, shared by every in-process shim;
	// nil is the per-container layout (and every process-mode shim, which
	// is another process).
	Node *disk.Node
	// CPU is the node's cores, shared by every in-process shim and the
	// daemon; nil is the model off (and every process-mode shim). Costs
	// is what each piece of runc work costs on it.
	CPU   *cpu.Node
	Costs Costs
	// V1DeletedState plays containerd <= 1.2.6's shim (before #3244): runc
	// work ignores the call's deadline, and a deleted process stays,
	// answering Delete and Kill with Unknown.
	V1DeletedState bool
	StopGrace      time.Duration
	IgnoreTerm     bool
}

// Costs is the CPU time the shim's work takes on the node (store/cpu):
// each runc invocation is a process spawn, a Go runtime starting, and for
// create and exec a runc init that joins the container's namespaces.
type Costs struct {
	ShimStart, RuncCreate, RuncStart, RuncExec, RuncKill, RuncDelete, RuncUpdate time.Duration
}

// ParseBehaviour reads the fakecontainerd.io/ annotations. An invalid value
// is an error naming the annotation, so CreateContainer can refuse it with
// InvalidArgument before anything is created.
func ParseBehaviour(annotations map[string]string, d Defaults) (Behaviour, error) {
	b := Behaviour{Disk: d.Disk, StopGrace: d.StopGrace, IgnoreTerm: d.IgnoreTerm}
	if v, ok := annotations[AnnotationExitAfter]; ok {
		dur, err := time.ParseDuration(v)
		if err != nil || dur < 0 {
			return b, fmt.Errorf("annotation %s: %q is not a non-negative duration", AnnotationExitAfter, v)
		}
		b.ExitAfter = dur
	}
	if v, ok := annotations[AnnotationExitCode]; ok {
		code, err := strconv.ParseUint(v, 10, 8)
		if err != nil {
			return b, fmt.Errorf("annotation %s: %q is not an exit code in 0..255", AnnotationExitCode, v)
		}
		b.ExitCode = uint32(code)
	}
	if v, ok := annotations[AnnotationStopGrace]; ok {
		if v == "never" {
			b.IgnoreTerm = true
		} else {
			dur, err := time.ParseDuration(v)
			if err != nil || dur < 0 {
				return b, fmt.Errorf("annotation %s: %q is not a non-negative duration or \"never\"", AnnotationStopGrace, v)
			}
			b.StopGrace, b.IgnoreTerm = dur, false
		}
	}
	sizes := []struct {
		key string
		dst *int64
	}{
		{AnnotationWriteRate, &b.Disk.WriteRate},
		{AnnotationDirtyBytes, &b.InitialDirty},
		{AnnotationDiskThroughput, &b.Disk.Throughput},
		{AnnotationDirtyLimit, &b.Disk.DirtyLimit},
	}
	for _, s := range sizes {
		v, ok := annotations[s.key]
		if !ok {
			continue
		}
		if d.Node.Shared() && (s.key == AnnotationDiskThroughput || s.key == AnnotationDirtyLimit) {
			return b, fmt.Errorf("annotation %s: the node's disk layout declares its devices; a container's rootfs is on the node's snapshotter filesystem and has no disk of its own", s.key)
		}
		var bs configs.ByteSize
		if err := bs.UnmarshalText([]byte(v)); err != nil {
			return b, fmt.Errorf("annotation %s: %w", s.key, err)
		}
		*s.dst = bs.Bytes()
	}
	return b, nil
}
