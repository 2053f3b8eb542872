package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/shim"
)

// filterFixture is one server for every fuzz input (the fuzz function runs
// many times in one process; a server per input would be slow): two pods,
// one stopped, with containers in each state and a few labels. Nothing in
// it changes while the fuzzer runs.
type filterFixture struct {
	in   *instrumentedService
	all  []*runtime.Container
	pods []*runtime.PodSandbox
}

func newFilterFixture(tb testing.TB) *filterFixture {
	tb.Helper()
	s := newTBServer(tb, 0.01)
	ctx := context.Background()
	c := s.c()
	must := func(err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	_, err := c.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "busybox:latest"}})
	must(err)
	var pods []string
	for i, name := range []string{"web", "job"} {
		pc := podConfig(name)
		pc.Labels["tier"] = []string{"front", "batch"}[i]
		resp, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: pc})
		must(err)
		pods = append(pods, resp.PodSandboxId)
		for j, state := range []string{"created", "running", "exited", "created2", "running2"} {
			cfg := containerConfig(fmt.Sprintf("%s-%d", state, j), nil)
			cfg.Labels["state"] = state
			cfg.Labels["pod"] = name
			if j%2 == 0 {
				cfg.Labels["even"] = "yes"
			}
			if state == "exited" {
				cfg.Annotations = map[string]string{shim.AnnotationExitAfter: "1ms"}
			}
			cr, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: resp.PodSandboxId, Config: cfg, SandboxConfig: pc})
			must(err)
			if strings.HasPrefix(state, "created") {
				continue
			}
			_, err = c.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cr.ContainerId})
			must(err)
			if state == "exited" {
				cntr, err := c.containerStore.Get(cr.ContainerId)
				must(err)
				<-cntr.Stopped()
			}
		}
	}
	// The job pod is stopped: its running containers exit.
	_, err = c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pods[1]})
	must(err)
	all, err := c.ListContainers(ctx, &runtime.ListContainersRequest{})
	must(err)
	sbs, err := c.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	must(err)
	return &filterFixture{in: &instrumentedService{c: c}, all: all.Containers, pods: sbs.Items}
}

// resolve is the oracle of id resolution: the exact id, or the only id
// starting with s; otherwise nothing.
func resolve(s string, ids []string) (string, bool) {
	if s == "" {
		return "", false
	}
	if slices.Contains(ids, s) {
		return s, true
	}
	var match []string
	for _, id := range ids {
		if strings.HasPrefix(id, s) {
			match = append(match, id)
		}
	}
	if len(match) == 1 {
		return match[0], true
	}
	return "", false
}

// FuzzListContainersFilter sends ListContainers (and ListPodSandbox) random
// filters: ids and pod ids that are full, prefixes, ambiguous or garbage,
// any state value, label selectors. It must not panic, and must answer
// exactly the containers (and pods) the filter selects, by an oracle
// written from the CRI's definition.
func FuzzListContainersFilter(f *testing.F) {
	fx := newFilterFixture(f)
	ctrIDs := make([]string, 0, len(fx.all))
	for _, c := range fx.all {
		ctrIDs = append(ctrIDs, c.Id)
	}
	podIDs := make([]string, 0, len(fx.pods))
	for _, p := range fx.pods {
		podIDs = append(podIDs, p.Id)
	}
	// Seeds: id selectors of every kind (indexes into the fixture's ids,
	// with a length to cut them at), each state, label selectors.
	f.Add(uint8(0), uint8(64), uint8(0), uint8(0), int32(-1), "", "", "", "")
	f.Add(uint8(1), uint8(1), uint8(0), uint8(0), int32(-1), "", "", "", "")
	f.Add(uint8(2), uint8(5), uint8(1), uint8(64), int32(1), "state", "running", "", "")
	f.Add(uint8(0), uint8(0), uint8(1), uint8(2), int32(2), "pod", "job", "even", "yes")
	f.Add(uint8(3), uint8(0), uint8(0), uint8(0), int32(0), "tier", "front", "", "")
	f.Add(uint8(4), uint8(64), uint8(0), uint8(0), int32(99), "", "", "", "")
	f.Add(uint8(255), uint8(3), uint8(255), uint8(1), int32(3), "io.kubernetes.container.name", "running-1", "x", "")
	f.Fuzz(func(t *testing.T, ctrPick, ctrLen, podPick, podLen uint8, state int32, k1, v1, k2, v2 string) {
		// An id filter is a prefix of a fixture id (of length ctrLen, 0
		// meaning none) or, for picks past the ids, the selector strings
		// themselves as garbage ids.
		pick := func(ids []string, p, n uint8, garbage string) string {
			if n == 0 {
				return ""
			}
			if int(p) < len(ids) {
				id := ids[p]
				return id[:min(int(n), len(id))]
			}
			return garbage + strings.Repeat("f", int(n)%3)
		}
		f := &runtime.ContainerFilter{
			Id:           pick(ctrIDs, ctrPick, ctrLen, k1),
			PodSandboxId: pick(podIDs, podPick, podLen, v1),
		}
		if state >= 0 {
			f.State = &runtime.ContainerStateValue{State: runtime.ContainerState(state % 8)}
		}
		if k1 != "" || v1 != "" {
			f.LabelSelector = map[string]string{k1: v1}
		}
		if k2 != "" {
			if f.LabelSelector == nil {
				f.LabelSelector = map[string]string{}
			}
			f.LabelSelector[k2] = v2
		}
		resp, err := fx.in.ListContainers(context.Background(), &runtime.ListContainersRequest{Filter: f})
		if err != nil {
			t.Fatalf("ListContainers(%v): %v", f, err)
		}
		// The oracle.
		var want []string
		wantID, idOK := resolve(f.Id, ctrIDs)
		wantPod, podOK := resolve(f.PodSandboxId, podIDs)
		for _, c := range fx.all {
			switch {
			case f.Id != "" && (!idOK || c.Id != wantID):
			case f.PodSandboxId != "" && (!podOK || c.PodSandboxId != wantPod):
			case f.State != nil && c.State != f.State.State:
			case !matchLabels(f.LabelSelector, c.Labels):
			default:
				want = append(want, c.Id)
			}
		}
		var got []string
		for _, c := range resp.Containers {
			got = append(got, c.Id)
			if !matchLabels(f.LabelSelector, c.Labels) || (f.State != nil && c.State != f.State.State) {
				t.Errorf("ListContainers(%v) returned %s (%v, labels %v), which the filter excludes", f, c.Id, c.State, c.Labels)
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("ListContainers(%v):\n got %v\nwant %v", f, got, want)
		}

		// The same selectors on sandboxes.
		pf := &runtime.PodSandboxFilter{Id: f.PodSandboxId, LabelSelector: f.LabelSelector}
		if f.State != nil {
			pf.State = &runtime.PodSandboxStateValue{State: runtime.PodSandboxState(f.State.State % 3)}
		}
		presp, err := fx.in.ListPodSandbox(context.Background(), &runtime.ListPodSandboxRequest{Filter: pf})
		if err != nil {
			t.Fatalf("ListPodSandbox(%v): %v", pf, err)
		}
		var wantPods, gotPods []string
		for _, p := range fx.pods {
			switch {
			case pf.Id != "" && (!podOK || p.Id != wantPod):
			case pf.State != nil && p.State != pf.State.State:
			case !matchLabels(pf.LabelSelector, p.Labels):
			default:
				wantPods = append(wantPods, p.Id)
			}
		}
		for _, p := range presp.Items {
			gotPods = append(gotPods, p.Id)
		}
		slices.Sort(wantPods)
		slices.Sort(gotPods)
		if !slices.Equal(gotPods, wantPods) {
			t.Fatalf("ListPodSandbox(%v):\n got %v\nwant %v", pf, gotPods, wantPods)
		}
	})
}
