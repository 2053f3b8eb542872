package shim

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/ttrpc"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fakecontainerd/fakecontainerd/faults/clock"
	"github.com/fakecontainerd/fakecontainerd/faults/clock/deadline"
)

// Namespace is the containerd namespace the CRI plugin works in.
const Namespace = "k8s.io"

// Queue limits of runc-shim's publisher.
const (
	publishQueueSize  = 2048
	publishMaxRequeue = 5
	publishTimeout    = 5 * time.Second
)

type publishItem struct {
	envelope *types.Envelope
	count    int
}

// RemotePublisher forwards shim events to the daemon's ttrpc events service
// (containerd.services.events.ttrpc.v1.Events/Forward), queueing and retrying
// as the runc shim's publisher does.
type RemotePublisher struct {
	address string
	clock   clock.Clock
	log     *logrus.Entry

	// queue holds at most publishQueueSize items, as runc-shim's channel
	// does, but allocates only for what is queued: a 2048-slot channel per
	// shim was 16 KiB per pod, most of a dense node's heap. ready tells
	// forward that it is not empty.
	qmu    sync.Mutex
	queue  []*publishItem
	ready  chan struct{}
	closed chan struct{}
	once   sync.Once
	done   chan struct{}

	mu     sync.Mutex // guards client
	client *ttrpc.Client
}

// NewRemotePublisher starts a publisher for the events socket at address.
func NewRemotePublisher(address string, clk clock.Clock, log *logrus.Entry) *RemotePublisher {
	p := &RemotePublisher{
		address: address, clock: clk, log: log,
		ready: make(chan struct{}, 1), closed: make(chan struct{}), done: make(chan struct{}),
	}
	go p.forward()
	return p
}

// Publish queues an event; it never blocks the caller.
func (p *RemotePublisher) Publish(ctx context.Context, topic string, event proto.Message) {
	a, err := anypb.New(event)
	if err != nil {
		p.log.WithError(err).WithField("topic", topic).Error("failed to marshal event")
		return
	}
	it := &publishItem{envelope: &types.Envelope{
		Timestamp: timestamppb.New(p.clock.Now()), Namespace: Namespace, Topic: topic, Event: a,
	}}
	select {
	case <-p.closed:
		return
	default:
	}
	if !p.enqueue(it, false) {
		p.log.WithField("topic", topic).Error("event queue full, dropping event")
	}
}

// enqueue adds it unless the queue is full (a requeued item always goes
// in, as runc-shim's requeue waits for room) and wakes forward.
func (p *RemotePublisher) enqueue(it *publishItem, requeue bool) bool {
	p.qmu.Lock()
	if !requeue && len(p.queue) >= publishQueueSize {
		p.qmu.Unlock()
		return false
	}
	p.queue = append(p.queue, it)
	p.qmu.Unlock()
	select {
	case p.ready <- struct{}{}:
	default:
	}
	return true
}

// dequeue takes the oldest item, or nil; an emptied queue lets go of its
// array.
func (p *RemotePublisher) dequeue() *publishItem {
	p.qmu.Lock()
	defer p.qmu.Unlock()
	if len(p.queue) == 0 {
		return nil
	}
	it := p.queue[0]
	p.queue[0] = nil
	p.queue = p.queue[1:]
	if len(p.queue) == 0 {
		p.queue = nil
	}
	return it
}

// Close stops forwarding; events still queued are dropped.
func (p *RemotePublisher) Close() {
	p.once.Do(func() { close(p.closed) })
	<-p.done
	p.mu.Lock()
	if p.client != nil {
		p.client.Close()
	}
	p.mu.Unlock()
}

func (p *RemotePublisher) forward() {
	defer close(p.done)
	for {
		select {
		case <-p.closed:
			return
		case <-p.ready:
		}
		for {
			select {
			case <-p.closed:
				return
			default:
			}
			it := p.dequeue()
			if it == nil {
				break
			}
			if err := p.send(it.envelope); err != nil {
				it.count++
				if it.count > publishMaxRequeue {
					p.log.WithError(err).WithField("topic", it.envelope.Topic).Warn("evicting event from queue because of retry count")
					continue
				}
				// Requeue after count seconds, as the runc shim does.
				go func() {
					select {
					case <-p.clock.After(time.Duration(it.count) * time.Second):
						p.enqueue(it, true)
					case <-p.closed:
					}
				}()
			}
		}
	}
}

func (p *RemotePublisher) send(env *types.Envelope) error {
	c, err := p.connect()
	if err != nil {
		return err
	}
	ctx, cancel := p.clock.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	_, err = eventsapi.NewTTRPCEventsClient(c).Forward(ctx, &eventsapi.ForwardRequest{Envelope: env})
	if err != nil {
		// Reconnect on the next try, whatever went wrong with this one.
		p.mu.Lock()
		if p.client == c {
			p.client.Close()
			p.client = nil
		}
		p.mu.Unlock()
		return fmt.Errorf("forward %s event: %w", env.Topic, err)
	}
	return nil
}

func (p *RemotePublisher) connect() (*ttrpc.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil {
		return p.client, nil
	}
	conn, err := net.Dial("unix", p.address)
	if err != nil {
		return nil, fmt.Errorf("dial events service %s: %w", p.address, err)
	}
	p.client = ttrpc.NewClient(conn, ttrpc.WithUnaryClientInterceptor(deadline.UnaryClientTTRPC))
	return p.client, nil
}
