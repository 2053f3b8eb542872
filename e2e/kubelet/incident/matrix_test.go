package incident

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMatrixTable(t *testing.T) {
	root := t.TempDir()
	write := func(sub string, r ArmResult) {
		dir := filepath.Join(root, sub)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := WriteResult(dir, r); err != nil {
			t.Fatal(err)
		}
	}
	write("v1.36.3/TestIncident1/stopping_state", ArmResult{Kubelet: "v1.36.3", Arm: "stopping_state", MaxRelistGapS: 2, FinalPhase: "Succeeded"})
	write("v1.36.3/TestIncident1/baseline", ArmResult{Kubelet: "v1.36.3", Arm: "baseline", PLEGUnhealthy: true, UnhealthyS: 59.6, MaxRelistGapS: 240, NotReadyLines: 3, FinalPhase: "Succeeded"})
	write("v1.9.0/TestIncident1/stopping_state", ArmResult{Kubelet: "v1.9.0", Arm: "stopping_state", KilledAfterExit: true, SideEffect: true, SideEffectWhy: "killed", Restarts: 1, FinalPhase: "Running"})
	rs, err := ReadResults(root)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range rs {
		order = append(order, r.Kubelet+"/"+r.Arm)
	}
	// Numeric version order (1.9 before 1.36), baseline first.
	if got, want := strings.Join(order, " "), "v1.9.0/stopping_state v1.36.3/baseline v1.36.3/stopping_state"; got != want {
		t.Errorf("order %q, want %q", got, want)
	}
	var b strings.Builder
	if err := WriteTable(&b, rs); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("table has %d lines, want a header and 3 rows:\n%s", len(lines), b.String())
	}
	// v1.9.0: killed after exit and recreated; v1.36.3 baseline: PLEG
	// unhealthy and the line.
	for i, yes := range []int{2, 2, 0} {
		if got := strings.Count(lines[i+1], "YES"); got != yes {
			t.Errorf("row %d %q has %d YES, want %d", i+1, lines[i+1], got, yes)
		}
	}
	for i, want := range [][]string{
		{"v1.9.0", "stopping_state", "running"},
		{"v1.36.3", "baseline", "YES (60s)", "240s", "YES (3 lines)", "succeeded"},
		{"v1.36.3", "stopping_state", "no", "2s", "succeeded"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("row %d %q lacks %q", i+1, lines[i+1], w)
			}
		}
	}
}
