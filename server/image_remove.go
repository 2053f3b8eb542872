package server

import (
	"context"
	"errors"
	"fmt"
	"slices"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/store"
)

// RemoveImage removes the image a reference, id or id prefix names, with
// all its references, as containerd's image_remove.go: one bbolt delete per
// name, each followed by an image store update, so removing by one tag
// removes every tag and digest of the image. A missing image, or a name
// already deleted by a concurrent RemoveImage, is no error. The pinned
// sandbox image may be removed too: pinning only keeps kubelet's image GC
// off it.
func (c *criService) RemoveImage(ctx context.Context, r *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error) {
	if r.GetImage() == nil {
		return nil, errInvalid("image: an image spec is required")
	}
	img, err := c.localResolve(r.GetImage().GetImage())
	if err != nil {
		if isNotFound(err) {
			return &runtime.RemoveImageResponse{}, nil
		}
		return nil, fmt.Errorf("can not resolve %q locally: %w", r.GetImage().GetImage(), err)
	}
	// The record named by the image id goes last, where containerd's
	// synchronous delete (the one that triggers garbage collection) is.
	names := append(slices.Clone(img.References), img.ID)
	for _, name := range names {
		if err := c.db.DeleteImage(ctx, name); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("failed to delete image reference %q for %q: %w", name, img.ID, err)
		}
		if err := c.updateImage(ctx, name); err != nil {
			return nil, fmt.Errorf("failed to update image reference %q for %q: %w", name, img.ID, err)
		}
	}
	return &runtime.RemoveImageResponse{}, nil
}
