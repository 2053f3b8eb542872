package disk

import (
	"fmt"
	"path"
	"time"
)

// Layout is a node's disks: which devices there are and which of
// containerd's directories live on which. Without devices there is no
// node layout: every container rootfs is a private filesystem on a device
// of its own (Private), as in fakecontainerd before the node model.
type Layout struct {
	Devices []DeviceConfig
	// RootMount is containerd's root as the node mounts it (names only,
	// e.g. "/var/lib/containerd"); meta.db and the CRI status checkpoints
	// live there.
	RootMount string
	// RootDevice holds RootMount; RootfsDevice the overlay snapshotter's
	// directory, whose upper dirs are the container rootfs writable
	// layers. The same device means one filesystem: the usual node.
	RootDevice, RootfsDevice string
	// SplitDevice is where the split_disk fix puts the snapshotter's
	// directory: a filesystem of its own on its own device.
	SplitDevice string
	// DirtyLimit caps each filesystem's dirty pool (vm.dirty_bytes).
	DirtyLimit int64
	// Writers are noisy neighbours: steady writers on a device's
	// filesystem that are no container of ours.
	Writers []WriterConfig
}

// WriterConfig is a noisy neighbour.
type WriterConfig struct {
	Name   string
	Device string
	Rate   int64
}

// snapshotterDir is the overlay snapshotter's directory under the root.
const snapshotterDir = "io.containerd.snapshotter.v1.overlayfs"

// Node is a node's disks and filesystems. A nil Node is the per-container
// layout.
type Node struct {
	devices map[string]*Device
	// fs is the filesystem on each device.
	fs                  map[string]*Filesystem
	root, rootfs, split *Filesystem
}

// NewNode builds the layout; neighbours start writing at now. A layout
// without devices is the per-container one: NewNode returns nil.
func NewNode(l Layout, now time.Time) (*Node, error) {
	if len(l.Devices) == 0 {
		return nil, nil
	}
	n := &Node{devices: map[string]*Device{}, fs: map[string]*Filesystem{}}
	for i, dc := range l.Devices {
		if dc.Name == "" {
			return nil, fmt.Errorf("disk.devices[%d].name: must be set", i)
		}
		if n.devices[dc.Name] != nil {
			return nil, fmt.Errorf("disk.devices[%d].name: device %q declared twice", i, dc.Name)
		}
		d, err := NewDevice(dc)
		if err != nil {
			return nil, fmt.Errorf("disk.devices[%d]: %w", i, err)
		}
		n.devices[dc.Name] = d
	}
	rootMount := l.RootMount
	if rootMount == "" {
		rootMount = "/var/lib/containerd"
	}
	snapshots := path.Join(rootMount, snapshotterDir)
	mount := func(field, dev, at string) (*Filesystem, error) {
		if dev == "" {
			return nil, nil
		}
		d := n.devices[dev]
		if d == nil {
			return nil, fmt.Errorf("disk.%s: no device %q declared", field, dev)
		}
		if f := n.fs[dev]; f != nil {
			return f, nil
		}
		f := NewFilesystem(at, d, l.DirtyLimit)
		n.fs[dev] = f
		return f, nil
	}
	var err error
	if l.RootDevice == "" {
		return nil, fmt.Errorf("disk.root_device: must name a device when devices are declared")
	}
	if n.root, err = mount("root_device", l.RootDevice, rootMount); err != nil {
		return nil, err
	}
	rootfsDev := l.RootfsDevice
	if rootfsDev == "" {
		rootfsDev = l.RootDevice
	}
	if n.rootfs, err = mount("rootfs_device", rootfsDev, snapshots); err != nil {
		return nil, err
	}
	if l.SplitDevice != "" {
		if l.SplitDevice == l.RootDevice {
			return nil, fmt.Errorf("disk.split_device: %q holds containerd's root; split_disk needs a device of its own", l.SplitDevice)
		}
		if n.split, err = mount("split_device", l.SplitDevice, snapshots); err != nil {
			return nil, err
		}
	}
	for i, w := range l.Writers {
		if w.Rate < 0 {
			return nil, fmt.Errorf("disk.writers[%d].rate: must not be negative", i)
		}
		f, err := mount(fmt.Sprintf("writers[%d].device", i), w.Device, path.Join("/mnt", w.Device))
		if err != nil {
			return nil, err
		}
		if f == nil {
			return nil, fmt.Errorf("disk.writers[%d].device: must be set", i)
		}
		f.NewWriter(w.Rate).Start(now)
	}
	return n, nil
}

// Shared reports whether this is a node layout (not the per-container one).
func (n *Node) Shared() bool { return n != nil }

// Rootfs is the filesystem new container upper dirs go on; with split
// (the split_disk fix) the snapshotter's own device, if the layout has one.
func (n *Node) Rootfs(split bool) *Filesystem {
	if n == nil {
		return nil
	}
	if split && n.split != nil {
		return n.split
	}
	return n.rootfs
}

// Root is the filesystem of containerd's root (meta.db, status
// checkpoints); nil in the per-container layout, where their fsyncs wait
// on nothing modelled.
func (n *Node) Root() *Filesystem {
	if n == nil {
		return nil
	}
	return n.root
}
