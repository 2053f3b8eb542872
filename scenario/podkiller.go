package scenario

import (
	"context"

	"github.com/sirupsen/logrus"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// maybeKillPod is a pod worker's SyncPod for a pod whose containers have
// all exited and will not restart (the scenarios' pods run with
// restartPolicy Never): computePodActions says KillPod, and
// killPodWithSyncResult stops the ready sandbox with StopPodSandbox (the
// runtime request timeout; CNI teardown runs inside it). It runs on the
// pod's own goroutine, as a pod worker does, so the relist does not wait
// for it; one attempt per sync that sees the pod so (a failed one is
// tried again the next time an inspection does).
func (d *Driver) maybeKillPod(ctx context.Context, pod *kubePod, st *podStatus) {
	if !d.cfg.StopCompletedPods || len(st.containers) == 0 {
		return
	}
	for _, c := range st.containers {
		if c.state != runtime.ContainerState_CONTAINER_EXITED {
			return
		}
	}
	var sandbox string
	for _, c := range pod.containers {
		if c.sandbox && c.state == plegRunning {
			sandbox = c.id
		}
	}
	if sandbox == "" {
		return
	}
	d.killMu.Lock()
	if d.killing[pod.uid] {
		d.killMu.Unlock()
		return
	}
	d.killing[pod.uid] = true
	d.killMu.Unlock()
	d.workers.Add(1)
	go func() {
		defer d.workers.Done()
		err := d.call(ctx, "StopPodSandbox", d.cfg.RuntimeRequestTimeout, func(ctx context.Context) error {
			_, err := d.rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: sandbox})
			return err
		})
		if err != nil {
			d.log.WithError(err).WithFields(logrus.Fields{"pod": pod.namespace + "/" + pod.name, "sandbox": sandbox}).Warn("killPodWithSyncResult: StopPodSandbox failed")
			d.killMu.Lock()
			delete(d.killing, pod.uid)
			d.killMu.Unlock()
		}
	}()
}
