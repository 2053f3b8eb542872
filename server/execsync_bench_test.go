package server

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// BenchmarkExecProbeStorm is the field's probe storm: every one of 100
// pods' containers gets an exec probe (`/bin/true`, 1 s timeout) at the
// same moment, as kubelet's probe workers do when their periods line up.
// One op is one storm; p50 and p99 are one probe's latency in it.
func BenchmarkExecProbeStorm(b *testing.B) {
	s := newTBServer(b, 1)
	s.populate(population{pods: 100, perPod: 1, running: 1})
	c := s.c()
	list, err := c.ListContainers(context.Background(), &runtime.ListContainersRequest{})
	if err != nil {
		b.Fatal(err)
	}
	var ids []string
	for _, ctr := range list.Containers {
		if ctr.State == runtime.ContainerState_CONTAINER_RUNNING {
			ids = append(ids, ctr.Id)
		}
	}
	if len(ids) != 100 {
		b.Fatalf("%d running containers, want 100", len(ids))
	}
	var lat []time.Duration
	var mu sync.Mutex
	b.ResetTimer()
	for range b.N {
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				resp, err := c.ExecSync(context.Background(), &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"/bin/true"}, Timeout: 1})
				took := time.Since(start)
				if err != nil || resp.ExitCode != 0 {
					b.Errorf("probe %s: %v %v", id, resp, err)
				}
				mu.Lock()
				lat = append(lat, took)
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs/probe")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs/probe")
}
