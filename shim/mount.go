package shim

import (
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/api/types"
)

// DiskModel is how a shim's fake disk behaves. A running container dirties
// its overlay upper dir at WriteRate bytes per second, up to DirtyLimit (the
// kernel's vm.dirty_bytes); unmounting an overlay that is not volatile syncs
// the dirty bytes at Throughput bytes per second. That sync is the only
// source of unmount delay in fakecontainerd, as it was in the field.
type DiskModel struct {
	WriteRate  int64 `json:"write_rate"`
	DirtyLimit int64 `json:"dirty_limit"`
	Throughput int64 `json:"throughput"`
}

// Rootfs is a container's modelled rootfs mount.
type Rootfs struct {
	Type    string    `json:"type"`
	Source  string    `json:"source"`
	Target  string    `json:"target"`
	Options []string  `json:"options"`
	Disk    DiskModel `json:"disk"`
	// DirtyBase is what was dirty when writing last stopped (or at create);
	// WritingSince is when the running process started dirtying more (zero
	// while it is not running).
	DirtyBase    int64     `json:"dirty_base"`
	WritingSince time.Time `json:"writing_since"`
}

func newRootfs(mounts []*types.Mount, disk DiskModel, initialDirty int64) *Rootfs {
	r := &Rootfs{Disk: disk, DirtyBase: initialDirty}
	if len(mounts) > 0 {
		m := mounts[0]
		r.Type, r.Source, r.Target = m.Type, m.Source, m.Target
		r.Options = slices.Clone(m.Options)
	}
	return r
}

// Volatile reports whether the overlay was mounted with "volatile", which
// makes overlayfs skip syncfs on unmount (kernel >= 5.10).
func (r *Rootfs) Volatile() bool {
	return r.Type == "overlay" && slices.ContainsFunc(r.Options, func(o string) bool {
		return o == "volatile" || strings.HasPrefix(o, "volatile=")
	})
}

// Dirty is the number of dirty bytes at now.
func (r *Rootfs) Dirty(now time.Time) int64 {
	d := r.DirtyBase
	if !r.WritingSince.IsZero() && r.Disk.WriteRate > 0 {
		if el := now.Sub(r.WritingSince); el > 0 {
			d += int64(el.Seconds() * float64(r.Disk.WriteRate))
		}
	}
	if r.Disk.DirtyLimit > 0 && d > r.Disk.DirtyLimit {
		d = r.Disk.DirtyLimit
	}
	return d
}

func (r *Rootfs) startWriting(now time.Time) { r.WritingSince = now }

func (r *Rootfs) stopWriting(now time.Time) {
	r.DirtyBase = r.Dirty(now)
	r.WritingSince = time.Time{}
}

// UnmountCost is how long umount2 takes at now: the time to sync the dirty
// bytes, or nothing for a volatile overlay.
func (r *Rootfs) UnmountCost(now time.Time) time.Duration {
	if r.Volatile() || r.Disk.Throughput <= 0 {
		return 0
	}
	return time.Duration(float64(r.Dirty(now)) / float64(r.Disk.Throughput) * float64(time.Second))
}
