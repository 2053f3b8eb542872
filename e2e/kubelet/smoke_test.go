package kubelet

import (
	"fmt"
	"testing"
	"time"
)

// smokePods are the three kinds of pod a user runs first: one that runs
// until stopped, one job that finishes by itself, one that keeps crashing.
var smokePods = []podManifest{
	{name: "long", restartPolicy: "Always", containers: []string{"main"}},
	{name: "once", restartPolicy: "Never", containers: []string{"job"},
		annotations: map[string]string{"fakecontainerd.io/exit-after.job": "5s"}},
	{name: "crash", restartPolicy: "Always", containers: []string{"app"},
		annotations: map[string]string{"fakecontainerd.io/exit-after.app": "2s", "fakecontainerd.io/exit-code.app": "1"}},
}

// TestSmoke runs kubelet standalone against fakecontainerd with static pods
// and checks what a user would see on kubelet's /pods: the long-running
// pod running with no restarts, the Never pod Succeeded with its one run
// (exit 0, no restart), the crashing pod in CrashLoopBackOff with restarts
// counted one per crash; and PLEG relisting once a second.
func TestSmoke(t *testing.T) {
	n := startNode(t, "smoke", testLogDir(t), nodeOptions{pods: smokePods})

	// Everything the first minute should bring.
	n.waitFor("long Running, once Succeeded, crash restarted twice", 3*time.Minute, func() error {
		pods, err := n.pods()
		if err != nil {
			return err
		}
		var state string
		for _, name := range []string{"long", "once", "crash"} {
			state += pods[n.staticPodName(name)].String() + "; "
		}
		long, once, crash := pods[n.staticPodName("long")], pods[n.staticPodName("once")], pods[n.staticPodName("crash")]
		switch {
		case long.Status.Phase != "Running" || len(long.Status.ContainerStatuses) != 1 || long.Status.ContainerStatuses[0].State.Running == nil:
			return fmt.Errorf("long not running yet: %s", state)
		case once.Status.Phase != "Succeeded":
			return fmt.Errorf("once not Succeeded yet: %s", state)
		case len(crash.Status.ContainerStatuses) != 1 || crash.Status.ContainerStatuses[0].RestartCount < 2:
			return fmt.Errorf("crash not restarted twice yet: %s", state)
		}
		return nil
	})
	ready := time.Since(n.started)
	t.Logf("all pods in their expected states %.0fs after kubelet started", ready.Seconds())

	pods, err := n.pods()
	if err != nil {
		n.fatalf("/pods: %v", err)
	}
	for _, p := range pods {
		t.Logf("/pods: %s", p)
	}
	long := pods[n.staticPodName("long")].Status.ContainerStatuses[0]
	if long.RestartCount != 0 || !long.Ready {
		n.errorf("long: restarts=%d ready=%v, want 0 restarts and ready", long.RestartCount, long.Ready)
	}
	once := pods[n.staticPodName("once")].Status.ContainerStatuses
	if len(once) != 1 {
		n.fatalf("once: %d container statuses, want 1", len(once))
	}
	if term := once[0].State.Terminated; term == nil || term.ExitCode != 0 || term.Reason != "Completed" || once[0].RestartCount != 0 {
		n.errorf("once: %s restarts=%d, want terminated(Completed, exit 0) and no restart", once[0].State, once[0].RestartCount)
	}
	crash := pods[n.staticPodName("crash")].Status.ContainerStatuses[0]
	if last := crash.LastState.Terminated; last == nil || last.ExitCode != 1 || last.Reason != "Error" {
		n.errorf("crash: last state %s, want terminated(Error, exit 1)", crash.LastState)
	}
	// Each crash is one restart, spaced by kubelet's back-off: the first
	// restart at once, then 10 s, 20 s, 40 s... So by now (each run is
	// 2 s) there cannot be more restarts than that schedule allows.
	elapsed := time.Since(n.started)
	if maxRestarts := restartsWithin(elapsed, 2*time.Second); crash.RestartCount > maxRestarts {
		n.errorf("crash: %d restarts %v after start, more than back-off allows (%d)", crash.RestartCount, elapsed.Round(time.Second), maxRestarts)
	}
	if len(n.kubeletLogMatches("back-off 10s restarting failed container=app")) == 0 {
		n.errorf("kubelet never backed off 10s before restarting the crashing container")
	}
	if crash.State.Waiting != nil && crash.State.Waiting.Reason != "CrashLoopBackOff" {
		n.errorf("crash: waiting for %q, want CrashLoopBackOff", crash.State.Waiting.Reason)
	}
	if len(n.kubeletLogMatches("CrashLoopBackOff")) == 0 {
		n.errorf("kubelet never logged CrashLoopBackOff for the crashing pod")
	}

	// PLEG relists once a second: the relist counter grows by about one a
	// second and the mean interval between relists is about 1 s.
	m1, err := n.metrics()
	if err != nil {
		n.fatalf("/metrics: %v", err)
	}
	const window = 20 * time.Second
	time.Sleep(window)
	m2, err := n.metrics()
	if err != nil {
		n.fatalf("/metrics: %v", err)
	}
	relists := m2["kubelet_pleg_relist_duration_seconds_count"] - m1["kubelet_pleg_relist_duration_seconds_count"]
	intervals := m2["kubelet_pleg_relist_interval_seconds_count"] - m1["kubelet_pleg_relist_interval_seconds_count"]
	meanInterval := (m2["kubelet_pleg_relist_interval_seconds_sum"] - m1["kubelet_pleg_relist_interval_seconds_sum"]) / intervals
	t.Logf("PLEG: %.0f relists in %v, mean interval %.3fs; kubelet_pleg_last_seen_seconds %.0f (now %d)",
		relists, window, meanInterval, m2["kubelet_pleg_last_seen_seconds"], time.Now().Unix())
	if relists < 0.8*window.Seconds() || relists > window.Seconds()+1 {
		n.errorf("PLEG relisted %.0f times in %v, want about once a second", relists, window)
	}
	if meanInterval < 0.95 || meanInterval > 1.25 {
		n.errorf("PLEG mean relist interval %.3fs, want about 1s", meanInterval)
	}
	if age := float64(time.Now().Unix()) - m2["kubelet_pleg_last_seen_seconds"]; age > 10 {
		n.errorf("kubelet_pleg_last_seen_seconds is %.0fs old, want fresh", age)
	}
	if err := n.healthz(); err != nil {
		n.errorf("kubelet /healthz: %v", err)
	}
	// (Before its first relist kubelet says "pleg has yet to be
	// successful"; that is startup, not a stall.)
	if lines := n.kubeletLogMatches("pleg was last seen active"); len(lines) > 0 {
		n.errorf("kubelet logged PLEG unhealthy: %s", lines[0].text)
	}
}

// restartsWithin is the most restarts kubelet's crash-loop back-off allows
// in d for a container that runs for run each time: restart 1 at once,
// then after 10 s, 20 s, 40 s... of back-off.
func restartsWithin(d, run time.Duration) int {
	n, t, backoff := 0, run, time.Duration(0)
	for {
		t += backoff
		if t > d {
			return n
		}
		n++
		t += run
		if backoff == 0 {
			backoff = 10 * time.Second
		} else {
			backoff *= 2
		}
	}
}
