package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/server/gogofmt"
	"github.com/fakecontainerd/fakecontainerd/shim"
	containerstore "github.com/fakecontainerd/fakecontainerd/store/container"
	sandboxstore "github.com/fakecontainerd/fakecontainerd/store/sandbox"
)

// Backoff of failed exit handling, as containerd's events.go.
const (
	backOffInitDuration        = 1 * time.Second
	backOffMaxDuration         = 5 * time.Minute
	backOffExpireCheckDuration = 1 * time.Second
)

// eventMonitor is containerd's CRI eventMonitor: per-task exit monitors feed
// exits from task.Wait; failed exits go to a backoff queue that one event
// loop retries, one event after another, each with its own 10 s deadline.
// It also serves the ttrpc events service the shims forward to.
type eventMonitor struct {
	c       *criService
	ch      chan any
	backOff *backOff
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
}

func newEventMonitor(c *criService) *eventMonitor {
	ctx, cancel := context.WithCancel(context.Background())
	return &eventMonitor{
		c: c, ch: make(chan any, 1024), ctx: ctx, cancel: cancel, done: make(chan struct{}),
		backOff: newBackOff(c),
	}
}

// Forward receives the shims' events. The CRI plugin only acts on OOM
// events; exits reach it through task.Wait, as in containerd.
func (em *eventMonitor) Forward(ctx context.Context, r *eventsapi.ForwardRequest) (*emptypb.Empty, error) {
	env := r.GetEnvelope()
	ev, err := anypb.UnmarshalNew(env.GetEvent(), proto.UnmarshalOptions{})
	if err != nil {
		em.c.log.WithError(err).WithField("topic", env.GetTopic()).Debug("undecodable shim event")
		return &emptypb.Empty{}, nil
	}
	em.c.log.WithFields(logrus.Fields{"topic": env.GetTopic(), "event": ev}).Trace("shim event")
	if oom, ok := ev.(*eventstypes.TaskOOM); ok {
		select {
		case em.ch <- oom:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-em.ctx.Done():
		}
	}
	return &emptypb.Empty{}, nil
}

func (em *eventMonitor) start() { go em.loop() }

func (em *eventMonitor) stop() {
	em.once.Do(func() {
		em.cancel()
	})
}

// eventString is an event as containerd logs it: 1.6's %+v of its gogo
// type; from 1.7 on the event types are protobuf-go's, and %+v is their
// text form.
func (c *criService) eventString(e any) string {
	if m, ok := e.(proto.Message); ok && c.config.Plugins.Fake.ContainerdVersion != configs.ContainerdV16 {
		return protoText(m)
	}
	switch e := e.(type) {
	case *eventstypes.TaskExit:
		return gogofmt.TaskExit(e.GetContainerID(), e.GetID(), e.GetPid(), e.GetExitStatus(), exitedAt(e))
	case *eventstypes.TaskOOM:
		return gogofmt.TaskOOM(e.GetContainerID())
	}
	return fmt.Sprintf("%+v", e)
}

// exitedAt is a TaskExit's time as containerd 1.6 holds it: a time.Time
// decoded from the shim's timestamp, in UTC.
func exitedAt(e *eventstypes.TaskExit) time.Time {
	if e.GetExitedAt() == nil {
		return time.Time{}
	}
	return e.GetExitedAt().AsTime()
}

func eventID(e any) string {
	switch e := e.(type) {
	case *eventstypes.TaskExit:
		return e.ID
	case *eventstypes.TaskOOM:
		return e.ContainerID
	}
	return ""
}

func (em *eventMonitor) loop() {
	defer close(em.done)
	ticker := em.c.clock.NewTicker(backOffExpireCheckDuration)
	defer ticker.Stop()
	for {
		select {
		case e := <-em.ch:
			id := eventID(e)
			if em.backOff.isInBackOff(id) {
				em.c.log.WithField("id", id).Infof("Events for %q is in backoff, enqueue event %s", id, em.c.eventString(e))
				em.backOff.enBackOff(id, e)
				continue
			}
			if err := em.handleEvent(e); err != nil {
				em.c.log.WithError(err).WithField("id", id).Errorf("Failed to handle event %s for %s", em.c.eventString(e), id)
				em.backOff.enBackOff(id, e)
			}
		case <-ticker.C:
			for _, id := range em.backOff.getExpiredIDs() {
				q := em.backOff.deBackOff(id)
				for i, e := range q.events {
					if err := em.handleEvent(e); err != nil {
						em.c.log.WithError(err).WithField("id", id).Errorf("Failed to handle backOff event %s for %s", em.c.eventString(e), id)
						em.backOff.reBackOff(id, q.events[i:], q.duration)
						break
					}
				}
			}
		case <-em.ctx.Done():
			return
		}
	}
}

// handleEvent handles one event under a fresh 10 s deadline.
func (em *eventMonitor) handleEvent(e any) error {
	ctx, cancel := em.c.clock.WithTimeout(em.ctx, handleEventTimeout)
	defer cancel()
	c := em.c
	switch e := e.(type) {
	case *eventstypes.TaskExit:
		c.log.WithField("id", e.ID).Infof("TaskExit event %s", c.eventString(e))
		if cntr, err := c.containerStore.Get(e.ID); err == nil {
			if err := c.handleContainerExit(ctx, e, cntr); err != nil {
				return fmt.Errorf("failed to handle container TaskExit event: %w", err)
			}
			return nil
		} else if !isNotFound(err) {
			return fmt.Errorf("can't find container for TaskExit event: %w", err)
		}
		if sb, err := c.sandboxStore.Get(e.ID); err == nil {
			if err := c.handleSandboxExit(ctx, e, sb); err != nil {
				return fmt.Errorf("failed to handle sandbox TaskExit event: %w", err)
			}
			return nil
		} else if !isNotFound(err) {
			return fmt.Errorf("can't find sandbox for TaskExit event: %w", err)
		}
		return nil
	case *eventstypes.TaskOOM:
		c.log.WithField("id", e.ContainerID).Infof("TaskOOM event %s", c.eventString(e))
		cntr, err := c.containerStore.Get(e.ContainerID)
		if err != nil {
			if isNotFound(err) {
				return nil
			}
			return fmt.Errorf("can't find container for TaskOOM event: %w", err)
		}
		err = cntr.Status.UpdateSync(func(s containerstore.Status) (containerstore.Status, error) {
			s.Reason = "OOMKilled"
			return s, nil
		})
		if err != nil {
			return fmt.Errorf("failed to update container status for TaskOOM event: %w", err)
		}
	}
	return nil
}

// startContainerExitMonitor waits for a container's exit and handles it
// with a 10 s deadline; a failure goes to the backoff queue.
func (em *eventMonitor) startContainerExitMonitor(id string, pid uint32, wait exitWait) <-chan struct{} {
	return em.startExitMonitor(id, pid, wait, "container", func(ctx context.Context, e *eventstypes.TaskExit) error {
		cntr, err := em.c.containerStore.Get(e.ID)
		if err != nil {
			if isNotFound(err) {
				return nil
			}
			return fmt.Errorf("failed to get container %s: %w", e.ID, err)
		}
		return em.c.handleContainerExit(ctx, e, cntr)
	})
}

// startSandboxExitMonitor is the same for a sandbox's pause task.
func (em *eventMonitor) startSandboxExitMonitor(id string, pid uint32, wait exitWait) <-chan struct{} {
	return em.startExitMonitor(id, pid, wait, "sandbox", func(ctx context.Context, e *eventstypes.TaskExit) error {
		sb, err := em.c.sandboxStore.Get(e.ID)
		if err != nil {
			if isNotFound(err) {
				return nil
			}
			return fmt.Errorf("failed to get sandbox %s: %w", e.ID, err)
		}
		return em.c.handleSandboxExit(ctx, e, sb)
	})
}

// exitWait blocks until a task exits, or its context ends, and gives the
// exit: a shim Task's WaitExit under the context the watch lasts for.
type exitWait func() shim.ExitStatus

// waitFor is the exit of task t, watched for as long as ctx lasts.
func waitFor(ctx context.Context, t *shim.Task) exitWait {
	return func() shim.ExitStatus { return t.WaitExit(ctx) }
}

// startExitMonitor watches one task. containerd's monitor selects on the
// channel of task.Wait, whose goroutine makes the shim call; here the
// monitor's own goroutine makes it (one goroutine per task, not two), with
// the same outcomes: the exit, or an error exit if the wait's context ends
// first, and nothing once the monitor's context is done.
// kind ("container" or "sandbox") is the word of containerd's log line for
// a failed handling.
func (em *eventMonitor) startExitMonitor(id string, pid uint32, wait exitWait, kind string, handle func(context.Context, *eventstypes.TaskExit) error) <-chan struct{} {
	stopCh := make(chan struct{})
	go func() {
		defer close(stopCh)
		res := wait()
		if em.ctx.Err() != nil {
			return
		}
		if res.Err != nil {
			em.c.log.WithError(res.Err).WithField("id", id).Errorf("failed to get task exit status for %q", id)
			res.Code, res.ExitedAt = unknownExitCode, em.c.clock.Now()
		}
		e := &eventstypes.TaskExit{
			ContainerID: id, ID: id, Pid: pid, ExitStatus: res.Code, ExitedAt: timestamppb.New(res.ExitedAt),
		}
		// Debug in containerd 1.6 (and 1.7.0), info in 1.7.30, info and
		// naming the kind from 2.0.
		switch em.c.config.Plugins.Fake.ContainerdVersion {
		case configs.ContainerdV2:
			em.c.log.WithField("id", id).Infof("received %s exit event %s", exitKindWords(kind), em.c.eventString(e))
		case configs.ContainerdV17:
			em.c.log.WithField("id", id).Infof("received exit event %s", em.c.eventString(e))
		default:
			em.c.log.WithField("id", id).Debugf("received exit event %s", em.c.eventString(e))
		}
		ctx, cancel := em.c.clock.WithTimeout(em.ctx, handleEventTimeout)
		defer cancel()
		if err := handle(ctx, e); err != nil {
			em.c.log.WithError(err).WithField("id", id).Errorf("failed to handle %s TaskExit event %s", kind, em.c.eventString(e))
			em.backOff.enBackOff(id, e)
		}
	}()
	return stopCh
}

// exitKindWords names an exit in 2.x's "received ... exit event" line
// (internal/cri/server/events.go; a sandbox's is its podsandbox
// controller's).
func exitKindWords(kind string) string {
	if kind == "sandbox" {
		return "sandbox container"
	}
	return kind
}

// handleContainerExit is containerd's: delete the task (State, kill-wait,
// State, shim Delete, all under the caller's 10 s deadline) and only then
// take the status write lock to record the exit. While the shim's Delete is
// stuck, the container stays RUNNING and no status lock is held here.
func (c *criService) handleContainerExit(ctx context.Context, e *eventstypes.TaskExit, cntr containerstore.Container) error {
	if c.stoppingStateFix() {
		// The field fix of incident 1 (upstream precedent: PR #9771's
		// Exiting, not merged): mark the container Stopping in memory
		// before the shim delete, so UpdateContainerResources keeps away
		// from the shim while the container dies.
		if err := cntr.Status.Update(func(s containerstore.Status) (containerstore.Status, error) {
			s.Stopping = true
			return s, nil
		}); err != nil {
			return fmt.Errorf("failed to set stopping state: %w", err)
		}
	}
	task, err := c.shims.Get(ctx, cntr.ID)
	if err != nil {
		if !isNotFound(err) {
			return fmt.Errorf("failed to load task for container: %w", err)
		}
		// The task is gone from the shim: make sure the daemon forgets it
		// too, so the shim is not leaked (containerd #8954).
		if err := c.shims.DeleteTask(ctx, cntr.ID); err != nil && !isNotFound(err) {
			return fmt.Errorf("failed to cleanup container %s in task-service: %w", cntr.ID, err)
		}
	} else if _, err := c.deleteExitedTask(ctx, task, cntr.ID); err != nil {
		if !isNotFound(err) {
			return fmt.Errorf("failed to stop container: %w", err)
		}
	}
	start := c.clock.Now()
	err = cntr.Status.UpdateSync(func(status containerstore.Status) (containerstore.Status, error) {
		if status.FinishedAt == 0 {
			status.Pid = 0
			status.FinishedAt = e.ExitedAt.AsTime().UnixNano()
			status.ExitCode = int32(e.ExitStatus)
		}
		if status.Unknown {
			c.log.WithField("id", cntr.ID).Debugf("Container %q transited from UNKNOWN to EXITED", cntr.ID)
			status.Unknown = false
		}
		status.Stopping = false
		return status, nil
	})
	if err != nil {
		return fmt.Errorf("failed to update container state: %w", err)
	}
	c.timing("handleContainerExit", cntr.ID, c.clock.Since(start), "handleContainerExit status.updateSync %s", cntr.ID)
	cntr.Stop()
	c.generateAndSendContainerEvent(ctx, cntr.ID, cntr.SandboxID, runtime.ContainerEventType_CONTAINER_STOPPED_EVENT)
	return nil
}

// deleteExitedTask is handleContainerExit's task.Delete with
// WithProcessKill; in 2.x also with NRI's WithContainerExit, which runs
// first inside Delete and describes the container to NRI (nriContainer,
// a task lookup: on a retry behind a shim stuck in Delete, one State that
// waits out its 2 s cap).
func (c *criService) deleteExitedTask(ctx context.Context, task *shim.Task, id string) (*shim.ExitStatus, error) {
	if c.containerdV2() {
		c.nriContainer(id)
	}
	return task.Delete(ctx, shim.WithProcessKill)
}

// stoppingStateFix reports whether either Stopping-state fix is on.
func (c *criService) stoppingStateFix() bool {
	return c.toggles.Enabled(faults.FixStoppingState) || c.toggles.Enabled(faults.FixStoppingStateRefined)
}

// handleSandboxExit records the end of a sandbox's pause task.
func (c *criService) handleSandboxExit(ctx context.Context, e *eventstypes.TaskExit, sb sandboxstore.Sandbox) error {
	task, err := c.shims.Get(ctx, sb.ID)
	if err != nil {
		if !isNotFound(err) {
			return fmt.Errorf("failed to load task for sandbox: %w", err)
		}
		if err := c.shims.DeleteTask(ctx, sb.ID); err != nil && !isNotFound(err) {
			return fmt.Errorf("failed to cleanup sandbox %s in task-service: %w", sb.ID, err)
		}
	} else if _, err := task.Delete(ctx, shim.WithProcessKill); err != nil {
		if !isNotFound(err) {
			return fmt.Errorf("failed to stop sandbox: %w", err)
		}
	}
	err = sb.Status.Update(func(status sandboxstore.Status) (sandboxstore.Status, error) {
		status.State = sandboxstore.StateNotReady
		status.Pid = 0
		status.ExitStatus = e.ExitStatus
		status.ExitedAt = e.ExitedAt.AsTime()
		return status, nil
	})
	if err != nil {
		return fmt.Errorf("failed to update sandbox state: %w", err)
	}
	sb.Stop()
	c.generateAndSendContainerEvent(ctx, sb.ID, sb.ID, runtime.ContainerEventType_CONTAINER_STOPPED_EVENT)
	return nil
}

// backOff is containerd's per-id retry queue for events that failed.
type backOff struct {
	c         *criService
	mu        sync.Mutex
	queuePool map[string]*backOffQueue
}

type backOffQueue struct {
	events     []any
	expireTime time.Time
	duration   time.Duration
}

func newBackOff(c *criService) *backOff {
	return &backOff{c: c, queuePool: map[string]*backOffQueue{}}
}

func (b *backOff) getExpiredIDs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.c.clock.Now()
	var ids []string
	for id, q := range b.queuePool {
		if !q.expireTime.After(now) {
			ids = append(ids, id)
		}
	}
	return ids
}

func (b *backOff) isInBackOff(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.queuePool[id]
	return ok
}

func (b *backOff) enBackOff(id string, e any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q, ok := b.queuePool[id]; ok {
		q.events = append(q.events, e)
		return
	}
	b.queuePool[id] = &backOffQueue{events: []any{e}, expireTime: b.c.clock.Now().Add(backOffInitDuration), duration: backOffInitDuration}
}

func (b *backOff) deBackOff(id string) *backOffQueue {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queuePool[id]
	delete(b.queuePool, id)
	return q
}

func (b *backOff) reBackOff(id string, events []any, old time.Duration) {
	d := min(2*old, backOffMaxDuration)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queuePool[id] = &backOffQueue{events: append([]any(nil), events...), expireTime: b.c.clock.Now().Add(d), duration: d}
}
