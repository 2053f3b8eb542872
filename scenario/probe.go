package scenario

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
)

// ContainerProbe is one container's ContainerStatus, timed.
type ContainerProbe struct {
	ID, Namespace, Pod, Name string
	Took                     time.Duration
	// Err is the call's error; Hung says it was the probe's timeout.
	Err  error
	Hung bool
}

// ProbeRound is one pass over every container.
type ProbeRound struct {
	Probes []ContainerProbe
	// ListErr is ListContainers' error; the round then probed the
	// containers of the last list that answered.
	ListErr error
	// NewlyHung and Recovered compare with the previous round.
	NewlyHung, Recovered []ContainerProbe
}

// Prober is incident 3's diagnostic for CRI, the counterpart of the field's
// `for i in $(docker ps -aq); do docker inspect $i; done`: it lists the
// containers, then calls ContainerStatus on each in turn with a timeout of
// its own, and names the ones that do not answer. When ListContainers
// itself hangs (incident 1's signature), it probes the containers of the
// last list that answered, which finds the one whose status lock is held.
type Prober struct {
	rt          runtime.RuntimeServiceClient
	clock       clock.Clock
	listTimeout time.Duration
	timeout     time.Duration

	// known is only touched by Round.
	known []*runtime.Container
	// hung is the last complete round's; Hung reads it while Round runs.
	mu   sync.Mutex
	hung map[string]ContainerProbe
}

// NewProber returns a prober; listTimeout bounds ListContainers, timeout
// each ContainerStatus.
func NewProber(conn grpc.ClientConnInterface, clk clock.Clock, listTimeout, timeout time.Duration) *Prober {
	return &Prober{rt: runtime.NewRuntimeServiceClient(conn), clock: clk, listTimeout: listTimeout, timeout: timeout, hung: map[string]ContainerProbe{}}
}

// Round probes every container once.
func (p *Prober) Round(ctx context.Context) ProbeRound {
	var round ProbeRound
	lctx, cancel := p.clock.WithTimeout(ctx, p.listTimeout)
	resp, err := p.rt.ListContainers(lctx, &runtime.ListContainersRequest{})
	cancel()
	if err != nil {
		round.ListErr = err
	} else {
		p.known = resp.GetContainers()
		sort.Slice(p.known, func(i, j int) bool { return p.known[i].GetId() < p.known[j].GetId() })
	}
	p.mu.Lock()
	before := p.hung
	p.mu.Unlock()
	hung := map[string]ContainerProbe{}
	for _, c := range p.known {
		if ctx.Err() != nil {
			return round
		}
		labels := c.GetLabels()
		pr := ContainerProbe{ID: c.GetId(), Namespace: labels[labelPodNamespace], Pod: labels[labelPodName], Name: c.GetMetadata().GetName()}
		cctx, cancel := p.clock.WithTimeout(ctx, p.timeout)
		start := p.clock.Now()
		_, pr.Err = p.rt.ContainerStatus(cctx, &runtime.ContainerStatusRequest{ContainerId: c.GetId()})
		pr.Took = p.clock.Since(start)
		// The server may give up on the propagated deadline a moment
		// before the client's own timer fires; both mean no answer in time.
		pr.Hung = errors.Is(cctx.Err(), context.DeadlineExceeded) || status.Code(pr.Err) == codes.DeadlineExceeded
		cancel()
		if ctx.Err() != nil {
			// Interrupted, not hung: the round is incomplete.
			return round
		}
		round.Probes = append(round.Probes, pr)
		if pr.Hung {
			hung[pr.ID] = pr
			if _, was := before[pr.ID]; !was {
				round.NewlyHung = append(round.NewlyHung, pr)
			}
		} else if _, was := before[pr.ID]; was {
			round.Recovered = append(round.Recovered, pr)
		}
	}
	p.mu.Lock()
	p.hung = hung
	p.mu.Unlock()
	return round
}

// Hung lists the containers that hung in the last complete round.
func (p *Prober) Hung() []ContainerProbe {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ContainerProbe, 0, len(p.hung))
	for _, pr := range p.hung {
		out = append(out, pr)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
