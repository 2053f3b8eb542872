package server

import (
	"context"
	"path/filepath"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// inodesPerImage is the inode count charged to each unpacked image.
const inodesPerImage = 64

// ImageFsInfo reports the snapshotter's filesystem, as containerd 1.7's
// imagefs_info.go: one image filesystem at <root>/<overlayfs plugin dir>,
// whose usage is the images' unpacked size. Like containerd 1.7 it reports
// no separate container filesystem; kubelet then takes the image
// filesystem for both.
func (c *criService) ImageFsInfo(ctx context.Context, r *runtime.ImageFsInfoRequest) (*runtime.ImageFsInfoResponse, error) {
	imgs := c.imageStore.List()
	var used uint64
	for _, img := range imgs {
		used += uint64(img.Size)
	}
	return &runtime.ImageFsInfoResponse{
		ImageFilesystems: []*runtime.FilesystemUsage{{
			Timestamp:  c.clock.Now().UnixNano(),
			FsId:       &runtime.FilesystemIdentifier{Mountpoint: filepath.Join(c.config.Root, snapshotPluginDir)},
			UsedBytes:  &runtime.UInt64Value{Value: used},
			InodesUsed: &runtime.UInt64Value{Value: uint64(len(imgs)) * inodesPerImage},
		}},
	}, nil
}
