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
// containers, then calls ContainerStatus on every one, in parallel and each
// with a deadline of its own, and names the ones that do not answer. The
// list runs alongside the probes of the last list that answered, with the
// same short deadline, so that when ListContainers itself hangs (incident
// 1's signature: it waits on the one status lock that is held) the round
// still ends in time and names the container whose status lock is held.
// It speaks only CRI, so it works on a real containerd as on the fake.
type Prober struct {
	rt          runtime.RuntimeServiceClient
	clock       clock.Clock
	listTimeout time.Duration
	timeout     time.Duration

	// known and listed are only touched by Round: the last list that
	// answered, and whether one has.
	known  []*runtime.Container
	listed bool
	// hung is the last complete round's; Hung reads it while Round runs.
	mu   sync.Mutex
	hung map[string]ContainerProbe
}

// probeParallelism bounds the ContainerStatus calls of a round in flight at
// once: every container of a busy node in one or two waves.
const probeParallelism = 64

// NewProber returns a prober; listTimeout bounds ListContainers, timeout
// each ContainerStatus.
func NewProber(conn grpc.ClientConnInterface, clk clock.Clock, listTimeout, timeout time.Duration) *Prober {
	return &Prober{rt: runtime.NewRuntimeServiceClient(conn), clock: clk, listTimeout: listTimeout, timeout: timeout, hung: map[string]ContainerProbe{}}
}

// list lists the containers with the list's own deadline, sorted by id.
func (p *Prober) list(ctx context.Context) ([]*runtime.Container, error) {
	lctx, cancel := p.clock.WithTimeout(ctx, p.listTimeout)
	defer cancel()
	resp, err := p.rt.ListContainers(lctx, &runtime.ListContainersRequest{})
	if err != nil {
		return nil, err
	}
	cs := resp.GetContainers()
	sort.Slice(cs, func(i, j int) bool { return cs[i].GetId() < cs[j].GetId() })
	return cs, nil
}

// probe calls one container's ContainerStatus with the probe's deadline.
func (p *Prober) probe(ctx context.Context, c *runtime.Container) ContainerProbe {
	labels := c.GetLabels()
	pr := ContainerProbe{ID: c.GetId(), Namespace: labels[labelPodNamespace], Pod: labels[labelPodName], Name: c.GetMetadata().GetName()}
	cctx, cancel := p.clock.WithTimeout(ctx, p.timeout)
	defer cancel()
	start := p.clock.Now()
	_, pr.Err = p.rt.ContainerStatus(cctx, &runtime.ContainerStatusRequest{ContainerId: c.GetId()})
	pr.Took = p.clock.Since(start)
	// The server may give up on the propagated deadline a moment before
	// the client's own timer fires; both mean no answer in time.
	pr.Hung = errors.Is(cctx.Err(), context.DeadlineExceeded) || status.Code(pr.Err) == codes.DeadlineExceeded
	return pr
}

// Round probes every container once: the containers of the last list that
// answered (the first round waits for a list), while a new list runs for
// the next round.
func (p *Prober) Round(ctx context.Context) ProbeRound {
	var round ProbeRound
	var fresh []*runtime.Container
	listDone := make(chan struct{})
	if !p.listed {
		fresh, round.ListErr = p.list(ctx)
		close(listDone)
		if round.ListErr == nil {
			p.known, p.listed = fresh, true
		}
	} else {
		go func() {
			defer close(listDone)
			fresh, round.ListErr = p.list(ctx)
		}()
	}
	probes := make([]ContainerProbe, len(p.known))
	_ = forEach(ctx, len(p.known), probeParallelism, func(i int) error {
		probes[i] = p.probe(ctx, p.known[i])
		return nil
	})
	<-listDone
	if ctx.Err() != nil {
		// Interrupted, not hung: the round is incomplete.
		return round
	}
	if round.ListErr == nil {
		p.known, p.listed = fresh, true
	}
	p.mu.Lock()
	before := p.hung
	p.mu.Unlock()
	hung := map[string]ContainerProbe{}
	round.Probes = probes
	for _, pr := range probes {
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
