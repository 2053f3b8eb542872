package incident

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// ResultFile is the name of an arm's machine-readable result in its log
// folder, beside result.txt.
const ResultFile = "result.json"

// ArmResult is one standalone incident-1 arm on one kubelet, what the
// kubelet version matrix tabulates.
type ArmResult struct {
	Kubelet string `json:"kubelet"` // "v1.19.16", from kubelet --version
	Arm     string `json:"arm"`
	// PLEGUnhealthy: kubelet's last successful relist was over 3 min old
	// at some point (from its own relist lines), UnhealthyS seconds in all.
	PLEGUnhealthy bool    `json:"pleg_unhealthy"`
	UnhealthyS    float64 `json:"unhealthy_s"`
	MaxRelistGapS float64 `json:"max_relist_gap_s"`
	// NotReadyLines counts kubelet's "PLEG is not healthy: pleg was last
	// seen active ..." lines: the runtime-state error that a kubelet with
	// an API server posts as Ready=False (standalone it posts nothing).
	NotReadyLines int     `json:"not_ready_lines"`
	LongestListS  float64 `json:"longest_list_s"`
	// SideEffect is the field's: kubelet recreated the dying pod's
	// container (or sandbox) after it had finished normally.
	// KilledAfterExit: kubelet killed the pod or stopped the container
	// after its exit (kubelet 1.18 does so to every finished pod).
	// SideEffectWhy says which signs were seen.
	SideEffect      bool   `json:"side_effect"`
	KilledAfterExit bool   `json:"killed_after_exit"`
	SideEffectWhy   string `json:"side_effect_why"`
	Restarts        int    `json:"restarts"`
	FinalPhase      string `json:"final_phase"`
}

// WriteResult writes r into dir as ResultFile.
func WriteResult(dir string, r ArmResult) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ResultFile), append(data, '\n'), 0o644)
}

// ReadResults reads every ResultFile under root, sorted by kubelet version
// then arm order (baseline first).
func ReadResults(root string) ([]ArmResult, error) {
	var out []ArmResult
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != ResultFile {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var r ArmResult
		if err := json.Unmarshal(data, &r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b ArmResult) int {
		if c := slices.Compare(versionParts(a.Kubelet), versionParts(b.Kubelet)); c != 0 {
			return c
		}
		if c := armRank(a.Arm) - armRank(b.Arm); c != 0 {
			return c
		}
		return strings.Compare(a.Arm, b.Arm)
	})
	return out, nil
}

// versionParts is "v1.19.16" as {1, 19, 16}.
func versionParts(v string) []int {
	var out []int
	for _, p := range strings.Split(strings.TrimPrefix(v, "v"), ".") {
		n, _ := strconv.Atoi(p)
		out = append(out, n)
	}
	return out
}

// armRank orders the arms as incident1Arms does; others go last.
func armRank(arm string) int {
	order := []string{"baseline", "volatile", "stopping_state", "stopping_state_refined"}
	if i := slices.Index(order, arm); i >= 0 {
		return i
	}
	return len(order)
}

// WriteTable prints one row per kubelet version and arm.
func WriteTable(w io.Writer, rs []ArmResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KUBELET\tARM\tPLEG UNHEALTHY\tLARGEST RELIST GAP\t\"PLEG IS NOT HEALTHY\" (READY=FALSE)\tLONGEST LIST\tKILLED AFTER EXIT\tRECREATED (SIDE EFFECT)\tRESTARTS\tDYING POD")
	yn := func(b bool) string {
		if b {
			return "YES"
		}
		return "no"
	}
	for _, r := range rs {
		unhealthy := yn(r.PLEGUnhealthy)
		if r.PLEGUnhealthy {
			unhealthy += fmt.Sprintf(" (%.0fs)", r.UnhealthyS)
		}
		notReady := "no"
		switch {
		case r.NotReadyLines == 1:
			notReady = "YES (1 line)"
		case r.NotReadyLines > 1:
			notReady = fmt.Sprintf("YES (%d lines)", r.NotReadyLines)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0fs\t%s\t%.0fs\t%s\t%s\t%d\t%s\n",
			r.Kubelet, r.Arm, unhealthy, r.MaxRelistGapS, notReady, r.LongestListS, yn(r.KilledAfterExit), yn(r.SideEffect), r.Restarts, strings.ToLower(r.FinalPhase))
	}
	return tw.Flush()
}
