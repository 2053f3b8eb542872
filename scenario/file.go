// Package scenario runs the incidents of INCIDENTS.md as A/B comparisons.
//
// A scenario file (TOML) declares a workload, a kubelet-like driver, faults,
// the variants to compare (fix toggles, per-variant overrides) and what each
// variant is expected to show. The runner starts one in-process fakecontainerd
// per variant, drives it over its CRI socket exactly as kubelet's generic PLEG
// and the old CPU manager did, and reports what a node would have suffered:
// PLEG health, relist and call durations, UNKNOWN states, errors.
//
// The package is a client of server/: it starts servers and talks CRI to
// them. So it can live neither in faults/ (which every package imports,
// server/ included) nor in e2e/ (test suites, not code the binary ships).
// Its driver needs nothing of the fake, so `fakecontainerd pleg-watch`
// points it at any CRI runtime, a real containerd included.
//
// Every duration in a scenario is real-world ("scenario") time; the runner
// scales it with the project clock (faults/clock), and reports durations
// unscaled, so runs at different time scales compare directly.
package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// Kubelet's values, used when a scenario leaves a driver field out.
const (
	// DefaultRelistPeriod is genericPlegRelistPeriod.
	DefaultRelistPeriod = time.Second
	// DefaultRelistThreshold is genericPlegRelistThreshold.
	DefaultRelistThreshold = 3 * time.Minute
	// DefaultRuntimeRequestTimeout is kubelet's --runtime-request-timeout.
	DefaultRuntimeRequestTimeout = 2 * time.Minute
	// DefaultCPUManagerPeriod is cpuManagerReconcilePeriod.
	DefaultCPUManagerPeriod = 10 * time.Second
	// DefaultCPUs is the node's CPU count for 1.36's static CPU manager.
	DefaultCPUs = 8
	// DefaultProbePeriod and DefaultProbeTimeout are a probe's
	// periodSeconds and timeoutSeconds defaults.
	DefaultProbePeriod  = 10 * time.Second
	DefaultProbeTimeout = time.Second
	// DefaultGracePeriod is a pod's terminationGracePeriodSeconds default.
	DefaultGracePeriod = 30 * time.Second
	// DefaultTimeScale is used when neither the file nor the caller sets one.
	DefaultTimeScale = 0.01
)

// maxReplicas bounds a pod group: kubelet's maxPods defaults to 110, and
// every replica is a pod the runner creates and relists.
const maxReplicas = 1000

// CPU manager schedules.
const (
	scheduleSliding = "sliding"
	scheduleTicker  = "ticker"
)

// File is a parsed scenario file. See README.md for the format.
type File struct {
	// Name identifies the scenario in reports.
	Name string `toml:"name"`
	// Summary is the one line `fakecontainerd scenario list` shows.
	Summary string `toml:"summary"`
	// Description says what the scenario shows and how.
	Description string `toml:"description"`
	// Duration is how long the driver runs, in scenario time.
	Duration Duration `toml:"duration"`
	// TimeScale is the default wall seconds per scenario second.
	TimeScale float64 `toml:"time_scale"`
	// Server overrides the fake's knobs for every variant.
	Server Server `toml:"server"`
	// Driver tunes the kubelet-like client.
	Driver DriverSection `toml:"driver"`
	// Pods is the workload.
	Pods []Pod `toml:"pods"`
	// Faults are armed in every variant unless a variant overrides them.
	Faults []Fault `toml:"faults"`
	// Variants are compared side by side, each on its own server.
	Variants []Variant `toml:"variants"`
}

// Server holds the fake's knobs a scenario may set (default.toml documents
// each); fields left out keep the default.
type Server struct {
	DiskThroughput  *configs.ByteSize `toml:"disk_throughput"`
	RootfsWriteRate *configs.ByteSize `toml:"rootfs_write_rate"`
	DirtyLimit      *configs.ByteSize `toml:"dirty_limit"`
	StopGrace       *configs.Duration `toml:"stop_grace"`
	// MountOptions replace the overlay mount options when set.
	MountOptions []string `toml:"mount_options"`
	// Disk replaces the node's disk layout when set (default.toml's
	// [plugins."io.fakecontainerd.v1".disk] table: devices, root_device,
	// rootfs_device, split_device, writers).
	Disk *configs.DiskConfig `toml:"disk"`
	// CPU sets the node's CPU model (default.toml's
	// [plugins."io.fakecontainerd.v1".cpu]: cores, and the costs); keys
	// left out keep the default (or the scenario's, in a variant).
	CPU *CPUSection `toml:"cpu"`
	// ShimV1DeletedState plays containerd <= 1.2.6's shim, before #3244
	// (default.toml's shim_v1_deleted_state).
	ShimV1DeletedState *bool `toml:"shim_v1_deleted_state"`
}

// CPUSection is a scenario's [server.cpu] table; nil fields keep what
// they override.
type CPUSection struct {
	Cores       *int              `toml:"cores"`
	Call        *configs.Duration `toml:"call"`
	ListItem    *configs.Duration `toml:"list_item"`
	ShimStart   *configs.Duration `toml:"shim_start"`
	RuncCreate  *configs.Duration `toml:"runc_create"`
	RuncStart   *configs.Duration `toml:"runc_start"`
	RuncExec    *configs.Duration `toml:"runc_exec"`
	RuncKill    *configs.Duration `toml:"runc_kill"`
	RuncDelete  *configs.Duration `toml:"runc_delete"`
	RuncUpdate  *configs.Duration `toml:"runc_update"`
	CNISetup    *configs.Duration `toml:"cni_setup"`
	CNITeardown *configs.Duration `toml:"cni_teardown"`
}

// apply sets the fields the section sets.
func (c *CPUSection) apply(dst *configs.CPUConfig) {
	if c == nil {
		return
	}
	if c.Cores != nil {
		dst.Cores = *c.Cores
	}
	for _, f := range []struct {
		src *configs.Duration
		dst *configs.Duration
	}{
		{c.Call, &dst.Call}, {c.ListItem, &dst.ListItem}, {c.ShimStart, &dst.ShimStart},
		{c.RuncCreate, &dst.RuncCreate}, {c.RuncStart, &dst.RuncStart}, {c.RuncExec, &dst.RuncExec},
		{c.RuncKill, &dst.RuncKill}, {c.RuncDelete, &dst.RuncDelete}, {c.RuncUpdate, &dst.RuncUpdate},
		{c.CNISetup, &dst.CNISetup}, {c.CNITeardown, &dst.CNITeardown},
	} {
		if f.src != nil {
			*f.dst = *f.src
		}
	}
}

// DriverSection is the [driver] table; zero fields take kubelet's values.
type DriverSection struct {
	RelistPeriod          Duration `toml:"relist_period"`
	RelistThreshold       Duration `toml:"relist_threshold"`
	RuntimeRequestTimeout Duration `toml:"runtime_request_timeout"`
	// CPUManager plays the older kubelets' CPU manager, which called
	// UpdateContainerResources on every running container each period.
	// On unless set to false.
	CPUManager       *bool    `toml:"cpu_manager"`
	CPUManagerPeriod Duration `toml:"cpu_manager_period"`
	// CPUManagerSchedule is "sliding" (kubelet's wait.Until: the period
	// counts from the end of a round; the default) or "ticker" (a fixed
	// rate: a round that overran starts the next at once).
	CPUManagerSchedule string `toml:"cpu_manager_schedule"`
	// SerializeImagePulls is kubelet's serializeImagePulls (default true).
	SerializeImagePulls *bool `toml:"serialize_image_pulls"`
	// Kubelet is the kubelet played: "1.19" (the default: the field's
	// kubelet, whose CPU manager updates every running container each
	// period) or "1.36" (the static CPU manager updates only changed
	// cpusets; PLEGOnDemandRelist; one inspection per relist).
	Kubelet string `toml:"kubelet"`
	// OnDemandRelist is 1.36's PLEGOnDemandRelist gate (default on).
	OnDemandRelist *bool `toml:"on_demand_relist"`
	// CPUs is the node's CPU count for 1.36's static CPU manager
	// (default 8).
	CPUs int `toml:"cpus"`
	// StopCompletedPods: pod workers stop the sandbox of a pod whose
	// containers have all exited (default false).
	StopCompletedPods bool `toml:"stop_completed_pods"`
}

// Pod is a group of identical pods.
type Pod struct {
	// Name of the pod; with replicas > 1 the pods are <name>-0, <name>-1...
	// (also in a variant that overrides replicas, so selectors keep working).
	Name      string `toml:"name"`
	Namespace string `toml:"namespace"`
	Replicas  int    `toml:"replicas"`
	// CreateAt is when the driver creates the pod, as kubelet's pod worker
	// does (RunPodSandbox, then per container pull if absent, create,
	// start). CreateEvery staggers the replicas.
	CreateAt    Duration          `toml:"create_at"`
	CreateEvery Duration          `toml:"create_every"`
	Labels      map[string]string `toml:"labels"`
	Annotations map[string]string `toml:"annotations"`
	Containers  []Container       `toml:"containers"`
	// ExclusiveCPUs makes the pods Guaranteed with that many integer
	// CPUs: 1.36's static CPU manager takes them out of the shared pool,
	// which changes every shared container's cpuset.
	ExclusiveCPUs int `toml:"exclusive_cpus"`
	// DeleteAt, when set, is when the pods are deleted (kubectl delete):
	// the pod worker's killPod stops every container at once, then the
	// sandbox. DeleteEvery staggers the replicas; GracePeriod is the pod's
	// terminationGracePeriodSeconds (default 30s).
	DeleteAt    Duration `toml:"delete_at"`
	DeleteEvery Duration `toml:"delete_every"`
	GracePeriod Duration `toml:"grace_period"`
}

// ExecProbe is a container's exec liveness or readiness probe, as kubelet
// runs it.
type ExecProbe struct {
	// Command is what ExecSync runs (default ["/bin/true"]).
	Command []string `toml:"command"`
	// Period is periodSeconds (default 10s); Timeout is timeoutSeconds
	// (default 1s), the ExecSync timeout.
	Period  Duration `toml:"period"`
	Timeout Duration `toml:"timeout"`
}

// Container scripts one fake process through the shim's annotations.
type Container struct {
	Name string `toml:"name"`
	// Image defaults to busybox:latest; "{i}" is replaced by the replica
	// index, so replicas can pull distinct images.
	Image string `toml:"image"`
	// ExitAt is when, from the start of the run, the process exits by
	// itself (0: it runs to the end); ExitEvery staggers the replicas.
	ExitAt    Duration `toml:"exit_at"`
	ExitEvery Duration `toml:"exit_every"`
	ExitCode  int      `toml:"exit_code"`
	// Disk model overrides (shim annotations dirty-bytes, disk-throughput,
	// write-rate) and stop grace ("never" ignores SIGTERM).
	DirtyBytes     *configs.ByteSize `toml:"dirty_bytes"`
	DiskThroughput *configs.ByteSize `toml:"disk_throughput"`
	WriteRate      *configs.ByteSize `toml:"write_rate"`
	StopGrace      *configs.Duration `toml:"stop_grace"`
	Labels         map[string]string `toml:"labels"`
	Annotations    map[string]string `toml:"annotations"`
	// ExecProbe, when set, is probed through ExecSync as kubelet's prober
	// does, from the start of the run (or the container's start).
	ExecProbe *ExecProbe `toml:"exec_probe"`
}

// Fault is armed at At and disarmed at ClearAt (never if 0).
type Fault struct {
	// Name lets a variant replace or drop the fault.
	Name string `toml:"name"`
	// Point, Target and Spec are the fault injector's (`fakecontainerd
	// fault points`; target "all" or "pod=x,container=y,label.k=v").
	Point   string   `toml:"point"`
	Target  string   `toml:"target"`
	Spec    string   `toml:"spec"`
	At      Duration `toml:"at"`
	ClearAt Duration `toml:"clear_at"`
	// Off, in a variant, drops the scenario's fault of the same name.
	Off bool `toml:"off"`
}

// Variant is one arm of the comparison.
type Variant struct {
	Name        string   `toml:"name"`
	Description string   `toml:"description"`
	Fixes       []string `toml:"fixes"`
	// Server overrides the scenario's server knobs.
	Server Server `toml:"server"`
	// Faults replace the scenario's fault of the same name (or drop it
	// with off = true); faults with a new name are added.
	Faults []Fault `toml:"faults"`
	// Replicas overrides the replica count of pod groups, by name.
	Replicas map[string]int `toml:"replicas"`
	// ProbePeriod overrides the exec probes' period of pod groups, by
	// name (the storm's fix: probe less often).
	ProbePeriod map[string]Duration `toml:"probe_period"`
	// Kubelet and OnDemandRelist override the driver's.
	Kubelet        string `toml:"kubelet"`
	OnDemandRelist *bool  `toml:"on_demand_relist"`
	Expect         Expect `toml:"expect"`
}

// Expect is what a variant must show; unset fields are not checked.
type Expect struct {
	PLEGHealthy *bool `toml:"pleg_healthy"`
	// PLEGHealthyAtEnd is the verdict when the run ends (recovered or not).
	PLEGHealthyAtEnd *bool `toml:"pleg_healthy_at_end"`
	PLEGLastSeen     Range `toml:"pleg_last_seen"`
	Relist           Range `toml:"relist"`
	ListContainers   Range `toml:"list_containers"`
	UpdateResources  Range `toml:"update_resources"`
	// RelistP99 bounds the relists' 99th percentile; ExecSync and
	// StopContainer the longest such call.
	RelistP99     Range `toml:"relist_p99"`
	RelistP50     Range `toml:"relist_p50"`
	ExecSync      Range `toml:"exec_sync"`
	StopContainer Range `toml:"stop_container"`
	// CPUBusy bounds the share of the node's cores busy during the run
	// (0..1, the CPU model's; 1 - idle).
	CPUBusy       FloatRange `toml:"cpu_busy"`
	UnknownStates *int       `toml:"unknown_states"`
	// Errors must each be a substring of some error callers saw, written
	// "<Method>: <code>: <message>"; NoErrors must match none.
	Errors   []string `toml:"errors"`
	NoErrors []string `toml:"no_errors"`
	// MaxErrors bounds the number of failed calls.
	MaxErrors *int `toml:"max_errors"`
}

// FloatRange bounds a number; either end may be left out.
type FloatRange struct {
	Min *float64 `toml:"min"`
	Max *float64 `toml:"max"`
}

// Range bounds a duration; either end may be left out.
type Range struct {
	Min *Duration `toml:"min"`
	Max *Duration `toml:"max"`
}

// Duration is a non-negative Go duration ("90s", "2m30s") in scenario time.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes the Go form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a Go duration and refuses negative ones.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%w (want a duration such as \"30s\" or \"2m\")", err)
	}
	if v < 0 {
		return fmt.Errorf("duration %q: must not be negative", b)
	}
	*d = Duration(v)
	return nil
}

// Load reads a scenario by built-in name or from a file path.
func Load(nameOrPath string) (*File, error) {
	for _, n := range configs.ScenarioNames() {
		if n == nameOrPath {
			data, err := configs.ScenarioFile(n)
			if err != nil {
				return nil, err
			}
			return Parse(data, n)
		}
	}
	data, err := os.ReadFile(nameOrPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("scenario %q: neither a built-in scenario (%s) nor a file", nameOrPath, strings.Join(configs.ScenarioNames(), ", "))
		}
		return nil, fmt.Errorf("scenario: %w", err)
	}
	return Parse(data, nameOrPath)
}

// Parse decodes and validates a scenario file; source names it in errors.
// Unknown keys are errors, so a misspelt expectation cannot pass silently.
func Parse(data []byte, source string) (*File, error) {
	var f File
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", source, err)
	}
	if md.IsDefined("cluster") {
		return nil, fmt.Errorf("scenario %s: a cluster scenario (cluster = true) runs on a cluster of real kubelets: make cluster-scenario SCENARIO=%s", source, source)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("scenario %s: unknown key %s", source, strings.Join(keys, ", "))
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("scenario %s: %w", source, err)
	}
	return &f, nil
}

// Validate checks the whole file; every problem is one error naming its
// field, all joined.
func (f *File) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if f.Name == "" {
		add("name", "must be set")
	}
	if f.Duration <= 0 {
		add("duration", "must be set and positive")
	}
	if f.TimeScale != 0 {
		if _, err := clock.New(f.TimeScale); err != nil {
			add("time_scale", "%v", err)
		}
	}
	switch f.Driver.CPUManagerSchedule {
	case "", scheduleSliding, scheduleTicker:
	default:
		add("driver.cpu_manager_schedule", "%q: want %q or %q", f.Driver.CPUManagerSchedule, scheduleSliding, scheduleTicker)
	}
	errs = append(errs, validateKubelet("driver", f.Driver.Kubelet, f.Driver.OnDemandRelist)...)
	if f.Driver.CPUs < 0 {
		add("driver.cpus", "must not be negative")
	}
	pods := map[string]bool{}
	for i, p := range f.Pods {
		field := fmt.Sprintf("pods[%d]", i)
		if p.Name == "" {
			add(field+".name", "must be set")
		} else if pods[p.Name] {
			add(field+".name", "%q is used twice", p.Name)
		}
		pods[p.Name] = true
		if p.Replicas < 0 || p.Replicas > maxReplicas {
			add(field+".replicas", "%d is not in 0..%d", p.Replicas, maxReplicas)
		}
		if len(p.Containers) == 0 {
			add(field+".containers", "a pod needs at least one container")
		}
		if p.ExclusiveCPUs < 0 {
			add(field+".exclusive_cpus", "must not be negative")
		}
		names := map[string]bool{}
		for j, c := range p.Containers {
			cf := fmt.Sprintf("%s.containers[%d]", field, j)
			if c.Name == "" {
				add(cf+".name", "must be set")
			} else if names[c.Name] {
				add(cf+".name", "%q is used twice in pod %q", c.Name, p.Name)
			}
			names[c.Name] = true
			if c.ExitCode < 0 || c.ExitCode > 255 {
				add(cf+".exit_code", "%d is not in 0..255", c.ExitCode)
			}
			if c.ExitAt != 0 && c.ExitAt <= p.CreateAt {
				add(cf+".exit_at", "%v is not after the pod's create_at %v (exit_at counts from the start of the run)", c.ExitAt, p.CreateAt)
			}
			if c.ExitAt == 0 && c.ExitEvery != 0 {
				add(cf+".exit_every", "needs exit_at")
			}
		}
		if p.DeleteAt != 0 && p.DeleteAt <= p.CreateAt {
			add(field+".delete_at", "%v is not after the pod's create_at %v (delete_at counts from the start of the run)", p.DeleteAt, p.CreateAt)
		}
		if p.DeleteAt == 0 && p.DeleteEvery != 0 {
			add(field+".delete_every", "needs delete_at")
		}
	}
	faultNames := map[string]bool{}
	for i, fc := range f.Faults {
		field := fmt.Sprintf("faults[%d]", i)
		errs = append(errs, validateFault(field, fc)...)
		if fc.Off {
			add(field+".off", "only a variant's fault can be off")
		}
		if fc.Name != "" {
			if faultNames[fc.Name] {
				add(field+".name", "%q is used twice", fc.Name)
			}
			faultNames[fc.Name] = true
		}
	}
	if len(f.Variants) == 0 {
		add("variants", "at least one variant is needed")
	}
	variants := map[string]bool{}
	for i, v := range f.Variants {
		field := fmt.Sprintf("variants[%d]", i)
		if v.Name == "" {
			add(field+".name", "must be set")
		} else {
			field = fmt.Sprintf("variants[%d] (%s)", i, v.Name)
			if variants[v.Name] {
				add(field+".name", "%q is used twice", v.Name)
			}
		}
		variants[v.Name] = true
		kubelet := v.Kubelet
		if kubelet == "" {
			kubelet = f.Driver.Kubelet
		}
		onDemand := v.OnDemandRelist
		if onDemand == nil {
			onDemand = f.Driver.OnDemandRelist
		}
		if v.Kubelet != "" || v.OnDemandRelist != nil {
			errs = append(errs, validateKubelet(field, kubelet, onDemand)...)
		}
		for j, fix := range v.Fixes {
			if _, err := faults.ParseFix(fix); err != nil {
				add(fmt.Sprintf("%s.fixes[%d]", field, j), "%v", err)
			}
		}
		for name, n := range v.Replicas {
			if !pods[name] {
				add(field+".replicas."+name, "no pod group is named %q", name)
			}
			if n < 0 || n > maxReplicas {
				add(field+".replicas."+name, "%d is not in 0..%d", n, maxReplicas)
			}
		}
		for name := range v.ProbePeriod {
			if !pods[name] {
				add(field+".probe_period."+name, "no pod group is named %q", name)
			}
		}
		for j, fc := range v.Faults {
			ff := fmt.Sprintf("%s.faults[%d]", field, j)
			if fc.Off {
				if !faultNames[fc.Name] {
					add(ff+".name", "off needs the name of a scenario fault, not %q", fc.Name)
				}
				continue
			}
			errs = append(errs, validateFault(ff, fc)...)
		}
		errs = append(errs, v.Expect.validate(field+".expect")...)
	}
	return errors.Join(errs...)
}

// validateKubelet checks a kubelet version and the gate only it has.
func validateKubelet(field, kubelet string, onDemand *bool) []error {
	var errs []error
	switch kubelet {
	case "", Kubelet119, Kubelet136:
	default:
		errs = append(errs, fmt.Errorf("%s.kubelet: %q: want %q or %q", field, kubelet, Kubelet119, Kubelet136))
	}
	if onDemand != nil && kubelet != Kubelet136 {
		errs = append(errs, fmt.Errorf("%s.on_demand_relist: PLEGOnDemandRelist is a kubelet 1.36 gate; set kubelet = %q", field, Kubelet136))
	}
	return errs
}

func validateFault(field string, fc Fault) []error {
	var errs []error
	if err := faults.ValidatePoint(fc.Point); err != nil {
		errs = append(errs, fmt.Errorf("%s.point: %w", field, err))
	}
	if _, err := faults.ParseSelector(fc.Target); err != nil {
		errs = append(errs, fmt.Errorf("%s.target: %w", field, err))
	}
	if _, err := faults.ParseSpec(fc.Spec); err != nil {
		errs = append(errs, fmt.Errorf("%s.spec: %w", field, err))
	}
	if fc.ClearAt != 0 && fc.ClearAt <= fc.At {
		errs = append(errs, fmt.Errorf("%s.clear_at: %v is not after at %v", field, fc.ClearAt, fc.At))
	}
	return errs
}

func (e Expect) validate(field string) []error {
	var errs []error
	for _, r := range []struct {
		name string
		r    Range
	}{{"pleg_last_seen", e.PLEGLastSeen}, {"relist", e.Relist}, {"list_containers", e.ListContainers}, {"update_resources", e.UpdateResources},
		{"relist_p99", e.RelistP99}, {"relist_p50", e.RelistP50}, {"exec_sync", e.ExecSync}, {"stop_container", e.StopContainer}} {
		if r.r.Min != nil && r.r.Max != nil && *r.r.Min > *r.r.Max {
			errs = append(errs, fmt.Errorf("%s.%s: min %v is above max %v", field, r.name, *r.r.Min, *r.r.Max))
		}
	}
	if e.CPUBusy.Min != nil && e.CPUBusy.Max != nil && *e.CPUBusy.Min > *e.CPUBusy.Max {
		errs = append(errs, fmt.Errorf("%s.cpu_busy: min %v is above max %v", field, *e.CPUBusy.Min, *e.CPUBusy.Max))
	}
	if e.UnknownStates != nil && *e.UnknownStates < 0 {
		errs = append(errs, fmt.Errorf("%s.unknown_states: must not be negative", field))
	}
	if e.MaxErrors != nil && *e.MaxErrors < 0 {
		errs = append(errs, fmt.Errorf("%s.max_errors: must not be negative", field))
	}
	return errs
}

// VariantNames lists the variants in file order.
func (f *File) VariantNames() []string {
	out := make([]string, len(f.Variants))
	for i, v := range f.Variants {
		out[i] = v.Name
	}
	return out
}

// SelectVariants returns the named variants in the order given, or all of
// them when names is empty; an unknown name is an error naming it.
func (f *File) SelectVariants(names []string) ([]Variant, error) {
	if len(names) == 0 {
		return f.Variants, nil
	}
	byName := map[string]Variant{}
	for _, v := range f.Variants {
		byName[v.Name] = v
	}
	var out []Variant
	seen := map[string]bool{}
	for _, n := range names {
		v, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("scenario %s has no variant %q (variants: %s)", f.Name, n, strings.Join(f.VariantNames(), ", "))
		}
		if !seen[n] {
			out = append(out, v)
			seen[n] = true
		}
	}
	return out, nil
}

// plan is one variant with every override applied.
type plan struct {
	name   string
	fixes  []faults.Fix
	server []Server // applied in order
	pods   []podPlan
	faults []Fault
	driver DriverConfig
	until  time.Duration
}

// podPlan is one pod to create.
type podPlan struct {
	group       string
	name        string
	namespace   string
	uid         string
	index       int
	createAt    time.Duration
	labels      map[string]string
	annotations map[string]string
	containers  []containerPlan
	exclusive   int
	// deleteAt is when the pod is deleted (0: never); grace its
	// termination grace period.
	deleteAt, grace time.Duration
}

type containerPlan struct {
	name        string
	image       string
	exitAt      time.Duration // 0: runs to the end
	exitCode    int
	labels      map[string]string
	annotations map[string]string
	probe       *ProbeSpec
}

// plan resolves a variant against the file.
func (f *File) plan(v Variant) plan {
	d := f.Driver
	if v.Kubelet != "" {
		d.Kubelet = v.Kubelet
	}
	if v.OnDemandRelist != nil {
		d.OnDemandRelist = v.OnDemandRelist
	}
	p := plan{name: v.Name, server: []Server{f.Server, v.Server}, until: f.Duration.D(), driver: d.config()}
	for _, s := range v.Fixes {
		fix, _ := faults.ParseFix(s) // validated
		p.fixes = append(p.fixes, fix)
	}
	// Faults: the scenario's, replaced or dropped by name, then the new ones.
	override := map[string]Fault{}
	for _, fc := range v.Faults {
		if fc.Name != "" {
			override[fc.Name] = fc
		}
	}
	used := map[string]bool{}
	for _, fc := range f.Faults {
		if o, ok := override[fc.Name]; ok && fc.Name != "" {
			used[fc.Name] = true
			if o.Off {
				continue
			}
			fc = o
		}
		p.faults = append(p.faults, fc)
	}
	for _, fc := range v.Faults {
		if fc.Name == "" || !used[fc.Name] {
			if !fc.Off {
				p.faults = append(p.faults, fc)
			}
		}
	}
	for _, g := range f.Pods {
		n := g.Replicas
		if n == 0 {
			n = 1
		}
		if r, ok := v.Replicas[g.Name]; ok {
			n = r
		}
		ns := g.Namespace
		if ns == "" {
			ns = "default"
		}
		for i := range n {
			name := g.Name
			if n > 1 || g.Replicas > 1 {
				name = fmt.Sprintf("%s-%d", g.Name, i)
			}
			pp := podPlan{
				group: g.Name, name: name, namespace: ns, uid: fmt.Sprintf("uid-%s-%s", ns, name), index: i,
				createAt: g.CreateAt.D() + time.Duration(i)*g.CreateEvery.D(),
				labels:   g.Labels, annotations: g.Annotations, exclusive: g.ExclusiveCPUs,
				grace: DefaultGracePeriod,
			}
			if g.DeleteAt > 0 {
				pp.deleteAt = g.DeleteAt.D() + time.Duration(i)*g.DeleteEvery.D()
			}
			if g.GracePeriod > 0 {
				pp.grace = g.GracePeriod.D()
			}
			for _, c := range g.Containers {
				cp := containerPlan{
					name: c.Name, image: strings.ReplaceAll(c.Image, "{i}", fmt.Sprint(i)),
					exitCode: c.ExitCode, labels: c.Labels, annotations: behaviourAnnotations(c),
				}
				if cp.image == "" {
					cp.image = "busybox:latest"
				}
				if c.ExitAt > 0 {
					cp.exitAt = c.ExitAt.D() + time.Duration(i)*c.ExitEvery.D()
				}
				if c.ExecProbe != nil {
					cp.probe = c.ExecProbe.spec()
					if d, ok := v.ProbePeriod[g.Name]; ok && d > 0 {
						cp.probe.Period = d.D()
					}
				}
				pp.containers = append(pp.containers, cp)
			}
			p.pods = append(p.pods, pp)
		}
	}
	sort.SliceStable(p.pods, func(i, j int) bool { return p.pods[i].createAt < p.pods[j].createAt })
	return p
}

func (d DriverSection) config() DriverConfig {
	c := DriverConfig{
		RelistPeriod: d.RelistPeriod.D(), RelistThreshold: d.RelistThreshold.D(),
		RuntimeRequestTimeout: d.RuntimeRequestTimeout.D(), CPUManagerPeriod: d.CPUManagerPeriod.D(),
		SerializeImagePulls: d.SerializeImagePulls == nil || *d.SerializeImagePulls,
		CPUManagerTicker:    d.CPUManagerSchedule == scheduleTicker,
		Kubelet:             d.Kubelet, CPUs: d.CPUs, StopCompletedPods: d.StopCompletedPods,
		OnDemandRelist: d.Kubelet == Kubelet136 && (d.OnDemandRelist == nil || *d.OnDemandRelist),
	}
	if c.CPUManagerPeriod == 0 {
		c.CPUManagerPeriod = DefaultCPUManagerPeriod
	}
	if d.CPUManager != nil && !*d.CPUManager {
		c.CPUManagerPeriod = 0
	}
	return c.withDefaults()
}

// spec is the probe with kubelet's defaults.
func (e *ExecProbe) spec() *ProbeSpec {
	p := &ProbeSpec{Command: e.Command, Period: e.Period.D(), Timeout: e.Timeout.D()}
	if len(p.Command) == 0 {
		p.Command = []string{"/bin/true"}
	}
	if p.Period == 0 {
		p.Period = DefaultProbePeriod
	}
	if p.Timeout == 0 {
		p.Timeout = DefaultProbeTimeout
	}
	return p
}
