package scenario

import (
	"context"
	"testing"
	"time"
)

// TestExitFaultInAScenario: an exit fault armed by a scenario kills its
// target when a call reaches the point (here the CPU manager's update, a
// kill -9 at that moment), and the death takes the exit path: the shim's
// Delete unmounts the container's rootfs. The other container runs on.
func TestExitFaultInAScenario(t *testing.T) {
	const text = `
name = "exit-fault"
duration = "1m"
time_scale = 0.01

[[pods]]
  name = "job"
  [[pods.containers]]
    name = "work"
  [[pods.containers]]
    name = "bystander"

[[faults]]
  point = "cri.UpdateContainerResources.before"
  target = "container=work"
  spec = "1*exit(KILL)->off"
  at = "20s"

[[variants]]
  name = "baseline"
`
	f, err := Parse([]byte(text), "exit-fault.toml")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), f, Options{Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	tl := rep.Variants[0].Timeline
	if tl == nil {
		t.Fatal("no timeline")
	}
	// Nothing else in the run stops a container: the one unmount is the
	// killed process's, after the fault was armed.
	if len(tl.Unmounts) != 1 || tl.Unmounts[0].From < 20*time.Second {
		t.Errorf("unmounts: %+v; want one, of the container the fault killed, after 20s", tl.Unmounts)
	}
}
