package disk

import (
	"strings"
	"testing"
	"time"
)

const mib = 1 << 20

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// TestPool: the dirty pool of one filesystem is every writer's pages,
// capped at the limit, and a syncfs empties it for everyone.
func TestPool(t *testing.T) {
	type step struct {
		at    float64
		do    string // "start i", "stop i", "write n", "syncfs", "check"
		n     int64
		want  int64 // pool after the step (check, write), or bytes synced (syncfs)
		which int
	}
	cases := []struct {
		name  string
		rates []int64
		limit int64
		steps []step
	}{
		{name: "one writer", rates: []int64{mib}, limit: 0, steps: []step{
			{at: 0, do: "start"}, {at: 10, do: "check", want: 10 * mib}, {at: 10, do: "stop"}, {at: 20, do: "check", want: 10 * mib},
		}},
		{name: "writers add up", rates: []int64{mib, 2 * mib, 3 * mib}, steps: []step{
			{at: 0, do: "start", which: 0}, {at: 0, do: "start", which: 1}, {at: 5, do: "start", which: 2},
			{at: 10, do: "check", want: 10*3*mib + 5*3*mib},
		}},
		{name: "capped at the dirty limit", rates: []int64{10 * mib}, limit: 50 * mib, steps: []step{
			{at: 0, do: "start"}, {at: 100, do: "check", want: 50 * mib}, {at: 100, do: "write", n: mib, want: 50 * mib},
		}},
		{name: "syncfs takes every writer's pages", rates: []int64{mib, mib}, steps: []step{
			{at: 0, do: "start", which: 0}, {at: 0, do: "start", which: 1}, {at: 0, do: "write", n: 100 * mib, want: 100 * mib},
			{at: 10, do: "syncfs", want: 120 * mib}, {at: 10, do: "check", want: 0}, {at: 15, do: "check", want: 10 * mib},
		}},
		{name: "stopped writers' pages stay dirty until a sync", rates: []int64{mib}, steps: []step{
			{at: 0, do: "start"}, {at: 30, do: "stop"}, {at: 60, do: "syncfs", want: 30 * mib}, {at: 61, do: "check", want: 0},
		}},
		{name: "start twice counts once", rates: []int64{mib}, steps: []step{
			{at: 0, do: "start"}, {at: 1, do: "start"}, {at: 10, do: "check", want: 10 * mib},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dev, err := NewDevice(DeviceConfig{Name: "vdb", Throughput: 100 * mib})
			if err != nil {
				t.Fatal(err)
			}
			fs := NewFilesystem("/var/lib/containerd", dev, tc.limit)
			ws := make([]*Writer, len(tc.rates))
			for i, r := range tc.rates {
				ws[i] = fs.NewWriter(r)
			}
			for i, s := range tc.steps {
				now := at(s.at)
				var got int64
				switch s.do {
				case "start":
					ws[s.which].Start(now)
					continue
				case "stop":
					ws[s.which].Stop(now)
					continue
				case "write":
					fs.Write(now, s.n)
					got = fs.Dirty(now)
				case "syncfs":
					got = fs.Syncfs(now, "syncfs").Bytes
				case "check":
					got = fs.Dirty(now)
				}
				if got != s.want {
					t.Errorf("step %d (%s at %vs) = %d MiB (%d B), want %d MiB", i, s.do, s.at, got/mib, got, s.want/mib)
				}
			}
		})
	}
}

// TestQueue: one device serves syncs and fsyncs in order; each waits for
// those ahead of it, whatever filesystem they came from.
func TestQueue(t *testing.T) {
	type req struct {
		at    float64
		fs    int // index into the test's filesystems
		sync  bool
		bytes int64 // dirty written just before a syncfs, or the fsync's size
	}
	cases := []struct {
		name    string
		latency time.Duration
		queue   int64
		// twoDevices puts the second filesystem on a device of its own.
		twoDevices bool
		reqs       []req
		wantDone   []float64
		wantAhead  []int
	}{
		{name: "idle device", reqs: []req{{at: 0, sync: true, bytes: 100 * mib}},
			wantDone: []float64{10}, wantAhead: []int{0}},
		{name: "fsync behind a syncfs", reqs: []req{{at: 0, sync: true, bytes: 100 * mib}, {at: 1, fs: 1, bytes: 0}},
			wantDone: []float64{10, 10}, wantAhead: []int{0, 1}},
		{name: "syncfs works queue, an fsync waits only for the one in flight", reqs: []req{
			{at: 0, sync: true, bytes: 100 * mib}, {at: 2, sync: true, bytes: 50 * mib}, {at: 3, fs: 1, bytes: 10 * mib}},
			wantDone: []float64{10, 15, 11}, wantAhead: []int{0, 1, 1}},
		{name: "an fsync during the second work waits for it", reqs: []req{
			{at: 0, sync: true, bytes: 100 * mib}, {at: 2, sync: true, bytes: 50 * mib}, {at: 12, fs: 1, bytes: 0}},
			wantDone: []float64{10, 15, 15}, wantAhead: []int{0, 1, 1}},
		{name: "a syncfs waits for the fsyncs before it", reqs: []req{
			{at: 0, fs: 1, bytes: 10 * mib}, {at: 0, sync: true, bytes: 10 * mib}},
			wantDone: []float64{1, 2}, wantAhead: []int{0, 1}},
		{name: "done requests are not ahead", reqs: []req{{at: 0, sync: true, bytes: 10 * mib}, {at: 5, sync: true, bytes: 10 * mib}},
			wantDone: []float64{1, 6}, wantAhead: []int{0, 0}},
		{name: "an fsync waits for a queue's worth of the writeback in flight", queue: 20 * mib, reqs: []req{
			{at: 0, sync: true, bytes: 100 * mib}, {at: 1, fs: 1, bytes: 0}, {at: 9, fs: 1, bytes: 0}},
			wantDone: []float64{10, 3, 10}, wantAhead: []int{0, 1, 1}},
		{name: "latency per sync", latency: 500 * time.Millisecond, reqs: []req{{at: 0, fs: 1}, {at: 0, fs: 1}, {at: 0, fs: 1}},
			wantDone: []float64{0.5, 1, 1.5}, wantAhead: []int{0, 1, 2}},
		{name: "split devices do not queue on each other", twoDevices: true, reqs: []req{
			{at: 0, sync: true, bytes: 100 * mib}, {at: 1, fs: 1, bytes: 0}},
			wantDone: []float64{10, 1}, wantAhead: []int{0, 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vdb, err := NewDevice(DeviceConfig{Name: "vdb", Throughput: 10 * mib, SyncLatency: tc.latency, Queue: tc.queue})
			if err != nil {
				t.Fatal(err)
			}
			other := vdb
			if tc.twoDevices {
				if other, err = NewDevice(DeviceConfig{Name: "vdc", Throughput: 10 * mib, SyncLatency: tc.latency}); err != nil {
					t.Fatal(err)
				}
			}
			fss := []*Filesystem{NewFilesystem("/var/lib/containerd/snapshots", vdb, 0), NewFilesystem("/var/lib/containerd", other, 0)}
			for i, r := range tc.reqs {
				now := at(r.at)
				var io IO
				if r.sync {
					fss[r.fs].Write(now, r.bytes)
					io = fss[r.fs].Syncfs(now, "syncfs")
				} else {
					io = fss[r.fs].Fsync(now, r.bytes, "fsync")
				}
				if want := at(tc.wantDone[i]); !io.Done.Equal(want) {
					t.Errorf("request %d done at %v, want %vs", i, io.Done.Sub(t0), tc.wantDone[i])
				}
				if io.Ahead != tc.wantAhead[i] {
					t.Errorf("request %d: %d ahead, want %d", i, io.Ahead, tc.wantAhead[i])
				}
			}
		})
	}
}

func TestIOString(t *testing.T) {
	dev, _ := NewDevice(DeviceConfig{Name: "vdb", Throughput: mib})
	fs := NewFilesystem("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs", dev, 0)
	fs.Write(t0, 1<<30)
	_ = fs.Fsync(t0, 4096, "fsync")
	_ = fs.Fsync(t0, 4096, "fsync")
	got := fs.Syncfs(t0, "syncfs of /var/lib/containerd overlay").String()
	// Once the fsyncs are done, the syncfs is in flight.
	t0 := t0.Add(time.Second)
	if want := "syncfs of /var/lib/containerd overlay: 1.0 GiB dirty node-wide on vdb, 2 syncs queued ahead"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	got = fs.Fsync(t0, 4096, "fsync of the status checkpoint of 40585f73").String()
	if want := "fsync of the status checkpoint of 40585f73: 4.0 KiB on vdb, 1 sync queued ahead (behind syncfs of /var/lib/containerd overlay, 1.0 GiB)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestNodeLayout(t *testing.T) {
	devs := []DeviceConfig{{Name: "vdb", Throughput: mib}, {Name: "vdc", Throughput: mib}}
	cases := []struct {
		name       string
		l          Layout
		wantErr    string
		sameFS     bool // rootfs and root are one filesystem
		splitApart bool // split rootfs is on another device than root
	}{
		{name: "no devices: per-container", l: Layout{}},
		{name: "one disk", l: Layout{Devices: devs[:1], RootDevice: "vdb"}, sameFS: true},
		{name: "split", l: Layout{Devices: devs, RootDevice: "vdb", SplitDevice: "vdc"}, sameFS: true, splitApart: true},
		{name: "unknown device", l: Layout{Devices: devs, RootDevice: "vdx"}, wantErr: `disk.root_device: no device "vdx"`},
		{name: "no root device", l: Layout{Devices: devs}, wantErr: "disk.root_device: must name"},
		{name: "split on root", l: Layout{Devices: devs, RootDevice: "vdb", SplitDevice: "vdb"}, wantErr: "disk.split_device"},
		{name: "twice", l: Layout{Devices: []DeviceConfig{devs[0], devs[0]}, RootDevice: "vdb"}, wantErr: "declared twice"},
		{name: "bad throughput", l: Layout{Devices: []DeviceConfig{{Name: "vdb"}}, RootDevice: "vdb"}, wantErr: "throughput must be > 0"},
		{name: "neighbour nowhere", l: Layout{Devices: devs, RootDevice: "vdb", Writers: []WriterConfig{{Name: "x", Rate: 1}}}, wantErr: "writers[0].device: must be set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := NewNode(tc.l, t0)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.l.Devices) == 0 {
				if n.Shared() || n.Root() != nil || n.Rootfs(true) != nil {
					t.Fatal("a layout without devices must be the per-container one")
				}
				return
			}
			if got := n.Rootfs(false) == n.Root(); got != tc.sameFS {
				t.Errorf("rootfs and root one filesystem = %v, want %v", got, tc.sameFS)
			}
			if got := n.Rootfs(true).Device() != n.Root().Device(); got != tc.splitApart {
				t.Errorf("split rootfs apart from root = %v, want %v", got, tc.splitApart)
			}
		})
	}
}

// TestNeighbour: a noisy neighbour's pages are in the pool a container's
// syncfs writes back.
func TestNeighbour(t *testing.T) {
	n, err := NewNode(Layout{Devices: []DeviceConfig{{Name: "vdb", Throughput: 10 * mib}}, RootDevice: "vdb",
		Writers: []WriterConfig{{Name: "backup", Device: "vdb", Rate: 5 * mib}}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	io := n.Rootfs(false).Syncfs(at(20), "syncfs")
	if io.Bytes != 100*mib || io.Took() != 10*time.Second {
		t.Errorf("syncfs after 20 s of a 5 MiB/s neighbour: %d MiB in %v, want 100 MiB in 10s", io.Bytes/mib, io.Took())
	}
}
