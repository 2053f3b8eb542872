package scenario

import (
	"strings"
	"testing"
	"time"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/faults"
)

// minimal is a valid scenario that the cases below break one field at a
// time.
const minimal = `
name = "t"
duration = "1m"
[[pods]]
  name = "p"
  [[pods.containers]]
    name = "c"
[[variants]]
  name = "baseline"
`

func TestParseErrorsNameTheField(t *testing.T) {
	cases := []struct {
		name, file, want string
	}{
		{"cluster scenario", "cluster = true\n" + minimal, "a cluster scenario (cluster = true) runs on a cluster"},
		{"unknown key", minimal + "  [variants.expect]\n    pleg_health = true\n", "unknown key variants.expect.pleg_health"},
		{"no name", strings.Replace(minimal, `name = "t"`, "", 1), "name: must be set"},
		{"no duration", strings.Replace(minimal, `duration = "1m"`, "", 1), "duration: must be set"},
		{"bad duration", strings.Replace(minimal, `"1m"`, `"soon"`, 1), `invalid duration "soon"`},
		{"negative duration", strings.Replace(minimal, `"1m"`, `"-1m"`, 1), "must not be negative"},
		{"bad time scale", minimal + "time_scale = 5000\n", "time_scale"},
		{"unknown fix", minimal + `  fixes = ["volatil"]` + "\n", `variants[0] (baseline).fixes[0]: unknown fix "volatil"`},
		{"exit code", strings.Replace(minimal, `name = "c"`, "name = \"c\"\n    exit_at = \"10s\"\n    exit_code = 300", 1), "pods[0].containers[0].exit_code: 300 is not in 0..255"},
		{"created later", strings.Replace(minimal, `name = "p"`, "name = \"p\"\n  create_at = \"20s\"", 1), ""},
		{"bad fault point", minimal + "[[faults]]\n  point = \"shim.Unmount\"\n  spec = \"block\"\n", `faults[0].point: unknown fault point "shim.Unmount"`},
		{"bad fault spec", minimal + "[[faults]]\n  point = \"shim.unmount\"\n  spec = \"stall\"\n", "faults[0].spec"},
		{"bad fault target", minimal + "[[faults]]\n  point = \"shim.unmount\"\n  spec = \"block\"\n  target = \"colour=red\"\n", "faults[0].target"},
		{"clear before arm", minimal + "[[faults]]\n  point = \"shim.unmount\"\n  spec = \"block\"\n  at = \"1m\"\n  clear_at = \"30s\"\n", "faults[0].clear_at: 30s is not after at 1m0s"},
		{"too many replicas", strings.Replace(minimal, `name = "p"`, "name = \"p\"\n  replicas = 9223372036854775807", 1), "pods[0].replicas: 9223372036854775807 is not in 0..1000"},
		{"replicas of nothing", minimal + "  replicas = { q = 2 }\n", `variants[0] (baseline).replicas.q: no pod group is named "q"`},
		{"probe period of nothing", minimal + "  probe_period = { q = \"10s\" }\n", `variants[0] (baseline).probe_period.q: no pod group is named "q"`},
		{"delete every alone", strings.Replace(minimal, `name = "p"`, "name = \"p\"\n  delete_every = \"1s\"", 1), "pods[0].delete_every: needs delete_at"},
		{"delete before create", strings.Replace(minimal, `name = "p"`, "name = \"p\"\n  create_at = \"20s\"\n  delete_at = \"10s\"", 1), "pods[0].delete_at: 10s is not after the pod's create_at 20s"},
		{"cpu_busy min above max", minimal + "  [variants.expect]\n    cpu_busy = { min = 0.5, max = 0.1 }\n", "expect.cpu_busy: min 0.5 is above max 0.1"},
		{"off without scenario fault", minimal + "  [[variants.faults]]\n    name = \"x\"\n    off = true\n", `off needs the name of a scenario fault, not "x"`},
		{"min above max", minimal + "  [variants.expect]\n    relist = { min = \"2m\", max = \"1m\" }\n", "variants[0] (baseline).expect.relist: min 2m0s is above max 1m0s"},
		{"duplicate variant", minimal + "[[variants]]\n  name = \"baseline\"\n", `"baseline" is used twice`},
		{"bad schedule", minimal + "[driver]\n  cpu_manager_schedule = \"cron\"\n", `driver.cpu_manager_schedule: "cron"`},
		{"bad kubelet", minimal + "[driver]\n  kubelet = \"1.20\"\n", `driver.kubelet: "1.20": want "1.19" or "1.36"`},
		{"gate without 1.36", minimal + "[driver]\n  on_demand_relist = true\n", "driver.on_demand_relist: PLEGOnDemandRelist is a kubelet 1.36 gate"},
		{"variant gate on 1.19", minimal + "  kubelet = \"1.19\"\n  on_demand_relist = false\n", "variants[0] (baseline).on_demand_relist"},
		{"kubelet 1.36", minimal + "[driver]\n  kubelet = \"1.36\"\n  on_demand_relist = false\n  cpus = 16\n", ""},
		{"negative exclusive cpus", strings.Replace(minimal, `name = "p"`, "name = \"p\"\n  exclusive_cpus = -1", 1), "pods[0].exclusive_cpus: must not be negative"},
		{"bad byte size", strings.Replace(minimal, `name = "c"`, "name = \"c\"\n    dirty_bytes = \"lots\"", 1), `byte size "lots"`},
		{"no variants", strings.Replace(minimal, "[[variants]]\n  name = \"baseline\"\n", "", 1), "variants: at least one variant is needed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.file), "test.toml")
			if c.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v, want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse error = %v, want one containing %q", err, c.want)
			}
			if !strings.Contains(err.Error(), "test.toml") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestExitMustFollowCreation(t *testing.T) {
	file := strings.Replace(minimal, `name = "c"`, "name = \"c\"\n    exit_at = \"10s\"", 1)
	file = strings.Replace(file, `name = "p"`, "name = \"p\"\n  create_at = \"20s\"", 1)
	_, err := Parse([]byte(file), "t")
	if err == nil || !strings.Contains(err.Error(), "pods[0].containers[0].exit_at: 10s is not after the pod's create_at 20s") {
		t.Fatalf("Parse error = %v", err)
	}
}

const planFile = `
name = "plan"
duration = "5m"
[[pods]]
  name = "job"
  replicas = 3
  create_at = "10s"
  create_every = "5s"
  [[pods.containers]]
    name = "task"
    image = "example.com/app-{i}:v1"
    exit_at = "1m"
    exit_every = "30s"
    exit_code = 137
    dirty_bytes = "10MiB"
[[pods]]
  name = "solo"
  [[pods.containers]]
    name = "main"
[[faults]]
  name = "keep"
  point = "shim.unmount"
  spec = "delay(1s)"
[[faults]]
  name = "replace"
  point = "container.status"
  spec = "block"
[[faults]]
  name = "drop"
  point = "sandbox.create"
  spec = "block"
[[variants]]
  name = "base"
[[variants]]
  name = "changed"
  fixes = ["volatile", "stopping_state"]
  replicas = { job = 1 }
  [[variants.faults]]
    name = "replace"
    point = "container.status"
    spec = "error(Unavailable)"
    clear_at = "2m"
  [[variants.faults]]
    name = "drop"
    off = true
  [[variants.faults]]
    point = "cni.setup"
    spec = "delay(3s)"
`

func TestPlanAppliesVariantOverrides(t *testing.T) {
	f, err := Parse([]byte(planFile), "plan")
	if err != nil {
		t.Fatal(err)
	}
	base, changed := f.plan(f.Variants[0]), f.plan(f.Variants[1])

	var names []string
	for _, p := range base.pods {
		names = append(names, p.name)
	}
	if got := strings.Join(names, ","); got != "solo,job-0,job-1,job-2" {
		t.Errorf("base pods = %s, want solo (created at 0) first, then job-0..2", got)
	}
	job2 := base.pods[3]
	if job2.createAt != 20*time.Second || job2.containers[0].exitAt != 2*time.Minute || job2.containers[0].image != "example.com/app-2:v1" {
		t.Errorf("job-2: create at %v, exit at %v, image %s; want 20s, 2m0s, example.com/app-2:v1",
			job2.createAt, job2.containers[0].exitAt, job2.containers[0].image)
	}
	if job2.uid != "uid-default-job-2" || job2.containers[0].annotations["fakecontainerd.io/dirty-bytes"] != "10MiB" {
		t.Errorf("job-2: uid %s, annotations %v", job2.uid, job2.containers[0].annotations)
	}
	// Names stay those of the file, so selectors work in every variant.
	if len(changed.pods) != 2 || changed.pods[1].name != "job-0" {
		t.Errorf("replicas = 1 gives %d pods (%v), want solo and job-0", len(changed.pods), changed.pods)
	}
	if len(changed.fixes) != 2 || changed.fixes[0] != faults.FixVolatile {
		t.Errorf("fixes = %v", changed.fixes)
	}

	spec := func(p plan) string {
		var out []string
		for _, fc := range p.faults {
			out = append(out, fc.Point+"="+fc.Spec)
		}
		return strings.Join(out, " ")
	}
	if got := spec(base); got != "shim.unmount=delay(1s) container.status=block sandbox.create=block" {
		t.Errorf("base faults = %s", got)
	}
	if got := spec(changed); got != "shim.unmount=delay(1s) container.status=error(Unavailable) cni.setup=delay(3s)" {
		t.Errorf("changed faults = %s (replace by name, drop with off, add new)", got)
	}
	if changed.faults[1].ClearAt.D() != 2*time.Minute {
		t.Errorf("replaced fault clears at %v, want 2m", changed.faults[1].ClearAt)
	}
	if base.driver.RelistThreshold != DefaultRelistThreshold || base.driver.CPUManagerPeriod != DefaultCPUManagerPeriod || !base.driver.SerializeImagePulls {
		t.Errorf("driver defaults = %+v, want kubelet's", base.driver)
	}
}

func TestSelectVariants(t *testing.T) {
	f, err := Parse([]byte(planFile), "plan")
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.SelectVariants([]string{"changed"})
	if err != nil || len(got) != 1 || got[0].Name != "changed" {
		t.Errorf("SelectVariants(changed) = %v, %v", got, err)
	}
	if _, err := f.SelectVariants([]string{"base", "nope"}); err == nil || !strings.Contains(err.Error(), `no variant "nope"`) {
		t.Errorf("unknown variant: error %v, want one naming it", err)
	}
	all, _ := f.SelectVariants(nil)
	if len(all) != 2 {
		t.Errorf("no names selects %d variants, want all 2", len(all))
	}
}

// TestBuiltinFiles checks every built-in scenario parses, names the
// variants scripts rely on, and has an expectation for each variant.
func TestBuiltinFiles(t *testing.T) {
	wantVariants := map[string][]string{
		"umount-status-lock": {"baseline", "volatile", "stopping_state", "stopping_state_refined", "update_outside_lock", "shim_update_nowait"},
		"imagepull-bbolt":    {"baseline", "volatile"},
	}
	for _, name := range configs.ScenarioNames() {
		f, err := Load(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if f.Name != name || f.Summary == "" || f.Description == "" {
			t.Errorf("%s: name %q, summary %q: want the file's name and a summary and description", name, f.Name, f.Summary)
		}
		if want, ok := wantVariants[name]; ok && strings.Join(f.VariantNames(), ",") != strings.Join(want, ",") {
			t.Errorf("%s: variants %v, want %v", name, f.VariantNames(), want)
		}
		for _, v := range f.Variants {
			if v.Expect.PLEGHealthy == nil {
				t.Errorf("%s/%s: no pleg_healthy expectation", name, v.Name)
			}
		}
	}
	if _, err := Load("no-such-scenario"); err == nil || !strings.Contains(err.Error(), "umount-status-lock") {
		t.Errorf("unknown scenario: error %v, want one listing the built-ins", err)
	}
	// Only names, never paths, reach the embedded files.
	for _, bad := range []string{"", "../default", "scenarios/overload"} {
		if _, err := configs.ScenarioFile(bad); err == nil {
			t.Errorf("ScenarioFile(%q): want an error", bad)
		}
	}
}

// TestPlanProbesDeletesAndCPU: probes take kubelet's defaults and a
// variant's period, deletes stagger like creations, and the CPU table
// overrides key by key.
func TestPlanProbesDeletesAndCPU(t *testing.T) {
	f, err := Parse([]byte(`
name = "storm"
duration = "1m"
[server.cpu]
  cores = 4
  runc_exec = "20ms"
[[pods]]
  name = "web"
  replicas = 2
  delete_at = "30s"
  delete_every = "5s"
  [[pods.containers]]
    name = "app"
    [pods.containers.exec_probe]
[[variants]]
  name = "baseline"
[[variants]]
  name = "slow"
  probe_period = { web = "10s" }
  [variants.server.cpu]
    cores = 1
`), "storm")
	if err != nil {
		t.Fatal(err)
	}
	base, slow := f.plan(f.Variants[0]), f.plan(f.Variants[1])
	p := base.pods[1]
	if p.deleteAt != 35*time.Second || p.grace != DefaultGracePeriod {
		t.Errorf("web-1 deleted at %v with grace %v, want 35s and %v", p.deleteAt, p.grace, DefaultGracePeriod)
	}
	probe := p.containers[0].probe
	if probe == nil || strings.Join(probe.Command, " ") != "/bin/true" || probe.Period != DefaultProbePeriod || probe.Timeout != DefaultProbeTimeout {
		t.Errorf("probe = %+v, want /bin/true every %v, timeout %v", probe, DefaultProbePeriod, DefaultProbeTimeout)
	}
	if got := slow.pods[0].containers[0].probe.Period; got != 10*time.Second {
		t.Errorf("slow variant's probe period = %v, want 10s", got)
	}
	for _, tc := range []struct {
		p     plan
		cores int
	}{{base, 4}, {slow, 1}} {
		cfg, err := variantConfig(tc.p, t.TempDir(), 0.01)
		if err != nil {
			t.Fatal(err)
		}
		c := cfg.Plugins.Fake.CPU
		if c.Cores != tc.cores || c.RuncExec.Duration() != 20*time.Millisecond || c.RuncDelete.Duration() != 8*time.Millisecond {
			t.Errorf("%s: cpu = %+v, want %d cores, runc_exec 20ms, runc_delete the default 8ms", tc.p.name, c, tc.cores)
		}
	}
}
