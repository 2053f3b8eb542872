package scenario

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Kubelet versions the driver plays.
const (
	// Kubelet119 is the kubelet of the field's incidents: a CPU manager
	// that updates every running container every period, and a relist that
	// inspects a pod that failed twice (as changed and as to reinspect).
	Kubelet119 = "1.19"
	// Kubelet136 is kubelet 1.36 (pkg/kubelet/pleg/generic.go,
	// pkg/kubelet/cm/cpumanager): the static CPU manager updates a
	// container only when its wanted cpuset changed (#101771) and retries
	// failures each period; a relist reconciles each pod once; with
	// PLEGOnDemandRelist (beta, on by default in v1.36.3) one worker loop
	// serves the global relist timer and the per-pod relists pod workers
	// ask for after SyncPod, both under relistLock; GetPodStatus inspects
	// the sandboxes and containers the relist found, listing nothing.
	// Checked against kubelet v1.36.3 by e2e/kubelet's TestOnDemandRelist
	// and TestCPUManagerStatic.
	Kubelet136 = "1.36"
)

// relistRequestCap is the capacity of GenericPLEG.relistRequests.
const relistRequestCap = 200

// relistRequest is a pod worker's request for a per-pod relist.
type relistRequest struct {
	uid string
	at  time.Time
}

// kubelet136 is the 1.36 state of a Driver.
type kubelet136 struct {
	requests chan relistRequest
	// relistTime is the last successful global relist's timestamp, which
	// a request made before it needs no per-pod relist for.
	relistMu   sync.Mutex
	relistTime time.Time
	// reinspect is podsToReinspect: pods whose inspection failed.
	reinspect map[string]bool

	// CPU manager: lastUpdateState by pod uid / container name, and the
	// exclusive CPUs allocated per pod uid.
	cpuMu     sync.Mutex
	lastSet   map[string]string
	exclusive map[string][]int
}

func newKubelet136() *kubelet136 {
	return &kubelet136{requests: make(chan relistRequest, relistRequestCap), reinspect: map[string]bool{},
		lastSet: map[string]string{}, exclusive: map[string][]int{}}
}

// RequestRelist is GenericPLEG.RequestRelist: a pod worker, after
// SyncPod, asks for its pod to be relisted; a full channel drops it.
func (d *Driver) RequestRelist(uid string) {
	if d.k136 == nil || !d.cfg.OnDemandRelist {
		return
	}
	select {
	case d.k136.requests <- relistRequest{uid: uid, at: d.clock.Now()}:
	default:
		d.log.WithField("pod_uid", uid).Error("Relist request channel full; dropping relist request")
	}
}

// plegWorker is GenericPLEG's workerLoopIteration, over and over: the
// global relist timer first, then per-pod relist requests, one at a time
// on this goroutine, so a per-pod relist stuck in a CRI call holds off
// the global relist as well (relistLock).
func (d *Driver) plegWorker(ctx context.Context) {
	// The first relist runs at once; the period counts from the end of
	// each (globalRelistTimer.Reset after Relist).
	timer := d.clock.NewTimer(0)
	defer func() { timer.Stop() }()
	global := func() {
		d.relist(ctx)
		timer = d.clock.NewTimer(d.cfg.RelistPeriod)
	}
	for ctx.Err() == nil {
		select {
		case <-timer.C:
			global()
			continue
		default:
		}
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			global()
		case req := <-d.k136.requests:
			d.k136.relistMu.Lock()
			served := !req.at.After(d.k136.relistTime)
			d.k136.relistMu.Unlock()
			if !served {
				d.relistPod(ctx, req.uid)
			}
		}
	}
}

// reconcile136 is 1.36's reconcilePodRecord for one pod: inspect it if
// it changed or is marked for reinspection, once; a failure marks it for
// the next relist; success moves the record on and, as the events reach
// the pod worker, which syncs the pod, asks for a per-pod relist.
func (d *Driver) reconcile136(ctx context.Context, uid string, res *Relist) {
	r := d.records[uid]
	reinspect := d.k136.reinspect[uid]
	delete(d.k136.reinspect, uid)
	changed := podChanged(r.old, r.current)
	if !changed && !reinspect {
		return
	}
	if reinspect {
		res.Reinspected++
	}
	if err := d.updateCache(ctx, uid, r.current); err != nil {
		res.FailedInspections++
		if res.FirstInspectionError == nil {
			res.FirstInspectionError = err
		}
		d.k136.reinspect[uid] = true
		return
	}
	if r.current == nil {
		delete(d.records, uid)
	} else {
		r.old, r.current = r.current, nil
	}
}

// relistPod is GenericPLEG.relistPod: GetPod (the pod's sandboxes and
// containers, by its uid label), then its record reconciled. It does not
// count as a relist for PLEG's health. A pod with nothing left in the
// runtime is GetPod's ErrPodNotFound: logged, and left to the next global
// relist.
func (d *Driver) relistPod(ctx context.Context, uid string) {
	start := d.clock.Now()
	pod, err := d.getPod(ctx, uid)
	if err == nil && pod == nil {
		err = errPodNotFound
	}
	if err != nil {
		d.log.WithError(err).WithField("pod_uid", uid).Error("GenericPLEG: Unable to retrieve pod")
		return
	}
	r, ok := d.records[uid]
	if !ok {
		r = &podRecord{}
		d.records[uid] = r
	}
	r.current = pod
	var res Relist
	d.reconcile136(ctx, uid, &res)
	d.log.WithFields(logrus.Fields{"pod_uid": uid, "took": d.clock.Since(start), "failed": res.FailedInspections}).Debug("GenericPLEG: Relisting Pod")
}

// errPodNotFound is kubecontainer.ErrPodNotFound.
var errPodNotFound = errors.New("pod not found")

// podObjects136 is what 1.36's GetPodStatus inspects: the sandboxes and
// containers of the pod as the relist (or GetPod) found them.
func podObjects136(pod *kubePod) (sandboxIDs []string, containers []kubeContainer) {
	for _, c := range pod.containers {
		if c.sandbox {
			sandboxIDs = append(sandboxIDs, c.id)
		} else {
			containers = append(containers, c)
		}
	}
	return sandboxIDs, containers
}

// getPod is kuberuntime's GetPod: the pod's sandboxes and containers by
// its uid label.
func (d *Driver) getPod(ctx context.Context, uid string) (*kubePod, error) {
	selector := map[string]string{labelPodUID: uid}
	sandboxes, err := d.listSandboxes(ctx, &runtime.PodSandboxFilter{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	containers, err := d.listContainers(ctx, &runtime.ContainerFilter{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	if len(sandboxes) == 0 && len(containers) == 0 {
		return nil, nil
	}
	p := &kubePod{uid: uid}
	for _, s := range sandboxes {
		p.name, p.namespace = s.GetLabels()[labelPodName], s.GetLabels()[labelPodNamespace]
		p.containers = append(p.containers, kubeContainer{id: s.GetId(), sandbox: true, state: sandboxPLEGState(s.GetState())})
	}
	for _, c := range containers {
		p.name, p.namespace = c.GetLabels()[labelPodName], c.GetLabels()[labelPodNamespace]
		p.containers = append(p.containers, kubeContainer{id: c.GetId(), name: c.GetMetadata().GetName(), state: containerPLEGState(c.GetState())})
	}
	return p, nil
}

// allocateCPUs is the static policy's Allocate for a Guaranteed pod with
// integer CPUs: n CPUs out of the shared pool, highest first (the policy
// takes whole cores topology-aware; which ones does not matter here).
// It fails when the shared pool would be left empty.
func (d *Driver) allocateCPUs(uid string, n int) ([]int, error) {
	d.k136.cpuMu.Lock()
	defer d.k136.cpuMu.Unlock()
	shared := d.sharedPoolLocked()
	if n >= len(shared) {
		return nil, fmt.Errorf("not enough cpus available to satisfy request: requested=%d, available=%d", n, len(shared)-1)
	}
	got := append([]int(nil), shared[len(shared)-n:]...)
	d.k136.exclusive[uid] = got
	return got, nil
}

func (d *Driver) sharedPoolLocked() []int {
	taken := map[int]bool{}
	for _, cpus := range d.k136.exclusive {
		for _, c := range cpus {
			taken[c] = true
		}
	}
	var shared []int
	for c := range d.cfg.CPUs {
		if !taken[c] {
			shared = append(shared, c)
		}
	}
	return shared
}

// wantedCPUSet is the cpuset the static policy wants for a pod's
// containers: its exclusive CPUs, or the shared pool.
func (d *Driver) wantedCPUSet(uid string) string {
	d.k136.cpuMu.Lock()
	defer d.k136.cpuMu.Unlock()
	if cpus, ok := d.k136.exclusive[uid]; ok {
		return cpuList(cpus)
	}
	return cpuList(d.sharedPoolLocked())
}

// addContainer136 is the CPU manager's AddContainer after
// CreateContainer: it records the cpuset as applied only for a container
// with CPUs of its own (state.GetCPUSet finds no assignment for a shared
// one), so a shared container is updated once, to the cpuset it was
// created with, in the first reconcile after it runs (as kubelet v1.36.3
// does: TestCPUManagerStatic).
func (d *Driver) addContainer136(uid, container, set string) {
	d.k136.cpuMu.Lock()
	_, exclusive := d.k136.exclusive[uid]
	d.k136.cpuMu.Unlock()
	if exclusive {
		d.setLast(uid, container, set)
	}
}

// setLast records lastUpdateState for a container (AddContainer, or a
// successful update).
func (d *Driver) setLast(uid, container, set string) {
	d.k136.cpuMu.Lock()
	defer d.k136.cpuMu.Unlock()
	d.k136.lastSet[uid+"/"+container] = set
}

func (d *Driver) last(uid, container string) string {
	d.k136.cpuMu.Lock()
	defer d.k136.cpuMu.Unlock()
	return d.k136.lastSet[uid+"/"+container]
}

// cpuList prints CPUs the way cpuset.CPUSet.String does: "0-3,6".
func cpuList(cpus []int) string {
	cpus = append([]int(nil), cpus...)
	sort.Ints(cpus)
	var parts []string
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, fmt.Sprint(cpus[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", cpus[i], cpus[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// reconcileCPUs136 is 1.36's reconcileState: for every running container
// of the pod cache, in turn, UpdateContainerResources only when the
// wanted cpuset differs from the last one applied; a failure leaves
// lastUpdateState alone, so the next round retries it.
func (d *Driver) reconcileCPUs136(ctx context.Context) {
	d.eachRunning(ctx, func(p *podStatus, c containerStatus) {
		want := d.wantedCPUSet(p.uid)
		if d.last(p.uid, c.name) == want {
			return
		}
		if d.updateCPUSet(ctx, c.id, want) == nil {
			d.setLast(p.uid, c.name, want)
		}
	})
}

// cachedPods is the pod cache, in a stable order.
func (d *Driver) cachedPods() []*podStatus {
	d.cacheMu.Lock()
	pods := make([]*podStatus, 0, len(d.cache))
	for _, p := range d.cache {
		pods = append(pods, p)
	}
	d.cacheMu.Unlock()
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].namespace != pods[j].namespace {
			return pods[i].namespace < pods[j].namespace
		}
		return pods[i].name < pods[j].name
	})
	return pods
}
