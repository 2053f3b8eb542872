package scenario

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
	"github.com/fakecontainerd/fakecontainerd/scenario/plegmetrics"
)

// The labels kubelet puts on sandboxes and containers; GetPods groups by
// them and GetPodStatus filters by the pod uid.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
)

// DriverConfig tunes a Driver; zero durations take kubelet's values.
type DriverConfig struct {
	RelistPeriod          time.Duration
	RelistThreshold       time.Duration
	RuntimeRequestTimeout time.Duration
	// CPUManagerPeriod, when not 0, runs the older kubelets' CPU manager:
	// every period (counted from the end of the previous round, as
	// wait.Until does) one UpdateContainerResources per running container,
	// one after another.
	CPUManagerPeriod time.Duration
	// CPUManagerTicker runs the CPU manager on a fixed-rate ticker instead
	// of kubelet's sliding wait.Until: a round that overran its period is
	// followed at once by the next. Not what kubelet does; it is there to
	// compare with harnesses that schedule that way.
	CPUManagerTicker bool
	// CPUSet is what the CPU manager writes (CpusetCpus).
	CPUSet string
	// SerializeImagePulls is kubelet's serializeImagePulls.
	SerializeImagePulls bool
	// Kubelet is the kubelet version played: Kubelet119 (the default) or
	// Kubelet136 (see kubelet136.go for what differs).
	Kubelet string
	// OnDemandRelist is 1.36's PLEGOnDemandRelist feature gate (beta):
	// per-pod relists after SyncPod, on the global relist's goroutine.
	OnDemandRelist bool
	// CPUs is the node's CPU count for 1.36's static CPU manager.
	CPUs int
	// StopCompletedPods makes pod workers stop the sandbox of a pod whose
	// containers have all exited (StopPodSandbox), as kubelet does for
	// restartPolicy Never pods. Off by default: the calibrated incident
	// scenarios were written without it.
	StopCompletedPods bool
	// PLEGMetrics, if set, records kubelet's PLEG metrics
	// (kubelet_pleg_relist_duration_seconds, _relist_interval_seconds,
	// _last_seen_seconds) in the registry it was made with.
	PLEGMetrics *plegmetrics.Metrics
}

func (c DriverConfig) withDefaults() DriverConfig {
	if c.RelistPeriod == 0 {
		c.RelistPeriod = DefaultRelistPeriod
	}
	if c.RelistThreshold == 0 {
		c.RelistThreshold = DefaultRelistThreshold
	}
	if c.RuntimeRequestTimeout == 0 {
		c.RuntimeRequestTimeout = DefaultRuntimeRequestTimeout
	}
	if c.CPUSet == "" {
		c.CPUSet = "0-1"
	}
	if c.Kubelet == "" {
		c.Kubelet = Kubelet119
	}
	if c.CPUs == 0 {
		c.CPUs = DefaultCPUs
	}
	return c
}

// Relist is one relist as the driver saw it, for observers.
type Relist struct {
	N    int
	At   time.Duration // since the driver started
	Took time.Duration
	// Err is GetPods' error: the relist did not count.
	Err                  error
	Pods, Containers     int
	Changed, Reinspected int
	FailedInspections    int
	FirstInspectionError error
}

// Hooks are called from the driver's goroutines.
type Hooks struct {
	Relist func(Relist)
	Health func(HealthEvent)
	// ContainerCreated is told every container the driver creates.
	ContainerCreated func(id string, pod PodSpec, c ContainerSpec)
}

// Driver is a kubelet-like CRI client: kubelet's generic PLEG, its health
// check, and optionally the older CPU manager's periodic updates. It needs
// nothing but a CRI endpoint, so it runs against any runtime.
type Driver struct {
	cfg   DriverConfig
	clock clock.Clock
	log   *logrus.Entry
	rt    runtime.RuntimeServiceClient
	img   runtime.ImageServiceClient
	rec   *recorder
	hooks Hooks

	// PLEG state; only the relist goroutine touches it.
	records   map[string]*podRecord
	reinspect map[string]*kubePod
	relists   int

	// cache is kubelet's pod cache as the status manager serves it: the
	// last successful GetPodStatus of each pod. The CPU manager reads it.
	cacheMu sync.Mutex
	cache   map[string]*podStatus

	// pullMu is the serial image puller's queue.
	pullMu sync.Mutex

	// k136 is kubelet 1.36's state; nil when playing 1.19.
	k136 *kubelet136

	// killing are the pods a pod worker is stopping (podkiller.go);
	// workers are those pod workers' goroutines.
	killMu  sync.Mutex
	killing map[string]bool
	workers sync.WaitGroup
}

// kubeContainer is a container or sandbox as GetPods reports it.
type kubeContainer struct {
	id      string
	name    string
	sandbox bool
	state   plegState
}

type kubePod struct {
	uid, name, namespace string
	containers           []kubeContainer
}

type podRecord struct{ old, current *kubePod }

// podStatus is what GetPodStatus returned for a pod.
type podStatus struct {
	uid, name, namespace string
	containers           []containerStatus
}

type containerStatus struct {
	id, name string
	state    runtime.ContainerState
}

// plegState is kubelet's plegContainerState.
type plegState int

const (
	plegNonExistent plegState = iota
	plegRunning
	plegExited
	plegUnknown
)

func containerPLEGState(s runtime.ContainerState) plegState {
	switch s {
	case runtime.ContainerState_CONTAINER_RUNNING:
		return plegRunning
	case runtime.ContainerState_CONTAINER_EXITED:
		return plegExited
	default:
		// kubelet does not use "created" and converts it to unknown.
		return plegUnknown
	}
}

func sandboxPLEGState(s runtime.PodSandboxState) plegState {
	if s == runtime.PodSandboxState_SANDBOX_READY {
		return plegRunning
	}
	return plegExited
}

// NewDriver returns a driver talking CRI over conn.
func NewDriver(conn grpc.ClientConnInterface, clk clock.Clock, log *logrus.Entry, cfg DriverConfig, hooks Hooks) *Driver {
	cfg = cfg.withDefaults()
	d := &Driver{
		cfg: cfg, clock: clk, log: log, hooks: hooks,
		rt: runtime.NewRuntimeServiceClient(conn), img: runtime.NewImageServiceClient(conn),
		rec:     newRecorder(clk, cfg.RelistThreshold),
		records: map[string]*podRecord{}, reinspect: map[string]*kubePod{}, cache: map[string]*podStatus{},
		killing: map[string]bool{},
	}
	if cfg.Kubelet == Kubelet136 {
		d.k136 = newKubelet136()
	}
	return d
}

// Run relists, checks health and (if configured) reconciles CPUs until ctx
// ends, then waits for its loops to return.
func (d *Driver) Run(ctx context.Context) {
	// PLEG has yet to be successful: its age counts from now.
	d.rec.restart()
	var wg sync.WaitGroup
	loop := func(period time.Duration, f func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			until(ctx, d.clock, period, f)
		}()
	}
	if d.k136 != nil && d.cfg.OnDemandRelist {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.plegWorker(ctx)
		}()
	} else {
		loop(d.cfg.RelistPeriod, d.relist)
	}
	loop(d.cfg.RelistPeriod, d.checkHealth)
	if d.cfg.CPUManagerPeriod > 0 {
		if d.k136 != nil {
			loop(d.cfg.CPUManagerPeriod, d.reconcileCPUs136)
		} else if d.cfg.CPUManagerTicker {
			wg.Add(1)
			go func() {
				defer wg.Done()
				every(ctx, d.clock, d.cfg.CPUManagerPeriod, d.reconcileCPUs)
			}()
		} else {
			loop(d.cfg.CPUManagerPeriod, d.reconcileCPUs)
		}
	}
	wg.Wait()
	d.workers.Wait()
}

// until is wait.Until: f, then a pause of period after it returns, so
// rounds never overlap and a slow round delays the next.
func until(ctx context.Context, clk clock.Clock, period time.Duration, f func(context.Context)) {
	for ctx.Err() == nil {
		f(ctx)
		if clk.Sleep(ctx, period) != nil {
			return
		}
	}
}

// every runs f on a time.Ticker's schedule: a tick that falls due while f
// runs starts the next f as soon as it returns; further missed ticks are
// dropped.
func every(ctx context.Context, clk clock.Clock, period time.Duration, f func(context.Context)) {
	t := clk.NewTicker(period)
	defer t.Stop()
	for ctx.Err() == nil {
		f(ctx)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}

// Stats reports what the driver saw so far. With freeze, nothing after
// this moment counts (the run is over; calls failing as it is torn down
// are not the runtime's doing).
func (d *Driver) Stats(freeze bool) Stats { return d.rec.snapshot(freeze) }

// call runs one CRI call with a deadline and records it.
func (d *Driver) call(ctx context.Context, method string, timeout time.Duration, f func(context.Context) error) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = d.clock.WithTimeout(ctx, timeout)
		defer cancel()
	}
	token := d.rec.begin(method)
	err := f(ctx)
	took := d.rec.end(token, err)
	if err != nil {
		d.log.WithError(err).WithFields(logrus.Fields{"method": method, "took": took}).Debug("CRI call failed")
	}
	return err
}

// checkHealth is the kubelet's periodic PLEG health check.
func (d *Driver) checkHealth(context.Context) {
	if ev, changed := d.rec.checkHealth(); changed {
		if ev.Healthy {
			d.log.WithField("last_seen", ev.LastSeen).Info(ev.Message)
		} else {
			d.log.WithField("last_seen", ev.LastSeen).Warn(ev.Message)
		}
		if d.hooks.Health != nil {
			d.hooks.Health(ev)
		}
	}
}

// relist is GenericPLEG.Relist: GetPods, then (and only if it succeeded)
// relistTime = the relist's start, then one GetPodStatus after another for
// every pod that changed and every pod whose inspection failed last time.
func (d *Driver) relist(ctx context.Context) {
	start := d.rec.relistBegin()
	d.cfg.PLEGMetrics.RelistStarted(start)
	d.relists++
	res := Relist{N: d.relists, At: start.Sub(d.rec.start)}
	defer func() {
		res.Took = d.rec.relistEnd(res.Err == nil)
		d.cfg.PLEGMetrics.RelistDone(res.Took)
		if d.hooks.Relist != nil && ctx.Err() == nil {
			d.hooks.Relist(res)
		}
	}()
	timestamp := start
	pods, err := d.getPods(ctx)
	if err != nil {
		d.log.WithError(err).Error("GenericPLEG: Unable to retrieve pods")
		res.Err = err
		return
	}
	d.rec.relisted(timestamp)
	d.cfg.PLEGMetrics.Relisted(timestamp)
	res.Pods = len(pods)
	for _, p := range pods {
		for _, c := range p.containers {
			if !c.sandbox {
				res.Containers++
			}
		}
	}

	// podRecords.setCurrent, then computeEvents for every record.
	for _, r := range d.records {
		r.current = nil
	}
	for uid, p := range pods {
		r, ok := d.records[uid]
		if !ok {
			r = &podRecord{}
			d.records[uid] = r
		}
		r.current = p
	}
	var changed []string
	for uid, r := range d.records {
		if podChanged(r.old, r.current) {
			changed = append(changed, uid)
		}
	}
	// kubelet ranges over a map; a stable order makes runs repeatable.
	sort.Strings(changed)
	res.Changed = len(changed)
	if d.k136 != nil {
		// 1.36: every record reconciled once, changed or to reinspect.
		d.k136.relistMu.Lock()
		d.k136.relistTime = timestamp
		d.k136.relistMu.Unlock()
		uids := make([]string, 0, len(d.records))
		for uid := range d.records {
			uids = append(uids, uid)
		}
		sort.Strings(uids)
		for _, uid := range uids {
			d.reconcile136(ctx, uid, &res)
		}
		return
	}

	needsReinspection := map[string]*kubePod{}
	inspect := func(uid string, pod *kubePod) bool {
		if err := d.updateCache(ctx, uid, pod); err != nil {
			res.FailedInspections++
			if res.FirstInspectionError == nil {
				res.FirstInspectionError = err
			}
			needsReinspection[uid] = pod
			return false
		}
		return true
	}
	for _, uid := range changed {
		r := d.records[uid]
		if !inspect(uid, r.current) {
			// The record keeps its old pod, so the change is seen
			// again next time.
			continue
		}
		// Inspected because it changed: not a second time below.
		delete(d.reinspect, uid)
		if r.current == nil {
			delete(d.records, uid)
		} else {
			r.old, r.current = r.current, nil
		}
	}
	// Pods that failed inspection in the previous relist are inspected
	// again (kubelet does so even when they were just retried above).
	var again []string
	for uid := range d.reinspect {
		again = append(again, uid)
	}
	sort.Strings(again)
	for _, uid := range again {
		res.Reinspected++
		inspect(uid, d.reinspect[uid])
	}
	d.reinspect = needsReinspection
}

// podChanged reports whether computeEvents would generate any event: some
// container or sandbox changed its PLEG state.
func podChanged(old, cur *kubePod) bool {
	states := map[string][2]plegState{}
	for i, p := range []*kubePod{old, cur} {
		if p == nil {
			continue
		}
		for _, c := range p.containers {
			s := states[c.id]
			s[i] = c.state
			states[c.id] = s
		}
	}
	for _, s := range states {
		if s[0] != s[1] {
			return true
		}
	}
	return false
}

// listSandboxes is one ListPodSandbox with the runtime request timeout.
func (d *Driver) listSandboxes(ctx context.Context, f *runtime.PodSandboxFilter) ([]*runtime.PodSandbox, error) {
	var items []*runtime.PodSandbox
	err := d.call(ctx, "ListPodSandbox", d.cfg.RuntimeRequestTimeout, func(ctx context.Context) error {
		resp, err := d.rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: f})
		items = resp.GetItems()
		return err
	})
	return items, err
}

// listContainers is one ListContainers with the runtime request timeout.
func (d *Driver) listContainers(ctx context.Context, f *runtime.ContainerFilter) ([]*runtime.Container, error) {
	var items []*runtime.Container
	err := d.call(ctx, "ListContainers", d.cfg.RuntimeRequestTimeout, func(ctx context.Context) error {
		resp, err := d.rt.ListContainers(ctx, &runtime.ListContainersRequest{Filter: f})
		items = resp.GetContainers()
		return err
	})
	return items, err
}

// getPods is kuberuntime's GetPods(all=true): every sandbox and every
// container, grouped by the kubelet pod uid label.
func (d *Driver) getPods(ctx context.Context) (map[string]*kubePod, error) {
	sandboxes, err := d.listSandboxes(ctx, nil)
	if err != nil {
		return nil, err
	}
	containers, err := d.listContainers(ctx, &runtime.ContainerFilter{})
	if err != nil {
		return nil, err
	}
	pods := map[string]*kubePod{}
	podOf := func(labels map[string]string) *kubePod {
		uid := labels[labelPodUID]
		p, ok := pods[uid]
		if !ok {
			p = &kubePod{uid: uid, name: labels[labelPodName], namespace: labels[labelPodNamespace]}
			pods[uid] = p
		}
		return p
	}
	for _, s := range sandboxes {
		p := podOf(s.GetLabels())
		p.containers = append(p.containers, kubeContainer{id: s.GetId(), sandbox: true, state: sandboxPLEGState(s.GetState())})
	}
	for _, c := range containers {
		if c.GetState() == runtime.ContainerState_CONTAINER_UNKNOWN {
			d.rec.sawUnknown(c.GetId())
		}
		p := podOf(c.GetLabels())
		p.containers = append(p.containers, kubeContainer{id: c.GetId(), name: c.GetMetadata().GetName(), state: containerPLEGState(c.GetState())})
	}
	return pods, nil
}

// updateCache inspects a pod and stores its status; a pod gone from the
// runtime is dropped without any call.
func (d *Driver) updateCache(ctx context.Context, uid string, pod *kubePod) error {
	if pod == nil {
		d.cacheMu.Lock()
		delete(d.cache, uid)
		d.cacheMu.Unlock()
		return nil
	}
	st, err := d.getPodStatus(ctx, pod)
	if err != nil {
		d.log.WithError(err).WithFields(logrus.Fields{"pod": pod.namespace + "/" + pod.name}).Debug("PLEG: Ignoring events for pod")
		return err
	}
	d.cacheMu.Lock()
	d.cache[uid] = st
	d.cacheMu.Unlock()
	d.maybeKillPod(ctx, pod, st)
	return nil
}

// getPodStatus is kuberuntime's GetPodStatus: each of the pod's sandboxes'
// status, then each of its containers', one call after another. NotFound
// means the object went away between the list and the status and is
// skipped. Kubelet 1.19 first lists the pod's sandboxes and, after their
// statuses, its containers (by uid label); 1.36 takes both from the pod
// the relist found (podObjects136).
func (d *Driver) getPodStatus(ctx context.Context, pod *kubePod) (*podStatus, error) {
	var sandboxIDs []string
	var containers []kubeContainer
	selector := map[string]string{labelPodUID: pod.uid}
	if d.k136 != nil {
		sandboxIDs, containers = podObjects136(pod)
	} else {
		sandboxes, err := d.listSandboxes(ctx, &runtime.PodSandboxFilter{LabelSelector: selector})
		if err != nil {
			return nil, err
		}
		// Newest first, as kubelet sorts them.
		sort.Slice(sandboxes, func(i, j int) bool { return sandboxes[i].GetCreatedAt() > sandboxes[j].GetCreatedAt() })
		for _, s := range sandboxes {
			sandboxIDs = append(sandboxIDs, s.GetId())
		}
	}
	for _, id := range sandboxIDs {
		err := d.call(ctx, "PodSandboxStatus", d.cfg.RuntimeRequestTimeout, func(ctx context.Context) error {
			_, err := d.rt.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id})
			return err
		})
		if err != nil && status.Code(err) != codes.NotFound {
			return nil, err
		}
	}
	if d.k136 == nil {
		listed, err := d.listContainers(ctx, &runtime.ContainerFilter{LabelSelector: selector})
		if err != nil {
			return nil, err
		}
		for _, c := range listed {
			containers = append(containers, kubeContainer{id: c.GetId(), name: c.GetMetadata().GetName()})
		}
	}
	st := &podStatus{uid: pod.uid, name: pod.name, namespace: pod.namespace}
	for _, c := range containers {
		var resp *runtime.ContainerStatusResponse
		err := d.call(ctx, "ContainerStatus", d.cfg.RuntimeRequestTimeout, func(ctx context.Context) error {
			var err error
			resp, err = d.rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: c.id})
			return err
		})
		if status.Code(err) == codes.NotFound {
			continue
		}
		if err != nil {
			return nil, err
		}
		state := resp.GetStatus().GetState()
		if state == runtime.ContainerState_CONTAINER_UNKNOWN {
			d.rec.sawUnknown(c.id)
		}
		st.containers = append(st.containers, containerStatus{id: c.id, name: c.name, state: state})
	}
	return st, nil
}

// reconcileCPUs is one round of the older CPU manager's reconcileState:
// for every container the pod cache says is running, in turn, an
// UpdateContainerResources with the runtime request timeout.
func (d *Driver) reconcileCPUs(ctx context.Context) {
	d.eachRunning(ctx, func(_ *podStatus, c containerStatus) {
		_ = d.updateCPUSet(ctx, c.id, d.cfg.CPUSet)
	})
}

// eachRunning calls f for every container the pod cache says is running,
// pod after pod, until ctx ends.
func (d *Driver) eachRunning(ctx context.Context, f func(p *podStatus, c containerStatus)) {
	for _, p := range d.cachedPods() {
		for _, c := range p.containers {
			if ctx.Err() != nil {
				return
			}
			if c.state == runtime.ContainerState_CONTAINER_RUNNING {
				f(p, c)
			}
		}
	}
}

// updateCPUSet is the CPU manager's UpdateContainerResources{CpusetCpus}.
func (d *Driver) updateCPUSet(ctx context.Context, id, cpuset string) error {
	return d.call(ctx, "UpdateContainerResources", d.cfg.RuntimeRequestTimeout, func(ctx context.Context) error {
		_, err := d.rt.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{
			ContainerId: id, Linux: &runtime.LinuxContainerResources{CpusetCpus: cpuset},
		})
		return err
	})
}
