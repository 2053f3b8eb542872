// Package disk models a node's disks the way the kernel shares them: block
// devices that serve one sync after another, filesystems on them whose
// dirty pages are one pool fed by every writer on that filesystem (every
// running container's upper dir, a noisy neighbour), bounded by a dirty
// limit like vm.dirty_bytes, and the two ways the fake waits on them:
//
//   - syncfs (what overlayfs' unmount without "volatile" does): every dirty
//     byte of the whole filesystem is written back, not just the dying
//     container's, after whatever the device already has queued;
//   - fsync of one small file (a status checkpoint, a bbolt commit): its
//     few bytes, after the fsyncs before it and behind the writeback in
//     flight on the device (up to the device's queue of it).
//
// Every sync takes the device's per-sync latency plus bytes / throughput.
// syncfs works run one after another, as the flusher's FIFO work list runs
// them; an fsync waits for the syncfs in flight, not for those queued
// behind it (see Device). That is a simplification of a block layer, whose
// scheduler interleaves requests; what it keeps is what the field saw: a
// small fsync on a device busy with gigabytes of writeback waits for them
// (ext4's journal commit waits for the ordered data ahead of it).
//
// Time is whatever the caller's clock says: every method takes now, and
// IO.Wait sleeps on the project clock until the I/O is done.
package disk

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// DeviceConfig describes one block device.
type DeviceConfig struct {
	// Name is the device's name, e.g. "vdb".
	Name string
	// Throughput is bytes per second written back.
	Throughput int64
	// SyncLatency is paid by every sync or fsync on top of its bytes (a
	// cache flush, a network disk's round trip).
	SyncLatency time.Duration
	// Queue is how much of the writeback in flight an fsync waits behind:
	// the device's request queue (nr_requests x max_sectors_kb), full of
	// writeback, which its I/O must drain through. 0: all of it.
	Queue int64
}

// Device is a block device. A syncfs is work for the device's flusher
// (the bdi writeback thread), whose work list is FIFO: a syncfs starts
// when the one before it ends. An fsync of one file does not go through
// that list: it waits behind the writeback in flight (its I/O drains
// through a request queue full of it, and ext4's journal commit waits for
// the ordered data ahead of it), up to Queue bytes of it, not for the
// syncfs works queued behind that one; and for the fsyncs before it.
type Device struct {
	cfg DeviceConfig

	mu sync.Mutex
	// works are the syncfs works not yet done, in order; busyUntil is when
	// the last of them ends.
	works     []request
	busyUntil time.Time
	// fsyncs are the fsyncs not yet done; fsyncUntil is when the last ends.
	fsyncs     []request
	fsyncUntil time.Time
}

// request is one queued sync: what it is and when it runs.
type request struct {
	what        string
	bytes       int64
	start, done time.Time
}

// NewDevice makes a device; throughput must be > 0.
func NewDevice(cfg DeviceConfig) (*Device, error) {
	if cfg.Throughput <= 0 {
		return nil, fmt.Errorf("disk device %q: throughput must be > 0, got %d", cfg.Name, cfg.Throughput)
	}
	if cfg.Queue < 0 {
		return nil, fmt.Errorf("disk device %q: queue must not be negative, got %d", cfg.Name, cfg.Queue)
	}
	if cfg.SyncLatency < 0 {
		return nil, fmt.Errorf("disk device %q: sync latency must not be negative, got %v", cfg.Name, cfg.SyncLatency)
	}
	return &Device{cfg: cfg}, nil
}

// Name is the device's name.
func (d *Device) Name() string { return d.cfg.Name }

// cost is how long the device takes for one sync of n bytes.
func (d *Device) cost(n int64) time.Duration {
	return d.cfg.SyncLatency + time.Duration(float64(n)/float64(d.cfg.Throughput)*float64(time.Second))
}

// submitSyncfs queues a syncfs of n bytes at now behind every work and
// fsync not yet done.
func (d *Device) submitSyncfs(now time.Time, n int64, what string) (r request, ahead int, biggest request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pruneLocked(now)
	ahead = len(d.works) + len(d.fsyncs)
	for _, w := range d.works {
		if w.bytes > biggest.bytes {
			biggest = w
		}
	}
	r = request{what: what, bytes: n, start: latest(now, d.busyUntil, d.fsyncUntil)}
	r.done = r.start.Add(d.cost(n))
	d.busyUntil = r.done
	d.works = append(d.works, r)
	return r, ahead, biggest
}

// submitFsync queues an fsync of n bytes at now behind the syncfs in
// flight and the fsyncs not yet done.
func (d *Device) submitFsync(now time.Time, n int64, what string) (r request, ahead int, inflight request) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pruneLocked(now)
	ahead = len(d.fsyncs)
	if len(d.works) > 0 && !d.works[0].start.After(now) {
		inflight = d.works[0]
		ahead++
	}
	behind := inflight.done
	if d.cfg.Queue > 0 && inflight.done.After(now) {
		if drain := now.Add(d.cost(d.cfg.Queue) - d.cfg.SyncLatency); drain.Before(behind) {
			behind = drain
		}
	}
	r = request{what: what, bytes: n, start: latest(now, behind, d.fsyncUntil)}
	r.done = r.start.Add(d.cost(n))
	d.fsyncUntil = r.done
	d.fsyncs = append(d.fsyncs, r)
	return r, ahead, inflight
}

func latest(ts ...time.Time) time.Time {
	var l time.Time
	for _, t := range ts {
		if t.After(l) {
			l = t
		}
	}
	return l
}

// Queued is the number of syncs and fsyncs not done at now.
func (d *Device) Queued(now time.Time) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pruneLocked(now)
	return len(d.works) + len(d.fsyncs)
}

func (d *Device) pruneLocked(now time.Time) {
	d.works = pruned(d.works, now)
	d.fsyncs = pruned(d.fsyncs, now)
}

// pruned drops the requests done at now; they end in order.
func pruned(rs []request, now time.Time) []request {
	i := 0
	for i < len(rs) && !rs[i].done.After(now) {
		i++
	}
	return rs[i:]
}

// Filesystem is one mounted filesystem on a device, with its pool of dirty
// pages.
type Filesystem struct {
	mount   string
	dev     *Device
	limit   int64
	private bool

	mu sync.Mutex
	// dirty is the pool at asOf; rate is what its writers add per second.
	dirty int64
	asOf  time.Time
	rate  int64
}

// NewFilesystem mounts a filesystem at mount (a name for messages, e.g.
// "/var/lib/containerd") on dev; its dirty pool is capped at limit
// (0: no cap).
func NewFilesystem(mount string, dev *Device, limit int64) *Filesystem {
	return &Filesystem{mount: mount, dev: dev, limit: limit}
}

// Private is a filesystem alone on a device of its own: the per-container
// disk of the default layout, where nothing is shared.
func Private(mount string, throughput, limit int64) (*Filesystem, error) {
	dev, err := NewDevice(DeviceConfig{Name: mount, Throughput: throughput})
	if err != nil {
		return nil, err
	}
	f := NewFilesystem(mount, dev, limit)
	f.private = true
	return f, nil
}

// Mount is where the filesystem is mounted.
func (f *Filesystem) Mount() string { return f.mount }

// Device is the device the filesystem is on.
func (f *Filesystem) Device() *Device { return f.dev }

// advanceLocked brings the pool to now: writers add rate per second until
// the pool reaches the limit, where the kernel throttles them
// (balance_dirty_pages) and writeback keeps it there.
func (f *Filesystem) advanceLocked(now time.Time) {
	if !f.asOf.IsZero() && now.After(f.asOf) && f.rate > 0 {
		f.dirty += int64(now.Sub(f.asOf).Seconds() * float64(f.rate))
	}
	f.capLocked()
	if f.asOf.IsZero() || now.After(f.asOf) {
		f.asOf = now
	}
}

func (f *Filesystem) capLocked() {
	if f.limit > 0 && f.dirty > f.limit {
		f.dirty = f.limit
	}
}

// Dirty is the pool's dirty bytes at now.
func (f *Filesystem) Dirty(now time.Time) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advanceLocked(now)
	return f.dirty
}

// Write adds n dirty bytes at now (a container's initial dirty pages, an
// image layer unpacked).
func (f *Filesystem) Write(now time.Time, n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advanceLocked(now)
	f.dirty += n
	f.capLocked()
}

// Writer is one steady source of dirty pages on a filesystem: a running
// container's upper dir, a noisy neighbour.
type Writer struct {
	fs   *Filesystem
	rate int64

	mu      sync.Mutex
	writing bool
}

// NewWriter makes a writer of rate bytes per second; it writes only
// between Start and Stop.
func (f *Filesystem) NewWriter(rate int64) *Writer { return &Writer{fs: f, rate: max(rate, 0)} }

// Start makes the writer dirty pages from now on.
func (w *Writer) Start(now time.Time) { w.set(now, true) }

// Stop ends the writing at now; what it dirtied stays dirty until synced.
func (w *Writer) Stop(now time.Time) { w.set(now, false) }

func (w *Writer) set(now time.Time, on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.writing == on || w.rate == 0 {
		w.writing = on
		return
	}
	w.writing = on
	f := w.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	f.advanceLocked(now)
	if on {
		f.rate += w.rate
	} else {
		f.rate -= w.rate
	}
}

// IO is one sync queued on a device.
type IO struct {
	// What says what it is, e.g. "syncfs of /var/lib/containerd overlay".
	What   string
	Device string
	// Bytes is what this I/O writes: for a syncfs, the whole filesystem's
	// dirty pool, every writer's pages.
	Bytes int64
	// Syncfs tells a syncfs from an fsync of one file; Private, a syncfs
	// of a filesystem nobody else writes to.
	Syncfs, Private bool
	// Ahead is how many requests it waits behind on the device; Behind
	// names the biggest syncfs among them ("" if none wrote anything).
	Ahead  int
	Behind string
	Start  time.Time
	Done   time.Time
}

// Syncfs writes back every dirty byte of the filesystem at now: the pool
// empties and the device gets the bytes after what it has queued.
func (f *Filesystem) Syncfs(now time.Time, what string) IO {
	f.mu.Lock()
	f.advanceLocked(now)
	n := f.dirty
	f.dirty = 0
	f.mu.Unlock()
	r, ahead, biggest := f.dev.submitSyncfs(now, n, what)
	return IO{What: what, Device: f.dev.Name(), Bytes: n, Syncfs: true, Private: f.private, Ahead: ahead, Behind: biggest.String(), Start: now, Done: r.done}
}

// Fsync writes n bytes of one file (and nothing else of the pool) at now,
// after the syncfs in flight on the device and the fsyncs before it.
func (f *Filesystem) Fsync(now time.Time, n int64, what string) IO {
	r, ahead, inflight := f.dev.submitFsync(now, n, what)
	return IO{What: what, Device: f.dev.Name(), Bytes: n, Ahead: ahead, Behind: inflight.String(), Start: now, Done: r.done}
}

// Took is how long the I/O takes from its submission.
func (io IO) Took() time.Duration { return io.Done.Sub(io.Start) }

// Wait sleeps on clk until the I/O is done or ctx ends. The caller's
// deadline is not ctx: a sync in the kernel ignores it, so callers pass
// the lifetime of whatever would die with the process.
func (io IO) Wait(ctx context.Context, clk clock.Clock) error {
	if d := io.Done.Sub(clk.Now()); d > 0 {
		return clk.Sleep(ctx, d)
	}
	return nil
}

// String is how blame names the wait: "syncfs of /var/lib/containerd
// overlay: 3.1 GiB dirty node-wide on vdb, 2 syncs queued ahead".
func (io IO) String() string {
	if io.Syncfs && io.Private {
		return fmt.Sprintf("%s: %s dirty on %s, %s", io.What, HumanBytes(io.Bytes), io.Device, aheadPhrase(io.Ahead))
	}
	if io.Syncfs {
		return fmt.Sprintf("%s: %s dirty node-wide on %s, %s", io.What, HumanBytes(io.Bytes), io.Device, aheadPhrase(io.Ahead))
	}
	s := fmt.Sprintf("%s: %s on %s, %s", io.What, HumanBytes(io.Bytes), io.Device, aheadPhrase(io.Ahead))
	if io.Behind != "" {
		s += " (behind " + io.Behind + ")"
	}
	return s
}

func (r request) String() string {
	if r.bytes == 0 {
		return ""
	}
	return fmt.Sprintf("%s, %s", r.what, HumanBytes(r.bytes))
}

func aheadPhrase(n int) string {
	switch n {
	case 0:
		return "nothing queued ahead"
	case 1:
		return "1 sync queued ahead"
	}
	return fmt.Sprintf("%d syncs queued ahead", n)
}

// HumanBytes prints a size the way the blame chain reads it: "1.8 GiB".
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
