package scenario

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/fakecontainerd/fakecontainerd/configs"
)

// builtinScenarios are the names scripts rely on, one per incident.
var builtinScenarios = []string{"umount-status-lock", "imagepull-bbolt", "stuck-container-status", "runc-dbus-hang", "overload", "short-task-pool", "fsync-behind-writeback", "runc-update-hang", "ondemand-relist-stuck", "cni-teardown-hang", "exec-probe-storm", "mass-stop"}

// slowerScenarios may run slower than 0.01, and why: at 0.01 their real
// call rate (thousands of CRI calls a second of wall time) would need more
// CPU than the machine has, and the fake's own real latency, multiplied by
// 100, would swamp the CPU model's figures.
var slowerScenarios = map[string]float64{
	"exec-probe-storm": 0.5,  // 100 ExecSync a scenario second
	"mass-stop":        0.05, // 330 stops, their deletes and relists within seconds
}

// serialScenarios run one variant at a time: each of their variants alone
// keeps the process busy (mass-stop: 220 containers stopped at once), and a
// second one beside it would add its real latency to the first's figures.
var serialScenarios = map[string]bool{"mass-stop": true}

// testLog discards the runs' logs unless FCD_TEST_LOG names a level.
func testLog() *logrus.Entry {
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	if lvl, err := logrus.ParseLevel(os.Getenv("FCD_TEST_LOG")); err == nil {
		log.SetLevel(lvl)
	} else {
		log.SetOutput(io.Discard)
	}
	return logrus.NewEntry(log)
}

// testParallel is how many variants run at once here. Under the race
// detector all six of incident 1's variants together want most of a CPU;
// on a busy two-CPU machine they would get less, fall behind their own
// timers, and every millisecond behind reads as 100 ms of scenario time.
const testParallel = 2

// TestBuiltinScenarios runs every built-in scenario, all its variants, at
// its own time scale (0.01) and asserts every expectation its file
// declares. Scenarios run one after another, and testParallel variants at
// a time: a neighbour's load would read as minutes of scenario time.
func TestBuiltinScenarios(t *testing.T) {
	if got := configs.ScenarioNames(); len(got) != len(builtinScenarios) {
		t.Errorf("built-in scenarios = %v, want %v", got, builtinScenarios)
	}
	for _, name := range builtinScenarios {
		t.Run(name, func(t *testing.T) {
			f, err := Load(name)
			if err != nil {
				t.Fatal(err)
			}
			if limit := max(0.01, slowerScenarios[name]); f.TimeScale > limit {
				t.Fatalf("time_scale %v: this built-in scenario must run at %v or less", f.TimeScale, limit)
			}
			// No retry: every variant's clock leaves out the time the
			// machine starved the process (clock.Meter), so a busy machine
			// changes the run's wall time, not its figures.
			parallel := testParallel
			if serialScenarios[name] {
				parallel = 1
			}
			rep, err := Run(context.Background(), f, Options{Log: testLog(), Parallel: parallel})
			if err != nil {
				t.Fatal(err)
			}
			var table bytes.Buffer
			if err := rep.WriteTable(&table); err != nil {
				t.Fatal(err)
			}
			t.Logf("\n%s", table.String())
			for _, v := range rep.Variants {
				if !v.ExpectationsMet() {
					t.Errorf("variant %s: err %v; expectations not met: %v", v.Name, v.Err, v.Failed)
				}
			}
			if len(rep.Variants) != len(f.Variants) {
				t.Errorf("%d variants reported, want %d", len(rep.Variants), len(f.Variants))
			}
		})
	}
}

// BenchmarkIncident1AB is the wall time of incident 1's A/B at 0.01, every
// variant, two at a time (the speed target: under 30 s on two cores).
func BenchmarkIncident1AB(b *testing.B) {
	f, err := Load("umount-status-lock")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		rep, err := Run(context.Background(), f, Options{Log: testLog(), Parallel: testParallel})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK() {
			b.Fatal("expectations not met")
		}
		b.ReportMetric(rep.Wall.Seconds(), "wall-s/ab")
		b.ReportMetric(rep.Discounted.Seconds(), "starved-s/ab")
	}
}
