package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
)

// Crash safety: kill -9 the server at random points of a lifecycle-heavy
// workload, restart it on the same root and state, and check that nothing
// a call reported done was lost or undone, and that no status checkpoint
// is torn.

// crashKills is how many kill -9s TestCrashLoop does (FCD_CRASH_KILLS
// overrides it).
const crashKills = 22

// crashWorkers is how many clients drive the workload at once.
const crashWorkers = 4

// fate is what a call's outcome says about an object.
type fate int

const (
	// mustExist: a create (or pull) returned success and no remove was
	// tried since.
	mustExist fate = iota
	// mustBeGone: a remove returned success.
	mustBeGone
	// unsure: a remove was in flight when the server died.
	unsure
)

// ledger records what the server told the clients.
type ledger struct {
	mu     sync.Mutex
	pods   map[string]fate
	ctrs   map[string]fate
	ctrPod map[string]string
	images map[string]fate // by the reference pulled
	// verified counts the checks made after restarts: objects found as
	// reported created, and found gone as reported removed.
	verifiedPresent, verifiedGone int
	// checkpoints counts status checkpoints decoded after restarts.
	checkpoints int
}

func newLedger() *ledger {
	return &ledger{pods: map[string]fate{}, ctrs: map[string]fate{}, ctrPod: map[string]string{}, images: map[string]fate{}}
}

func (l *ledger) set(m map[string]fate, id string, f fate) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m[id] = f
}

// removePod marks a pod and all its containers: a RemovePodSandbox
// removes the containers first.
func (l *ledger) removePod(id string, f fate) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pods[id] = f
	for c, p := range l.ctrPod {
		if p == id && (f == mustBeGone || l.ctrs[c] == mustExist) {
			l.ctrs[c] = f
		}
	}
}

// crashWorker is one client: it drives its own pods through their
// lifecycle with its own connection until told to stop.
type crashWorker struct {
	n       int
	epoch   int
	rng     *rand.Rand
	rt      internalapi.RuntimeService
	img     internalapi.ImageManagerService
	l       *ledger
	pc      *runtime.PodSandboxConfig
	cc      *runtime.ContainerConfig
	logDir  string
	pods    []string
	ctrs    []string
	images  []string
	seq     int
	calls   int
	stopped *atomic.Bool
}

func (w *crashWorker) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

func (w *crashWorker) pick(s []string) (string, bool) {
	if len(s) == 0 {
		return "", false
	}
	return s[w.rng.IntN(len(s))], true
}

func without(s []string, id string) []string {
	return slices.DeleteFunc(slices.Clone(s), func(x string) bool { return x == id })
}

// step runs one random lifecycle call and records its outcome.
func (w *crashWorker) step() {
	ctx, cancel := w.ctx()
	defer cancel()
	w.calls++
	w.seq++
	op := w.rng.IntN(100)
	if len(w.pods) > 3 && op < 50 {
		op = 80 // keep the state small: a worker owns a few pods at most
	}
	switch {
	case op < 15 || len(w.pods) == 0:
		pc := proto.Clone(w.pc).(*runtime.PodSandboxConfig)
		pc.Metadata.Name = fmt.Sprintf("w%d-e%d-%d", w.n, w.epoch, w.seq)
		pc.Metadata.Uid = pc.Metadata.Name + "-uid"
		pc.LogDirectory = filepath.Join(w.logDir, pc.Metadata.Name)
		if id, err := w.rt.RunPodSandbox(ctx, pc, ""); err == nil {
			w.l.set(w.l.pods, id, mustExist)
			w.pods = append(w.pods, id)
		}
	case op < 40:
		pod, _ := w.pick(w.pods)
		cc := proto.Clone(w.cc).(*runtime.ContainerConfig)
		cc.Metadata.Name = fmt.Sprintf("c%d", w.seq)
		cc.LogPath = cc.Metadata.Name + ".log"
		pc := proto.Clone(w.pc).(*runtime.PodSandboxConfig)
		if id, err := w.rt.CreateContainer(ctx, pod, cc, pc); err == nil {
			w.l.mu.Lock()
			w.l.ctrs[id] = mustExist
			w.l.ctrPod[id] = pod
			w.l.mu.Unlock()
			w.ctrs = append(w.ctrs, id)
		}
	case op < 55:
		if id, ok := w.pick(w.ctrs); ok {
			_ = w.rt.StartContainer(ctx, id)
		}
	case op < 63:
		if id, ok := w.pick(w.ctrs); ok {
			_ = w.rt.StopContainer(ctx, id, int64(w.rng.IntN(2)))
		}
	case op < 73:
		if id, ok := w.pick(w.ctrs); ok {
			w.l.set(w.l.ctrs, id, unsure)
			if err := w.rt.RemoveContainer(ctx, id); err == nil {
				w.l.set(w.l.ctrs, id, mustBeGone)
				w.ctrs = without(w.ctrs, id)
			} else if !isDown(err) {
				w.l.set(w.l.ctrs, id, mustExist) // refused: nothing happened
			}
		}
	case op < 78:
		if id, ok := w.pick(w.pods); ok {
			_ = w.rt.StopPodSandbox(ctx, id)
		}
	case op < 84:
		if id, ok := w.pick(w.pods); ok {
			w.l.removePod(id, unsure)
			if err := w.rt.RemovePodSandbox(ctx, id); err == nil {
				w.l.removePod(id, mustBeGone)
				w.pods = without(w.pods, id)
				w.ctrs = slices.DeleteFunc(w.ctrs, func(c string) bool {
					w.l.mu.Lock()
					defer w.l.mu.Unlock()
					return w.l.ctrPod[c] == id
				})
			}
		}
	case op < 91:
		ref := fmt.Sprintf("docker.io/library/img-w%d-e%d-%d:latest", w.n, w.epoch, w.seq)
		if _, err := w.img.PullImage(ctx, &runtime.ImageSpec{Image: ref}, nil, nil); err == nil {
			w.l.set(w.l.images, ref, mustExist)
			w.images = append(w.images, ref)
		}
	case op < 94:
		if ref, ok := w.pick(w.images); ok {
			w.l.set(w.l.images, ref, unsure)
			if err := w.img.RemoveImage(ctx, &runtime.ImageSpec{Image: ref}); err == nil {
				w.l.set(w.l.images, ref, mustBeGone)
				w.images = without(w.images, ref)
			}
		}
	default:
		if id, ok := w.pick(w.ctrs); ok {
			_ = w.rt.UpdateContainerResources(ctx, id, &runtime.ContainerResources{
				Linux: &runtime.LinuxContainerResources{CpuShares: int64(2 + w.rng.IntN(1000))},
			})
		}
		_, _ = w.rt.ListContainers(ctx, &runtime.ContainerFilter{})
	}
}

// isDown reports whether err is what a call gets from a dead server.
func isDown(err error) bool {
	c := status.Code(err)
	return c == codes.Unavailable || c == codes.DeadlineExceeded || c == codes.Canceled || c == codes.Unknown
}

func (w *crashWorker) run() {
	for !w.stopped.Load() {
		w.step()
	}
}

// TestCrashLoop kill -9s the server crashKills times while crashWorkers
// clients run pods, containers and pulls through their lifecycle, and after
// every restart checks that:
//   - the server came back and answers;
//   - every sandbox, container and image a call reported created (and no
//     call reported removed) is there, and nothing reported removed is;
//   - every status checkpoint on disk decodes (none is torn);
//   - every container's status can be read.
func TestCrashLoop(t *testing.T) {
	t.Parallel()
	kills := crashKills
	if v, err := strconv.Atoi(os.Getenv("FCD_CRASH_KILLS")); err == nil && v > 0 {
		kills = v
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	d := newDaemon(t, "--time-scale", "0.01", "--log-level", "info")
	logDir := filepath.Join(d.dir, "pod-logs")
	pc := d.podConfig("tmpl", logDir)
	cc := d.containerConfig("tmpl", nil)
	d.pull("busybox")
	l := newLedger()
	start := time.Now()
	calls := 0
	var maxLoad time.Duration
	for epoch := range kills {
		var stopped atomic.Bool
		var wg sync.WaitGroup
		workers := make([]*crashWorker, crashWorkers)
		for n := range workers {
			rt, err := remote.NewRemoteRuntimeService(context.Background(), d.endpoint(), crictlTimeout, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			img, err := remote.NewRemoteImageService(context.Background(), d.endpoint(), crictlTimeout, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			w := &crashWorker{
				n: n, epoch: epoch, rng: rand.New(rand.NewPCG(seed, uint64(epoch*100+n))), rt: rt, img: img,
				l: l, pc: pc, cc: cc, logDir: logDir, stopped: &stopped,
			}
			w.adopt(t, d, l)
			workers[n] = w
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.run()
			}()
		}
		// Let the workload run a random while, then pull the plug.
		time.Sleep(time.Duration(50+rng.IntN(600)) * time.Millisecond)
		d.kill()
		stopped.Store(true)
		wg.Wait()
		for _, w := range workers {
			calls += w.calls
			_ = w.rt.Close(context.Background())
			_ = w.img.Close(context.Background())
		}

		t0 := time.Now()
		d.start()
		maxLoad = max(maxLoad, time.Since(t0))
		if !t.Run(fmt.Sprintf("after kill %d", epoch+1), func(t *testing.T) { d.on(t).checkLedger(l) }) {
			t.FailNow()
		}
	}
	l.mu.Lock()
	t.Logf("%d kills survived, %d calls, %d pods, %d containers, %d images recorded; %d presence, %d absence and %d checkpoint checks passed; in %v; slowest restart to ready %v",
		kills, calls, len(l.pods), len(l.ctrs), len(l.images), l.verifiedPresent, l.verifiedGone, l.checkpoints,
		time.Since(start).Round(time.Millisecond), maxLoad.Round(time.Millisecond))
	l.mu.Unlock()
	d.stop()
}

// adopt gives a worker the objects it made in earlier epochs that are
// still there, so they go on through their lifecycle.
func (w *crashWorker) adopt(t *testing.T, d *daemon, l *ledger) {
	prefix := fmt.Sprintf("w%d-", w.n)
	mine := map[string]bool{}
	for _, p := range d.pods() {
		if strings.HasPrefix(p.GetMetadata().GetName(), prefix) {
			w.pods = append(w.pods, p.Id)
			mine[p.Id] = true
		}
	}
	for _, c := range d.psAll() {
		if mine[c.PodSandboxId] {
			w.ctrs = append(w.ctrs, c.Id)
			l.mu.Lock()
			l.ctrPod[c.Id] = c.PodSandboxId
			l.mu.Unlock()
		}
	}
	l.mu.Lock()
	for ref, f := range l.images {
		if f == mustExist && strings.Contains(ref, "/img-"+prefix) {
			w.images = append(w.images, ref)
		}
	}
	l.mu.Unlock()
}

// checkLedger compares what a restarted server shows with the ledger, then
// settles the ledger's unsure entries from what it shows.
func (d *daemon) checkLedger(l *ledger) {
	t := d.t
	pods := map[string]bool{}
	for _, p := range d.pods() {
		pods[p.Id] = true
	}
	ctrs := map[string]bool{}
	for _, c := range d.psAll() {
		ctrs[c.Id] = true
		if _, err := d.rt.ContainerStatus(d.ctx(), c.Id, false); err != nil {
			t.Errorf("container %s is listed but its status cannot be read: %v", c.Id, err)
		}
	}
	images := map[string]bool{}
	for _, img := range d.images() {
		for _, tag := range img.RepoTags {
			images[tag] = true
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	check := func(kind string, m map[string]fate, present map[string]bool) {
		for id, f := range m {
			switch {
			case f == mustExist && !present[id]:
				t.Errorf("%s %s was reported created and never removed, but is gone after the restart", kind, id)
			case f == mustBeGone && present[id]:
				t.Errorf("%s %s was reported removed, but is back after the restart", kind, id)
			case f == mustExist:
				l.verifiedPresent++
			case f == mustBeGone:
				l.verifiedGone++
			case f == unsure:
				if present[id] {
					m[id] = mustExist
				} else {
					m[id] = mustBeGone
				}
			}
		}
	}
	check("sandbox", l.pods, pods)
	check("container", l.ctrs, ctrs)
	check("image", l.images, images)
	l.checkpoints += d.checkCheckpoints()
}

// checkCheckpoints decodes every container status checkpoint on disk: each
// must be whole (the atomic write's rename is all or nothing).
func (d *daemon) checkCheckpoints() int {
	t := d.t
	files, err := filepath.Glob(filepath.Join(d.root, "io.containerd.grpc.v1.cri", "containers", "*", "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Errorf("read checkpoint: %v", err)
			continue
		}
		var st struct {
			Version   string
			CreatedAt int64
		}
		if err := json.Unmarshal(data, &st); err != nil || st.Version != "v1" || st.CreatedAt == 0 {
			t.Errorf("torn status checkpoint %s (%v): %q", f, err, data)
		}
	}
	return len(files)
}
