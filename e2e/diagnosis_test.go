package e2e

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBlameNamesTheFaultHoldingCalls is blame as a user runs it: a block
// fault armed with `fault set` holds two ContainerStatus calls, with no
// tracked lock between them and their caller; `fakecontainerd blame` lists
// them as waits, naming the fault, and says nothing waits once it is
// cleared.
func TestBlameNamesTheFaultHoldingCalls(t *testing.T) {
	t.Parallel()
	d := newDaemon(t)
	d.pull("busybox")
	pc := d.podConfig("blame", filepath.Join(d.dir, "logs"))
	pod := d.runp(pc)
	id := d.create(pod, d.containerConfig("c1", nil), pc)
	d.startContainer(id)
	if out, code := fcd(t, 30*time.Second, "fault", "set", "--address", d.sock, "--point", "container.status", "--target", "id="+id, "block"); code != 0 {
		t.Fatalf("fault set: exit %d\n%s", code, out)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = d.rt.ContainerStatus(d.ctx(), id, false)
		}()
	}
	want := "ContainerStatus (2 callers) waits inside fault f1 (container.status block) on container " + id[:8]
	var out string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, _ = fcd(t, 30*time.Second, "blame", "--address", d.sock)
		if strings.Contains(out, want) || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(out, want) {
		t.Errorf("blame says:\n%s\nwant a line with %q", out, want)
	}
	if strings.Contains(out, "Nothing waits") {
		t.Errorf("blame says nothing waits while two calls are held:\n%s", out)
	}
	if out, code := fcd(t, 30*time.Second, "fault", "clear", "--address", d.sock, "--all"); code != 0 {
		t.Fatalf("fault clear: exit %d\n%s", code, out)
	}
	wg.Wait()
	if out, _ := fcd(t, 30*time.Second, "blame", "--address", d.sock); !strings.Contains(out, "Nothing waits on a tracked lock or inside a fault now.") {
		t.Errorf("blame after the fault is cleared:\n%s", out)
	}
}

// TestBadFlagIsOneLine: a mistyped flag gets one line naming it and the
// command's --help, not the whole help.
func TestBadFlagIsOneLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    []string
		command string
	}{
		{[]string{"serve", "--bogus"}, "fakecontainerd serve"},
		{[]string{"fault", "set", "--bogus", "block"}, "fakecontainerd fault set"},
		{[]string{"pleg-watch", "--bogus"}, "fakecontainerd pleg-watch"},
	} {
		out, code := fcd(t, 10*time.Second, tc.args...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 1 || len(lines) != 1 || !strings.Contains(out, "-bogus") || !strings.Contains(out, "(see "+tc.command+" --help)") {
			t.Errorf("fakecontainerd %s: exit %d, output:\n%s\nwant exit 1 and one line naming -bogus and %s --help", strings.Join(tc.args, " "), code, out, tc.command)
		}
	}
}
