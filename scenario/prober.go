package scenario

import (
	"context"
	"hash/fnv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ProbeSpec is an exec probe (liveness or readiness: both run the same
// way) as kubelet's prober runs it.
type ProbeSpec struct {
	// Command is the probe's exec command.
	Command []string
	// Period is periodSeconds; Timeout is timeoutSeconds, which kubelet
	// (ExecProbeTimeout, on since 1.20) passes as the ExecSync timeout.
	Period, Timeout time.Duration
}

// StartProbe runs a container's exec probe until ctx ends, as one of
// kubelet's probe workers does: a wait of a random part of the period
// first (the worker does so when kubelet started less than a period ago,
// so that a restarted kubelet's probes do not all fire at once), then a
// probe per tick of a time.Ticker of the period. A probe blocks its
// worker, so one slower than the period makes the ticker drop ticks.
// ExecSync carries the probe's timeout and, as remote_runtime.go gives it,
// a deadline of the runtime request timeout plus that timeout.
func (d *Driver) StartProbe(ctx context.Context, id string, p ProbeSpec) {
	d.workers.Add(1)
	go func() {
		defer d.workers.Done()
		// kubelet draws the part with math/rand; a stable draw per
		// container keeps runs repeatable.
		h := fnv.New32a()
		_, _ = h.Write([]byte(id))
		if d.clock.Sleep(ctx, time.Duration(uint64(p.Period)*uint64(h.Sum32()%1000)/1000)) != nil {
			return
		}
		t := d.clock.NewTicker(p.Period)
		defer t.Stop()
		for {
			d.execProbe(ctx, id, p)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// execProbe is one probe: ExecSync; a non-zero exit or an error is a
// failed probe (logged, as kubelet's "Probe failed").
func (d *Driver) execProbe(ctx context.Context, id string, p ProbeSpec) {
	var code int32
	err := d.call(ctx, "ExecSync", d.cfg.RuntimeRequestTimeout+p.Timeout, func(ctx context.Context) error {
		resp, err := d.rt.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: p.Command, Timeout: int64(p.Timeout / time.Second)})
		code = resp.GetExitCode()
		return err
	})
	if err == nil && code != 0 {
		d.log.WithFields(logrus.Fields{"id": id, "exit_code": code}).Debug("Probe failed")
	}
}

// DeletePod is the pod worker's killPod for a deleted pod: every running
// container of the pod stopped at once (killContainersWithSyncResult, one
// goroutine per container; StopContainer with the grace period, its
// deadline the runtime request timeout plus the grace), then, when they
// have all returned, StopPodSandbox of each ready sandbox. The pod's
// containers and sandboxes are what kubelet's pod cache knows; the lists
// that find them here are not recorded.
func (d *Driver) DeletePod(ctx context.Context, p PodSpec, grace time.Duration) error {
	selector := map[string]string{labelPodUID: p.UID}
	lctx, cancel := d.clock.WithTimeout(ctx, d.cfg.RuntimeRequestTimeout)
	defer cancel()
	sandboxes, err := d.rt.ListPodSandbox(lctx, &runtime.ListPodSandboxRequest{Filter: &runtime.PodSandboxFilter{LabelSelector: selector}})
	if err != nil {
		return err
	}
	containers, err := d.rt.ListContainers(lctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{
		LabelSelector: selector, State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING},
	}})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(containers.GetContainers()))
	for i, c := range containers.GetContainers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.call(ctx, "StopContainer", d.cfg.RuntimeRequestTimeout+grace, func(ctx context.Context) error {
				_, err := d.rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: c.GetId(), Timeout: int64(grace / time.Second)})
				return err
			})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			// killPod stops at the first failed container; the pod
			// worker tries again at its next sync.
			return err
		}
	}
	for _, s := range sandboxes.GetItems() {
		if s.GetState() != runtime.PodSandboxState_SANDBOX_READY {
			continue
		}
		err := d.call(ctx, "StopPodSandbox", d.cfg.RuntimeRequestTimeout, func(ctx context.Context) error {
			_, err := d.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: s.GetId()})
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}
