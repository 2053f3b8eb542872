package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/faults/clock"
	imagestore "github.com/fakecontainerd/fakecontainerd/store/image"
	"github.com/fakecontainerd/fakecontainerd/store/metadata"
)

// newImageTestService is a criService with only what the ImageService
// uses: config, clock, log, the metadata database (in a temp root) and the
// image store.
func newImageTestService(t *testing.T) *criService {
	t.Helper()
	return newImageTestServiceAt(t, t.TempDir())
}

// newImageTestServiceAt opens the service on root, as a server restarted on
// the same root would; the database is closed at the end of the test, or
// earlier by closeImageTestService.
func newImageTestServiceAt(t *testing.T, root string) *criService {
	t.Helper()
	cfg, err := configs.Default()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Root = root
	clk := clock.Real()
	db, err := metadata.Open(filepath.Join(root, metadataPluginDir, "meta.db"), metadata.WithNow(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { db.Close() }) })
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	return &criService{
		config:     cfg,
		clock:      clk,
		log:        logrus.NewEntry(logger),
		rootDir:    filepath.Join(root, criPluginDir),
		db:         db,
		imageStore: imagestore.NewStore(),
		lifetime:   context.Background(),
	}
}

func pullImage(t *testing.T, c *criService, ref string) string {
	t.Helper()
	resp, err := c.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatalf("PullImage(%q): %v", ref, err)
	}
	return resp.GetImageRef()
}

func imageStatus(t *testing.T, c *criService, ref string) *runtime.Image {
	t.Helper()
	resp, err := c.ImageStatus(context.Background(), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatalf("ImageStatus(%q): %v", ref, err)
	}
	return resp.GetImage()
}

func removeImage(t *testing.T, c *criService, ref string) {
	t.Helper()
	if _, err := c.RemoveImage(context.Background(), &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
		t.Fatalf("RemoveImage(%q): %v", ref, err)
	}
}

func listImages(t *testing.T, c *criService, filter string) []*runtime.Image {
	t.Helper()
	r := &runtime.ListImagesRequest{}
	if filter != "" {
		r.Filter = &runtime.ImageFilter{Image: &runtime.ImageSpec{Image: filter}}
	}
	resp, err := c.ListImages(context.Background(), r)
	if err != nil {
		t.Fatalf("ListImages(%q): %v", filter, err)
	}
	return resp.GetImages()
}

func dbImageNames(t *testing.T, c *criService) []string {
	t.Helper()
	recs, err := c.db.ListImages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	return names
}

func TestPullImageStatusRoundTrip(t *testing.T) {
	c := newImageTestService(t)
	const tag = "docker.io/library/busybox:latest"

	id := pullImage(t, c, "busybox")
	if !isImageID(id) {
		t.Fatalf("PullImage returned %q, want an image id", id)
	}
	img := imageStatus(t, c, "busybox")
	if img == nil {
		t.Fatal("ImageStatus(busybox) = nil after pull")
	}
	if img.GetId() != id {
		t.Errorf("Id = %q, want the pulled image ref %q", img.GetId(), id)
	}
	if !slices.Equal(img.GetRepoTags(), []string{tag}) {
		t.Errorf("RepoTags = %q, want [%q]", img.GetRepoTags(), tag)
	}
	if len(img.GetRepoDigests()) != 1 || !strings.HasPrefix(img.GetRepoDigests()[0], "docker.io/library/busybox@sha256:") {
		t.Fatalf("RepoDigests = %q, want one docker.io/library/busybox@sha256:... digest", img.GetRepoDigests())
	}
	if s := img.GetSize(); s < 1_000_000 || s > 200_000_000 {
		t.Errorf("Size = %d, want 1-200 MB", s)
	}
	// containerd's toCRIImage (1.6 through 2.2) sets no Spec.
	if img.GetSpec() != nil || img.GetPinned() || img.GetUid() != nil || img.GetUsername() != "" {
		t.Errorf("Spec, Pinned, Uid, Username = %v, %v, %v, %q; want nil, false, nil, \"\"", img.GetSpec(), img.GetPinned(), img.GetUid(), img.GetUsername())
	}

	// Pulling again changes nothing: same id, digest and records.
	names := dbImageNames(t, c)
	if id2 := pullImage(t, c, "docker.io/library/busybox:latest"); id2 != id {
		t.Errorf("second pull returned %q, want %q", id2, id)
	}
	if again := imageStatus(t, c, "busybox"); !proto.Equal(again, img) {
		t.Errorf("status after second pull = %v, want %v", again, img)
	}
	if got := dbImageNames(t, c); !slices.Equal(got, names) {
		t.Errorf("records after second pull = %q, want %q", got, names)
	}

	// As containerd: one record each for the id, the tag and the digest,
	// all pointing at the manifest.
	digest := img.GetRepoDigests()[0]
	if want := []string{tag, digest, id}; !sameSet(names, want) {
		t.Errorf("records = %q, want %q", names, want)
	}
	manifest := strings.TrimPrefix(digest, "docker.io/library/busybox@")
	for _, name := range names {
		rec, err := c.db.GetImage(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Target.Digest != manifest || rec.Target.MediaType == "" || rec.Target.Size <= 0 {
			t.Errorf("record %q target = %+v, want digest %s", name, rec.Target, manifest)
		}
		if rec.Labels[imageLabelKey] != imageLabelValue {
			t.Errorf("record %q labels = %v, want %s=%s", name, rec.Labels, imageLabelKey, imageLabelValue)
		}
	}

	// Every way of naming the image gives the same status.
	for _, ref := range []string{
		tag, "busybox:latest", "docker.io/busybox", id, strings.TrimPrefix(id, "sha256:"),
		id[:19], strings.TrimPrefix(id, "sha256:")[:12], digest, "busybox@" + manifest,
	} {
		if got := imageStatus(t, c, ref); !proto.Equal(got, img) {
			t.Errorf("ImageStatus(%q) = %v, want %v", ref, got, img)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestPullImageIdentity checks which references the fake registry serves as
// one image.
func TestPullImageIdentity(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"busybox", "docker.io/library/busybox:latest", true},
		{"busybox:1.36", "busybox:1.37", false},
		{"busybox:1.36", "alpine:1.36", false},
		{"gcr.io/k8s-staging-cri-tools/test-image-1:latest", "gcr.io/k8s-staging-cri-tools/test-image-2:latest", false},
		// critest: "different tags refer to the same image".
		{"gcr.io/k8s-staging-cri-tools/test-image-tags:1", "gcr.io/k8s-staging-cri-tools/test-image-tags:3", true},
		// critest: the same image from different registries.
		{"registry.k8s.io/e2e-test-images/busybox:1.36", "docker.io/library/busybox:1.36", true},
		{"busybox@" + testDigest, "quay.io/mirror/busybox@" + testDigest, true},
		{"busybox@" + testDigest, "busybox:latest", false},
	} {
		t.Run(tc.a+" "+tc.b, func(t *testing.T) {
			c := newImageTestService(t)
			idA, idB := pullImage(t, c, tc.a), pullImage(t, c, tc.b)
			if (idA == idB) != tc.same {
				t.Errorf("ids %q and %q: same = %v, want %v", idA, idB, idA == idB, tc.same)
			}
			a, b := fakeRemoteImage(mustParse(t, tc.a), false), fakeRemoteImage(mustParse(t, tc.b), false)
			if (a.ManifestDigest == b.ManifestDigest) != tc.same {
				t.Errorf("manifest digests %s and %s: same = %v, want %v", a.ManifestDigest, b.ManifestDigest, !tc.same, tc.same)
			}
			if tc.same {
				img := imageStatus(t, c, idA)
				if len(img.GetRepoTags())+len(img.GetRepoDigests()) < 2 {
					t.Errorf("image %s has references %q %q, want both pulls'", idA, img.GetRepoTags(), img.GetRepoDigests())
				}
			}
		})
	}
}

func mustParse(t *testing.T, s string) reference {
	t.Helper()
	ref, err := parseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref.dockerRef()
}

func TestPullImageByDigest(t *testing.T) {
	c := newImageTestService(t)
	const ref = "gcr.io/k8s-staging-cri-tools/test-image-digest@sha256:9700f9a2f5bf2c45f2f605a0bd3bce7cf37420ec9d3ed50ac2758413308766bf"
	id := pullImage(t, c, ref)
	img := imageStatus(t, c, ref)
	if img.GetId() != id || len(img.GetRepoTags()) != 0 || !slices.Equal(img.GetRepoDigests(), []string{ref}) {
		t.Errorf("status = %v, want id %s, no tags and digest [%s]", img, id, ref)
	}
	if !sameSet(dbImageNames(t, c), []string{id, ref}) {
		t.Errorf("records = %q, want the id and %q", dbImageNames(t, c), ref)
	}

	// A tag and a digest: containerd pulls, and names, the digest only.
	const both = "busybox:1.36@" + testDigest
	id = pullImage(t, c, both)
	img = imageStatus(t, c, id)
	if len(img.GetRepoTags()) != 0 || !slices.Equal(img.GetRepoDigests(), []string{"docker.io/library/busybox@" + testDigest}) {
		t.Errorf("status of %q = %v, want only the digest reference", both, img)
	}

	// The RepoDigest of a tag pull is the same image when pulled by digest.
	tagID := pullImage(t, c, "nginx:1.27")
	digest := imageStatus(t, c, tagID).GetRepoDigests()[0]
	if got := pullImage(t, c, digest); got != tagID {
		t.Errorf("pull of %q = %q, want the tag's image %q", digest, got, tagID)
	}
	if got := imageStatus(t, c, tagID); !slices.Equal(got.GetRepoTags(), []string{"docker.io/library/nginx:1.27"}) || !slices.Equal(got.GetRepoDigests(), []string{digest}) {
		t.Errorf("status after digest pull = %v, want the tag and the one digest", got)
	}
}

func TestPullImageInvalid(t *testing.T) {
	c := newImageTestService(t)
	for _, tc := range []struct {
		name string
		req  *runtime.PullImageRequest
		code codes.Code
	}{
		{"nil image", &runtime.PullImageRequest{}, codes.InvalidArgument},
		{"empty image", &runtime.PullImageRequest{Image: &runtime.ImageSpec{}}, codes.InvalidArgument},
		{"upper case", &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "BusyBox"}}, codes.InvalidArgument},
		{"bad digest", &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "busybox@sha256:1234"}}, codes.InvalidArgument},
		{"image id", &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "sha256:" + strings.Repeat("ab", 32)}}, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.PullImage(context.Background(), tc.req)
			if err == nil {
				t.Fatalf("PullImage = %v, want an error", resp)
			}
			if code := status.Code(toGRPC(err)); code != tc.code {
				t.Errorf("code = %v, want %v (%v)", code, tc.code, err)
			}
		})
	}
	if names := dbImageNames(t, c); len(names) != 0 {
		t.Errorf("failed pulls left records %q", names)
	}
}

func TestPullImageHonoursContext(t *testing.T) {
	c := newImageTestService(t)
	req := &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "busybox"}}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.PullImage(ctx, req); !errors.Is(err, context.Canceled) {
		t.Errorf("PullImage with a cancelled context: %v, want context.Canceled", err)
	}
	// critest's "public image should timeout if requested": a 1ms deadline
	// expires during the registry round trip.
	ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_, err := c.PullImage(ctx, req)
	if code := status.Code(toGRPC(err)); code != codes.DeadlineExceeded {
		t.Errorf("PullImage with a 1ms deadline: code %v (%v), want DeadlineExceeded", code, err)
	}
	if img := imageStatus(t, c, "busybox"); img != nil {
		t.Errorf("image present after failed pulls: %v", img)
	}
}

func TestImageStatusNotFound(t *testing.T) {
	c := newImageTestService(t)
	pullImage(t, c, "busybox")
	for _, ref := range []string{"nothere", "busybox:1.0", "sha256:" + strings.Repeat("0", 64), "0000000000", "", "Not A Reference"} {
		resp, err := c.ImageStatus(context.Background(), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: ref}})
		if err != nil || resp.GetImage() != nil {
			t.Errorf("ImageStatus(%q) = %v, %v; want no image and no error", ref, resp.GetImage(), err)
		}
	}
	if _, err := c.ImageStatus(context.Background(), &runtime.ImageStatusRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("ImageStatus without an image: %v, want InvalidArgument", err)
	}
}

func TestImageStatusUser(t *testing.T) {
	c := newImageTestService(t)
	const registry = "gcr.io/k8s-staging-cri-tools/"
	for _, tc := range []struct {
		image    string
		uid      *int64
		username string
	}{
		{"busybox", nil, ""},
		{registry + "test-image-user-uid", ptr(int64(1002)), ""},
		{registry + "test-image-user-username", nil, "www-data"},
		{registry + "test-image-user-uid-group", ptr(int64(1003)), ""},
		{registry + "test-image-user-username-group", nil, "www-data"},
		{"registry.k8s.io/pause:3.9", ptr(int64(65535)), ""},
	} {
		pullImage(t, c, tc.image)
		img := imageStatus(t, c, tc.image)
		if got := img.GetUid(); (got == nil) != (tc.uid == nil) || (got != nil && got.GetValue() != *tc.uid) {
			t.Errorf("%s: Uid = %v, want %v", tc.image, got, tc.uid)
		}
		if img.GetUsername() != tc.username {
			t.Errorf("%s: Username = %q, want %q", tc.image, img.GetUsername(), tc.username)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestImageStatusVerbose(t *testing.T) {
	c := newImageTestService(t)
	id := pullImage(t, c, "busybox")
	resp, err := c.ImageStatus(context.Background(), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: id}, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		ChainID   string `json:"chainID"`
		ImageSpec struct {
			Config ociImageConfig `json:"config"`
			RootFS struct {
				DiffIDs []string `json:"diff_ids"`
			} `json:"rootfs"`
		} `json:"imageSpec"`
	}
	if err := json.Unmarshal([]byte(resp.GetInfo()["info"]), &info); err != nil {
		t.Fatalf("info %q: %v", resp.GetInfo()["info"], err)
	}
	if !isImageID(info.ChainID) || !slices.Equal(info.ImageSpec.Config.Cmd, []string{"sh"}) ||
		!slices.Equal(info.ImageSpec.Config.Env, []string{defaultPathEnv}) || !slices.Equal(info.ImageSpec.RootFS.DiffIDs, []string{info.ChainID}) {
		t.Errorf("verbose info = %+v", info)
	}
}

func TestListImages(t *testing.T) {
	c := newImageTestService(t)
	if got := listImages(t, c, ""); len(got) != 0 {
		t.Fatalf("ListImages on an empty store = %v", got)
	}
	refs := []string{"busybox", "alpine:3.20", "registry.k8s.io/pause:3.10"}
	ids := map[string]string{}
	for _, ref := range refs {
		ids[ref] = pullImage(t, c, ref)
	}
	all := listImages(t, c, "")
	if len(all) != len(refs) {
		t.Fatalf("ListImages = %d images, want %d", len(all), len(refs))
	}
	if !slices.IsSortedFunc(all, func(a, b *runtime.Image) int { return strings.Compare(a.GetId(), b.GetId()) }) {
		t.Error("ListImages is not ordered by id")
	}
	for _, img := range all {
		if want := imageStatus(t, c, img.GetId()); !proto.Equal(img, want) {
			t.Errorf("listed %v, status says %v", img, want)
		}
	}
	for _, ref := range refs {
		got := listImages(t, c, ref)
		if len(got) != 1 || got[0].GetId() != ids[ref] {
			t.Errorf("ListImages(filter %q) = %v, want image %s", ref, got, ids[ref])
		}
	}
	if got := listImages(t, c, "nothere"); len(got) != 0 {
		t.Errorf("ListImages(filter nothere) = %v, want none", got)
	}
}

func TestRemoveImage(t *testing.T) {
	const registry = "gcr.io/k8s-staging-cri-tools/"
	tags := []string{registry + "test-image-tags:1", registry + "test-image-tags:2", registry + "test-image-tags:3"}
	for _, by := range []string{"tag", "id", "digest", "prefix"} {
		t.Run(by, func(t *testing.T) {
			c := newImageTestService(t)
			other := pullImage(t, c, "busybox")
			var id string
			for _, tag := range tags {
				id = pullImage(t, c, tag)
			}
			img := imageStatus(t, c, tags[0])
			if !slices.Equal(img.GetRepoTags(), tags) || len(img.GetRepoDigests()) != 1 {
				t.Fatalf("image = %v, want the three tags and one digest", img)
			}
			name := map[string]string{"tag": tags[1], "id": id, "digest": img.GetRepoDigests()[0], "prefix": id[7:19]}[by]
			removeImage(t, c, name)
			for _, ref := range append([]string{id, img.GetRepoDigests()[0]}, tags...) {
				if got := imageStatus(t, c, ref); got != nil {
					t.Errorf("ImageStatus(%q) after removing by %s = %v, want nil", ref, by, got)
				}
			}
			if got := listImages(t, c, ""); len(got) != 1 || got[0].GetId() != other {
				t.Errorf("ListImages after remove = %v, want only %s", got, other)
			}
			for _, n := range dbImageNames(t, c) {
				if !strings.Contains(n, "busybox") && n != other {
					t.Errorf("record %q left after remove", n)
				}
			}
			// Removing again, by any name, is no error.
			removeImage(t, c, name)
			removeImage(t, c, "never-pulled:1")
		})
	}
	c := newImageTestService(t)
	if _, err := c.RemoveImage(context.Background(), &runtime.RemoveImageRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("RemoveImage without an image: %v, want InvalidArgument", err)
	}
}

// TestRemoveImageConcurrent is critest's "should not fail on simultaneous
// RemoveImage calls": every call succeeds and sees the image gone.
func TestRemoveImageConcurrent(t *testing.T) {
	c := newImageTestService(t)
	id := pullImage(t, c, "gcr.io/k8s-staging-cri-tools/test-image-tag:test")
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for range 5 {
		wg.Go(func() {
			_, err := c.RemoveImage(context.Background(), &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: id}})
			if err == nil {
				resp, serr := c.ImageStatus(context.Background(), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: id}})
				if serr != nil {
					err = serr
				} else if resp.GetImage() != nil {
					err = errors.New("image still present after RemoveImage returned")
				}
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if names := dbImageNames(t, c); len(names) != 0 {
		t.Errorf("records left: %q", names)
	}
}

func TestSandboxImagePinned(t *testing.T) {
	c := newImageTestService(t)
	sandbox := c.config.Plugins.CRI.SandboxImage
	img, err := c.ensureImageExists(context.Background(), sandbox)
	if err != nil {
		t.Fatal(err)
	}
	st := imageStatus(t, c, sandbox)
	if st.GetId() != img.ID || !st.GetPinned() || !img.Pinned {
		t.Errorf("sandbox image status = %v, store image = %+v; want it pinned", st, img)
	}
	if img.Size < 200_000 || img.Size > 400_000 || !slices.Equal(img.Config.Entrypoint, []string{"/pause"}) {
		t.Errorf("sandbox image size %d, entrypoint %q; want ~300 KB and /pause", img.Size, img.Config.Entrypoint)
	}
	// Found locally the second time: no pull, so a done context is fine.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	again, err := c.ensureImageExists(ctx, sandbox)
	if err != nil || again.ID != img.ID {
		t.Errorf("ensureImageExists again = %+v, %v; want %s", again, err, img.ID)
	}
	// Other images are not pinned; the pinned one may still be removed.
	if pullImage(t, c, "busybox"); imageStatus(t, c, "busybox").GetPinned() {
		t.Error("busybox is pinned")
	}
	removeImage(t, c, sandbox)
	if st := imageStatus(t, c, sandbox); st != nil {
		t.Errorf("sandbox image after remove = %v", st)
	}
}

func TestImageFsInfo(t *testing.T) {
	c := newImageTestService(t)
	for _, ref := range []string{"busybox", "nginx:1.27", "registry.k8s.io/pause:3.10"} {
		pullImage(t, c, ref)
	}
	var sum uint64
	imgs := listImages(t, c, "")
	for _, img := range imgs {
		sum += img.GetSize()
	}
	before := time.Now().UnixNano()
	resp, err := c.ImageFsInfo(context.Background(), &runtime.ImageFsInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetImageFilesystems()) != 1 {
		t.Fatalf("ImageFilesystems = %v, want one", resp.GetImageFilesystems())
	}
	fs := resp.GetImageFilesystems()[0]
	if got := fs.GetUsedBytes().GetValue(); got != sum {
		t.Errorf("UsedBytes = %d, want the sum of image sizes %d", got, sum)
	}
	if got := fs.GetInodesUsed().GetValue(); got != uint64(len(imgs))*inodesPerImage {
		t.Errorf("InodesUsed = %d, want %d", got, uint64(len(imgs))*inodesPerImage)
	}
	if want := filepath.Join(c.config.Root, snapshotPluginDir); fs.GetFsId().GetMountpoint() != want {
		t.Errorf("Mountpoint = %q, want %q", fs.GetFsId().GetMountpoint(), want)
	}
	if fs.GetTimestamp() < before {
		t.Errorf("Timestamp = %d, want now (>= %d)", fs.GetTimestamp(), before)
	}
}

func TestLoadImagesAfterRestart(t *testing.T) {
	root := t.TempDir()
	c := newImageTestServiceAt(t, root)
	for _, ref := range []string{"busybox", "busybox:1.36", "gcr.io/k8s-staging-cri-tools/test-image-tags:1",
		"gcr.io/k8s-staging-cri-tools/test-image-tags:2", "alpine@" + testDigest, c.config.Plugins.CRI.SandboxImage} {
		pullImage(t, c, ref)
	}
	removeImage(t, c, "busybox:1.36")
	want := listImages(t, c, "")
	if err := c.db.Close(); err != nil {
		t.Fatal(err)
	}

	c2 := newImageTestServiceAt(t, root)
	if err := c2.loadImages(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := listImages(t, c2, "")
	if len(got) != len(want) {
		t.Fatalf("after restart %d images, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("after restart image %d = %v, want %v", i, got[i], want[i])
		}
	}
	// The restored store serves lookups, and a re-pull is a no-op.
	if img := imageStatus(t, c2, "busybox"); img == nil || pullImage(t, c2, "busybox") != img.GetId() {
		t.Errorf("busybox after restart = %v", img)
	}
}

// TestLoadImagesSkipsBadRecords: a record the fake cannot read is logged
// and skipped, as containerd skips an image it cannot load.
func TestLoadImagesSkipsBadRecords(t *testing.T) {
	c := newImageTestService(t)
	pullImage(t, c, "busybox")
	bad := metadata.Image{Name: "docker.io/library/broken:1", Target: metadata.Descriptor{Digest: testDigest},
		Labels: map[string]string{imageLabelKey: imageLabelValue, imageConfigLabelKey: "{"}}
	if err := c.db.CreateImage(context.Background(), bad); err != nil {
		t.Fatal(err)
	}
	c.imageStore = imagestore.NewStore()
	if err := c.loadImages(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := listImages(t, c, ""); len(got) != 1 || !slices.Contains(got[0].GetRepoTags(), "docker.io/library/busybox:latest") {
		t.Errorf("loaded %v, want busybox only", got)
	}
}
