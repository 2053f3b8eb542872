package server

import (
	"context"
	"fmt"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	imagestore "github.com/fakecontainerd/fakecontainerd/store/image"
)

// ListImages lists every image, ordered by id. containerd 1.7 ignores the
// filter; the fake honours the CRI's one filter field, the image, resolved
// as ImageStatus resolves it (no match, no images).
func (c *criService) ListImages(ctx context.Context, r *runtime.ListImagesRequest) (*runtime.ListImagesResponse, error) {
	var imgs []imagestore.Image
	if want := r.GetFilter().GetImage().GetImage(); want != "" {
		img, err := c.localResolve(want)
		if err != nil && !isNotFound(err) {
			return nil, fmt.Errorf("can not resolve %q locally: %w", want, err)
		}
		if err == nil {
			imgs = append(imgs, img)
		}
	} else {
		imgs = c.imageStore.List()
	}
	out := make([]*runtime.Image, 0, len(imgs))
	for _, img := range imgs {
		out = append(out, toCRIImage(img))
	}
	return &runtime.ListImagesResponse{Images: out}, nil
}
