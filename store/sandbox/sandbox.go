// Package sandbox is the CRI plugin's in-memory sandbox store, mirroring
// containerd's pkg/cri/store/sandbox.
package sandbox

import (
	"errors"
	"fmt"
	"sync"

	"github.com/fakecontainerd/fakecontainerd/store"
	"github.com/fakecontainerd/fakecontainerd/store/truncindex"
)

// Sandbox is what the CRI plugin knows about one pod sandbox. It is passed
// by value; copies share Status and StopCh.
type Sandbox struct {
	Metadata
	// Status is the mutable state, behind the per-sandbox lock.
	Status StatusStorage
	// StopCh is closed once the sandbox container has stopped.
	*store.StopCh
}

// NewSandbox builds a Sandbox; one that is already NotReady starts stopped.
func NewSandbox(md Metadata, status Status) Sandbox {
	s := Sandbox{
		Metadata: md,
		Status:   StoreStatus(status),
		StopCh:   store.NewStopCh(),
	}
	if status.State == StateNotReady {
		s.Stop()
	}
	return s
}

// Store holds all sandboxes. Its lock guards the map and the index only and
// is never held while a status lock is taken.
type Store struct {
	lock      sync.RWMutex
	sandboxes map[string]Sandbox
	idIndex   *truncindex.TruncIndex
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{
		sandboxes: make(map[string]Sandbox),
		idIndex:   truncindex.New(nil),
	}
}

// Add inserts sb; an existing id is an error wrapping store.ErrAlreadyExists.
func (s *Store) Add(sb Sandbox) error {
	s.lock.Lock()
	defer s.lock.Unlock()
	if _, ok := s.sandboxes[sb.ID]; ok {
		return fmt.Errorf("sandbox %q: %w", sb.ID, store.ErrAlreadyExists)
	}
	if err := s.idIndex.Add(sb.ID); err != nil {
		return fmt.Errorf("index sandbox %q: %w", sb.ID, err)
	}
	s.sandboxes[sb.ID] = sb
	return nil
}

// Get returns the sandbox whose id is id or starts with id. A prefix
// matching several sandboxes gives an error wrapping
// truncindex.ErrAmbiguousPrefix; anything else that matches nothing is
// store.ErrNotFound itself: as containerd's store, the error does not name
// the id, which every caller's message already does ("an error occurred
// when try to find container "<id>": not found").
func (s *Store) Get(id string) (Sandbox, error) {
	s.lock.RLock()
	defer s.lock.RUnlock()
	return s.resolve(id)
}

// resolve looks id up; the caller holds s.lock.
func (s *Store) resolve(id string) (Sandbox, error) {
	full, err := s.idIndex.Get(id)
	if err != nil {
		if errors.As(err, new(truncindex.ErrAmbiguousPrefix)) {
			return Sandbox{}, err
		}
		return Sandbox{}, store.ErrNotFound
	}
	sb, ok := s.sandboxes[full]
	if !ok {
		return Sandbox{}, store.ErrNotFound
	}
	return sb, nil
}

// List returns every sandbox, in no particular order.
func (s *Store) List() []Sandbox {
	s.lock.RLock()
	defer s.lock.RUnlock()
	out := make([]Sandbox, 0, len(s.sandboxes))
	for _, sb := range s.sandboxes {
		out = append(out, sb)
	}
	return out
}

// Delete removes the sandbox whose id is id or starts with id; like
// containerd's, it does nothing if that does not resolve to one sandbox.
func (s *Store) Delete(id string) {
	s.lock.Lock()
	defer s.lock.Unlock()
	sb, err := s.resolve(id)
	if err != nil {
		return
	}
	// The index and the map change together under s.lock.
	_ = s.idIndex.Delete(sb.ID)
	delete(s.sandboxes, sb.ID)
}
