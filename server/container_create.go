package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/shim"
	containerstore "github.com/fakecontainerd/fakecontainerd/store/container"
	imagestore "github.com/fakecontainerd/fakecontainerd/store/image"
	"github.com/fakecontainerd/fakecontainerd/store/metadata"
	sandboxstore "github.com/fakecontainerd/fakecontainerd/store/sandbox"
)

// CreateContainer records the container in the metadata database and its
// status checkpoint; as in containerd, the task is only created at start.
func (c *criService) CreateContainer(ctx context.Context, r *runtime.CreateContainerRequest) (_ *runtime.CreateContainerResponse, retErr error) {
	config := r.GetConfig()
	if err := validateContainerConfig(config); err != nil {
		return nil, err
	}
	if r.GetPodSandboxId() == "" {
		return nil, errInvalid("pod_sandbox_id must not be empty")
	}
	sb, err := c.sandboxStore.Get(r.GetPodSandboxId())
	if err != nil {
		return nil, fmt.Errorf("failed to find sandbox id %q: %w", r.GetPodSandboxId(), err)
	}
	if sb.Status.Get().State != sandboxstore.StateReady {
		if c.containerdV2() {
			// 2.x checks the sandbox's state (after the controller's
			// status) with fmt.Errorf: Unknown.
			return nil, errState("sandbox container %q is not running", sb.ID)
		}
		// 1.6 and 1.7 find no task for the sandbox container: NotFound,
		// in their words.
		return nil, errNotFoundf("failed to get sandbox container task: no running task found: task %s not found: not found", sb.ID)
	}
	// The pod's fakecontainerd.io/ annotations script this container too;
	// refuse bad values before anything is created, as for the container's.
	behaviour := podBehaviourAnnotations(sb.Config.GetAnnotations(), config.GetMetadata().GetName())
	for k, v := range config.GetAnnotations() {
		behaviour[k] = v
	}
	if _, err := shim.ParseBehaviour(behaviour, shim.Defaults{}); err != nil {
		return nil, errInvalid("sandbox config.annotations for container %q: %v", config.GetMetadata().GetName(), err)
	}
	logPath, err := containerLogPath(sb.Config.GetLogDirectory(), config.GetLogPath())
	if err != nil {
		return nil, err
	}
	img, err := c.localResolve(config.GetImage().GetImage())
	if err != nil {
		if c.containerdV2() {
			// 2.x resolves the image first to see whether it is a
			// checkpoint image (container_create.go, checkIfCheckpointOCIImage).
			return nil, fmt.Errorf("failed to check if this is a checkpoint image: failed to resolve image %q: %w", config.GetImage().GetImage(), err)
		}
		return nil, fmt.Errorf("failed to resolve image %q: %w", config.GetImage().GetImage(), err)
	}

	id := generateID()
	name := makeContainerName(config.GetMetadata(), sb.Config.GetMetadata())
	if err := c.containerNames.reserve(name, id); err != nil {
		if c.containerdV2() {
			return nil, fmt.Errorf("failed to reserve container name %q; check if another CreateContainer request is in progress: %w", name, err)
		}
		return nil, fmt.Errorf("failed to reserve container name %q: %w", name, err)
	}
	defer func() {
		if retErr != nil {
			c.containerNames.release(name)
		}
	}()

	spec := c.containerSpec(id, sb.ID, config, img, sb.Config.GetAnnotations())
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("failed to encode spec of container %q: %w", id, err)
	}
	md := containerstore.Metadata{
		ID: id, Name: name, SandboxID: sb.ID, Config: config, ImageRef: img.ID, LogPath: logPath,
		StopSignal: img.Config.StopSignal,
	}
	mdJSON, err := json.Marshal(&md)
	if err != nil {
		return nil, fmt.Errorf("failed to encode metadata of container %q: %w", id, err)
	}
	rootDir := c.containerRootDir(id)
	if err := os.MkdirAll(rootDir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create container root directory %q: %w", rootDir, err)
	}
	defer func() {
		if retErr != nil {
			os.RemoveAll(rootDir)
		}
	}()
	err = c.db.CreateContainer(ctx, metadata.Container{
		ID: id, Labels: config.GetLabels(), Image: img.ID, Runtime: "io.containerd.runc.v2", SandboxID: sb.ID,
		Spec: specJSON, SnapshotKey: id, Extensions: map[string]json.RawMessage{containerMetadataExtension: mdJSON},
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create containerd container: %w", err)
	}
	defer func() {
		if retErr != nil {
			if err := c.db.DeleteContainer(context.Background(), id); err != nil {
				c.log.WithError(err).WithField("id", id).Errorf("Failed to delete containerd container %q", id)
			}
		}
	}()
	status := containerstore.Status{CreatedAt: c.clock.Now().UnixNano(), Resources: toCRIResources(spec.Linux.Resources)}
	cntr, err := containerstore.NewContainer(md, containerstore.WithStatus(status, rootDir, c.statusOpts()...))
	if err != nil {
		return nil, fmt.Errorf("failed to create internal container object for %q: %w", id, err)
	}
	if err := c.armAnnotationFaults(id, config.GetAnnotations()); err != nil {
		return nil, err
	}
	if err := c.containerStore.Add(cntr); err != nil {
		c.disarmAnnotationFaults(id)
		return nil, fmt.Errorf("failed to add container %q into store: %w", id, err)
	}
	c.generateAndSendContainerEvent(ctx, id, sb.ID, runtime.ContainerEventType_CONTAINER_CREATED_EVENT)
	return &runtime.CreateContainerResponse{ContainerId: id}, nil
}

func validateContainerConfig(config *runtime.ContainerConfig) error {
	switch {
	case config == nil:
		return errInvalid("container config must not be nil")
	case config.GetMetadata() == nil:
		return errInvalid("container config must include metadata")
	case config.GetMetadata().GetName() == "":
		return errInvalid("container config.metadata.name must not be empty")
	case config.GetImage() == nil || config.GetImage().GetImage() == "":
		return errInvalid("container config.image.image must not be empty")
	}
	if err := validateNamePart("config.metadata.name", config.GetMetadata().GetName()); err != nil {
		return err
	}
	if err := validateLabelsAndAnnotations(config.GetLabels(), config.GetAnnotations()); err != nil {
		return err
	}
	if _, err := shim.ParseBehaviour(config.GetAnnotations(), shim.Defaults{}); err != nil {
		return errInvalid("config.annotations: %v", err)
	}
	if err := validateAnnotationFaults(config.GetAnnotations()); err != nil {
		return err
	}
	return validateResources(config.GetLinux().GetResources())
}

// containerLogPath joins the pod's log directory and the container's log
// path, refusing a path that would leave the directory.
func containerLogPath(dir, rel string) (string, error) {
	if dir == "" || rel == "" {
		return "", nil
	}
	if filepath.IsAbs(rel) {
		return "", errInvalid("config.log_path %q: must be relative to the pod's log directory", rel)
	}
	clean := filepath.Clean(rel)
	if clean == ".." || strings.HasPrefix(clean, "../") || clean == "." {
		return "", errInvalid("config.log_path %q: must stay inside the pod's log directory", rel)
	}
	return filepath.Join(dir, clean), nil
}

// localResolve finds an image by reference, id or id prefix without pulling.
func (c *criService) localResolve(ref string) (imagestore.Image, error) {
	if ref, err := parseReference(ref); err == nil {
		if id, err := c.imageStore.Resolve(ref.DockerRef()); err == nil {
			return c.imageStore.Get(id)
		}
	}
	return c.imageStore.Get(ref)
}
