package shim

import (
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/api/types"

	"github.com/fakecontainerd/fakecontainerd/store/disk"
)

// DiskModel is how a container's fake disk behaves. A running container
// dirties its overlay upper dir at WriteRate bytes per second. In the
// per-container layout (no node disks declared) the upper dir is a
// filesystem of its own on a device of its own: its dirty pages stop at
// DirtyLimit (the kernel's vm.dirty_bytes) and unmounting an overlay that is
// not volatile syncs them at Throughput bytes per second. In a node layout
// (package disk) the upper dir is on the node's snapshotter filesystem,
// whose dirty pool and device every container shares, and the unmount's
// syncfs writes back the whole pool after what the device has queued. That
// sync is the only source of unmount delay in fakecontainerd, as it was in
// the field.
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

	// fs is the filesystem the upper dir is on, w the container's writes
	// there; not persisted: a restored process attaches again. fs is nil
	// when the disk syncs nothing (throughput 0).
	fs *disk.Filesystem
	w  *disk.Writer
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

// attach puts the upper dir on fs (a node layout's snapshotter
// filesystem) or, with fs nil, on a private disk of its own: its dirty
// bytes so far join the pool and, if it is running, its writes go on.
func (r *Rootfs) attach(fs *disk.Filesystem, now time.Time) error {
	if fs == nil {
		if r.Disk.Throughput <= 0 {
			return nil
		}
		var err error
		if fs, err = disk.Private("the container rootfs", r.Disk.Throughput, r.Disk.DirtyLimit); err != nil {
			return err
		}
	}
	r.fs, r.w = fs, fs.NewWriter(r.Disk.WriteRate)
	fs.Write(now, r.Dirty(now))
	if !r.WritingSince.IsZero() {
		r.w.Start(now)
	}
	return nil
}

func (r *Rootfs) startWriting(now time.Time) {
	r.WritingSince = now
	if r.w != nil {
		r.w.Start(now)
	}
}

func (r *Rootfs) stopWriting(now time.Time) {
	r.DirtyBase = r.Dirty(now)
	r.WritingSince = time.Time{}
	if r.w != nil {
		r.w.Stop(now)
	}
}

// syncfs is what umount2 of the overlay waits for at now: a syncfs of the
// upper dir's filesystem (every writer's dirty pages on it, after what its
// device has queued), or nothing for a volatile overlay.
func (r *Rootfs) syncfs(now time.Time) disk.IO {
	if r.Volatile() || r.fs == nil {
		return disk.IO{Start: now, Done: now}
	}
	return r.fs.Syncfs(now, "syncfs of "+r.fs.Mount()+" overlay")
}

// UnmountCost is how long umount2 takes if it starts at now. It queues
// the sync, so it is for tests and one unmount only.
func (r *Rootfs) UnmountCost(now time.Time) time.Duration { return r.syncfs(now).Took() }
