package server

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/store/disk"
)

// What containerd's root writes per fsync: a status checkpoint is one
// small JSON file; a bbolt commit writes its dirty pages and fdatasyncs,
// then its meta page and fdatasyncs again (bbolt tx.Commit).
const (
	statusCheckpointBytes = 4 << 10
	bboltPagesBytes       = 16 << 10
	bboltMetaBytes        = 4 << 10
)

// diskLayout is the config's node disk layout for package disk.
func diskLayout(f configs.FakeConfig) disk.Layout {
	d := f.Disk
	l := disk.Layout{RootMount: d.RootMount, RootDevice: d.RootDevice, RootfsDevice: d.RootfsDevice,
		SplitDevice: d.SplitDevice, DirtyLimit: f.DirtyLimit.Bytes()}
	for _, dev := range d.Devices {
		l.Devices = append(l.Devices, disk.DeviceConfig{Name: dev.Name, Throughput: dev.Throughput.Bytes(), SyncLatency: dev.SyncLatency.Duration(), Queue: dev.Queue.Bytes()})
	}
	for _, w := range d.Writers {
		l.Writers = append(l.Writers, disk.WriterConfig{Name: w.Name, Device: w.Device, Rate: w.Rate.Bytes()})
	}
	return l
}

// rootfsFilesystem is where the snapshotter's directory is: on its own
// device with split_disk. nil in the per-container layout.
func (c *criService) rootfsFilesystem() *disk.Filesystem {
	return c.disk.Rootfs(c.toggles.Enabled(faults.FixSplitDisk))
}

// fsyncRoot waits for fsyncs of files on containerd's root, one after
// another, each behind what the root's device has queued (rootfs
// writeback, when they share it), telling blame what the locks the caller
// holds wait for. The per-container layout models no such disk: nothing waits.
// The wait ignores the caller's deadline, as fsync does.
func (c *criService) fsyncRoot(what string, sizes ...int64) {
	root := c.disk.Root()
	if root == nil {
		return
	}
	start := c.clock.Now()
	var last disk.IO
	for _, n := range sizes {
		last = root.Fsync(c.clock.Now(), n, what)
		if c.tracker != nil && last.Done.After(last.Start) {
			c.tracker.detailHeld(last.String())
		}
		_ = last.Wait(c.lifetime, c.clock)
	}
	if took := c.clock.Since(start); took >= time.Second {
		c.log.WithFields(logrus.Fields{"file": what, "device": last.Device, "took": took, "queued_ahead": last.Ahead}).Debug("slow fsync on containerd's root")
	}
}

// statusFsync is a status checkpoint's fsync, under its status lock.
func (c *criService) statusFsync(id string) {
	c.fsyncRoot("fsync of the status checkpoint of "+shortID(id), statusCheckpointBytes)
}

// bboltCommit is a meta.db commit's two fdatasyncs, under bbolt's write
// lock.
func (c *criService) bboltCommit(ctx context.Context, op string) {
	c.fsyncRoot("fsync of meta.db ("+op+")", bboltPagesBytes, bboltMetaBytes)
}
