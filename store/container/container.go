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
	// encoded caches what the CRI layer derives once from the immutable
	// metadata (see Encoded); copies share it.
	encoded *encodedOnce
}

type encodedOnce struct {
	once sync.Once
	b    []byte
}

// Encoded returns build's result, calling it at most once per container
// (every time for a Container not made by NewContainer). The CRI layer
// keeps here its wire encoding of the fields ListContainers reports that
// never change after CreateContainer; build must depend on nothing else.
func (c Container) Encoded(build func() []byte) []byte {
	if c.encoded == nil {
		return build()
	}
	c.encoded.once.Do(func() { c.encoded.b = build() })
	return c.encoded.b
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
		encoded:                   new(encodedOnce),
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

// PodUIDLabel is the container label kubelet filters a pod's containers
// by (ListContainers with a label selector on it, once per changed pod).
const PodUIDLabel = "io.kubernetes.pod.uid"

// Store holds all containers. Its lock guards the maps and the index only:
// it is never held while a status lock is taken, so a container stuck in a
// long UpdateSync cannot block lookups of other containers.
type Store struct {
	lock       sync.RWMutex
	containers map[string]Container
	idIndex    *truncindex.TruncIndex
	// bySandbox lets a sandbox's containers be listed in O(k).
	bySandbox map[string]map[string]struct{}
	// byPodUID does the same for the value of their PodUIDLabel.
	byPodUID map[string]map[string]struct{}
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{
		containers: make(map[string]Container),
		idIndex:    truncindex.New(nil),
		bySandbox:  make(map[string]map[string]struct{}),
		byPodUID:   make(map[string]map[string]struct{}),
	}
}

// addTo and removeFrom keep a secondary index; the caller holds s.lock.
func addTo(index map[string]map[string]struct{}, key, id string) {
	ids, ok := index[key]
	if !ok {
		ids = make(map[string]struct{})
		index[key] = ids
	}
	ids[id] = struct{}{}
}

func removeFrom(index map[string]map[string]struct{}, key, id string) {
	if ids := index[key]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(index, key)
		}
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
	addTo(s.bySandbox, c.SandboxID, c.ID)
	if uid, ok := c.Config.GetLabels()[PodUIDLabel]; ok {
		addTo(s.byPodUID, uid, c.ID)
	}
	return nil
}

// Get returns the container whose id is id or starts with id. A prefix
// matching several containers gives an error wrapping
// truncindex.ErrAmbiguousPrefix; anything else that matches nothing is
// store.ErrNotFound itself: as containerd's store, the error does not name
// the id, which every caller's message already does ("an error occurred
// when try to find container "<id>": not found").
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
			return Container{}, err
		}
		return Container{}, store.ErrNotFound
	}
	c, ok := s.containers[full]
	if !ok {
		return Container{}, store.ErrNotFound
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
	return s.listLocked(s.bySandbox[sandboxID])
}

// ListByPodUID returns the containers whose PodUIDLabel is uid, in no
// particular order.
func (s *Store) ListByPodUID(uid string) []Container {
	s.lock.RLock()
	defer s.lock.RUnlock()
	return s.listLocked(s.byPodUID[uid])
}

func (s *Store) listLocked(ids map[string]struct{}) []Container {
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
	removeFrom(s.bySandbox, c.SandboxID, c.ID)
	if uid, ok := c.Config.GetLabels()[PodUIDLabel]; ok {
		removeFrom(s.byPodUID, uid, c.ID)
	}
}

// Len is the number of containers.
func (s *Store) Len() int {
	s.lock.RLock()
	defer s.lock.RUnlock()
	return len(s.containers)
}
