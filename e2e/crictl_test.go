package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The config loaders are crictl's (cmd/crictl/util.go): crictl reads the
// file with sigs.k8s.io/yaml, which turns YAML into JSON and hands it to
// encoding/json, so the JSON keys are the struct tags' snake_case names
// ("log_directory"), as in crictl's docs.

func loadPodSandboxConfig(path string) (*runtime.PodSandboxConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("config at %s not found", path)
		}
		return nil, err
	}
	var config runtime.PodSandboxConfig
	if err := json.Unmarshal(data, &config); err != nil {
		return nil, err
	}
	if config.GetMetadata() == nil {
		return nil, errors.New("metadata is not set")
	}
	if config.GetMetadata().GetUid() == "" {
		config.Metadata.Uid = randomHex(16) // crictl: uuid.New()
	}
	if config.GetMetadata().GetName() == "" || config.GetMetadata().GetNamespace() == "" {
		return nil, fmt.Errorf("name or namespace is not in metadata %q", config.GetMetadata())
	}
	return &config, nil
}

func loadContainerConfig(path string) (*runtime.ContainerConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("config at %s not found", path)
		}
		return nil, err
	}
	var config runtime.ContainerConfig
	if err := json.Unmarshal(data, &config); err != nil {
		return nil, err
	}
	if config.GetMetadata() == nil {
		return nil, errors.New("metadata is not set")
	}
	if config.GetMetadata().GetName() == "" {
		return nil, fmt.Errorf("name is not in metadata %q", config.GetMetadata())
	}
	if config.GetImage().GetImage() == "" {
		return nil, errors.New("image is not set")
	}
	// crictl create: the image the user typed is what they specified.
	if config.GetImage().GetUserSpecifiedImage() == "" {
		config.Image.UserSpecifiedImage = config.GetImage().GetImage()
	}
	return &config, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// podConfig is testdata/pod-config.json as a user would adapt it: its own
// name and uid, and a log directory of its own instead of /tmp.
func (d *daemon) podConfig(name, logDir string) *runtime.PodSandboxConfig {
	d.t.Helper()
	pc, err := loadPodSandboxConfig(filepath.Join("testdata", "pod-config.json"))
	if err != nil {
		d.t.Fatalf("load pod-config.json: %v", err)
	}
	pc.Metadata.Name, pc.Metadata.Uid = name, name+"-"+randomHex(4)
	pc.LogDirectory = logDir
	return pc
}

// containerConfig is testdata/container-config.json with another name (and
// log path) and annotations.
func (d *daemon) containerConfig(name string, annotations map[string]string) *runtime.ContainerConfig {
	d.t.Helper()
	cc, err := loadContainerConfig(filepath.Join("testdata", "container-config.json"))
	if err != nil {
		d.t.Fatalf("load container-config.json: %v", err)
	}
	cc.Metadata.Name = name
	cc.LogPath = name + ".0.log"
	cc.Annotations = annotations
	return cc
}

// crictl pull IMAGE
func (d *daemon) pull(image string) string {
	d.t.Helper()
	ref, err := d.img.PullImage(d.ctx(), &runtime.ImageSpec{Image: image}, nil, nil)
	if err != nil {
		d.t.Fatalf("crictl pull %s: %v", image, err)
	}
	return ref
}

// crictl runp pod-config.json
func (d *daemon) runp(pc *runtime.PodSandboxConfig) string {
	d.t.Helper()
	id, err := d.rt.RunPodSandbox(d.ctx(), pc, "")
	if err != nil {
		d.t.Fatalf("crictl runp %s: %v", pc.GetMetadata().GetName(), err)
	}
	return id
}

// crictl create POD container-config.json pod-config.json
func (d *daemon) create(podID string, cc *runtime.ContainerConfig, pc *runtime.PodSandboxConfig) string {
	d.t.Helper()
	id, err := d.rt.CreateContainer(d.ctx(), podID, cc, pc)
	if err != nil {
		d.t.Fatalf("crictl create %s: %v", cc.GetMetadata().GetName(), err)
	}
	return id
}

// crictl start CONTAINER
func (d *daemon) startContainer(id string) {
	d.t.Helper()
	if err := d.rt.StartContainer(d.ctx(), id); err != nil {
		d.t.Fatalf("crictl start %s: %v", id, err)
	}
}

// crictl inspect CONTAINER (not verbose)
func (d *daemon) inspect(id string) *runtime.ContainerStatus {
	d.t.Helper()
	resp, err := d.rt.ContainerStatus(d.ctx(), id, false)
	if err != nil {
		d.t.Fatalf("crictl inspect %s: %v", id, err)
	}
	return resp.GetStatus()
}

// crictl inspectp POD (not verbose)
func (d *daemon) inspectp(id string) *runtime.PodSandboxStatus {
	d.t.Helper()
	resp, err := d.rt.PodSandboxStatus(d.ctx(), id, false)
	if err != nil {
		d.t.Fatalf("crictl inspectp %s: %v", id, err)
	}
	return resp.GetStatus()
}

// waitState polls crictl inspect until the container is in want.
func (d *daemon) waitState(id string, want runtime.ContainerState, within time.Duration) *runtime.ContainerStatus {
	d.t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := d.inspect(id)
		if st.GetState() == want {
			return st
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("container %s is %v after %v, want %v", id, st.GetState(), within, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// psAll is crictl ps -a: every container.
func (d *daemon) psAll() []*runtime.Container {
	d.t.Helper()
	cs, err := d.rt.ListContainers(d.ctx(), &runtime.ContainerFilter{})
	if err != nil {
		d.t.Fatalf("crictl ps -a: %v", err)
	}
	return cs
}

// pods is crictl pods.
func (d *daemon) pods() []*runtime.PodSandbox {
	d.t.Helper()
	ps, err := d.rt.ListPodSandbox(d.ctx(), &runtime.PodSandboxFilter{})
	if err != nil {
		d.t.Fatalf("crictl pods: %v", err)
	}
	return ps
}

// images is crictl images.
func (d *daemon) images() []*runtime.Image {
	d.t.Helper()
	is, err := d.img.ListImages(d.ctx(), &runtime.ImageFilter{})
	if err != nil {
		d.t.Fatalf("crictl images: %v", err)
	}
	return is
}

func isNotFound(err error) bool { return status.Code(err) == codes.NotFound }
