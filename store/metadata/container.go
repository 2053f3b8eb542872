package metadata

import (
	"context"
	"encoding/json"
	"time"
)

// Container is containerd's container record: what `ctr -n k8s.io c info`
// shows. The CRI plugin keeps its container.Metadata in Extensions.
type Container struct {
	ID          string
	Labels      map[string]string
	Image       string
	Runtime     string
	SandboxID   string
	Spec        json.RawMessage // OCI runtime spec, JSON
	SnapshotKey string
	Extensions  map[string]json.RawMessage
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

func (c *Container) key() string          { return c.ID }
func (c *Container) createdAt() time.Time { return c.CreatedAt }
func (c *Container) stamp(created, updated time.Time) {
	c.CreatedAt, c.UpdatedAt = created, updated
}

func containers() kind { return kind{bucket: containersBucket, noun: "container", title: "Container"} }

// CreateContainer stores a new container; an existing id wraps
// store.ErrAlreadyExists. CreatedAt and UpdatedAt are set to now.
func (db *DB) CreateContainer(ctx context.Context, c Container) error {
	return create(ctx, db, containers(), &c)
}

// GetContainer reads one container; a missing id wraps store.ErrNotFound.
func (db *DB) GetContainer(ctx context.Context, id string) (Container, error) {
	return get[Container](ctx, db, containers(), id)
}

// UpdateContainer applies fn to the stored container in ONE bbolt write
// transaction: as with containerd's container.Update, the database writer
// lock is held across fn and the commit's fsync. An error from fn aborts.
func (db *DB) UpdateContainer(ctx context.Context, id string, fn func(*Container) error) error {
	return updateRecord(ctx, db, containers(), id, fn)
}

// DeleteContainer removes one container; a missing id wraps store.ErrNotFound.
func (db *DB) DeleteContainer(ctx context.Context, id string) error {
	return deleteRecord(ctx, db, containers(), id)
}

// ListContainers returns every container, ordered by id.
func (db *DB) ListContainers(ctx context.Context) ([]Container, error) {
	return list[Container](ctx, db, containers())
}
