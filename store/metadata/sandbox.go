package metadata

import (
	"context"
	"encoding/json"
	"time"
)

// Sandbox is containerd's sandbox record. The CRI plugin keeps its
// sandbox.Metadata in Extensions.
type Sandbox struct {
	ID         string
	Labels     map[string]string
	Runtime    string
	Extensions map[string]json.RawMessage
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

func (s *Sandbox) key() string          { return s.ID }
func (s *Sandbox) createdAt() time.Time { return s.CreatedAt }
func (s *Sandbox) stamp(created, updated time.Time) {
	s.CreatedAt, s.UpdatedAt = created, updated
}

func sandboxes() kind { return kind{bucket: sandboxesBucket, noun: "sandbox", title: "Sandbox"} }

// CreateSandbox stores a new sandbox; an existing id wraps
// store.ErrAlreadyExists.
func (db *DB) CreateSandbox(ctx context.Context, s Sandbox) error {
	return create(ctx, db, sandboxes(), &s)
}

// GetSandbox reads one sandbox; a missing id wraps store.ErrNotFound.
func (db *DB) GetSandbox(ctx context.Context, id string) (Sandbox, error) {
	return get[Sandbox](ctx, db, sandboxes(), id)
}

// UpdateSandbox applies fn to the stored sandbox in one write transaction.
func (db *DB) UpdateSandbox(ctx context.Context, id string, fn func(*Sandbox) error) error {
	return updateRecord(ctx, db, sandboxes(), id, fn)
}

// DeleteSandbox removes one sandbox; a missing id wraps store.ErrNotFound.
func (db *DB) DeleteSandbox(ctx context.Context, id string) error {
	return deleteRecord(ctx, db, sandboxes(), id)
}

// ListSandboxes returns every sandbox, ordered by id.
func (db *DB) ListSandboxes(ctx context.Context) ([]Sandbox, error) {
	return list[Sandbox](ctx, db, sandboxes())
}
