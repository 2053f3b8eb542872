package scenario

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/faults/clock"
	"github.com/fakecontainerd/fakecontainerd/faults/clock/deadline"
	"github.com/fakecontainerd/fakecontainerd/server"
	"github.com/fakecontainerd/fakecontainerd/shim"
)

// Options tune a run.
type Options struct {
	// TimeScale overrides the scenario's (0 keeps it).
	TimeScale float64
	// Variants picks variants by name (all if empty).
	Variants []string
	// Log receives the servers' and drivers' logs; nil discards them.
	Log *logrus.Entry
	// Parallel is how many variants run at once (0: all). Fewer keep the
	// run's own CPU demand down on a busy machine, where at a small time
	// scale every millisecond of waiting for a CPU reads as 100 ms.
	Parallel int
	// TempDir holds each variant's socket and state directory; by default
	// a tmpfs (/dev/shm) or the system's temp dir (see stateDir).
	TempDir string
}

// Report is the outcome of a run.
type Report struct {
	Scenario string
	// Summary and Description are the scenario's, for the HTML page.
	Summary, Description string
	TimeScale            float64
	// Wall is how long the whole run took in wall time.
	Wall time.Duration
	// MaxStall is the longest the process went without getting the CPU
	// when it asked for it (wall time), as the clock's starvation meter saw
	// it.
	MaxStall time.Duration
	// Discounted is all the wall time the meter counted as starvation
	// during the run. Every variant's clock left it out of scenario time,
	// so no figure of the run includes it (clock.Meter).
	Discounted time.Duration
	Variants   []VariantResult
}

// StallScenario is MaxStall in scenario time: what the longest stall would
// have added to a figure had the clock not left it out.
func (r *Report) StallScenario() time.Duration {
	return time.Duration(float64(r.MaxStall) / r.TimeScale)
}

// DiscountedScenario is Discounted in scenario time.
func (r *Report) DiscountedScenario() time.Duration {
	return time.Duration(float64(r.Discounted) / r.TimeScale)
}

// VariantResult is one variant's outcome.
type VariantResult struct {
	Name string
	// Description and Fixes say what the variant is (the HTML page).
	Description string
	Fixes       []faults.Fix
	Stats       Stats
	// Err is set when the variant could not run (server or workload set-up).
	Err error
	// Failed lists the expectations that did not hold.
	Failed []string
	Wall   time.Duration
	// Timeline is what happened, for the HTML report (nil if the variant
	// did not get to time 0).
	Timeline *Timeline
}

// ExpectationsMet reports whether the variant ran and met every expectation.
func (v VariantResult) ExpectationsMet() bool { return v.Err == nil && len(v.Failed) == 0 }

// OK reports whether every variant met its expectations.
func (r *Report) OK() bool {
	for _, v := range r.Variants {
		if !v.ExpectationsMet() {
			return false
		}
	}
	return true
}

// Run runs the selected variants of a scenario concurrently (o.Parallel at
// a time), each against its own in-process server on its own socket, and
// checks their expectations.
func Run(ctx context.Context, f *File, o Options) (*Report, error) {
	variants, err := f.SelectVariants(o.Variants)
	if err != nil {
		return nil, err
	}
	scale := o.TimeScale
	if scale == 0 {
		scale = f.TimeScale
	}
	if scale == 0 {
		scale = DefaultTimeScale
	}
	if _, err := clock.New(scale); err != nil {
		return nil, fmt.Errorf("time scale: %w", err)
	}
	log := o.Log
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = logrus.NewEntry(l)
	}
	start := time.Now()
	rep := &Report{Scenario: f.Name, Summary: f.Summary, Description: f.Description, TimeScale: scale, Variants: make([]VariantResult, len(variants))}
	// One meter for every variant's clock: the variants share the
	// process, so they are starved together. At a time scale of 0.01 a
	// 100 ms stall of the machine would otherwise read as 10 s of scenario
	// time in every figure.
	meter := clock.StartMeter(0, 0)
	defer func() {
		meter.Stop()
		rep.MaxStall, rep.Discounted = meter.Worst(), meter.Starved()
	}()
	batch := o.Parallel
	if batch <= 0 || batch > len(variants) {
		batch = len(variants)
	}
	for first := 0; first < len(variants); first += batch {
		last := min(first+batch, len(variants))
		if err := ctx.Err(); err != nil {
			for i := first; i < len(variants); i++ {
				rep.Variants[i] = VariantResult{Name: variants[i].Name, Err: err}
			}
			break
		}
		runBatch(ctx, f, variants[first:last], scale, meter, o.TempDir, log, rep.Variants[first:last])
	}
	rep.Wall = time.Since(start)
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("scenario %s: %w", f.Name, err)
	}
	return rep, nil
}

// runBatch runs variants at once, results[i] being variants[i]'s.
func runBatch(ctx context.Context, f *File, variants []Variant, scale float64, meter *clock.Meter, tempDir string, log *logrus.Entry, results []VariantResult) {
	// Variants pass the stages of runVariant together. At small time
	// scales a neighbour's set-up would otherwise steal CPU from a run, and
	// 10 ms of wall time is a second of scenario time at 0.01.
	var stages [3]sync.WaitGroup
	for i := range stages {
		stages[i].Add(len(variants))
	}
	var wg sync.WaitGroup
	for i, v := range variants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var passed [len(stages)]sync.Once
			defer func() {
				for i := range passed {
					passed[i].Do(stages[i].Done)
				}
			}()
			ready := func(stage int) {
				passed[stage].Do(stages[stage].Done)
				stages[stage].Wait()
			}
			vlog := log.WithFields(logrus.Fields{"scenario": f.Name, "variant": v.Name})
			began := time.Now()
			tr := newTimelineRecorder()
			p := f.plan(v)
			stats, err := runVariant(ctx, p, scale, meter, tempDir, vlog, ready, tr)
			res := VariantResult{Name: v.Name, Description: v.Description, Fixes: p.fixes, Stats: stats, Err: err, Wall: time.Since(began), Timeline: tr.result()}
			if err == nil {
				res.Failed = v.Expect.check(stats)
			}
			results[i] = res
		}()
	}
	wg.Wait()
}

// runVariant runs one variant on its own server, in three stages that
// every variant passes together (see ready):
//
//  1. the server starts and the images of the pods present from the start
//     are pulled (a node's image cache);
//  2. those pods' sandboxes and containers are created;
//  3. scenario time 0: their containers are started, then the faults due
//     at 0 are armed and the driver's PLEG and CPU manager start. Pods due
//     later are created by the driver's pod worker, and faults armed and
//     cleared, on schedule, until the scenario's duration is over.
//
// Setting up the workload is not measured: it stands for the node as it was
// before the incident, and at small time scales its CPU cost would read as
// minutes of scenario time.
//
// The server's status-lock holds and unmounts, the driver's calls and
// relists and samples of blame's chains go to tr, for the HTML report.
func runVariant(ctx context.Context, p plan, scale float64, meter *clock.Meter, tempDir string, log *logrus.Entry, ready func(stage int), tr *timelineRecorder) (Stats, error) {
	dir, err := stateDir(tempDir)
	if err != nil {
		return Stats{}, fmt.Errorf("variant %s: %w", p.name, err)
	}
	defer os.RemoveAll(dir)
	cfg, err := variantConfig(p, dir, scale)
	if err != nil {
		return Stats{}, fmt.Errorf("variant %s: %w", p.name, err)
	}
	clk, err := clock.Discounting(scale, meter)
	if err != nil {
		return Stats{}, err
	}
	toggles := faults.NewToggles(p.fixes...)
	// mount_options = ["volatile"] and the volatile toggle are one fix, as
	// in the server's own start-up.
	if cfg.Volatile() {
		_ = toggles.Set(faults.FixVolatile, true)
	}
	inj := faults.New(clk, log.WithField("component", "faults"))
	srv, err := server.New(ctx, server.Options{Config: cfg, Clock: clk, Log: log.WithField("component", "server"), Faults: inj, Toggles: toggles, Timeline: tr})
	if err != nil {
		return Stats{}, fmt.Errorf("variant %s: start server: %w", p.name, err)
	}
	defer srv.Close()
	go func() {
		if err := srv.Serve(); err != nil {
			log.WithError(err).Error("server stopped")
		}
	}()
	conn, err := grpc.NewClient("unix://"+cfg.GRPC.Address, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUnaryInterceptor(deadline.UnaryClientGRPC))
	if err != nil {
		return Stats{}, fmt.Errorf("variant %s: connect: %w", p.name, err)
	}
	defer conn.Close()

	// Stage 1.
	if err := preload(ctx, conn, clk, cfg, p); err != nil {
		return Stats{}, fmt.Errorf("variant %s: %w", p.name, err)
	}
	ready(0)

	// Stage 2, through a pod worker of its own (unrecorded, no deadlines
	// to speak of).
	named := Hooks{ContainerCreated: p.namer(tr)}
	setup := NewDriver(conn, clk, log.WithField("component", "setup"), DriverConfig{RuntimeRequestTimeout: setupTimeout}, named)
	var initial []podPlan
	for _, pp := range p.pods {
		if pp.createAt == 0 {
			initial = append(initial, pp)
		}
	}
	created := make([][]string, len(initial))
	err = forEach(ctx, len(initial), setupParallelism, func(i int) error {
		ids, err := setup.createPod(ctx, podSpec(initial[i], time.Time{}), false)
		created[i] = ids
		return err
	})
	if err != nil {
		return Stats{}, fmt.Errorf("variant %s: set up the workload: %w", p.name, err)
	}
	ready(1)

	// Stage 3.
	t0 := clk.Now()
	tr.begin(t0)
	err = forEach(ctx, len(initial), setupParallelism, func(i int) error {
		return setup.StartContainers(ctx, created[i])
	})
	if err != nil {
		return Stats{}, fmt.Errorf("variant %s: start the workload: %w", p.name, err)
	}
	ready(2)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	drv := NewDriver(conn, clk, log.WithField("component", "driver"), p.driver, named)
	drv.rec.timeline = tr
	// The initial pods' probe workers start with the run, as a kubelet's
	// do when it starts with the pods already running.
	for i, pp := range initial {
		for j, c := range pp.containers {
			if c.probe != nil && j < len(created[i]) && created[i][j] != "" {
				drv.StartProbe(runCtx, created[i][j], *c.probe)
			}
		}
	}
	cpu0 := srv.CPULoad()
	at := func(d time.Duration) error { return clk.Sleep(runCtx, d-clk.Since(t0)) }
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i, fc := range p.faults {
		sel, _ := faults.ParseSelector(fc.Target) // validated
		arm := func() (string, error) {
			info, err := inj.Add(fc.Point, sel, fc.Spec, "scenario")
			if err != nil {
				return "", fmt.Errorf("variant %s: fault %d (%s): %w", p.name, i, fc.Point, err)
			}
			return info.ID, nil
		}
		var id string
		if fc.At == 0 {
			if id, err = arm(); err != nil {
				return Stats{}, err
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if id == "" {
				if at(fc.At.D()) != nil {
					return
				}
				var err error
				if id, err = arm(); err != nil {
					log.WithError(err).Error("arming fault")
					return
				}
			}
			if fc.ClearAt == 0 || at(fc.ClearAt.D()) != nil {
				return
			}
			if _, err := inj.Clear(id); err != nil {
				log.WithError(err).Error("clearing fault")
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		drv.Run(runCtx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		tr.sampleBlame(runCtx, clk, srv)
	}()
	// Pod workers run concurrently, as kubelet's do.
	for _, pp := range p.pods {
		if pp.createAt == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if at(pp.createAt) != nil {
				return
			}
			if err := drv.CreatePod(runCtx, podSpec(pp, t0)); err != nil && runCtx.Err() == nil {
				log.WithError(err).Warn("pod worker: creating the pod failed")
			}
		}()
	}
	// Deleted pods: each pod worker kills its pod at once.
	for _, pp := range p.pods {
		if pp.deleteAt == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if at(pp.deleteAt) != nil {
				return
			}
			if err := drv.DeletePod(runCtx, podSpec(pp, t0), pp.grace); err != nil && runCtx.Err() == nil {
				log.WithError(err).WithField("pod", pp.name).Warn("pod worker: killing the pod failed")
			}
		}()
	}
	// The driver runs for the scenario's duration; setting up the workload
	// above took scenario time of its own, which does not count.
	err = clk.Sleep(runCtx, p.until)
	stats := drv.Stats(true)
	stats.CPUBusy = srv.CPULoad().BusySince(cpu0)
	tr.finish(stats, drv.rec.startedAt().Sub(t0))
	return stats, err
}

// sharedMemoryDir is a tmpfs on Linux.
const sharedMemoryDir = "/dev/shm"

// stateDir makes a variant's directory: under dir if given, else on a
// tmpfs if there is one, else in the system's temp dir. The server fsyncs
// its metadata and status checkpoints; on a real disk each fsync costs
// milliseconds of wall time, which a time scale of 0.01 turns into seconds
// of scenario time that no node spends (a node's fsyncs cost milliseconds
// of real time). The paths stay short for the unix sockets under it.
func stateDir(dir string) (string, error) {
	if dir == "" {
		if d, err := os.MkdirTemp(sharedMemoryDir, "fcd-ab-"); err == nil {
			return d, nil
		}
	}
	return os.MkdirTemp(dir, "fcd-ab-")
}

// Setting up the workload present from the start.
const (
	// setupTimeout bounds each set-up call; it is not a kubelet deadline.
	setupTimeout = time.Hour
	// setupParallelism is how many pods are set up at once: enough to use
	// the CPUs, few enough not to queue every call behind every other.
	setupParallelism = 4
)

// forEach runs f(0..n-1) on up to par goroutines and returns the first
// error; once ctx ends no more are started.
func forEach(ctx context.Context, n, par int, f func(i int) error) error {
	var g errgroup.Group
	g.SetLimit(par)
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error { return f(i) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// variantConfig is the default config with the scenario's and the
// variant's server knobs, on sockets and state under dir.
func variantConfig(p plan, dir string, scale float64) (*configs.Config, error) {
	cfg, err := configs.Default()
	if err != nil {
		return nil, err
	}
	cfg.Root, cfg.State = filepath.Join(dir, "root"), filepath.Join(dir, "state")
	cfg.GRPC.Address = filepath.Join(dir, "cri.sock")
	cfg.Plugins.Fake.TimeScale = scale
	fake := &cfg.Plugins.Fake
	for _, s := range p.server {
		if s.DiskThroughput != nil {
			fake.DiskThroughput = *s.DiskThroughput
		}
		if s.RootfsWriteRate != nil {
			fake.RootfsWriteRate = *s.RootfsWriteRate
		}
		if s.DirtyLimit != nil {
			fake.DirtyLimit = *s.DirtyLimit
		}
		if s.StopGrace != nil {
			fake.StopGrace = *s.StopGrace
		}
		if s.MountOptions != nil {
			cfg.Plugins.Overlay.MountOptions = s.MountOptions
		}
		s.CPU.apply(&fake.CPU)
		if s.ShimV1DeletedState != nil {
			fake.ShimV1DeletedState = *s.ShimV1DeletedState
		}
		if s.Disk != nil {
			fake.Disk = *s.Disk
			if fake.Disk.RootMount == "" {
				fake.Disk.RootMount = "/var/lib/containerd"
			}
		}
	}
	for _, f := range p.fixes {
		fake.Fixes = append(fake.Fixes, string(f))
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("server config: %w", err)
	}
	return cfg, nil
}

// preload pulls the sandbox image and the images of the pods present from
// the start, before the run: a node's image cache, not part of what is
// measured. Pods created later pull through the driver, as kubelet does.
func preload(ctx context.Context, conn grpc.ClientConnInterface, clk clock.Clock, cfg *configs.Config, p plan) error {
	img := runtime.NewImageServiceClient(conn)
	images := []string{cfg.Plugins.CRI.SandboxImage}
	seen := map[string]bool{}
	for _, pp := range p.pods {
		if pp.createAt > 0 {
			continue
		}
		for _, c := range pp.containers {
			images = append(images, c.image)
		}
	}
	for _, ref := range images {
		if seen[ref] {
			continue
		}
		seen[ref] = true
		pctx, cancel := clk.WithTimeout(ctx, time.Hour)
		_, err := img.PullImage(pctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}})
		cancel()
		if err != nil {
			return fmt.Errorf("preload image %s: %w", ref, err)
		}
	}
	return nil
}

// namer tells tr the names and scripted exit of every container the
// workload creates, for the report's lanes.
func (p plan) namer(tr *timelineRecorder) func(id string, pod PodSpec, c ContainerSpec) {
	scripted := map[[2]string]containerPlan{}
	for _, pp := range p.pods {
		for _, cp := range pp.containers {
			scripted[[2]string{pp.name, cp.name}] = cp
		}
	}
	return func(id string, pod PodSpec, c ContainerSpec) {
		info := ContainerInfo{Pod: pod.Name, Name: c.Name}
		if cp, ok := scripted[[2]string{pod.Name, c.Name}]; ok && cp.exitAt > 0 {
			info.Exits, info.ExitAt, info.ExitCode = true, cp.exitAt, cp.exitCode
		}
		tr.created(id, info)
	}
}

// podSpec turns a planned pod into the driver's PodSpec. A container's
// exit time counts from scenario time 0 (t0): containers present from the
// start are started at t0, so their exit-after is the exit time; a pod
// created later computes it just before CreateContainer (t0 is zero for
// the former).
func podSpec(pp podPlan, t0 time.Time) PodSpec {
	ps := PodSpec{Name: pp.name, Namespace: pp.namespace, UID: pp.uid, Labels: pp.labels, Annotations: pp.annotations, ExclusiveCPUs: pp.exclusive}
	for _, c := range pp.containers {
		cs := ContainerSpec{Name: c.name, Image: c.image, Labels: c.labels, Annotations: c.annotations, Probe: c.probe}
		if c.exitAt > 0 {
			exitAt, code := c.exitAt, strconv.Itoa(c.exitCode)
			cs.AnnotationsAt = func(now time.Time) map[string]string {
				after := exitAt
				if !t0.IsZero() {
					// A process cannot exit before it starts; the shim
					// reads 0 as "never", so the earliest is 1 ms.
					after = max(t0.Add(exitAt).Sub(now), time.Millisecond)
				}
				return map[string]string{shim.AnnotationExitAfter: after.String(), shim.AnnotationExitCode: code}
			}
		}
		ps.Containers = append(ps.Containers, cs)
	}
	return ps
}

// behaviourAnnotations are a container's fake-process annotations, except
// its exit time (see podSpec).
func behaviourAnnotations(c Container) map[string]string {
	out := map[string]string{}
	for k, v := range c.Annotations {
		out[k] = v
	}
	set := func(key string, v *configs.ByteSize) {
		if v != nil {
			out[key] = v.String()
		}
	}
	set(shim.AnnotationDirtyBytes, c.DirtyBytes)
	set(shim.AnnotationDiskThroughput, c.DiskThroughput)
	set(shim.AnnotationWriteRate, c.WriteRate)
	if c.StopGrace != nil {
		out[shim.AnnotationStopGrace] = c.StopGrace.String()
	}
	return out
}
