package metadata

import (
	"context"
	"time"
)

// Image is containerd's image record: a name (a repo tag, repo digest or
// id) pointing at a manifest.
type Image struct {
	Name      string
	Target    Descriptor
	Labels    map[string]string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Descriptor points at content (an OCI descriptor, without annotations).
type Descriptor struct {
	MediaType string
	Digest    string
	Size      int64
}

func (i *Image) key() string          { return i.Name }
func (i *Image) createdAt() time.Time { return i.CreatedAt }
func (i *Image) stamp(created, updated time.Time) {
	i.CreatedAt, i.UpdatedAt = created, updated
}

func images() kind { return kind{bucket: imagesBucket, noun: "image", title: "Image"} }

// CreateImage stores a new image; an existing name wraps
// store.ErrAlreadyExists.
func (db *DB) CreateImage(ctx context.Context, img Image) error {
	return create(ctx, db, images(), &img)
}

// PutImage creates the image or replaces the one with the same name,
// keeping its CreatedAt, as a re-pull does.
func (db *DB) PutImage(ctx context.Context, img Image) error {
	return putRecord(ctx, db, images(), &img)
}

// GetImage reads one image by name; a missing name wraps store.ErrNotFound.
func (db *DB) GetImage(ctx context.Context, name string) (Image, error) {
	return get[Image](ctx, db, images(), name)
}

// UpdateImage applies fn to the stored image in one write transaction.
func (db *DB) UpdateImage(ctx context.Context, name string, fn func(*Image) error) error {
	return updateRecord(ctx, db, images(), name, fn)
}

// DeleteImage removes one image; a missing name wraps store.ErrNotFound.
func (db *DB) DeleteImage(ctx context.Context, name string) error {
	return deleteRecord(ctx, db, images(), name)
}

// ListImages returns every image, ordered by name.
func (db *DB) ListImages(ctx context.Context) ([]Image, error) {
	return list[Image](ctx, db, images())
}
