package server

import (
	"context"
	"encoding/json"
	"fmt"
	goruntime "runtime"
	"strconv"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	imagestore "github.com/fakecontainerd/fakecontainerd/store/image"
)

// ImageStatus returns the image a reference, full id or unique id prefix
// names, as containerd's image_status.go. A missing image is no error: the
// CRI answers it with a nil image.
func (c *criService) ImageStatus(ctx context.Context, r *runtime.ImageStatusRequest) (*runtime.ImageStatusResponse, error) {
	if r.GetImage() == nil {
		return nil, errInvalid("image: an image spec is required")
	}
	img, err := c.localResolve(r.GetImage().GetImage())
	if err != nil {
		if isNotFound(err) {
			return &runtime.ImageStatusResponse{}, nil
		}
		return nil, fmt.Errorf("can not resolve %q locally: %w", r.GetImage().GetImage(), err)
	}
	resp := &runtime.ImageStatusResponse{Image: toCRIImage(img)}
	if r.GetVerbose() {
		info, err := imageVerboseInfo(img)
		if err != nil {
			return nil, fmt.Errorf("failed to generate image info for %q: %w", img.ID, err)
		}
		resp.Info = info
	}
	return resp, nil
}

// toCRIImage is containerd's toCRIImage: repo tags and digests from the
// references, the user from the image config.
func toCRIImage(img imagestore.Image) *runtime.Image {
	// No Spec: containerd's toCRIImage (1.6 through 2.2) leaves it unset.
	var tags, digests []string
	for _, ref := range img.References {
		if strings.Contains(ref, "@") {
			digests = append(digests, ref)
		} else {
			tags = append(tags, ref)
		}
	}
	out := &runtime.Image{
		Id:          img.ID,
		RepoTags:    tags,
		RepoDigests: digests,
		Size:        uint64(img.Size),
		Pinned:      img.Pinned,
	}
	uid, username := userFromImage(img.Config.User)
	if uid != nil {
		out.Uid = &runtime.Int64Value{Value: *uid}
	}
	out.Username = username
	return out
}

// userFromImage splits an image config's User ("uid", "name", "uid:gid",
// "name:group") into a uid or a user name, as containerd's
// getUserFromImage; the group is not reported.
func userFromImage(user string) (*int64, string) {
	if user == "" {
		return nil, ""
	}
	user, _, _ = strings.Cut(user, ":")
	uid, err := strconv.ParseInt(user, 10, 64)
	if err != nil {
		return nil, user
	}
	return &uid, ""
}

// imageVerboseInfo is the verbose ImageStatus info: containerd's
// verboseImageInfo, the chain id and the OCI image spec, as JSON under
// "info".
func imageVerboseInfo(img imagestore.Image) (map[string]string, error) {
	type rootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	}
	type imageSpec struct {
		Architecture string         `json:"architecture"`
		OS           string         `json:"os"`
		Config       ociImageConfig `json:"config"`
		RootFS       rootFS         `json:"rootfs"`
	}
	info := struct {
		ChainID   string    `json:"chainID"`
		ImageSpec imageSpec `json:"imageSpec"`
	}{
		ChainID: img.ChainID,
		ImageSpec: imageSpec{
			Architecture: goruntime.GOARCH,
			OS:           "linux",
			Config:       toOCIConfig(img.Config),
			// Fake images have one layer, whose diff id is the chain id.
			RootFS: rootFS{Type: "layers", DiffIDs: []string{img.ChainID}},
		},
	}
	data, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	return map[string]string{"info": string(data)}, nil
}
