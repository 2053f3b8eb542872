package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestFaultSetWarnsOnUnmatchedTarget: `fault set` with a target that
// matches nothing that exists (a typo in a pod name) arms the fault and
// warns, naming the pods and containers that do exist; --strict refuses
// it; a target that matches arms without a word.
func TestFaultSetWarnsOnUnmatchedTarget(t *testing.T) {
	t.Parallel()
	d := newDaemon(t)
	pod, pc := d.busyboxPod("job-1")
	id := d.create(pod, d.containerConfig("c1", nil), pc)
	set := func(args ...string) (string, int) {
		return fcd(t, 20*time.Second, append([]string{"fault", "set", "--address", d.sock, "--point", "shim.umount2"}, args...)...)
	}
	armed := func() int {
		var list []faultInfo
		d.adminCall(http.MethodGet, "/v1/faults", nil, &list)
		return len(list)
	}

	out, code := set("--target", "pod=job1", "delay(60s)")
	if code != 0 || !strings.Contains(out, "f1\tshim.umount2\tpod=job1\tdelay(1m0s)") {
		t.Fatalf("fault set with a typo: exit %d, want it armed:\n%s", code, out)
	}
	for _, want := range []string{`warning: target "pod=job1" matches no container or pod`, "default/job-1 (" + pod[:12] + ")", "default/job-1/c1 (" + id[:12] + ")"} {
		if !strings.Contains(out, want) {
			t.Errorf("fault set with a typo: output does not say %q:\n%s", want, out)
		}
	}

	out, code = set("--strict", "--target", "container=c2", "delay(60s)")
	if code == 0 || !strings.Contains(out, "not armed") || !strings.Contains(out, "default/job-1/c1") {
		t.Errorf("fault set --strict with a typo: exit %d, want a refusal naming what exists:\n%s", code, out)
	}
	if n := armed(); n != 1 {
		t.Errorf("%d faults armed after the strict refusal, want 1", n)
	}

	out, code = set("--strict", "--target", "pod=job-1,container=c1", "delay(60s)")
	if code != 0 || strings.Contains(out, "warning") {
		t.Errorf("fault set with a matching target: exit %d, want it armed silently:\n%s", code, out)
	}
	if n := armed(); n != 2 {
		t.Errorf("%d faults armed, want 2", n)
	}
}
