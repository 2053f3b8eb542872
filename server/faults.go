package server

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/faults"
	containerstore "github.com/fakecontainerd/fakecontainerd/store/container"
)

// annotationFaultPrefix arms a fault from a pod or container annotation:
// "fakecontainerd.io/fault.<point>": "<spec>", targeting that object. The
// container form of the field's strace injection is
// fakecontainerd.io/fault.shim.umount2: "delay(60s)", paid on each of
// runc's two umount2 calls.
const annotationFaultPrefix = "fakecontainerd.io/fault."

// initFaults makes the injector and toggles from the config unless the
// caller supplied them, and arms the configured faults.
func (c *criService) initFaults(cfg *configs.Config) error {
	fake := cfg.Plugins.Fake
	if c.toggles == nil {
		c.toggles = faults.NewToggles()
		for _, name := range fake.Fixes {
			f, err := faults.ParseFix(name)
			if err != nil {
				return fmt.Errorf("config: fixes: %w", err)
			}
			_ = c.toggles.Set(f, true)
		}
		// mount_options = ["volatile"] and the volatile toggle are one fix.
		if cfg.Volatile() {
			_ = c.toggles.Set(faults.FixVolatile, true)
		}
	}
	if c.faults == nil {
		processShims := fake.ShimMode == configs.ShimModeProcess
		c.faults = faults.New(c.clock, c.log.WithField("component", "faults"),
			faults.WithPanicAt(func(string) bool { return processShims }))
	}
	// Exit actions end the target's process through its shim, as a kill
	// from the node would (kill.go).
	c.faults.SetExitHandler(c.exitFault)
	for i, fc := range fake.Faults {
		sel, err := faults.ParseSelector(fc.Target)
		if err != nil {
			return fmt.Errorf("config: faults[%d].target: %w", i, err)
		}
		if _, err := c.faults.Add(fc.Point, sel, fc.Spec, "config"); err != nil {
			return fmt.Errorf("config: faults[%d]: %w", i, err)
		}
	}
	return nil
}

// containerTarget describes a container for fault selectors.
func (c *criService) containerTarget(id string) faults.Target {
	t := faults.Target{ContainerID: id}
	cntr, err := c.containerStore.Get(id)
	if err != nil {
		// Not a container (yet): perhaps a sandbox's pause task.
		if sb, err := c.sandboxStore.Get(id); err == nil {
			return c.sandboxTarget(sb.ID)
		}
		return t
	}
	t.ContainerID, t.SandboxID, t.ContainerName = cntr.ID, cntr.SandboxID, cntr.Config.GetMetadata().GetName()
	t.Annotations = cntr.Config.GetAnnotations()
	labels := map[string]string{}
	if sb, err := c.sandboxStore.Get(cntr.SandboxID); err == nil {
		t.PodName, t.PodNamespace = sb.Config.GetMetadata().GetName(), sb.Config.GetMetadata().GetNamespace()
		maps.Copy(labels, sb.Config.GetLabels())
	}
	maps.Copy(labels, cntr.Config.GetLabels())
	t.Labels = labels
	return t
}

// sandboxTarget describes a sandbox for fault selectors.
func (c *criService) sandboxTarget(id string) faults.Target {
	t := faults.Target{SandboxID: id}
	if sb, err := c.sandboxStore.Get(id); err == nil {
		t.SandboxID = sb.ID
		t.PodName, t.PodNamespace = sb.Config.GetMetadata().GetName(), sb.Config.GetMetadata().GetNamespace()
		t.Labels, t.Annotations = sb.Config.GetLabels(), sb.Config.GetAnnotations()
	}
	return t
}

// requestTarget finds the object a CRI request is about.
func (c *criService) requestTarget(req any) faults.Target {
	if r, ok := req.(interface{ GetContainerId() string }); ok && r.GetContainerId() != "" {
		return c.containerTarget(r.GetContainerId())
	}
	if r, ok := req.(interface{ GetPodSandboxId() string }); ok && r.GetPodSandboxId() != "" {
		return c.sandboxTarget(r.GetPodSandboxId())
	}
	return faults.Target{}
}

// fire fires a point for a container or sandbox, building its target only
// when a fault is armed there.
func (c *criService) fire(ctx context.Context, point string, target func() faults.Target) error {
	if !c.faults.Active(point) {
		return nil
	}
	return c.faults.Fire(ctx, point, target())
}

// metadataCommitHook fires inside every bbolt write transaction, just
// before it commits.
func (c *criService) metadataCommitHook(ctx context.Context, op string) error {
	if !c.faults.Active(faults.PointMetadataCommit) {
		return nil
	}
	return c.faults.Fire(ctx, faults.PointMetadataCommit, faults.TargetFrom(ctx))
}

// statusOpts instruments a container's status storage: the status-lock
// fault points fire before the lock is requested and the tracker follows
// written or contended acquisitions (statusLocks, blame.go); the fsync
// point fires under the write lock at the checkpoint's fsync.
func (c *criService) statusOpts() []containerstore.StatusOpt {
	return []containerstore.StatusOpt{
		containerstore.WithLockObserver(statusLocks{c}),
		containerstore.WithSyncHook(func(id string) error {
			return c.fire(context.Background(), faults.PointStatusFsync, func() faults.Target { return c.containerTarget(id) })
		}),
	}
}

// fireStatusLock fires the status-lock points. A status lock has no error
// path: an error action is logged and ignored; delays and blocks hold the
// caller before it asks for the lock.
func (c *criService) fireStatusLock(id string, write bool) {
	point := faults.PointStatusLockRead
	if write {
		point = faults.PointStatusLockWrite
	}
	if err := c.fire(context.Background(), point, func() faults.Target { return c.containerTarget(id) }); err != nil {
		c.log.WithError(err).WithField("id", id).Debug("error fault at a status lock ignored")
	}
}

// armAnnotationFaults arms the faults an object's annotations ask for,
// targeting the object by id.
func (c *criService) armAnnotationFaults(id string, annotations map[string]string) error {
	for k, v := range annotations {
		point, ok := strings.CutPrefix(k, annotationFaultPrefix)
		if !ok {
			continue
		}
		if _, err := c.faults.Add(point, faults.Selector{ID: id}, v, "annotation"); err != nil {
			return errInvalid("annotation %s: %v", k, err)
		}
	}
	return nil
}

// validateAnnotationFaults checks them before anything is created.
func validateAnnotationFaults(annotations map[string]string) error {
	for k, v := range annotations {
		point, ok := strings.CutPrefix(k, annotationFaultPrefix)
		if !ok {
			continue
		}
		if err := faults.ValidatePoint(point); err != nil {
			return errInvalid("annotation %s: %v", k, err)
		}
		if _, err := faults.ParseSpec(v); err != nil {
			return errInvalid("annotation %s: %v", k, err)
		}
	}
	return nil
}

// disarmAnnotationFaults drops an object's annotation faults when it goes.
func (c *criService) disarmAnnotationFaults(id string) {
	c.faults.ClearWhere(func(i faults.Info) bool { return i.Source == "annotation" && i.Target == "id="+id })
}
