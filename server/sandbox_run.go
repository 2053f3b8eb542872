package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/shim"
	"github.com/fakecontainerd/fakecontainerd/store/metadata"
	sandboxstore "github.com/fakecontainerd/fakecontainerd/store/sandbox"
)

// RunPodSandbox creates the sandbox record, sets up its (fake) network and
// starts its pause task in a new shim, the shim every container of the pod
// will share.
func (c *criService) RunPodSandbox(ctx context.Context, r *runtime.RunPodSandboxRequest) (_ *runtime.RunPodSandboxResponse, retErr error) {
	config := r.GetConfig()
	if err := validateSandboxConfig(config); err != nil {
		return nil, err
	}
	id := generateID()
	name := makeSandboxName(config.GetMetadata())
	log := c.log.WithFields(logrus.Fields{"sandbox": id, "name": name})
	if err := c.sandboxNames.reserve(name, id); err != nil {
		return nil, fmt.Errorf("failed to reserve sandbox name %q: %w", name, err)
	}
	defer func() {
		if retErr != nil {
			c.sandboxNames.release(name)
		}
	}()
	if err := c.armAnnotationFaults(id, config.GetAnnotations()); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			c.disarmAnnotationFaults(id)
		}
	}()
	// The sandbox is not in the store yet: its fault target is built from
	// the request.
	target := func() faults.Target {
		m := config.GetMetadata()
		return faults.Target{SandboxID: id, PodName: m.GetName(), PodNamespace: m.GetNamespace(), Labels: config.GetLabels(), Annotations: config.GetAnnotations()}
	}
	if h := r.GetRuntimeHandler(); h != "" {
		if _, ok := c.config.Plugins.CRI.Containerd.Runtimes[h]; !ok {
			if c.containerdV2() {
				return nil, errInvalid("unable to get OCI runtime for sandbox %q: no runtime for %q is configured", id, h)
			}
			return nil, errInvalid("failed to get sandbox runtime: no runtime for %q is configured", h)
		}
	}
	img, err := c.ensureImageExists(ctx, c.config.Plugins.CRI.SandboxImage)
	if err != nil {
		return nil, fmt.Errorf("failed to get sandbox image %q: %w", c.config.Plugins.CRI.SandboxImage, err)
	}

	md := sandboxstore.Metadata{ID: id, Name: name, Config: config, RuntimeHandler: r.GetRuntimeHandler()}
	if !hostNetwork(config) {
		if err := c.fire(ctx, faults.PointCNISetup, target); err != nil {
			return nil, fmt.Errorf("failed to setup network for sandbox %q: %w", id, err)
		}
		if err := c.onCPU(ctx, "CNI setup", c.config.Plugins.Fake.CPU.CNISetup.Duration()); err != nil {
			return nil, fmt.Errorf("failed to setup network for sandbox %q: %w", id, err)
		}
		ip, err := c.ips.allocate(id)
		if err != nil {
			return nil, fmt.Errorf("failed to setup network for sandbox %q: %w", id, err)
		}
		defer func() {
			if retErr != nil {
				c.ips.release(ip, id)
			}
		}()
		md.IP = ip
		md.NetNSPath = "/var/run/netns/cni-" + id[:12]
	}
	if err := c.createSandboxRecord(ctx, &md); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			if err := c.db.DeleteSandbox(context.Background(), id); err != nil {
				log.WithError(err).Errorf("Failed to delete containerd container %q", id)
			}
		}
	}()
	for _, d := range []string{c.sandboxRootDir(id), c.sandboxStateDir(id)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("failed to create sandbox dir %q: %w", d, err)
		}
	}
	defer func() {
		if retErr != nil {
			os.RemoveAll(c.sandboxRootDir(id))
			os.RemoveAll(c.sandboxStateDir(id))
		}
	}()

	// Create starts the pod's shim before it creates the task in it: the
	// shim goes again if anything fails from here on, the task create
	// included (else each failed run leaked a shim).
	defer func() {
		if retErr != nil {
			cctx, cancel := c.clock.WithTimeout(context.Background(), deferCleanupTimeout)
			defer cancel()
			_ = c.shims.Shutdown(cctx, id)
		}
	}()
	task, err := c.shims.Create(ctx, shim.CreateOpts{
		ID: id, Group: id, Spec: c.sandboxSpec(id, config, img), Rootfs: c.rootfsMounts(id),
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create containerd task: %w", err)
	}
	defer func() {
		if retErr != nil {
			cctx, cancel := c.clock.WithTimeout(context.Background(), deferCleanupTimeout)
			defer cancel()
			if _, err := task.Delete(cctx, shim.WithProcessKill); err != nil && !isNotFound(err) {
				log.WithError(err).Errorf("Failed to delete sandbox container %q", id)
			}
		}
	}()
	// As for containers, the exit monitor started below calls the shim's
	// Wait that containerd calls here.
	if err := task.Start(ctx); err != nil {
		return nil, fmt.Errorf("failed to start sandbox container task %q: %w", id, err)
	}
	// The creation time is the record's, as containerd takes it from
	// container.Info, so that it reads the same after a restart.
	rec, err := c.db.GetSandbox(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("failed to get sandbox container info: %w", err)
	}
	sb := sandboxstore.NewSandbox(md, sandboxstore.Status{
		Pid: task.Pid(), CreatedAt: rec.CreatedAt, State: sandboxstore.StateReady,
	})
	if err := c.sandboxStore.Add(sb); err != nil {
		return nil, fmt.Errorf("failed to add sandbox %+v into store: %w", sb, err)
	}
	c.eventMonitor.startSandboxExitMonitor(id, task.Pid(), waitFor(c.eventMonitor.ctx, task))
	c.generateAndSendContainerEvent(ctx, id, id, runtime.ContainerEventType_CONTAINER_STARTED_EVENT)
	return &runtime.RunPodSandboxResponse{PodSandboxId: id}, nil
}

func validateSandboxConfig(config *runtime.PodSandboxConfig) error {
	if config == nil {
		return errInvalid("sandbox config must not be nil")
	}
	m := config.GetMetadata()
	switch {
	case m == nil:
		return errInvalid("sandbox config must include metadata")
	case m.Name == "":
		return errInvalid("sandbox config.metadata.name must not be empty")
	case m.Namespace == "":
		return errInvalid("sandbox config.metadata.namespace must not be empty")
	case m.Uid == "":
		return errInvalid("sandbox config.metadata.uid must not be empty")
	}
	for _, s := range []struct{ field, v string }{
		{"metadata.name", m.Name}, {"metadata.namespace", m.Namespace}, {"metadata.uid", m.Uid},
	} {
		if err := validateNamePart(s.field, s.v); err != nil {
			return err
		}
	}
	// Container logs are written under the log directory: a relative one
	// would put them in the server's working directory.
	if d := config.GetLogDirectory(); d != "" && (!filepath.IsAbs(d) || strings.ContainsRune(d, 0)) {
		return errInvalid("sandbox config.log_directory %q: must be an absolute path", d)
	}
	if err := validateLabelsAndAnnotations(config.GetLabels(), config.GetAnnotations()); err != nil {
		return err
	}
	return validateAnnotationFaults(config.GetAnnotations())
}

func hostNetwork(config *runtime.PodSandboxConfig) bool {
	return config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtime.NamespaceMode_NODE
}

// createSandboxRecord persists the sandbox in the metadata database, the
// CRI metadata riding as an extension as in containerd.
func (c *criService) createSandboxRecord(ctx context.Context, md *sandboxstore.Metadata) error {
	data, err := json.Marshal(md)
	if err != nil {
		return fmt.Errorf("failed to encode sandbox metadata %q: %w", md.ID, err)
	}
	rec := metadata.Sandbox{
		ID: md.ID, Labels: md.Config.GetLabels(), Runtime: "io.containerd.runc.v2",
		Extensions: map[string]json.RawMessage{sandboxMetadataExtension: data},
	}
	if err := c.db.CreateSandbox(ctx, rec); err != nil {
		return fmt.Errorf("failed to create sandbox %q: %w", md.ID, err)
	}
	return nil
}

func (c *criService) sandboxStateDir(id string) string {
	return c.stateDir + "/sandboxes/" + id
}
