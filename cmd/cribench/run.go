package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// result is everything one run measured.
type result struct {
	Command   string `json:"command"`
	GoVersion string `json:"go"`
	CPUs      int    `json:"cpus"`
	Client    string `json:"client"`
	Rows      []row  `json:"rows"`
	Met       int    `json:"targets_met"`
	Targets   int    `json:"targets"`
}

// row is one line of the table. N is 0 for a row comparing counts.
type row struct {
	N      int      `json:"n"`
	Metric string   `json:"metric"`
	Unit   string   `json:"unit"`
	Ours   *float64 `json:"fakecontainerd"`
	Peer   *float64 `json:"peer"`
	Floor  *float64 `json:"floor"`
	Ratio  *float64 `json:"ratio"`
	Target string   `json:"target,omitempty"`
	Met    *bool    `json:"met"`
}

// Metric names; the smoke test checks every one is there.
const (
	mListP50      = "ListContainers p50, 1 client"
	mListFloor    = "ListContainers p50, 1 client, ÷ floor's p50"
	mListP99      = "ListContainers p99, 1 client"
	mListConcP50  = "ListContainers p50, %d clients"
	mListConcP99  = "ListContainers p99, %d clients"
	mPodsP50      = "ListPodSandbox p50, 1 client"
	mPodsP99      = "ListPodSandbox p99, 1 client"
	mPodsConcP50  = "ListPodSandbox p50, %d clients"
	mPodsConcP99  = "ListPodSandbox p99, %d clients"
	mStatusP50    = "ContainerStatus p50"
	mFilterScan   = "ListContainers by pod label p50 (default: scan)"
	mFilterIndex  = "ListContainers by pod label p50 (list_index)"
	mFilterGrowth = "ListContainers by pod label p50 (list_index), N=%s vs N=%s"
	mLifeUp       = "lifecycle up: runp+create+start"
	mLifeDown     = "lifecycle down: stop+rm, stopp+rmp"
	mLife         = "lifecycle: whole pod cycles"
	mRSS          = "RSS after fill"
	mHWM          = "peak RSS (VmHWM) at the end"
	mFill         = "fill time"
	mRespSize     = "ListContainers response size"
)

func f64(v float64) *float64      { return &v }
func ms(d time.Duration) *float64 { return f64(float64(d.Nanoseconds()) / 1e6) }

func run(ctx context.Context, o *options) (*result, error) {
	res := &result{
		GoVersion: goruntime.Version(), CPUs: goruntime.NumCPU(),
		Client: "k8s.io/cri-client remote runtime (as kubelet and crictl), one gRPC connection per client",
	}
	type indexed struct {
		n   int
		p50 map[string]time.Duration
	}
	var growth []indexed
	for set, n := range o.ns {
		rows, idx, err := runN(ctx, o, set+1, n)
		if err != nil {
			return nil, fmt.Errorf("N=%d: %w", n, err)
		}
		res.Rows = append(res.Rows, rows...)
		growth = append(growth, indexed{n, idx})
	}
	if len(growth) >= 2 {
		lo, hi := growth[0], growth[0]
		for _, g := range growth {
			if g.n < lo.n {
				lo = g
			}
			if g.n > hi.n {
				hi = g
			}
		}
		r := row{Metric: fmt.Sprintf(mFilterGrowth, count(hi.n), count(lo.n)), Unit: "x",
			Target: "≤ 1.5 (independent of N)"}
		r.Ours = f64(float64(hi.p50[nameOurs]) / float64(lo.p50[nameOurs]))
		r.Peer = f64(float64(hi.p50[namePeer]) / float64(lo.p50[namePeer]))
		r.Ratio = f64(*r.Ours / *r.Peer)
		r.Met = new(bool)
		*r.Met = *r.Ours <= 1.5
		res.Rows = append(res.Rows, r)
	}
	for _, r := range res.Rows {
		if r.Met != nil {
			res.Targets++
			if *r.Met {
				res.Met++
			}
		}
	}
	return res, nil
}

// count writes 10000 as 10,000.
func count(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// runN fills N containers in fakecontainerd and the peer, starts the floor
// with fakecontainerd's list, and measures. It also returns the
// list_index filtered p50s, for the comparison across counts.
func runN(ctx context.Context, o *options, set, n int) ([]row, map[string]time.Duration, error) {
	dir, err := os.MkdirTemp("", "crib")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	logRoot := filepath.Join(dir, "pods")
	nPods := (n + o.perPod - 1) / o.perPod
	o.logf("N=%d: %d pods of up to %d containers; servers in %s", n, nPods, o.perPod, dir)

	ours, peer := &server{name: nameOurs}, &server{name: namePeer}
	defer ours.close()
	defer peer.close()
	if ours.proc, err = startOurs(o, dir); err != nil {
		return nil, nil, err
	}
	if peer.proc, err = startPeer(o, dir); err != nil {
		return nil, nil, err
	}
	for _, s := range []*server{ours, peer} {
		if err := s.connect(ctx, o.clients); err != nil {
			return nil, nil, err
		}
	}

	// Fill: exactly n containers, the last pod taking the remainder.
	perPod := func(i int) int { return min(o.perPod, n-i*o.perPod) }
	pods := map[string][]*pod{}
	fillTime := map[string]time.Duration{}
	rss := map[string]int64{}
	for _, s := range []*server{ours, peer} {
		start := time.Now()
		ps, err := fillExact(ctx, s, set, nPods, perPod, o.workers, filepath.Join(logRoot, s.name))
		if err != nil {
			return nil, nil, err
		}
		fillTime[s.name] = time.Since(start)
		pods[s.name] = ps
		if rss[s.name], err = s.proc.rssBytes(); err != nil {
			return nil, nil, err
		}
		o.logf("N=%d: %s filled in %v, RSS %.1f MB", n, s.name, fillTime[s.name].Round(time.Millisecond), float64(rss[s.name])/1e6)
	}

	// The floor returns fakecontainerd's own list.
	list, err := ours.rt[0].ListContainers(ctx, &runtime.ContainerFilter{})
	if err != nil {
		return nil, nil, err
	}
	if len(list) != n {
		return nil, nil, fmt.Errorf("%s lists %d containers after the fill, want %d", nameOurs, len(list), n)
	}
	ourResp := &runtime.ListContainersResponse{Containers: list}
	floor := &server{name: nameFloor}
	defer floor.close()
	if floor.proc, err = startFloor(o, dir, ourResp); err != nil {
		return nil, nil, err
	}
	if err := floor.connect(ctx, o.clients); err != nil {
		return nil, nil, err
	}
	peerList, err := peer.rt[0].ListContainers(ctx, &runtime.ContainerFilter{})
	if err != nil {
		return nil, nil, err
	}
	kb := func(m proto.Message) *float64 { return f64(float64(proto.Size(m)) / 1e3) }
	respSize := map[string]*float64{
		nameOurs: kb(ourResp), namePeer: kb(&runtime.ListContainersResponse{Containers: peerList}), nameFloor: kb(ourResp),
	}
	// The lists are big at 10,000: let them go, so that the client's own
	// garbage collection costs the measurements below as little as it can.
	list, ourResp, peerList = nil, nil, nil

	var rows []row
	add := func(metric, unit string, vals map[string]*float64) *row {
		r := row{N: n, Metric: metric, Unit: unit, Ours: vals[nameOurs], Peer: vals[namePeer], Floor: vals[nameFloor]}
		if r.Ours != nil && r.Peer != nil && *r.Peer != 0 {
			r.Ratio = f64(*r.Ours / *r.Peer)
		}
		rows = append(rows, r)
		return &rows[len(rows)-1]
	}
	setMet := func(r *row, target string, ok bool) {
		r.Target, r.Met = target, &ok
	}
	pct := func(s samples, p float64) map[string]*float64 {
		out := map[string]*float64{}
		for name, ds := range s {
			out[name] = ms(percentile(ds, p))
		}
		return out
	}

	all := []*server{ours, peer, floor}
	listAll := func(s *server, rt internalapi.RuntimeService, _ int) error {
		got, err := rt.ListContainers(ctx, &runtime.ContainerFilter{})
		if err != nil {
			return err
		}
		if len(got) != n {
			return fmt.Errorf("ListContainers gave %d containers, want %d", len(got), n)
		}
		return nil
	}
	if _, err := interleaved(all, 5, listAll); err != nil { // warm-up
		return nil, nil, err
	}
	o.logf("N=%d: ListContainers, 1 client, %d calls each", n, o.iters)
	gc()
	single, err := interleaved(all, o.iters, listAll)
	if err != nil {
		return nil, nil, err
	}
	r := add(mListP50, "ms", pct(single, 50))
	// Against the floor, as its own row: ours and the peer's p50 each
	// divided by the floor's.
	fl := row{N: n, Metric: mListFloor, Unit: "x", Ours: f64(*r.Ours / *r.Floor), Peer: f64(*r.Peer / *r.Floor)}
	fl.Ratio = f64(*fl.Ours / *fl.Peer)
	if n == 1000 {
		setMet(r, "≤ 0.5× peer", *r.Ours <= 0.5**r.Peer)
		setMet(&fl, "≤ 1.5", *fl.Ours <= 1.5)
	}
	rows = append(rows, fl)
	add(mListP99, "ms", pct(single, 99))
	o.logf("N=%d: ListContainers, %d clients, %d calls each", n, o.clients, o.clientIters)
	gc()
	conc, err := concurrent(all, o.clients, o.clientIters, listAll)
	if err != nil {
		return nil, nil, err
	}
	r = add(fmt.Sprintf(mListConcP50, o.clients), "ms", pct(conc, 50))
	setMet(r, "≤ 1/3 × peer", *r.Ours <= *r.Peer/3)
	add(fmt.Sprintf(mListConcP99, o.clients), "ms", pct(conc, 99))

	both := []*server{ours, peer}
	listPods := func(s *server, rt internalapi.RuntimeService, _ int) error {
		got, err := rt.ListPodSandbox(ctx, &runtime.PodSandboxFilter{})
		if err != nil {
			return err
		}
		if len(got) != nPods {
			return fmt.Errorf("ListPodSandbox gave %d pods, want %d", len(got), nPods)
		}
		return nil
	}
	o.logf("N=%d: ListPodSandbox", n)
	gc()
	single, err = interleaved(both, o.iters, listPods)
	if err != nil {
		return nil, nil, err
	}
	add(mPodsP50, "ms", pct(single, 50))
	add(mPodsP99, "ms", pct(single, 99))
	conc, err = concurrent(both, o.clients, o.clientIters, listPods)
	if err != nil {
		return nil, nil, err
	}
	add(fmt.Sprintf(mPodsConcP50, o.clients), "ms", pct(conc, 50))
	add(fmt.Sprintf(mPodsConcP99, o.clients), "ms", pct(conc, 99))

	// The i-th call looks at a pod spread over the whole fill.
	pick := func(s *server, i int) *pod {
		ps := pods[s.name]
		return ps[(i*7919)%len(ps)]
	}
	o.logf("N=%d: ContainerStatus", n)
	gc()
	single, err = interleaved(both, o.statusIters, func(s *server, rt internalapi.RuntimeService, i int) error {
		p := pick(s, i)
		st, err := rt.ContainerStatus(ctx, p.containers[i%len(p.containers)], false)
		if err != nil {
			return err
		}
		if st.GetStatus().GetState() != runtime.ContainerState_CONTAINER_RUNNING {
			return fmt.Errorf("container %s is %v, want running", st.GetStatus().GetId(), st.GetStatus().GetState())
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	add(mStatusP50, "ms", pct(single, 50))

	byLabel := func(s *server, rt internalapi.RuntimeService, i int) error {
		p := pick(s, i)
		got, err := rt.ListContainers(ctx, &runtime.ContainerFilter{LabelSelector: map[string]string{podUIDLabel: p.uid}})
		if err != nil {
			return err
		}
		if len(got) != len(p.containers) {
			return fmt.Errorf("ListContainers by pod uid %s gave %d containers, want %d", p.uid, len(got), len(p.containers))
		}
		return nil
	}
	o.logf("N=%d: ListContainers by pod label, list_index off", n)
	gc()
	single, err = interleaved(both, o.filterIters, byLabel)
	if err != nil {
		return nil, nil, err
	}
	scan := pct(single, 50)
	add(mFilterScan, "ms", scan)
	if err := setFix(o, ours.proc.sock, "list_index", true); err != nil {
		return nil, nil, err
	}
	// The peer has no index: its figure is the scan's, and it is not
	// called meanwhile, so its O(N) scans do not load the machine while
	// fakecontainerd's indexed calls are timed.
	o.logf("N=%d: ListContainers by pod label, list_index on", n)
	gc()
	single, err = interleaved([]*server{ours}, o.filterIters, byLabel)
	if err != nil {
		return nil, nil, err
	}
	indexP50 := map[string]time.Duration{
		nameOurs: percentile(single[nameOurs], 50), namePeer: time.Duration(*scan[namePeer] * 1e6),
	}
	add(mFilterIndex, "ms", map[string]*float64{nameOurs: ms(indexP50[nameOurs]), namePeer: scan[namePeer]})
	if err := setFix(o, ours.proc.sock, "list_index", false); err != nil {
		return nil, nil, err
	}

	o.logf("N=%d: lifecycle, %d pods on %d workers", n, o.lifecyclePods, o.workers)
	gc()
	up, down, whole := map[string]*float64{}, map[string]*float64{}, map[string]*float64{}
	for _, s := range both {
		u, d, err := lifecycle(ctx, s, 100+set, o.lifecyclePods, o.workers, filepath.Join(logRoot, s.name))
		if err != nil {
			return nil, nil, err
		}
		pods := float64(o.lifecyclePods)
		up[s.name], down[s.name], whole[s.name] = f64(pods/u.Seconds()), f64(pods/d.Seconds()), f64(pods/(u+d).Seconds())
		o.logf("N=%d: %s lifecycle up %v, down %v", n, s.name, u.Round(time.Millisecond), d.Round(time.Millisecond))
	}
	add(mLifeUp, "pods/s", up)
	add(mLifeDown, "pods/s", down)
	r = add(mLife, "pods/s", whole)
	setMet(r, "≥ 0.5× peer", *r.Ours >= 0.5**r.Peer)

	mb := func(b int64) *float64 { return f64(float64(b) / 1e6) }
	r = add(mRSS, "MB", map[string]*float64{nameOurs: mb(rss[nameOurs]), namePeer: mb(rss[namePeer])})
	if n == 10000 {
		setMet(r, "< 150 MB", *r.Ours < 150)
	}
	hwm := map[string]*float64{}
	for _, s := range all {
		b, err := s.proc.hwmBytes()
		if err != nil {
			return nil, nil, err
		}
		hwm[s.name] = mb(b)
	}
	add(mHWM, "MB", hwm)
	add(mFill, "s", map[string]*float64{nameOurs: f64(fillTime[nameOurs].Seconds()), namePeer: f64(fillTime[namePeer].Seconds())})
	add(mRespSize, "kB", respSize)
	return rows, indexP50, nil
}

// gc collects the client's garbage before a measurement, so that what an
// earlier phase left is not paid for by the calls timed next.
func gc() { goruntime.GC() }

// fillExact is fill with a per-pod container count.
func fillExact(ctx context.Context, s *server, set, nPods int, perPod func(int) int, workers int, logRoot string) ([]*pod, error) {
	if _, err := s.img.PullImage(ctx, &runtime.ImageSpec{Image: benchImage}, nil, nil); err != nil {
		return nil, fmt.Errorf("%s: pull %s: %w", s.name, benchImage, err)
	}
	pods := make([]*pod, nPods)
	err := parallel(ctx, nPods, workers, func(i int) error {
		pc := podConfig(fmt.Sprintf("bench-%d-%05d", set, i), podUID(set, i), logRoot)
		p, err := runPod(ctx, s.rt[i%len(s.rt)], pc, perPod(i))
		pods[i] = p
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: fill: %w", s.name, err)
	}
	return pods, nil
}

// setFix switches a fix toggle in the running fakecontainerd through its
// admin API, with the binary's own `fix` command.
func setFix(o *options, sock, fix string, on bool) error {
	verb := "disable"
	if on {
		verb = "enable"
	}
	out, err := exec.Command(o.fakecontainerd, "fix", verb, "--address", sock, fix).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fakecontainerd fix %s %s: %v: %s", verb, fix, err, strings.TrimSpace(string(out)))
	}
	return nil
}
