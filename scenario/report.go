package scenario

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable prints the A/B table: one row per variant, durations in
// scenario seconds; then the errors callers saw in full and every failed
// expectation.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "scenario %s at time scale %g (%v wall); durations in scenario seconds\n", r.Scenario, r.TimeScale, r.Wall.Round(time.Millisecond))
	fmt.Fprintln(w, r.starvation())
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(tableHeader(), "\t"))
	for _, v := range r.Variants {
		fmt.Fprintln(tw, strings.Join(v.tableCells(), "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, v := range r.Variants {
		if len(v.Stats.Errors) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nerrors seen in %s:\n", v.Name)
		for _, e := range v.Stats.Errors {
			fmt.Fprintf(w, "  %4d× %s\n", e.Count, e.String())
		}
	}
	for _, v := range r.Variants {
		if v.ExpectationsMet() {
			continue
		}
		fmt.Fprintf(w, "\nexpectations not met in %s:\n", v.Name)
		if v.Err != nil {
			fmt.Fprintf(w, "  did not run: %v\n", v.Err)
		}
		for _, f := range v.Failed {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
	_, err := fmt.Fprintln(w)
	return err
}

// tableHeader names the A/B table's columns (text and HTML).
func tableHeader() []string {
	return []string{"VARIANT", "PLEG", "NO RELIST FOR", "WORST RELIST", "WORST LIST", "WORST UPDATE", "UNKNOWN", "ERRORS", "EXPECTED"}
}

// tableCells is the variant's row of the A/B table.
func (v VariantResult) tableCells() []string {
	if v.Err != nil {
		return []string{v.Name, "-", "-", "-", "-", "-", "-", "-", "FAIL (did not run)"}
	}
	s := v.Stats
	pleg := "healthy"
	if !s.Healthy() {
		pleg = "UNHEALTHY"
	}
	expected := "ok"
	if !v.ExpectationsMet() {
		expected = fmt.Sprintf("FAIL (%d)", len(v.Failed))
	}
	return []string{v.Name, pleg, seconds(s.MaxPLEGLastSeen), seconds(s.MaxRelist), seconds(s.Max("ListContainers")), seconds(s.Max("UpdateContainerResources")),
		strconv.Itoa(len(s.Unknown)), errorSummary(s.Errors), expected}
}

// starvation says how much of the run the machine withheld the CPU and the
// clock left out of scenario time.
func (r *Report) starvation() string {
	return fmt.Sprintf("starvation left out of scenario time: %v of wall time (%v of scenario time; longest stall %v)",
		r.Discounted.Round(time.Millisecond), r.DiscountedScenario().Round(100*time.Millisecond), r.MaxStall.Round(time.Millisecond))
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()) }

// errorSummary counts errors by method and code, e.g.
// "UpdateContainerResources/DeadlineExceeded×3".
func errorSummary(errs []ErrorCount) string {
	if len(errs) == 0 {
		return "-"
	}
	counts := map[string]int{}
	for _, e := range errs {
		counts[e.Method+"/"+e.Code.String()] += e.Count
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, counts[k])
	}
	return strings.Join(parts, ", ")
}

// jsonReport is the --json form; every duration is in scenario seconds.
type jsonReport struct {
	Scenario    string  `json:"scenario"`
	TimeScale   float64 `json:"time_scale"`
	WallSeconds float64 `json:"wall_seconds"`
	// MaxStallSeconds is the worst scheduling stall, in scenario seconds.
	MaxStallSeconds float64 `json:"max_stall_seconds"`
	// DiscountedSeconds is all the starvation the clock left out of
	// scenario time, in scenario seconds (no figure includes it).
	DiscountedSeconds float64       `json:"discounted_seconds"`
	OK                bool          `json:"ok"`
	Variants          []jsonVariant `json:"variants"`
}

type jsonVariant struct {
	Name                      string       `json:"name"`
	PLEGHealthy               bool         `json:"pleg_healthy"`
	PLEGHealthyAtEnd          bool         `json:"pleg_healthy_at_end"`
	MaxPLEGLastSeenSeconds    float64      `json:"max_pleg_last_seen_seconds"`
	MaxRelistSeconds          float64      `json:"max_relist_seconds"`
	MaxListContainersSeconds  float64      `json:"max_list_containers_seconds"`
	MaxUpdateResourcesSeconds float64      `json:"max_update_resources_seconds"`
	RelistP99Seconds          float64      `json:"relist_p99_seconds"`
	RelistP50Seconds          float64      `json:"relist_p50_seconds"`
	MaxExecSyncSeconds        float64      `json:"max_exec_sync_seconds"`
	MaxStopContainerSeconds   float64      `json:"max_stop_container_seconds"`
	CPUBusy                   float64      `json:"cpu_busy"`
	UnknownStates             int          `json:"unknown_states"`
	Errors                    []jsonError  `json:"errors"`
	ExpectationsMet           bool         `json:"expectations_met"`
	FailedExpectations        []string     `json:"failed_expectations,omitempty"`
	RunError                  string       `json:"run_error,omitempty"`
	Relists                   int          `json:"relists"`
	FailedRelists             int          `json:"failed_relists"`
	HealthTransitions         []jsonHealth `json:"health_transitions"`
	WallSeconds               float64      `json:"wall_seconds"`
}

type jsonError struct {
	Method  string `json:"method"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Count   int    `json:"count"`
}

type jsonHealth struct {
	AtSeconds       float64 `json:"at_seconds"`
	Healthy         bool    `json:"healthy"`
	LastSeenSeconds float64 `json:"last_seen_seconds"`
	Message         string  `json:"message"`
}

// WriteJSON prints the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	out := jsonReport{Scenario: r.Scenario, TimeScale: r.TimeScale, WallSeconds: secs(r.Wall), MaxStallSeconds: secs(r.StallScenario()), DiscountedSeconds: secs(r.DiscountedScenario()), OK: r.OK(), Variants: []jsonVariant{}}
	for _, v := range r.Variants {
		s := v.Stats
		jv := jsonVariant{
			Name: v.Name, PLEGHealthy: v.Err == nil && s.Healthy(), PLEGHealthyAtEnd: v.Err == nil && s.HealthyAtEnd(),
			MaxPLEGLastSeenSeconds: secs(s.MaxPLEGLastSeen), MaxRelistSeconds: secs(s.MaxRelist),
			MaxListContainersSeconds: secs(s.Max("ListContainers")), MaxUpdateResourcesSeconds: secs(s.Max("UpdateContainerResources")),
			UnknownStates: len(s.Unknown), Errors: []jsonError{}, ExpectationsMet: v.ExpectationsMet(),
			FailedExpectations: v.Failed, Relists: s.Relists, FailedRelists: s.FailedRelists,
			HealthTransitions: []jsonHealth{}, WallSeconds: secs(v.Wall),
			RelistP99Seconds: secs(s.RelistP99), RelistP50Seconds: secs(s.RelistP50), MaxExecSyncSeconds: secs(s.Max("ExecSync")),
			MaxStopContainerSeconds: secs(s.Max("StopContainer")), CPUBusy: s.CPUBusy,
		}
		if v.Err != nil {
			jv.RunError = v.Err.Error()
		}
		for _, e := range s.Errors {
			jv.Errors = append(jv.Errors, jsonError{Method: e.Method, Code: e.Code.String(), Message: e.Message, Count: e.Count})
		}
		for _, h := range s.Transitions {
			jv.HealthTransitions = append(jv.HealthTransitions, jsonHealth{AtSeconds: secs(h.At), Healthy: h.Healthy, LastSeenSeconds: secs(h.LastSeen), Message: h.Message})
		}
		out.Variants = append(out.Variants, jv)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// secs rounds to milliseconds: finer digits are scheduling noise.
func secs(d time.Duration) float64 { return float64(d.Round(time.Millisecond)) / float64(time.Second) }
