package scenario

import (
	"context"
	"fmt"
	"maps"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodSpec is a pod for the driver to create as kubelet's pod worker does.
type PodSpec struct {
	Name, Namespace, UID string
	Labels, Annotations  map[string]string
	Containers           []ContainerSpec
	// ExclusiveCPUs makes it a Guaranteed pod with integer CPUs, which
	// 1.36's static CPU manager gives CPUs of their own out of the shared
	// pool (ignored when playing 1.19).
	ExclusiveCPUs int
}

// ContainerSpec is one container of a PodSpec.
type ContainerSpec struct {
	Name, Image         string
	Labels, Annotations map[string]string
	// AnnotationsAt, if set, adds annotations computed just before
	// CreateContainer (a scripted exit that must land at a fixed time).
	AnnotationsAt func(now time.Time) map[string]string
	// Probe, if set, is an exec probe the driver's prober runs once the
	// container started (prober.go).
	Probe *ProbeSpec
}

// CreatePod runs a pod the way kubelet's SyncPod does: RunPodSandbox (with
// twice the runtime request timeout, as cri-client gives it), then for each
// container in turn the image (ImageStatus, and PullImage through the
// image puller if absent; pulls carry no deadline), CreateContainer and
// StartContainer. A failed sandbox ends the attempt; a failed container
// does not stop the next. Every call is recorded like the PLEG's. It
// returns the first error.
func (d *Driver) CreatePod(ctx context.Context, p PodSpec) error {
	_, err := d.createPod(ctx, p, true)
	// SyncPod did something and all of it worked: with
	// PLEGOnDemandRelist, its postSync asks for the pod to be relisted.
	if err == nil {
		d.RequestRelist(p.UID)
	}
	return err
}

// createPod is CreatePod; with start false it leaves the containers
// created and returns their ids (empty for a container that failed), for
// StartContainers.
func (d *Driver) createPod(ctx context.Context, p PodSpec, start bool) ([]string, error) {
	timeout := d.cfg.RuntimeRequestTimeout
	if d.k136 != nil && p.ExclusiveCPUs > 0 {
		// Admission: the static policy allocates the pod's CPUs.
		if _, err := d.allocateCPUs(p.UID, p.ExclusiveCPUs); err != nil {
			return nil, fmt.Errorf("pod %s/%s: UnexpectedAdmissionError: %w", p.Namespace, p.Name, err)
		}
	}
	sbConfig := &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: p.Name, Namespace: p.Namespace, Uid: p.UID},
		Hostname: p.Name,
		Labels: merge(p.Labels, map[string]string{
			labelPodName: p.Name, labelPodNamespace: p.Namespace, labelPodUID: p.UID,
		}),
		Annotations: maps.Clone(p.Annotations),
		Linux:       &runtime.LinuxPodSandboxConfig{},
	}
	var sandboxID string
	err := d.call(ctx, "RunPodSandbox", 2*timeout, func(ctx context.Context) error {
		resp, err := d.rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: sbConfig})
		sandboxID = resp.GetPodSandboxId()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: RunPodSandbox: %w", p.Namespace, p.Name, err)
	}
	var first error
	ids := make([]string, len(p.Containers))
	for i, c := range p.Containers {
		id, err := d.createContainer(ctx, p, sandboxID, sbConfig, c)
		if err == nil && start {
			if err = d.startContainer(ctx, id); err == nil && c.Probe != nil {
				d.StartProbe(ctx, id, *c.Probe)
			}
		}
		if err != nil {
			if first == nil {
				first = fmt.Errorf("pod %s/%s: container %s: %w", p.Namespace, p.Name, c.Name, err)
			}
			continue
		}
		ids[i] = id
	}
	return ids, first
}

// StartContainers starts created containers, one after another.
func (d *Driver) StartContainers(ctx context.Context, ids []string) error {
	var first error
	for _, id := range ids {
		if id == "" {
			continue
		}
		if err := d.startContainer(ctx, id); err != nil && first == nil {
			first = fmt.Errorf("container %s: %w", id, err)
		}
	}
	return first
}

func (d *Driver) createContainer(ctx context.Context, p PodSpec, sandboxID string, sbConfig *runtime.PodSandboxConfig, c ContainerSpec) (string, error) {
	if err := d.ensureImage(ctx, c.Image); err != nil {
		return "", err
	}
	annotations := maps.Clone(c.Annotations)
	if c.AnnotationsAt != nil {
		annotations = merge(annotations, c.AnnotationsAt(d.clock.Now()))
	}
	config := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: c.Name},
		Image:    &runtime.ImageSpec{Image: c.Image},
		// Runs until stopped: the process model interprets commands, and a
		// loop of sleeps would cost CPU at every scenario second.
		Command: []string{"sleep", "infinity"},
		Labels: merge(c.Labels, map[string]string{
			labelContainerName: c.Name, labelPodName: p.Name, labelPodNamespace: p.Namespace, labelPodUID: p.UID,
		}),
		Annotations: merge(annotations, map[string]string{"io.kubernetes.container.restartCount": "0"}),
		Linux:       &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{CpuShares: 2, MemoryLimitInBytes: 64 << 20}},
	}
	var cpuset string
	if d.k136 != nil {
		// PreCreateContainer puts the wanted cpuset in the config;
		// AddContainer (below) records it as applied for exclusive CPUs.
		cpuset = d.wantedCPUSet(p.UID)
		config.Linux.Resources.CpusetCpus = cpuset
	}
	var id string
	err := d.call(ctx, "CreateContainer", d.cfg.RuntimeRequestTimeout, func(ctx context.Context) error {
		resp, err := d.rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: sandboxID, Config: config, SandboxConfig: sbConfig})
		id = resp.GetContainerId()
		return err
	})
	if err != nil {
		return "", fmt.Errorf("CreateContainer: %w", err)
	}
	if d.hooks.ContainerCreated != nil {
		d.hooks.ContainerCreated(id, p, c)
	}
	if d.k136 != nil {
		d.addContainer136(p.UID, c.Name, cpuset)
	}
	return id, nil
}

func (d *Driver) startContainer(ctx context.Context, id string) error {
	err := d.call(ctx, "StartContainer", d.cfg.RuntimeRequestTimeout, func(ctx context.Context) error {
		_, err := d.rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id})
		return err
	})
	if err != nil {
		return fmt.Errorf("StartContainer: %w", err)
	}
	return nil
}

// ensureImage is kubelet's EnsureImageExists: ImageStatus, and a pull if
// the image is absent, one pull at a time when pulls are serialized.
func (d *Driver) ensureImage(ctx context.Context, image string) error {
	spec := &runtime.ImageSpec{Image: image}
	var present bool
	err := d.call(ctx, "ImageStatus", d.cfg.RuntimeRequestTimeout, func(ctx context.Context) error {
		resp, err := d.img.ImageStatus(ctx, &runtime.ImageStatusRequest{Image: spec})
		present = resp.GetImage() != nil
		return err
	})
	if err != nil {
		return fmt.Errorf("ImageStatus %s: %w", image, err)
	}
	if present {
		return nil
	}
	if d.cfg.SerializeImagePulls {
		d.pullMu.Lock()
		defer d.pullMu.Unlock()
	}
	err = d.call(ctx, "PullImage", 0, func(ctx context.Context) error {
		_, err := d.img.PullImage(ctx, &runtime.PullImageRequest{Image: spec})
		return err
	})
	if err != nil {
		return fmt.Errorf("PullImage %s: %w", image, err)
	}
	return nil
}

// merge returns a copy of a with b's entries added (b wins).
func merge(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	maps.Copy(out, a)
	maps.Copy(out, b)
	return out
}
