package server

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/server/gogofmt"
)

// containerEventsBuffer is containerd's containerEventsChan capacity; an
// event that finds a subscriber's buffer full is dropped, as there.
const containerEventsBuffer = 1000

// containerEventBroadcaster fans container events out to every open
// GetContainerEvents stream. (containerd has one channel that concurrent
// streams compete for; each stream here sees every event.)
type containerEventBroadcaster struct {
	mu     sync.Mutex
	subs   map[chan *runtime.ContainerEventResponse]struct{}
	closed bool
}

func newContainerEventBroadcaster() *containerEventBroadcaster {
	return &containerEventBroadcaster{subs: map[chan *runtime.ContainerEventResponse]struct{}{}}
}

func (b *containerEventBroadcaster) subscribe() (chan *runtime.ContainerEventResponse, func()) {
	ch := make(chan *runtime.ContainerEventResponse, containerEventsBuffer)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(ch)
		return ch, func() {}
	}
	b.subs[ch] = struct{}{}
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// publish reports whether every subscriber took the event.
func (b *containerEventBroadcaster) publish(e *runtime.ContainerEventResponse) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	all := true
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
			all = false
		}
	}
	return all
}

func (b *containerEventBroadcaster) active() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs) > 0
}

func (b *containerEventBroadcaster) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for ch := range b.subs {
		close(ch)
	}
	b.subs = map[chan *runtime.ContainerEventResponse]struct{}{}
}

// GetContainerEvents streams lifecycle events until the client goes away
// or the server stops.
func (c *criService) GetContainerEvents(r *runtime.GetEventsRequest, s grpc.ServerStreamingServer[runtime.ContainerEventResponse]) error {
	ch, unsubscribe := c.events.subscribe()
	defer unsubscribe()
	for {
		select {
		case <-s.Context().Done():
			return nil
		case e, ok := <-ch:
			if !ok {
				return nil
			}
			if err := s.Send(e); err != nil {
				return err
			}
		}
	}
}

// generateAndSendContainerEvent builds an event with the pod's status and
// all its containers' statuses, as containerd 1.7 does. Building it reads
// every container's status (read lock), as there. Nothing is built when no
// stream is open.
func (c *criService) generateAndSendContainerEvent(ctx context.Context, containerID, sandboxID string, t runtime.ContainerEventType) {
	if !c.events.active() {
		return
	}
	e := &runtime.ContainerEventResponse{ContainerId: containerID, ContainerEventType: t, CreatedAt: c.clock.Now().UnixNano()}
	if sb, err := c.sandboxStore.Get(sandboxID); err == nil {
		e.PodSandboxStatus = toCRISandboxStatus(sb.Metadata, sb.Status.Get())
		for _, cntr := range c.containerStore.ListBySandbox(sb.ID) {
			e.ContainersStatuses = append(e.ContainersStatuses, c.toCRIContainerStatus(cntr, cntr.Status.Get()))
		}
	} else {
		// containerd 1.7's text (1.6 has no container events).
		c.log.WithField("sandbox", sandboxID).Warnf("Failed to get podSandbox status for container event for sandboxID %q: %v. Sending the event with nil podSandboxStatus.", sandboxID, err)
	}
	if !c.events.publish(e) {
		c.log.WithField("id", containerID).Debugf("containerEventsChan is full, discarding event %s", gogofmt.String(e))
	}
}
