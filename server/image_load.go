package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/store"
	imagestore "github.com/fakecontainerd/fakecontainerd/store/image"
	"github.com/fakecontainerd/fakecontainerd/store/metadata"
)

// loadImages rebuilds the image store from the bbolt image records at
// start-up, as containerd's restart.go loadImages does from its image
// service: one update per record. A record that cannot be read is logged and
// skipped, as in containerd, so one bad record does not stop the server.
func (c *criService) loadImages(ctx context.Context) error {
	recs, err := c.db.ListImages(ctx)
	if err != nil {
		return fmt.Errorf("failed to list images: %w", err)
	}
	for _, rec := range recs {
		// Records named by image id exist only in bbolt (see updateImage).
		if isImageID(rec.Name) {
			continue
		}
		img, err := imageFromRecord(rec)
		if err != nil {
			c.log.WithError(err).Warnf("Failed to load image %q", rec.Name)
			continue
		}
		if err := c.imageStore.Add(img); err != nil {
			c.log.WithError(err).Warnf("Failed to load image %q", rec.Name)
			continue
		}
		c.log.Debugf("Loaded image %q", rec.Name)
	}
	return nil
}

// ensureImageExists returns the image ref names, pulling it if it is not
// local, as containerd's RunPodSandbox does for the sandbox image.
func (c *criService) ensureImageExists(ctx context.Context, ref string) (imagestore.Image, error) {
	img, err := c.localResolve(ref)
	if err == nil {
		return img, nil
	}
	if !isNotFound(err) {
		return imagestore.Image{}, fmt.Errorf("failed to get image %q: %w", ref, err)
	}
	resp, err := c.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}})
	if err != nil {
		return imagestore.Image{}, fmt.Errorf("failed to pull image %q: %w", ref, err)
	}
	img, err = c.imageStore.Get(resp.GetImageRef())
	if err != nil {
		// Someone may have removed the image right after the pull.
		return imagestore.Image{}, fmt.Errorf("failed to get image %q after pulling: %w", resp.GetImageRef(), err)
	}
	return img, nil
}

// updateImage makes the image store agree with the bbolt record name, as
// containerd's imageStore.Update(ctx, ref) does with its image service:
// the reference follows the record, or goes if the record is gone. Reading
// the record rather than trusting the caller keeps concurrent pulls and
// removes of one image consistent.
//
// Records named by image id stay out of the store: unlike containerd's
// store, ours keeps ids apart from references (imagestore.Image.References
// are repo tags and digests only), and every image has at least one
// reference.
func (c *criService) updateImage(ctx context.Context, name string) error {
	if isImageID(name) {
		return nil
	}
	// The bbolt write this follows has happened; the store must follow it
	// even if the caller's deadline has just passed.
	rec, err := c.db.GetImage(context.WithoutCancel(ctx), name)
	if errors.Is(err, store.ErrNotFound) {
		c.imageStore.RemoveReference(name)
		return nil
	}
	if err != nil {
		return err
	}
	img, err := imageFromRecord(rec)
	if err != nil {
		return err
	}
	return c.imageStore.Add(img)
}

// imageFromRecord is the store image one bbolt record names.
func imageFromRecord(rec metadata.Image) (imagestore.Image, error) {
	cfg, err := decodeImageConfigLabel(rec)
	if err != nil {
		return imagestore.Image{}, err
	}
	return imagestore.Image{
		ID:         cfg.ID,
		References: []string{rec.Name},
		ChainID:    cfg.ChainID,
		Size:       cfg.Size,
		Config:     cfg.Config.store(),
		Pinned:     rec.Labels[pinnedImageLabelKey] == pinnedImageLabelValue,
	}, nil
}

// decodeImageConfigLabel reads the image config a record carries.
func decodeImageConfigLabel(rec metadata.Image) (imageConfigLabel, error) {
	data, ok := rec.Labels[imageConfigLabelKey]
	if !ok {
		return imageConfigLabel{}, fmt.Errorf("image record %q has no %s label", rec.Name, imageConfigLabelKey)
	}
	var cfg imageConfigLabel
	if err := json.Unmarshal([]byte(data), &cfg); err != nil {
		return imageConfigLabel{}, fmt.Errorf("image record %q: decode %s label: %w", rec.Name, imageConfigLabelKey, err)
	}
	if !isImageID(cfg.ID) {
		return imageConfigLabel{}, fmt.Errorf("image record %q: %s label has an invalid image id %q", rec.Name, imageConfigLabelKey, cfg.ID)
	}
	return cfg, nil
}
