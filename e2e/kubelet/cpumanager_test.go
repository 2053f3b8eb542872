package kubelet

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/e2e/kubelet/incident"
)

// cpuManager plays an older kubelet's CPU manager: every period it calls
// UpdateContainerResources (a cpuset, as reconcileState did) on each
// container of one pod that kubelet reports running, one call after
// another, each with kubelet's 2 min runtime request timeout. Like the old
// reconcile loop it learns the containers from kubelet's own pod status
// (here /pods), never from the runtime, so it keeps calling on a container
// kubelet still believes is running.
//
// Ticks are at a fixed rate, as a time.Ticker gives them: when a pass
// overruns (a call stuck for its whole 2 min), the next pass starts as soon
// as it returns, so calls on a dying container follow one another with a
// fresh 2 min deadline each. Kubelet 1.36 no longer makes these calls
// (REAL-KUBELET.md), hence this stand-in. Schedule "sliding" instead
// pauses a full period after every pass, as wait.Until does; see README.md
// for what that changes.
type cpuManager struct {
	n        *node
	pod      string
	period   time.Duration
	deadline time.Duration
	sliding  bool

	mu    sync.Mutex
	calls []incident.Call
}

func (m *cpuManager) run(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		cpus := fmt.Sprintf("0-%d", runtime.NumCPU()-1)
		tick := time.Now()
		for {
			m.pass(ctx, cpus)
			wait := m.period
			if !m.sliding {
				// As a time.Ticker: the next tick keeps the phase; if
				// it fell due while the pass ran, the next pass starts
				// at once and the other missed ticks are dropped.
				tick = tick.Add(m.period)
				if now := time.Now(); tick.Before(now) {
					for !tick.Add(m.period).After(now) {
						tick = tick.Add(m.period)
					}
					wait = 0
				} else {
					wait = tick.Sub(now)
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
}

func (m *cpuManager) pass(ctx context.Context, cpus string) {
	p, err := m.n.pod(m.pod)
	if err != nil {
		return
	}
	for _, c := range p.Status.ContainerStatuses {
		id := c.runtimeID()
		if c.State.Running == nil || id == "" {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, m.deadline)
		start := time.Now()
		_, err := m.n.cri.UpdateContainerResources(cctx, &cri.UpdateContainerResourcesRequest{
			ContainerId: id, Linux: &cri.LinuxContainerResources{CpusetCpus: cpus},
		})
		cancel()
		if ctx.Err() != nil {
			return
		}
		call := incident.Call{ID: id, Start: start, Took: time.Since(start), Err: err}
		m.mu.Lock()
		m.calls = append(m.calls, call)
		m.mu.Unlock()
		if call.Took > 2*time.Second || err != nil {
			m.n.timeline.add(start, "harness UpdateContainerResources %.12s started (took %.1fs, err=%v)", id, call.Took.Seconds(), err)
		}
	}
}

func (m *cpuManager) snapshot() []incident.Call {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]incident.Call(nil), m.calls...)
}

// healthWatcher samples kubelet's /metrics and /healthz every second.
// kubelet_pleg_last_seen_seconds is PLEG's relist time as of the last
// Healthy() call, and kubelet makes that call from its sync loop, which a
// stalled runtime also blocks (housekeeping lists containers): the gauge
// can lag, so now minus the gauge is an upper bound of PLEG's real age.
// The exact account comes from kubelet's relists (plegSpells).
type healthWatcher struct {
	n *node

	mu              sync.Mutex
	samples         []plegSample
	healthzFailAt   time.Time
	healthzFailures int
}

type plegSample struct {
	at       time.Time
	lastSeen time.Time // kubelet_pleg_last_seen_seconds
}

func (s plegSample) age() time.Duration { return s.at.Sub(s.lastSeen) }

// plegThreshold is kubelet's constant PLEG relist threshold.
const plegThreshold = 3 * time.Minute

func (h *healthWatcher) run(ctx context.Context, wg *sync.WaitGroup) {
	incident.Every(ctx, wg, time.Second, h.sample)
}

func (h *healthWatcher) sample() {
	now := time.Now()
	m, err := h.n.metrics()
	hzErr := h.n.healthz()
	h.mu.Lock()
	defer h.mu.Unlock()
	if hzErr != nil {
		if h.healthzFailures == 0 {
			h.healthzFailAt = now
			h.n.timeline.add(now, "kubelet /healthz fails: %v", hzErr)
		}
		h.healthzFailures++
	}
	if err != nil {
		return
	}
	if last := m["kubelet_pleg_last_seen_seconds"]; last > 0 {
		h.samples = append(h.samples, plegSample{at: now, lastSeen: time.Unix(int64(last), 0)})
	}
}

// gaugeUnhealthy is the first sample whose gauge is older than the
// threshold, the first later sample showing a newer relist, and the
// largest age seen.
func (h *healthWatcher) gaugeUnhealthy() (since, recovered time.Time, maxAge time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var stale time.Time
	for _, s := range h.samples {
		maxAge = max(maxAge, s.age())
		switch {
		case since.IsZero() && s.age() > plegThreshold:
			since, stale = s.at, s.lastSeen
		case !since.IsZero() && recovered.IsZero() && s.lastSeen.After(stale) && s.age() <= plegThreshold:
			recovered = s.at
		}
	}
	return since, recovered, maxAge
}
