// Package container is the CRI plugin's in-memory container store, mirroring
// containerd's pkg/cri/store/container: a Store whose lock guards only its
// map, and per-container status storage with its own lock.
package container

import (
	"errors"
	"fmt"
	"sync"

	"github.com/fakecontainerd/fakecontainerd/store"
	"github.com/fakecontainerd/fakecontainerd/store/truncindex"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Container is what the CRI plugin knows about one container. It is passed
// by value; copies share Status, StopCh and IsStopSignaledWithTimeout.
type Container struct {
	Metadata
	// Status is the mutable state, behind the per-container lock.
	Status StatusStorage
	// StopCh is closed once the container has exited.
	*store.StopCh
	// IsStopSignaledWithTimeout is CAS'd 0->1 so that the stop signal of a
	// StopContainer with a timeout is sent only once.
	IsStopSignaledWithTimeout *uint32
}

// Opts sets up a new Container.
type Opts func(*Container) error

// WithStatus checkpoints status under root and, if the container has already
// exited, closes its StopCh. opts go to StoreStatus (e.g. WithLockObserver).
func WithStatus(status Status, root string, opts ...StatusOpt) Opts {
	return func(c *Container) error {
		s, err := StoreStatus(root, c.ID, status, opts...)
		if err != nil {
			return fmt.Errorf("container %q: %w", c.ID, err)
		}
		c.Status = s
		if status.State() == runtime.ContainerState_CONTAINER_EXITED {
			c.Stop()
		}
		return nil
	}
}

// WithRecoveredStatus is WithStatus at start-up recovery: loaded is the
// checkpoint as read, status what recovery made of it; the checkpoint is
// rewritten only if it changed (see RecoverStatus).
func WithRecoveredStatus(loaded, status Status, root string, opts ...StatusOpt) Opts {
	return func(c *Container) error {
		s, err := RecoverStatus(root, c.ID, loaded, status, opts...)
		if err != nil {
			return fmt.Errorf("container %q: %w", c.ID, err)
		}
		c.Status = s
		if status.State() == runtime.ContainerState_CONTAINER_EXITED {
			c.Stop()
		}
		return nil
	}
}

// NewContainer builds a Container from its metadata and options.
func NewContainer(md Metadata, opts ...Opts) (Container, error) {
	c := Container{
		Metadata:                  md,
		StopCh:                    store.NewStopCh(),
		IsStopSignaledWithTimeout: new(uint32),
	}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return Container{}, err
		}
	}
	return c, nil
}

// Delete removes the container's status checkpoint.
func (c *Container) Delete() error {
	return c.Status.Delete()
}

// Store holds all containers. Its lock guards the maps and the index only:
// it is never held while a status lock is taken, so a container stuck in a
// long UpdateSync cannot block lookups of other containers.
type Store struct {
	lock       sync.RWMutex
	containers map[string]Container
	idIndex    *truncindex.TruncIndex
	// bySandbox lets a sandbox's containers be listed in O(k).
	bySandbox map[string]map[string]struct{}
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{
		containers: make(map[string]Container),
		idIndex:    truncindex.New(nil),
		bySandbox:  make(map[string]map[string]struct{}),
	}
}

// Add inserts c; an existing id is an error wrapping store.ErrAlreadyExists.
func (s *Store) Add(c Container) error {
	s.lock.Lock()
	defer s.lock.Unlock()
	if _, ok := s.containers[c.ID]; ok {
		return fmt.Errorf("container %q: %w", c.ID, store.ErrAlreadyExists)
	}
	if err := s.idIndex.Add(c.ID); err != nil {
		return fmt.Errorf("index container %q: %w", c.ID, err)
	}
	s.containers[c.ID] = c
	ids, ok := s.bySandbox[c.SandboxID]
	if !ok {
		ids = make(map[string]struct{})
		s.bySandbox[c.SandboxID] = ids
	}
	ids[c.ID] = struct{}{}
	return nil
}

// Get returns the container whose id is id or starts with id. A prefix
// matching several containers gives an error wrapping
// truncindex.ErrAmbiguousPrefix; anything else that matches nothing wraps
// store.ErrNotFound.
func (s *Store) Get(id string) (Container, error) {
	s.lock.RLock()
	defer s.lock.RUnlock()
	return s.resolve(id)
}

// resolve looks id up; the caller holds s.lock.
func (s *Store) resolve(id string) (Container, error) {
	full, err := s.idIndex.Get(id)
	if err != nil {
		if errors.As(err, new(truncindex.ErrAmbiguousPrefix)) {
			return Container{}, fmt.Errorf("container %q: %w", id, err)
		}
		return Container{}, fmt.Errorf("container %q: %w", id, store.ErrNotFound)
	}
	c, ok := s.containers[full]
	if !ok {
		return Container{}, fmt.Errorf("container %q: %w", id, store.ErrNotFound)
	}
	return c, nil
}

// List returns every container, in no particular order. Callers take status
// locks on the result after List has released the store lock.
func (s *Store) List() []Container {
	s.lock.RLock()
	defer s.lock.RUnlock()
	out := make([]Container, 0, len(s.containers))
	for _, c := range s.containers {
		out = append(out, c)
	}
	return out
}

// ListBySandbox returns the containers of one sandbox, in no particular order.
func (s *Store) ListBySandbox(sandboxID string) []Container {
	s.lock.RLock()
	defer s.lock.RUnlock()
	ids := s.bySandbox[sandboxID]
	out := make([]Container, 0, len(ids))
	for id := range ids {
		out = append(out, s.containers[id])
	}
	return out
}

// Delete removes the container whose id is id or starts with id; like
// containerd's, it does nothing if that does not resolve to one container.
func (s *Store) Delete(id string) {
	s.lock.Lock()
	defer s.lock.Unlock()
	c, err := s.resolve(id)
	if err != nil {
		return
	}
	// The index and the map are changed together under s.lock, so the id
	// is known to be in the index.
	_ = s.idIndex.Delete(c.ID)
	delete(s.containers, c.ID)
	if ids := s.bySandbox[c.SandboxID]; ids != nil {
		delete(ids, c.ID)
		if len(ids) == 0 {
			delete(s.bySandbox, c.SandboxID)
		}
	}
}

// Len is the number of containers.
func (s *Store) Len() int {
	s.lock.RLock()
	defer s.lock.RUnlock()
	return len(s.containers)
}
