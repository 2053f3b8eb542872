package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/shim"
	containerstore "github.com/fakecontainerd/fakecontainerd/store/container"
	sandboxstore "github.com/fakecontainerd/fakecontainerd/store/sandbox"
)

// StartContainer creates the container's task in its pod's shim, starts it
// and records the start under the status write lock.
func (c *criService) StartContainer(ctx context.Context, r *runtime.StartContainerRequest) (_ *runtime.StartContainerResponse, retErr error) {
	if r.GetContainerId() == "" {
		return nil, errInvalid("container_id must not be empty")
	}
	cntr, err := c.containerStore.Get(r.GetContainerId())
	if err != nil {
		return nil, fmt.Errorf("an error occurred when try to find container %q: %w", r.GetContainerId(), err)
	}
	id := cntr.ID
	if err := setContainerStarting(cntr); err != nil {
		return nil, fmt.Errorf("failed to set starting state for container %q: %w", id, err)
	}
	defer func() {
		if retErr != nil {
			// The start failed: record it, as containerd does, so the
			// container is EXITED with StartError rather than stuck CREATED.
			err := cntr.Status.UpdateSync(func(s containerstore.Status) (containerstore.Status, error) {
				if s.FinishedAt == 0 {
					s.Pid, s.FinishedAt, s.ExitCode = 0, c.clock.Now().UnixNano(), errorStartExitCode
					s.Reason, s.Message = errorStartReason, retErr.Error()
				}
				return s, nil
			})
			if err != nil {
				c.log.WithError(err).WithField("id", id).Errorf("failed to set start failure state for container %q", id)
			}
			cntr.Stop()
		}
		resetContainerStarting(cntr)
	}()

	sb, err := c.sandboxStore.Get(cntr.SandboxID)
	if err != nil {
		return nil, fmt.Errorf("sandbox %q not found: %w", cntr.SandboxID, err)
	}
	if sb.Status.Get().State != sandboxstore.StateReady {
		return nil, errState("sandbox container %q is not running", sb.ID)
	}
	rec, err := c.db.GetContainer(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("failed to get container info: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(rec.Spec, &spec); err != nil {
		return nil, fmt.Errorf("failed to get container spec: %w", err)
	}
	// The process's output goes to its CRI log, written by the shim (README,
	// Deliberate differences: containerd's daemon reads FIFOs instead).
	stdout, tty := "", cntr.Config.GetTty()
	if cntr.LogPath != "" {
		// containerd opens the log file before it creates the task.
		if err := createLogFile(cntr.LogPath); err != nil {
			return nil, err
		}
		stdout = shim.LogURI(cntr.LogPath)
	}
	// A container created with stdin gets a FIFO for it (containerd's
	// container IO has one), which the shim reads and Attach writes.
	stdin := ""
	if cntr.Config.GetStdin() {
		stdin = c.containerStdinPath(id)
		if err := createStdinFIFO(stdin); err != nil {
			return nil, fmt.Errorf("failed to create container io: %w", err)
		}
	}
	task, err := c.shims.Create(ctx, shim.CreateOpts{
		ID: id, Group: sb.ID, Spec: &spec, Rootfs: c.rootfsMounts(rec.SnapshotKey),
		Stdin: stdin, Stdout: stdout, Stderr: stdout, Terminal: tty,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create containerd task: %w", err)
	}
	defer func() {
		if retErr != nil {
			dctx, cancel := c.clock.WithTimeout(context.Background(), deferCleanupTimeout)
			defer cancel()
			if _, err := task.Delete(dctx, shim.WithProcessKill); err != nil && !isNotFound(err) {
				c.log.WithError(err).WithField("id", id).Errorf("Failed to delete containerd task %q", id)
			}
		}
	}()
	// containerd calls task.Wait here, before Start; the monitor below
	// makes that call instead, which sees the same exit: the shim keeps an
	// exited process until its task is deleted.
	if err := task.Start(ctx); err != nil {
		return nil, fmt.Errorf("failed to start containerd task %q: %w", id, err)
	}
	started := c.clock.Now()
	err = cntr.Status.UpdateSync(func(s containerstore.Status) (containerstore.Status, error) {
		s.Pid, s.StartedAt = task.Pid(), started.UnixNano()
		return s, nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to update container %q state: %w", id, err)
	}
	if cntr.LogPath != "" {
		if err := c.writeLogLines(cntr.LogPath, started); err != nil {
			c.log.WithError(err).WithField("id", id).Warn("failed to write container log")
		}
	}
	c.eventMonitor.startContainerExitMonitor(id, task.Pid(), waitFor(c.eventMonitor.ctx, task))
	c.generateAndSendContainerEvent(ctx, id, cntr.SandboxID, runtime.ContainerEventType_CONTAINER_STARTED_EVENT)
	return &runtime.StartContainerResponse{}, nil
}

func setContainerStarting(cntr containerstore.Container) error {
	return cntr.Status.Update(func(s containerstore.Status) (containerstore.Status, error) {
		switch {
		case s.Removing:
			return s, errState("container is in removing state, can't be started")
		case s.Starting:
			return s, errState("container is already in starting state")
		case s.State() != runtime.ContainerState_CONTAINER_CREATED:
			return s, errState("container is in %s state", criContainerStateToString(s.State()))
		}
		s.Starting = true
		return s, nil
	})
}

func resetContainerStarting(cntr containerstore.Container) {
	_ = cntr.Status.Update(func(s containerstore.Status) (containerstore.Status, error) {
		s.Starting = false
		return s, nil
	})
}

func criContainerStateToString(s runtime.ContainerState) string {
	return runtime.ContainerState_name[int32(s)]
}

// writeLogLines writes the configured lines in the CRI log format
// ("<RFC3339Nano> stdout F <line>") so crictl logs and kubectl logs show
// something.
func (c *criService) writeLogLines(path string, at time.Time) error {
	f, err := openLogFile(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var b strings.Builder
	for _, line := range c.config.Plugins.Fake.LogLines {
		fmt.Fprintf(&b, "%s stdout F %s\n", at.UTC().Format(time.RFC3339Nano), line)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		return fmt.Errorf("write log file %q: %w", path, err)
	}
	return nil
}
