package kubelet

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// commandPods run what their command says, with no fakecontainerd.io/
// annotation: a Job that fails with its script's code, the field's date
// loop, and a container that an exec probe finds ready once it wrote its
// file.
var commandPods = []podManifest{
	{name: "job", restartPolicy: "Never", containers: []string{"job"}, command: []string{"sh", "-c", "echo hi; exit 3"}},
	{name: "field", restartPolicy: "Always", containers: []string{"loop"}, command: []string{"sh", "-c", "while true; do date; sleep 1; done"}},
	{name: "probed", restartPolicy: "Always", containers: []string{"app"},
		command:       []string{"sh", "-c", "sleep 5; echo ok > /tmp/healthy; while true; do sleep 1; done"},
		readinessExec: []string{"cat", "/tmp/healthy"}},
}

// TestCommands runs kubelet against fakecontainerd with pods whose
// containers' commands decide what they do, and checks kubelet's view and
// the logs kubelet reads (kubectl logs).
func TestCommands(t *testing.T) {
	n := startNode(t, "commands", testLogDir(t), nodeOptions{pods: commandPods})
	logOf := func(pod, container string) string {
		matches, _ := filepath.Glob(filepath.Join(n.workDir, "pod-logs", "default_"+n.staticPodName(pod)+"_*", container, "*.log"))
		var b strings.Builder
		for _, m := range matches {
			data, _ := os.ReadFile(m)
			b.Write(data)
		}
		return b.String()
	}
	n.waitFor("job Failed with exit 3, probed ready, field logging", 3*time.Minute, func() error {
		pods, err := n.pods()
		if err != nil {
			return err
		}
		job, probed := pods[n.staticPodName("job")], pods[n.staticPodName("probed")]
		switch {
		case job.Status.Phase != "Failed" || len(job.Status.ContainerStatuses) != 1:
			return fmt.Errorf("job not Failed yet: %s", job)
		case len(probed.Status.ContainerStatuses) != 1 || !probed.Status.ContainerStatuses[0].Ready:
			return fmt.Errorf("probed not ready yet: %s", probed)
		case strings.Count(logOf("field", "loop"), " UTC ") < 5:
			return fmt.Errorf("field has logged %d dates", strings.Count(logOf("field", "loop"), " UTC "))
		}
		return nil
	})
	pods, err := n.pods()
	if err != nil {
		n.fatalf("/pods: %v", err)
	}
	job := pods[n.staticPodName("job")].Status.ContainerStatuses[0]
	if term := job.State.Terminated; term == nil || term.ExitCode != 3 || term.Reason != "Error" || job.RestartCount != 0 {
		n.errorf("job: %s restarts=%d, want terminated(Error, exit 3), no restart", job.State, job.RestartCount)
	}
	if log := logOf("job", "job"); !strings.Contains(log, " stdout F hi\n") {
		n.errorf("job's log %q: no hi", log)
	}
	// The probe failed (the file was not there yet) before it passed.
	if len(n.kubeletLogMatches(`"Probe failed" probeType="Readiness" pod="default/`+n.staticPodName("probed")+`"`)) == 0 {
		n.errorf("kubelet never logged the probe's failure before the container wrote its file")
	}
	// One date a second, in real time here: never more lines than seconds.
	loop := pods[n.staticPodName("field")].Status.ContainerStatuses[0]
	if loop.State.Running == nil || loop.RestartCount != 0 {
		n.errorf("field: %s restarts=%d, want running", loop.State, loop.RestartCount)
	}
	lines := strings.Count(logOf("field", "loop"), " UTC ")
	if loop.State.Running != nil {
		if up := time.Since(loop.State.Running.StartedAt); float64(lines) > up.Seconds()+2 {
			n.errorf("field logged %d dates in %v", lines, up.Round(time.Second))
		}
	}
	t.Logf("field logged %d dates; job %s; probed ready", lines, job.State)
}
