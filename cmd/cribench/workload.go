package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// benchImage is pulled before the fill: fakecontainerd creates containers
// only from local images, as containerd does.
const benchImage = "busybox:latest"

// podUIDLabel is what kubelet filters a pod's containers by.
const podUIDLabel = "io.kubernetes.pod.uid"

// pod is one filled pod: its id on a server and its containers' ids.
type pod struct {
	id         string
	uid        string
	config     *runtime.PodSandboxConfig
	containers []string
}

// podUID is a stable UUID-shaped uid for pod i of a set.
func podUID(set, i int) string {
	return fmt.Sprintf("%08x-%04x-4000-8000-%012x", i, set, i)
}

// podConfig is shaped like kubelet's (pkg/kubelet/kuberuntime
// generatePodSandboxConfig) for a plain Deployment pod.
func podConfig(name, uid, logRoot string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: name, Namespace: "bench", Uid: uid, Attempt: 0},
		Hostname:     name,
		LogDirectory: filepath.Join(logRoot, "bench_"+name+"_"+uid),
		Labels: map[string]string{
			"app": "bench", "pod-template-hash": "5d8f7c9b6",
			"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": "bench", podUIDLabel: uid,
		},
		Annotations: map[string]string{
			"kubernetes.io/config.seen": "2025-01-01T00:00:00.000000000Z", "kubernetes.io/config.source": "api",
		},
		Linux: &runtime.LinuxPodSandboxConfig{
			CgroupParent: "/kubepods/besteffort/pod" + uid,
			SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_POD, Pid: runtime.NamespaceMode_CONTAINER, Ipc: runtime.NamespaceMode_POD},
			},
		},
	}
}

// containerConfig is shaped like kubelet's generateContainerConfig.
func containerConfig(pc *runtime.PodSandboxConfig, j int) *runtime.ContainerConfig {
	name := fmt.Sprintf("c%d", j)
	m := pc.GetMetadata()
	return &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name, Attempt: 0},
		Image:    &runtime.ImageSpec{Image: benchImage},
		// Runs until stopped without the CPU of an interpreted loop, which
		// kubelet's fake runtime would not pay.
		Command:    []string{"sleep", "infinity"},
		WorkingDir: "/",
		Envs: []*runtime.KeyValue{
			{Key: "KUBERNETES_SERVICE_HOST", Value: []byte("10.96.0.1")}, {Key: "KUBERNETES_SERVICE_PORT", Value: []byte("443")},
		},
		Labels: map[string]string{
			"io.kubernetes.container.name": name, "io.kubernetes.pod.name": m.GetName(),
			"io.kubernetes.pod.namespace": m.GetNamespace(), podUIDLabel: m.GetUid(),
		},
		Annotations: map[string]string{
			"io.kubernetes.container.hash": "5e2a1b9c", "io.kubernetes.container.restartCount": "0",
			"io.kubernetes.container.terminationMessagePath":   "/dev/termination-log",
			"io.kubernetes.container.terminationMessagePolicy": "File",
			"io.kubernetes.pod.terminationGracePeriod":         "30",
		},
		LogPath: name + "/0.log",
		Linux: &runtime.LinuxContainerConfig{
			Resources: &runtime.LinuxContainerResources{CpuPeriod: 100000, CpuShares: 2, OomScoreAdj: 1000},
		},
	}
}

// runPod runs a pod and creates and starts perPod containers in it.
func runPod(ctx context.Context, rt internalapi.RuntimeService, pc *runtime.PodSandboxConfig, perPod int) (*pod, error) {
	id, err := rt.RunPodSandbox(ctx, pc, "")
	if err != nil {
		return nil, fmt.Errorf("runp %s: %w", pc.Metadata.Name, err)
	}
	p := &pod{id: id, uid: pc.Metadata.Uid, config: pc}
	for j := range perPod {
		cid, err := rt.CreateContainer(ctx, id, containerConfig(pc, j), pc)
		if err != nil {
			return nil, fmt.Errorf("create in %s: %w", pc.Metadata.Name, err)
		}
		if err := rt.StartContainer(ctx, cid); err != nil {
			return nil, fmt.Errorf("start %s: %w", cid, err)
		}
		p.containers = append(p.containers, cid)
	}
	return p, nil
}

// removePod stops and removes the pod's containers, then the pod, as
// kubelet does when a pod is deleted.
func removePod(ctx context.Context, rt internalapi.RuntimeService, p *pod) error {
	for _, cid := range p.containers {
		if err := rt.StopContainer(ctx, cid, 30); err != nil {
			return fmt.Errorf("stop %s: %w", cid, err)
		}
		if err := rt.RemoveContainer(ctx, cid); err != nil {
			return fmt.Errorf("rm %s: %w", cid, err)
		}
	}
	if err := rt.StopPodSandbox(ctx, p.id); err != nil {
		return fmt.Errorf("stopp %s: %w", p.id, err)
	}
	if err := rt.RemovePodSandbox(ctx, p.id); err != nil {
		return fmt.Errorf("rmp %s: %w", p.id, err)
	}
	return nil
}

// parallel runs f(0..n-1) on workers goroutines; the first error wins and
// stops the rest from starting.
func parallel(ctx context.Context, n, workers int, f func(int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return f(i) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// lifecycle runs pods pods of one container each on workers workers
// (runp+create+start), then takes them all down (stop+rm, stopp+rmp); it
// returns the wall time of each phase.
func lifecycle(ctx context.Context, s *server, set, pods, workers int, logRoot string) (up, down time.Duration, err error) {
	ps := make([]*pod, pods)
	start := time.Now()
	err = parallel(ctx, pods, workers, func(i int) error {
		pc := podConfig(fmt.Sprintf("life-%d-%05d", set, i), podUID(set, i), logRoot)
		p, err := runPod(ctx, s.rt[i%len(s.rt)], pc, 1)
		ps[i] = p
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("%s: lifecycle up: %w", s.name, err)
	}
	up = time.Since(start)
	start = time.Now()
	err = parallel(ctx, pods, workers, func(i int) error {
		return removePod(ctx, s.rt[i%len(s.rt)], ps[i])
	})
	if err != nil {
		return 0, 0, fmt.Errorf("%s: lifecycle down: %w", s.name, err)
	}
	return up, time.Since(start), nil
}

// samples are one metric's latencies on each server.
type samples map[string][]time.Duration

// interleaved calls each server iters times, one call each in turn with
// the order rotating, on the servers' first client.
func interleaved(servers []*server, iters int, call func(s *server, rt internalapi.RuntimeService, i int) error) (samples, error) {
	out := samples{}
	for i := range iters {
		for j := range servers {
			s := servers[(i+j)%len(servers)]
			start := time.Now()
			if err := call(s, s.rt[0], i); err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
			out[s.name] = append(out[s.name], time.Since(start))
		}
	}
	return out, nil
}

// concurrent runs every client of a server at once, perClient calls each,
// in rounds that alternate between the servers (so no server has the
// machine to itself for long), and gives every call's latency.
func concurrent(servers []*server, clients, perClient int, call func(s *server, rt internalapi.RuntimeService, i int) error) (samples, error) {
	rounds := min(perClient, 10)
	out := samples{}
	var mu sync.Mutex
	for r := range rounds {
		calls := perClient / rounds
		if r < perClient%rounds {
			calls++
		}
		for j := range servers {
			s := servers[(r+j)%len(servers)]
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rt := s.rt[c%len(s.rt)]
					local := make([]time.Duration, 0, calls)
					for i := range calls {
						start := time.Now()
						if err := call(s, rt, r*perClient+i); err != nil {
							errs <- fmt.Errorf("%s: %w", s.name, err)
							return
						}
						local = append(local, time.Since(start))
					}
					mu.Lock()
					out[s.name] = append(out[s.name], local...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			close(errs)
			if err := <-errs; err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// percentile is the nearest-rank p-th percentile (0 < p <= 100).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(p/100*float64(len(s))+0.999999) - 1
	return s[max(0, min(rank, len(s)-1))]
}
