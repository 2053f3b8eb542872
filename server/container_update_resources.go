package server

import (
	"context"
	"encoding/json"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/faults"
	containerstore "github.com/fakecontainerd/fakecontainerd/store/container"
	"github.com/fakecontainerd/fakecontainerd/store/metadata"
)

// UpdateContainerResources is containerd 1.6's and 1.7's (with NRI off, its
// 1.7 default): everything happens inside
// the container's status UpdateSync, so the status write lock is held
// across the spec write (a bbolt transaction), the shim's State (2 s cap)
// and the shim's Update (the caller's deadline, nothing else), and then the
// fsync of the status checkpoint. The source comment: "so that 1) no race
// with container start, 2) no concurrent resource update to the same
// container". Behind a shim Delete stuck in umount, this is what freezes
// every reader of the container's status. containerd 2.x, where NRI is on
// by default, first has NRI look the container up (nriContainer): its
// task lookup waits out the shim's State cap before the lock is taken.
func (c *criService) UpdateContainerResources(ctx context.Context, r *runtime.UpdateContainerResourcesRequest) (*runtime.UpdateContainerResourcesResponse, error) {
	if r.GetContainerId() == "" {
		return nil, errInvalid("container_id must not be empty")
	}
	if err := validateResources(r.GetLinux()); err != nil {
		return nil, err
	}
	cntr, err := c.containerStore.Get(r.GetContainerId())
	if err != nil {
		return nil, fmt.Errorf("failed to find container: %w", err)
	}
	start := c.clock.Now()
	if c.containerdV2() {
		// 2.x (NRI on by default): NRI's UpdateContainerResources looks
		// the container up before the status lock is taken.
		c.nriContainer(cntr.ID)
	}
	if c.toggles.Enabled(faults.FixUpdateOutsideLock) {
		err = c.updateResourcesOutsideLock(ctx, cntr, r)
	} else {
		err = cntr.Status.UpdateSync(func(status containerstore.Status) (containerstore.Status, error) {
			return c.updateContainerResources(ctx, cntr, r, status)
		})
	}
	c.timing("UpdateContainerResources", cntr.ID, c.clock.Since(start), "[UpdateContainerResources] %s", cntr.ID)
	if err != nil {
		return nil, fmt.Errorf("failed to update resources: %w", err)
	}
	return &runtime.UpdateContainerResourcesResponse{}, nil
}

func (c *criService) updateContainerResources(ctx context.Context, cntr containerstore.Container, r *runtime.UpdateContainerResourcesRequest, status containerstore.Status) (newStatus containerstore.Status, retErr error) {
	id := cntr.ID
	newStatus = status
	if status.Stopping && c.toggles.Enabled(faults.FixStoppingState) {
		// The field fix refuses a dying container outright.
		return newStatus, fmt.Errorf("container %q is in removing or stopping state", id)
	}
	if status.Removing {
		return newStatus, errState("container %q is in removing state", id)
	}
	rec, err := c.db.GetContainer(ctx, id)
	if err != nil {
		return newStatus, fmt.Errorf("failed to get container spec: %w", err)
	}
	var oldSpec specs.Spec
	if err := json.Unmarshal(rec.Spec, &oldSpec); err != nil {
		return newStatus, fmt.Errorf("failed to get container spec: %w", err)
	}
	newSpec, err := updateOCIResource(&oldSpec, r.GetLinux())
	if err != nil {
		return newStatus, fmt.Errorf("failed to update resource in spec: %w", err)
	}
	if err := c.updateContainerSpec(ctx, id, newSpec); err != nil {
		return newStatus, err
	}
	defer func() {
		if retErr != nil {
			// Put the old spec back, with a context of its own: the
			// caller's may be what just expired.
			dctx, cancel := c.clock.WithTimeout(context.Background(), deferCleanupTimeout)
			defer cancel()
			if err := c.updateContainerSpec(dctx, id, &oldSpec); err != nil {
				c.log.WithError(err).WithField("id", id).Errorf("Failed to update spec %+v for container %q", oldSpec, id)
			}
		} else {
			newStatus.Resources = toCRIResources(newSpec.Linux.Resources)
		}
	}()

	// A container that is not running only needs the spec: limits are
	// applied when it starts.
	if status.State() != runtime.ContainerState_CONTAINER_RUNNING {
		return newStatus, nil
	}
	// The refined Stopping fix: a dying container gets the new spec but no
	// shim call, and the caller sees success.
	if status.Stopping && c.toggles.Enabled(faults.FixStoppingStateRefined) {
		return newStatus, nil
	}
	task, err := c.shims.Get(ctx, id)
	if err != nil {
		if isNotFound(err) {
			// Task exited already.
			return newStatus, nil
		}
		return newStatus, fmt.Errorf("failed to get task: %w", err)
	}
	start := c.clock.Now()
	err = task.Update(ctx, newSpec.Linux.Resources)
	c.timing("updateContainerSpec.taskUpdate", id, c.clock.Since(start), "[updateContainerSpec.taskUpdate] %s", id)
	if err != nil {
		if isNotFound(err) {
			return newStatus, nil
		}
		return newStatus, fmt.Errorf("failed to update resources: %w", err)
	}
	return newStatus, nil
}

// updateResourcesOutsideLock is the shape of containerd PRs #11300/#11304
// (not merged): the spec write and the shim's Update run on a snapshot of
// the status with no status lock held; only recording the new resources
// takes the write lock, briefly. A stuck shim then stalls this call alone,
// not every reader of the container's status.
func (c *criService) updateResourcesOutsideLock(ctx context.Context, cntr containerstore.Container, r *runtime.UpdateContainerResourcesRequest) error {
	newStatus, err := c.updateContainerResources(ctx, cntr, r, cntr.Status.Get())
	if err != nil {
		return err
	}
	return cntr.Status.UpdateSync(func(status containerstore.Status) (containerstore.Status, error) {
		status.Resources = newStatus.Resources
		return status, nil
	})
}

// updateContainerSpec is containerd's container.Update: a metadata (bbolt)
// write transaction, here taken while the caller holds the status lock.
func (c *criService) updateContainerSpec(ctx context.Context, id string, spec *specs.Spec) error {
	data, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("failed to marshal spec %+v: %w", spec, err)
	}
	err = c.db.UpdateContainer(ctx, id, func(rec *metadata.Container) error {
		rec.Spec = data
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to update container spec: %w", err)
	}
	return nil
}

// updateOCIResource applies CRI resources to a copy of the spec, as
// containerd's opts.WithResources: fields left zero keep their old values.
func updateOCIResource(old *specs.Spec, r *runtime.LinuxContainerResources) (*specs.Spec, error) {
	data, err := json.Marshal(old)
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, err
	}
	if spec.Linux == nil {
		spec.Linux = &specs.Linux{}
	}
	if spec.Linux.Resources == nil {
		spec.Linux.Resources = &specs.LinuxResources{}
	}
	if r == nil {
		return &spec, nil
	}
	res := spec.Linux.Resources
	if res.CPU == nil {
		res.CPU = &specs.LinuxCPU{}
	}
	if res.Memory == nil {
		res.Memory = &specs.LinuxMemory{}
	}
	upd := toOCIResources(r)
	if upd.CPU.Period != nil {
		res.CPU.Period = upd.CPU.Period
	}
	if upd.CPU.Quota != nil {
		res.CPU.Quota = upd.CPU.Quota
	}
	if upd.CPU.Shares != nil {
		res.CPU.Shares = upd.CPU.Shares
	}
	if upd.CPU.Cpus != "" {
		res.CPU.Cpus = upd.CPU.Cpus
	}
	if upd.CPU.Mems != "" {
		res.CPU.Mems = upd.CPU.Mems
	}
	if upd.Memory.Limit != nil {
		res.Memory.Limit = upd.Memory.Limit
	}
	if upd.Memory.Swap != nil {
		res.Memory.Swap = upd.Memory.Swap
	}
	if len(upd.HugepageLimits) > 0 {
		res.HugepageLimits = upd.HugepageLimits
	}
	if len(upd.Unified) > 0 {
		res.Unified = upd.Unified
	}
	return &spec, nil
}
