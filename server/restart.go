package server

import (
	"context"
	"encoding/json"
	"fmt"
	goruntime "runtime"
	"sync"
	"sync/atomic"

	"github.com/containerd/containerd/api/types/task"
	"github.com/sirupsen/logrus"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/shim"
	containerstore "github.com/fakecontainerd/fakecontainerd/store/container"
	"github.com/fakecontainerd/fakecontainerd/store/metadata"
	sandboxstore "github.com/fakecontainerd/fakecontainerd/store/sandbox"
)

// recover rebuilds the in-memory stores from what a previous run left: the
// metadata database, each container's status checkpoint and the shims'
// tasks, as containerd's restart.go does.
func (c *criService) recover(ctx context.Context) error {
	// Reading and decoding every container record is the longest single
	// step at scale: it runs while the shims and sandboxes load.
	type containerList struct {
		recs []metadata.Container
		err  error
	}
	listed := make(chan containerList, 1)
	go func() {
		recs, err := c.db.ListContainers(ctx)
		listed <- containerList{recs, err}
	}()
	if err := c.loadImages(ctx); err != nil {
		return fmt.Errorf("failed to load images: %w", err)
	}
	tasks, err := c.shims.Load(ctx)
	if err != nil {
		return fmt.Errorf("failed to load tasks: %w", err)
	}
	byID := make(map[string]*shim.Task, len(tasks))
	for _, t := range tasks {
		byID[t.ID()] = t
	}
	sandboxes, err := c.db.ListSandboxes(ctx)
	if err != nil {
		return fmt.Errorf("failed to list sandboxes: %w", err)
	}
	for _, rec := range sandboxes {
		sb, err := c.loadSandbox(ctx, rec, byID[rec.ID])
		if err != nil {
			c.log.WithError(err).WithField("sandbox", rec.ID).Errorf("Failed to load sandbox %q", rec.ID)
			continue
		}
		if err := c.sandboxStore.Add(sb); err != nil {
			return fmt.Errorf("failed to add sandbox %q to store: %w", rec.ID, err)
		}
		if err := c.armAnnotationFaults(sb.ID, sb.Config.GetAnnotations()); err != nil {
			c.log.WithError(err).WithField("sandbox", sb.ID).Warn("failed to re-arm annotation faults")
		}
		if err := c.sandboxNames.reserve(sb.Name, sb.ID); err != nil {
			return fmt.Errorf("failed to reserve sandbox name %q: %w", sb.Name, err)
		}
	}
	list := <-listed
	containers, err := list.recs, list.err
	if err != nil {
		return fmt.Errorf("failed to list containers: %w", err)
	}
	// Containers load in parallel, as in containerd 1.7 (an errgroup per
	// container): reading and decoding 10,000 checkpoints and specs one
	// after another took most of the 1 s restart budget. They are added
	// in the database's order, and each exit monitor starts only once its
	// container is in the store, so an exit during recovery is not lost.
	type loadedContainer struct {
		cntr    containerstore.Container
		monitor func()
		err     error
	}
	results := make([]loadedContainer, len(containers))
	var next atomic.Int64
	var wg sync.WaitGroup
	// Only containers without a task are loaded in parallel: those with
	// one ask their shim for its State under the 2 s (scenario time) cap,
	// and a burst of them could time out where one after another does not.
	load := func(i int) {
		r := &results[i]
		r.cntr, r.monitor, r.err = c.loadContainer(ctx, containers[i], byID[containers[i].ID])
	}
	for range min(max(2*goruntime.GOMAXPROCS(0), 2), 8, len(containers)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(containers); i = int(next.Add(1) - 1) {
				if byID[containers[i].ID] == nil {
					load(i)
				}
			}
		})
	}
	wg.Wait()
	for i, rec := range containers {
		if byID[rec.ID] != nil {
			load(i)
		}
	}
	for i, rec := range containers {
		cntr, err := results[i].cntr, results[i].err
		if err != nil {
			c.log.WithError(err).WithField("id", rec.ID).Errorf("Failed to load container %q", rec.ID)
			continue
		}
		if err := c.containerStore.Add(cntr); err != nil {
			return fmt.Errorf("failed to add container %q to store: %w", rec.ID, err)
		}
		if err := c.armAnnotationFaults(cntr.ID, cntr.Config.GetAnnotations()); err != nil {
			c.log.WithError(err).WithField("id", cntr.ID).Warn("failed to re-arm annotation faults")
		}
		if err := c.containerNames.reserve(cntr.Name, cntr.ID); err != nil {
			return fmt.Errorf("failed to reserve container name %q: %w", cntr.Name, err)
		}
		if results[i].monitor != nil {
			results[i].monitor()
		}
	}
	c.log.WithFields(logrus.Fields{"sandboxes": len(sandboxes), "containers": len(containers), "tasks": len(tasks)}).Info("recovered state")
	return nil
}

func (c *criService) loadSandbox(ctx context.Context, rec metadata.Sandbox, t *shim.Task) (sandboxstore.Sandbox, error) {
	var md sandboxstore.Metadata
	if err := json.Unmarshal(rec.Extensions[sandboxMetadataExtension], &md); err != nil {
		return sandboxstore.Sandbox{}, fmt.Errorf("failed to decode sandbox metadata: %w", err)
	}
	status := sandboxstore.Status{CreatedAt: rec.CreatedAt, State: sandboxstore.StateNotReady}
	if t != nil {
		st, err := t.Status(ctx)
		if err == nil && st.Status == task.Status_RUNNING {
			status.State, status.Pid = sandboxstore.StateReady, st.Pid
		}
	}
	sb := sandboxstore.NewSandbox(md, status)
	if status.State == sandboxstore.StateReady {
		if md.IP != "" {
			c.ips.reserve(md.IP, md.ID)
		}
		c.eventMonitor.startSandboxExitMonitor(sb.ID, status.Pid, waitFor(c.eventMonitor.ctx, t))
	} else {
		sb.Stop()
	}
	return sb, nil
}

// loadContainer reconciles a container's checkpointed status with its task,
// as containerd's loadContainer: a running task is watched again; a task
// that stopped while we were down has its exit handled now; a container
// that was running but has no task any more exited with an unknown code.
// monitor, if not nil, starts watching the task's exit: call it once the
// container is in the store.
func (c *criService) loadContainer(ctx context.Context, rec metadata.Container, t *shim.Task) (_ containerstore.Container, monitor func(), _ error) {
	var md containerstore.Metadata
	if err := json.Unmarshal(rec.Extensions[containerMetadataExtension], &md); err != nil {
		return containerstore.Container{}, nil, fmt.Errorf("failed to decode container metadata: %w", err)
	}
	rootDir := c.containerRootDir(md.ID)
	status, err := containerstore.LoadStatus(rootDir, md.ID)
	loaded, fromDisk := status, err == nil
	if err != nil {
		c.log.WithError(err).WithField("id", md.ID).Warnf("Failed to load container status for %q", md.ID)
		status = containerstore.Status{CreatedAt: rec.CreatedAt.UnixNano(), Unknown: true}
	}
	var wait exitWait
	switch {
	case t != nil && (status.State() == runtime.ContainerState_CONTAINER_RUNNING || status.State() == runtime.ContainerState_CONTAINER_CREATED || status.Unknown):
		st, err := t.Status(ctx)
		if err != nil {
			return containerstore.Container{}, nil, fmt.Errorf("failed to get task status: %w", err)
		}
		switch st.Status {
		case task.Status_RUNNING, task.Status_CREATED:
			if status.StartedAt == 0 && st.Status == task.Status_RUNNING {
				status.StartedAt = c.clock.Now().UnixNano()
			}
			status.Pid = st.Pid
			wait = waitFor(c.eventMonitor.ctx, t)
		case task.Status_STOPPED:
			// It exited while we were down: delete the task and record it.
			if _, err := t.Delete(ctx); err != nil && !isNotFound(err) {
				c.log.WithError(err).WithField("id", md.ID).Warn("failed to delete stopped task on load")
			}
			status.Pid, status.FinishedAt, status.ExitCode = 0, st.ExitedAt.UnixNano(), int32(st.ExitStatus)
			status.Unknown = false
		default:
			status.Unknown = true
		}
	case t == nil && status.State() == runtime.ContainerState_CONTAINER_RUNNING:
		status.Pid = 0
		status.FinishedAt = c.clock.Now().UnixNano()
		status.ExitCode = unknownExitCode
		status.Reason = unknownExitReason
	}
	withStatus := containerstore.WithStatus(status, rootDir, c.statusOpts()...)
	if fromDisk {
		// An unchanged checkpoint is not written again: one fsync per
		// container made a restart with 10,000 containers take seconds.
		withStatus = containerstore.WithRecoveredStatus(loaded, status, rootDir, c.statusOpts()...)
	}
	cntr, err := containerstore.NewContainer(md, withStatus)
	if err != nil {
		return containerstore.Container{}, nil, fmt.Errorf("failed to create container object: %w", err)
	}
	if wait != nil {
		monitor = func() { c.eventMonitor.startContainerExitMonitor(md.ID, status.Pid, wait) }
	}
	return cntr, monitor, nil
}
