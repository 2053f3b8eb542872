// Package store holds what the per-kind stores (container, sandbox, image,
// metadata) share: the sentinel errors callers match with errors.Is, and
// StopCh.
//
// The layout mirrors containerd's pkg/cri/store so that the same locks sit in
// the same places: each kind has its own folder with a store type (one
// RWMutex, held only for map access), its versioned metadata, and its status
// with the status lock.
package store

import "errors"

var (
	// ErrNotFound is wrapped by every store when an object does not exist,
	// e.g. fmt.Errorf("container %q: %w", id, store.ErrNotFound).
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists is wrapped by every store when an object with the
	// same id or name is already present.
	ErrAlreadyExists = errors.New("already exists")
)
