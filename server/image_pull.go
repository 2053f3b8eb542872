package server

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/shim"
	"github.com/fakecontainerd/fakecontainerd/store"
	imagestore "github.com/fakecontainerd/fakecontainerd/store/image"
	"github.com/fakecontainerd/fakecontainerd/store/metadata"
)

const (
	// imageLabelKey marks an image record as managed by the CRI plugin, as
	// containerd's labels.ImageLabelKey.
	imageLabelKey   = "io.cri-containerd.image"
	imageLabelValue = "managed"
	// pinnedImageLabelKey marks the sandbox image, which kubelet's image GC
	// must not remove (containerd 1.7's labels.PinnedImageLabelKey).
	pinnedImageLabelKey   = "io.cri-containerd.pinned"
	pinnedImageLabelValue = "pinned"
	// imageConfigLabelKey carries, as JSON (imageConfigLabel), what
	// containerd would read from its content store: the image id (the
	// config digest), chain id, unpacked size and the image config. The fake
	// has no content store, so every image record carries it; loadImages
	// rebuilds the image store from it.
	imageConfigLabelKey = "io.fakecontainerd.image.config"
	// manifestMediaType is the target type of every pulled image: today's
	// registries serve multi-platform indexes.
	manifestMediaType = "application/vnd.oci.image.index.v1+json"
	// defaultPathEnv is the PATH every image config sets.
	defaultPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// registryRoundTrip is the scenario time a pull spends resolving the
	// manifest. containerd resolves against the registry on every pull,
	// even when all content is local, so a pull is never instant, and a
	// caller's short deadline (critest's 1ms pull) expires during it.
	registryRoundTrip = 20 * time.Millisecond
)

// imageConfigLabel is the JSON under imageConfigLabelKey.
type imageConfigLabel struct {
	ID      string         `json:"id"`
	ChainID string         `json:"chainID"`
	Size    int64          `json:"size"`
	Config  ociImageConfig `json:"config"`
}

// ociImageConfig is imagestore.Config with the OCI image config's JSON
// names, so the label and ImageStatus verbose info read like a real config.
type ociImageConfig struct {
	User       string            `json:"User,omitempty"`
	Env        []string          `json:"Env,omitempty"`
	Entrypoint []string          `json:"Entrypoint,omitempty"`
	Cmd        []string          `json:"Cmd,omitempty"`
	WorkingDir string            `json:"WorkingDir,omitempty"`
	Labels     map[string]string `json:"Labels,omitempty"`
	StopSignal string            `json:"StopSignal,omitempty"`
}

func toOCIConfig(c imagestore.Config) ociImageConfig {
	return ociImageConfig{
		User: c.User, Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd,
		WorkingDir: c.WorkingDir, Labels: c.Labels, StopSignal: c.StopSignal,
	}
}

func (c ociImageConfig) store() imagestore.Config {
	return imagestore.Config{
		User: c.User, Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd,
		WorkingDir: c.WorkingDir, Labels: c.Labels, StopSignal: c.StopSignal,
	}
}

// remoteImage is what a registry would serve for a reference: the
// manifest, and the config and layers it points at.
type remoteImage struct {
	ManifestDigest string
	ManifestSize   int64
	imageConfigLabel
}

// PullImage "pulls" an image without any network, as containerd 1.7's
// image_pull.go does after the transfer: it names the image in bbolt by
// image id, repo tag and repo digest (one record each, in that order, each
// its own write transaction) and brings the image store up to date after
// each. The image content is made up, deterministically, from the
// reference (see fakeRemoteImage).
func (c *criService) PullImage(ctx context.Context, r *runtime.PullImageRequest) (*runtime.PullImageResponse, error) {
	if r.GetImage() == nil || r.GetImage().GetImage() == "" {
		// containerd's text; the code is InvalidArgument (README).
		return nil, errInvalid(`failed to parse image reference "": invalid reference format`)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	imageRef := r.GetImage().GetImage()
	// An image id is not pullable: containerd would ask the registry for
	// docker.io/library/sha256 and be told it does not exist.
	if isImageID(imageRef) {
		return nil, fmt.Errorf("failed to pull and unpack image %q: failed to resolve reference %q: %w", imageRef, imageRef, store.ErrNotFound)
	}
	parsed, err := parseReference(imageRef)
	if err != nil {
		return nil, err
	}
	named := parsed.dockerRef()
	ref := named.String()

	if err := c.fire(ctx, faults.PointImagePull, func() faults.Target { return faults.Target{} }); err != nil {
		return nil, fmt.Errorf("failed to pull and unpack image %q: failed to resolve reference %q: %w", imageRef, ref, err)
	}
	if err := c.clock.Sleep(ctx, registryRoundTrip); err != nil {
		return nil, fmt.Errorf("failed to pull and unpack image %q: failed to resolve reference %q: %w", imageRef, ref, err)
	}
	sandbox := c.isSandboxImage(ref)
	remote, err := c.resolveRemote(ctx, named, sandbox)
	if err != nil {
		return nil, fmt.Errorf("failed to pull and unpack image %q: failed to resolve reference %q: %w", imageRef, ref, err)
	}
	labels, err := imageLabels(remote.imageConfigLabel, sandbox)
	if err != nil {
		return nil, fmt.Errorf("failed to pull image %q: %w", imageRef, err)
	}
	target := metadata.Descriptor{MediaType: manifestMediaType, Digest: remote.ManifestDigest, Size: remote.ManifestSize}

	repoDigest, repoTag := named.Name()+"@"+remote.ManifestDigest, ""
	if named.Tag != "" {
		repoTag = ref
	}
	for i, name := range []string{remote.ID, repoTag, repoDigest} {
		if name == "" {
			continue
		}
		if err := c.createImageReference(ctx, name, target, labels); err != nil {
			return nil, fmt.Errorf("failed to create image reference %q: %w", name, err)
		}
		if i == 0 {
			if err := c.unpack(ctx, remote.ID, remote.Size); err != nil {
				return nil, fmt.Errorf("failed to pull and unpack image %q: %w", imageRef, err)
			}
		}
		if err := c.updateImage(ctx, name); err != nil {
			return nil, fmt.Errorf("failed to update image store %q: %w", name, err)
		}
	}
	c.log.WithFields(logrus.Fields{
		"image": imageRef, "id": remote.ID, "repoTag": repoTag, "repoDigest": repoDigest, "size": remote.Size,
	}).Debugf("Pulled image %q with image id %q, repo tag %q, repo digest %q", imageRef, remote.ID, repoTag, repoDigest)
	return &runtime.PullImageResponse{ImageRef: remote.ID}, nil
}

// unpack models the layer unpack of a pull. containerd mounts each parent
// snapshot, applies the layer and unmounts it (an unmount without
// "volatile" syncs what was written), and commits content with an fsync
// inside a metadata write transaction. The fake spends that sync time
// (size / disk_throughput; nothing with the volatile fix) inside one bbolt
// write transaction, so every other metadata writer waits for it:
// incident 2's chain, where container.Update under a status lock queued
// behind boot-time pulls. The sync ignores the caller's deadline, as
// syscalls do.
//
// In a node disk layout the layer's bytes are written to the snapshotter's
// filesystem and the unmount is a syncfs of it: it writes back every
// container's dirty pages too, after what the device has queued; with
// volatile the layer's pages stay in the pool for the next syncfs.
func (c *criService) unpack(ctx context.Context, id string, size int64) error {
	var cost time.Duration
	if tp := c.config.Plugins.Fake.DiskThroughput.Bytes(); tp > 0 && !c.toggles.Enabled(faults.FixVolatile) {
		cost = time.Duration(float64(size) / float64(tp) * float64(time.Second))
	}
	start := c.clock.Now()
	err := c.db.UpdateImage(ctx, id, func(*metadata.Image) error {
		short := shortID(strings.TrimPrefix(id, "sha256:"))
		switch fs := c.rootfsFilesystem(); {
		case fs != nil:
			now := c.clock.Now()
			fs.Write(now, size)
			if !c.toggles.Enabled(faults.FixVolatile) {
				io := fs.Syncfs(now, "syncfs of "+fs.Mount()+" overlay")
				if c.tracker != nil {
					c.tracker.detailCurrent(lockKey{kind: lockMetadata}, fmt.Sprintf("unpacking image %s without volatile, %s", short, io))
				}
				_ = io.Wait(c.lifetime, c.clock)
			}
		case cost > 0:
			if c.tracker != nil {
				c.tracker.detailCurrent(lockKey{kind: lockMetadata}, fmt.Sprintf("unpacking image %s: syncing %s without volatile", short, shim.HumanBytes(size)))
			}
			_ = c.clock.Sleep(c.lifetime, cost)
		}
		return c.fire(ctx, faults.PointImageUnpack, func() faults.Target { return faults.Target{} })
	})
	c.log.WithFields(logrus.Fields{"image": id, "size": size, "cost": c.clock.Since(start)}).Debug("image unpacked")
	return err
}

// isSandboxImage reports whether ref (normalised) is the configured sandbox
// image, which is pinned as in containerd 1.7's getLabels.
func (c *criService) isSandboxImage(ref string) bool {
	sb, err := parseReference(c.config.Plugins.CRI.SandboxImage)
	return err == nil && sb.DockerRef() == ref
}

// resolveRemote is the fake registry. A digest the fake itself handed out
// for a tag (a RepoDigest) resolves to the same image, as the registry would
// serve the same manifest; any other reference gets made-up content.
func (c *criService) resolveRemote(ctx context.Context, named reference, sandbox bool) (remoteImage, error) {
	if named.Digest != "" {
		recs, err := c.db.ListImages(ctx)
		if err != nil {
			return remoteImage{}, err
		}
		for _, rec := range recs {
			if rec.Target.Digest != named.Digest {
				continue
			}
			cfg, err := decodeImageConfigLabel(rec)
			if err != nil {
				c.log.WithError(err).Warnf("Ignoring image record %q when resolving %q", rec.Name, named)
				continue
			}
			return remoteImage{ManifestDigest: rec.Target.Digest, ManifestSize: rec.Target.Size, imageConfigLabel: cfg}, nil
		}
	}
	return fakeRemoteImage(named, sandbox), nil
}

// fakeRemoteImage makes up an image for a reference, the same for the same
// reference every time (and across restarts), from an identity key:
//
//   - a digest reference is its digest: the same manifest is the same image,
//     whichever repository it is pulled from;
//   - a tag reference is the repository's last path component and the tag,
//     so the same name and tag from two registries or mirrors is one image
//     (critest's "same image from different registries" checks), while two
//     tags of a repository are two images;
//   - a few critest images are known by name (critestImage) so that its
//     checks of aliased tags and image users pass.
//
// The image id is sha256("config:" + key), the manifest digest (when the
// reference has none) sha256("manifest:" + key); the size is 1-200 MB, or
// about 300 KB for a pause image, which also gets pause's config.
func fakeRemoteImage(named reference, sandbox bool) remoteImage {
	name := named.repoName()
	var key, user string
	if named.Digest != "" {
		key = named.Digest
	} else {
		key = name + ":" + named.Tag
		if alias, u, ok := critestImage(name, named.Tag); ok {
			if alias != "" {
				key = alias
			}
			user = u
		}
	}
	manifestDigest := named.Digest
	if manifestDigest == "" {
		manifestDigest = "sha256:" + sha256Hex("manifest:"+key)
	}
	sum := sha256.Sum256([]byte("size:" + key))
	h1, h2 := binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:16])

	img := remoteImage{
		ManifestDigest: manifestDigest,
		// An index lists a manifest per platform: some hundreds of bytes.
		ManifestSize: 300 + int64(h2%1700),
		imageConfigLabel: imageConfigLabel{
			ID: "sha256:" + sha256Hex("config:"+key),
			// One layer, so the chain id is that layer's diff id.
			ChainID: "sha256:" + sha256Hex("layer:"+key),
		},
	}
	if sandbox || name == "pause" {
		// registry.k8s.io/pause's own config; its unpacked size is ~300 KB.
		img.Size = 250_000 + int64(h1%100_000)
		img.Config = ociImageConfig{
			User: "65535:65535", Env: []string{defaultPathEnv}, Entrypoint: []string{"/pause"}, WorkingDir: "/",
		}
		return img
	}
	img.Size = 1_000_000 + int64(h1%199_000_000)
	entrypoint, cmd := imageProcess(name)
	img.Config = ociImageConfig{User: user, Env: []string{defaultPathEnv}, Entrypoint: entrypoint, Cmd: cmd}
	return img
}

// wellKnownProcesses are the entrypoint and cmd of images whose default
// process a container without a command runs (their Dockerfiles'), by the
// repository's last path component.
var wellKnownProcesses = map[string][2][]string{
	"busybox": {nil, {"sh"}},
	"alpine":  {nil, {"/bin/sh"}},
	"ubuntu":  {nil, {"/bin/bash"}},
	"debian":  {nil, {"bash"}},
	"nginx":   {{"/docker-entrypoint.sh"}, {"nginx", "-g", "daemon off;"}},
	"redis":   {{"docker-entrypoint.sh"}, {"redis-server"}},
	"agnhost": {{"/agnhost"}, {"pause"}},
}

// imageProcess is an image's default process. critest's images are
// busybox; any other image runs its own program ("/<name>"), which the
// process model does not know: like a real server it runs until stopped.
func imageProcess(name string) (entrypoint, cmd []string) {
	base := name[strings.LastIndex(name, "/")+1:]
	if p, ok := wellKnownProcesses[base]; ok {
		return slices.Clone(p[0]), slices.Clone(p[1])
	}
	if _, _, critest := critestImage(name, ""); critest || strings.HasPrefix(base, "test-image") {
		return nil, []string{"sh"}
	}
	return nil, []string{"/" + base}
}

// critestImage knows the images of cri-tools' conformance suite
// (gcr.io/k8s-staging-cri-tools/..., pkg/validate/consts.go) whose content
// its checks depend on, by last path component so that critest's
// -registry-prefix still matches. alias, when set, is the identity key the
// tag shares with others; user is the image config's User.
func critestImage(name, tag string) (alias, user string, ok bool) {
	base := strings.TrimPrefix(name, "win-")
	switch base {
	case "test-image-tags":
		// "different tags refer to the same image".
		if tag == "1" || tag == "2" || tag == "3" {
			return name + ":1", "", true
		}
	case "test-image-user-uid":
		return "", "1002", true
	case "test-image-user-username":
		return "", "www-data", true
	case "test-image-user-uid-group":
		return "", "1003:users", true
	case "test-image-user-username-group":
		return "", "www-data:users", true
	case "test-image-predefined-group":
		return "", "1000", true
	}
	return "", "", false
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// imageLabels are the labels of every record of one pull: containerd's
// managed (and, for the sandbox image, pinned) label, and the image config.
func imageLabels(cfg imageConfigLabel, pinned bool) (map[string]string, error) {
	data, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encode config of image %q: %w", cfg.ID, err)
	}
	labels := map[string]string{imageLabelKey: imageLabelValue, imageConfigLabelKey: string(data)}
	if pinned {
		labels[pinnedImageLabelKey] = pinnedImageLabelValue
	}
	return labels, nil
}

// createImageReference creates or updates the bbolt record name, as
// containerd's createImageReference: Create first (a write transaction even
// when the name exists), then Update only if the target or labels changed.
func (c *criService) createImageReference(ctx context.Context, name string, target metadata.Descriptor, labels map[string]string) error {
	img := metadata.Image{Name: name, Target: target, Labels: labels}
	err := c.db.CreateImage(ctx, img)
	if err == nil || !errors.Is(err, store.ErrAlreadyExists) {
		return err
	}
	old, err := c.db.GetImage(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		// Removed between the two transactions (a concurrent RemoveImage).
		return c.db.CreateImage(ctx, img)
	}
	if err != nil {
		return err
	}
	if old.Target == target && maps.Equal(old.Labels, labels) {
		return nil
	}
	return c.db.UpdateImage(ctx, name, func(rec *metadata.Image) error {
		rec.Target = target
		rec.Labels = labels
		return nil
	})
}
