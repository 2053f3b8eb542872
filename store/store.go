// Package store holds what the per-kind stores (container, sandbox, image,
// metadata) share: the sentinel errors callers match with errors.Is,
// StopCh, and the one JSON encoding of cri-api messages they persist.
//
// The layout mirrors containerd's pkg/cri/store so that the same locks sit in
// the same places: each kind has its own folder with a store type (one
// RWMutex, held only for map access), its versioned metadata, and its status
// with the status lock.
package store

import (
	"errors"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

var (
	// ErrNotFound is wrapped by every store when an object does not exist,
	// e.g. fmt.Errorf("container %q: %w", id, store.ErrNotFound).
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists is wrapped by every store when an object with the
	// same id or name is already present.
	ErrAlreadyExists = errors.New("already exists")
)

// MarshalProto writes proto field names (memory_limit_in_bytes), the names
// containerd's checkpoints carry, so files read alike in both.
func MarshalProto(m proto.Message) ([]byte, error) {
	return protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
}

// UnmarshalProto drops unknown fields so a record written against a newer
// cri-api still loads.
func UnmarshalProto(data []byte, m proto.Message) error {
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(data, m)
}
