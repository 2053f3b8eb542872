package shim

import (
	"hash/crc32"
	"time"
)

// MetricsTypeURL names the payload of a fake Stats response. Real shims send
// cgroups metrics; the fake sends this small JSON document instead (a
// deliberate difference: nothing here has a cgroup to read).
const MetricsTypeURL = "fakecontainerd.io/shim/Metrics"

// Metrics is a container's synthetic resource usage.
type Metrics struct {
	Timestamp           time.Time `json:"timestamp"`
	CPUUsageNanos       uint64    `json:"cpu_usage_nanos"`
	MemoryWorkingSet    uint64    `json:"memory_working_set"`
	MemoryRSS           uint64    `json:"memory_rss"`
	WritableLayerBytes  uint64    `json:"writable_layer_bytes"`
	WritableLayerInodes uint64    `json:"writable_layer_inodes"`
	RootfsDirtyBytes    uint64    `json:"rootfs_dirty_bytes"`
}

// syntheticMetrics gives plausible, monotonic numbers: a steady tenth of a
// core while running and a working set that depends only on the id.
func syntheticMetrics(p *Init, now time.Time) Metrics {
	v := p.view.Load()
	started, exited, st := v.startedAt, v.exitedAt, v.status
	dirty := v.rootfs.Dirty(now)
	m := Metrics{Timestamp: now, RootfsDirtyBytes: uint64(max(dirty, 0))}
	end := now
	if st == statusStopped || st == statusDeleted {
		end = exited
	}
	if !started.IsZero() && end.After(started) {
		m.CPUUsageNanos = uint64(end.Sub(started).Nanoseconds() / 10)
	}
	seed := uint64(crc32.ChecksumIEEE([]byte(p.id)))
	m.MemoryWorkingSet = 8<<20 + seed%(24<<20)
	m.MemoryRSS = m.MemoryWorkingSet * 3 / 4
	m.WritableLayerBytes = 4096 + seed%(1<<20)
	m.WritableLayerInodes = 1 + seed%64
	return m
}
