package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/fakecontainerd/fakecontainerd/store"
)

// Lifecycle, as in containerd: CREATED (CreatedAt set) -> RUNNING
// (StartedAt set) -> EXITED (FinishedAt set by the exit handler) -> deleted.
// A container whose state cannot be recovered at start-up is UNKNOWN until
// its exit is handled. A process that has died but whose exit is not handled
// yet still has FinishedAt == 0, so it reports RUNNING: the window the
// incidents live in.

// statusVersion is bumped when the checkpoint file's shape changes.
const statusVersion = "v1"

// statusFile is the checkpoint's base name under the container root.
const statusFile = "status"

// Status is the mutable part of a container. Starting, Removing and Unknown
// are in-memory flags and are not checkpointed.
type Status struct {
	Pid        uint32
	CreatedAt  int64 // unix nanos
	StartedAt  int64 // unix nanos
	FinishedAt int64 // unix nanos
	ExitCode   int32
	Reason     string
	Message    string
	Starting   bool `json:"-"`
	Removing   bool `json:"-"`
	Unknown    bool `json:"-"`
	// Stopping is set in memory on TaskExit before the shim delete and
	// cleared by the final UpdateSync, when the stopping_state fix is on
	// (the field fix of incident 1; upstream precedent PR #9771's Exiting).
	Stopping bool `json:"-"`
	// Resources are the limits last applied by UpdateContainerResources.
	Resources *runtime.ContainerResources
}

// State derives the CRI state. The order matters: FinishedAt is checked
// before StartedAt, and nothing but FinishedAt makes a container EXITED.
func (s Status) State() runtime.ContainerState {
	switch {
	case s.Unknown:
		return runtime.ContainerState_CONTAINER_UNKNOWN
	case s.FinishedAt != 0:
		return runtime.ContainerState_CONTAINER_EXITED
	case s.StartedAt != 0:
		return runtime.ContainerState_CONTAINER_RUNNING
	case s.CreatedAt != 0:
		return runtime.ContainerState_CONTAINER_CREATED
	default:
		return runtime.ContainerState_CONTAINER_UNKNOWN
	}
}

// statusJSON is the persisted part of Status, with Resources as protojson.
type statusJSON struct {
	Pid        uint32
	CreatedAt  int64
	StartedAt  int64
	FinishedAt int64
	ExitCode   int32
	Reason     string
	Message    string
	Resources  json.RawMessage `json:",omitempty"`
}

// versionedStatus is the checkpoint file: {"Version":"v1","Pid":...}.
type versionedStatus struct {
	Version string
	statusJSON
}

// MarshalJSON encodes the persisted fields, Resources through protojson.
func (s Status) MarshalJSON() ([]byte, error) {
	j, err := s.toJSON()
	if err != nil {
		return nil, err
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes what MarshalJSON wrote. The in-memory flags are left
// false, as after a restart.
func (s *Status) UnmarshalJSON(data []byte) error {
	var j statusJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	return s.fromJSON(j)
}

func (s Status) toJSON() (statusJSON, error) {
	j := statusJSON{
		Pid:        s.Pid,
		CreatedAt:  s.CreatedAt,
		StartedAt:  s.StartedAt,
		FinishedAt: s.FinishedAt,
		ExitCode:   s.ExitCode,
		Reason:     s.Reason,
		Message:    s.Message,
	}
	if s.Resources != nil {
		r, err := store.MarshalProto(s.Resources)
		if err != nil {
			return statusJSON{}, fmt.Errorf("encode resources: %w", err)
		}
		j.Resources = r
	}
	return j, nil
}

func (s *Status) fromJSON(j statusJSON) error {
	*s = Status{
		Pid:        j.Pid,
		CreatedAt:  j.CreatedAt,
		StartedAt:  j.StartedAt,
		FinishedAt: j.FinishedAt,
		ExitCode:   j.ExitCode,
		Reason:     j.Reason,
		Message:    j.Message,
	}
	if len(j.Resources) > 0 && string(j.Resources) != "null" {
		r := &runtime.ContainerResources{}
		if err := store.UnmarshalProto(j.Resources, r); err != nil {
			return fmt.Errorf("decode resources: %w", err)
		}
		s.Resources = r
	}
	return nil
}

func encodeStatus(s Status) ([]byte, error) {
	j, err := s.toJSON()
	if err != nil {
		return nil, err
	}
	return json.Marshal(versionedStatus{Version: statusVersion, statusJSON: j})
}

func decodeStatus(data []byte) (Status, error) {
	var v versionedStatus
	if err := json.Unmarshal(data, &v); err != nil {
		return Status{}, err
	}
	if v.Version != statusVersion {
		return Status{}, fmt.Errorf("unsupported version %q", v.Version)
	}
	var s Status
	if err := s.fromJSON(v.statusJSON); err != nil {
		return Status{}, err
	}
	return s, nil
}

// deepCopyOf copies s so that the caller can keep or change the result
// without touching the stored status (Resources is a pointer).
func deepCopyOf(s Status) Status {
	c := s
	if s.Resources != nil {
		c.Resources = proto.Clone(s.Resources).(*runtime.ContainerResources)
	}
	return c
}

// UpdateFunc computes a new status from the current one. Returning an error
// leaves the status unchanged.
type UpdateFunc func(Status) (Status, error)

// StatusStorage guards one container's status with one RWMutex.
type StatusStorage interface {
	// Get returns a deep copy of the status, under the read lock.
	Get() Status
	// Brief is Get for ListContainers: the same read lock, taken the same
	// way, but only the state and the creation time are read, so nothing
	// needs copying.
	Brief() (state runtime.ContainerState, createdAt int64)
	// UpdateSync applies fn and checkpoints the result to disk (fsync
	// included), holding the write lock across both.
	UpdateSync(fn UpdateFunc) error
	// Update applies fn in memory only, under the write lock.
	Update(fn UpdateFunc) error
	// Delete removes the checkpoint. It takes no lock.
	Delete() error
}

// LockObserver watches the status lock, for fault injection and lock-wait
// instrumentation.
//
// StatusStorage methods take no context (as containerd's do), so the
// observer is not told which CRI operation is asking; it attributes waits
// by its own means, e.g. by goroutine.
type LockObserver interface {
	// Requesting is called on every acquisition, before the lock is
	// requested: a delay injected here holds the caller before it queues.
	Requesting(id string, write bool)
	// Track is called once the caller knows whether it must wait:
	// contended is false when the lock was taken at once. It returns a
	// Token that follows the rest of the acquisition, or nil to follow
	// nothing (an uncontended read holds the lock only for a copy, so
	// instrumentation can leave it alone and cost nothing).
	Track(id string, write, contended bool) Token
}

// Token follows one lock acquisition.
type Token interface {
	// Acquired is called once the lock is held.
	Acquired()
	// Released is called after the lock is released.
	Released()
}

// StatusOpt configures StoreStatus.
type StatusOpt func(*statusOptions)

type statusOptions struct {
	observer LockObserver
	syncHook func(id string) error
}

// WithSyncHook calls hook inside UpdateSync, under the write lock, just
// before the checkpoint's fsync; an error fails the update (fault
// injection of a slow or failing disk).
func WithSyncHook(hook func(id string) error) StatusOpt {
	return func(so *statusOptions) { so.syncHook = hook }
}

// WithLockObserver reports every status lock acquisition to o.
func WithLockObserver(o LockObserver) StatusOpt {
	return func(so *statusOptions) { so.observer = o }
}

// StoreStatus checkpoints status to <root>/status and returns its storage.
// root must exist.
func StoreStatus(root, id string, status Status, opts ...StatusOpt) (StatusStorage, error) {
	var o statusOptions
	for _, opt := range opts {
		opt(&o)
	}
	data, err := encodeStatus(status)
	if err != nil {
		return nil, fmt.Errorf("failed to encode status: %w", err)
	}
	path := filepath.Join(root, statusFile)
	if err := atomicWriteFile(path, data, 0o600, nil); err != nil {
		return nil, fmt.Errorf("failed to checkpoint status to %q: %w", path, err)
	}
	return &statusStorage{path: path, id: id, observer: o.observer, syncHook: o.syncHook, status: deepCopyOf(status)}, nil
}

// RecoverStatus is StoreStatus for start-up recovery: loaded is the status
// LoadStatus read from root and status what recovery made of it. The
// checkpoint is written again only if its persisted fields changed, so a
// restart does not pay an fsync per unchanged container (containerd's
// loadContainer rewrites every checkpoint; at 10,000 containers that alone
// took seconds).
func RecoverStatus(root, id string, loaded, status Status, opts ...StatusOpt) (StatusStorage, error) {
	if !samePersisted(loaded, status) {
		return StoreStatus(root, id, status, opts...)
	}
	var o statusOptions
	for _, opt := range opts {
		opt(&o)
	}
	path := filepath.Join(root, statusFile)
	return &statusStorage{path: path, id: id, observer: o.observer, syncHook: o.syncHook, status: deepCopyOf(status)}, nil
}

// samePersisted reports whether a and b checkpoint the same (the fields
// statusJSON holds). It is what encoding both and comparing would say,
// without the cost, which at 10,000 containers was a tenth of a restart.
func samePersisted(a, b Status) bool {
	return a.Pid == b.Pid && a.CreatedAt == b.CreatedAt && a.StartedAt == b.StartedAt &&
		a.FinishedAt == b.FinishedAt && a.ExitCode == b.ExitCode && a.Reason == b.Reason &&
		a.Message == b.Message && proto.Equal(a.Resources, b.Resources)
}

// LoadStatus reads the checkpoint under root, as at start-up recovery.
func LoadStatus(root, id string) (Status, error) {
	path := filepath.Join(root, statusFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return Status{}, fmt.Errorf("failed to read status from %q: %w", path, err)
	}
	s, err := decodeStatus(data)
	if err != nil {
		return Status{}, fmt.Errorf("failed to decode status %q: %w", path, err)
	}
	return s, nil
}

// statusStorage embeds its lock, as containerd's does: the lock guards
// status and nothing else, and callers only ever see the interface.
type statusStorage struct {
	sync.RWMutex
	path     string
	id       string
	observer LockObserver // nil when not instrumented
	syncHook func(id string) error
	status   Status
}

// acquire takes the lock, telling the observer if there is one. It tries
// the lock first so the observer learns whether the caller waits; that is
// the same lock with the same writer preference, only observed.
func (s *statusStorage) acquire(write bool) Token {
	if s.observer == nil {
		if write {
			s.Lock()
		} else {
			s.RLock()
		}
		return nil
	}
	s.observer.Requesting(s.id, write)
	var taken bool
	if write {
		taken = s.TryLock()
	} else {
		taken = s.TryRLock()
	}
	t := s.observer.Track(s.id, write, !taken)
	if !taken {
		if write {
			s.Lock()
		} else {
			s.RLock()
		}
	}
	if t != nil {
		t.Acquired()
	}
	return t
}

func (s *statusStorage) release(write bool, t Token) {
	if write {
		s.Unlock()
	} else {
		s.RUnlock()
	}
	if t != nil {
		t.Released()
	}
}

func (s *statusStorage) Get() Status {
	t := s.acquire(false)
	defer s.release(false, t)
	return deepCopyOf(s.status)
}

func (s *statusStorage) Brief() (runtime.ContainerState, int64) {
	t := s.acquire(false)
	defer s.release(false, t)
	return s.status.State(), s.status.CreatedAt
}

// UpdateSync holds the write lock across fn and the fsync'd write, exactly
// as containerd does. Go's RWMutex blocks new readers while a writer holds
// or waits for the lock, so a slow fn or a slow disk stalls every Get
// (ListContainers, ContainerStatus) on this container.
func (s *statusStorage) UpdateSync(fn UpdateFunc) error {
	t := s.acquire(true)
	defer s.release(true, t)
	// fn gets a copy so that an error leaves nothing half-changed.
	newStatus, err := fn(deepCopyOf(s.status))
	if err != nil {
		return err
	}
	data, err := encodeStatus(newStatus)
	if err != nil {
		return fmt.Errorf("failed to encode status: %w", err)
	}
	var beforeSync func() error
	if s.syncHook != nil {
		beforeSync = func() error { return s.syncHook(s.id) }
	}
	if err := atomicWriteFile(s.path, data, 0o600, beforeSync); err != nil {
		return fmt.Errorf("failed to checkpoint status to %q: %w", s.path, err)
	}
	s.status = newStatus
	return nil
}

func (s *statusStorage) Update(fn UpdateFunc) error {
	t := s.acquire(true)
	defer s.release(true, t)
	newStatus, err := fn(deepCopyOf(s.status))
	if err != nil {
		return err
	}
	s.status = newStatus
	return nil
}

// Delete removes the checkpoint without the lock, as containerd does: the
// container is already being removed, so no one should be updating it.
// The file is first renamed to a sibling of its directory
// (<root>.del-status) so that a crash mid-delete leaves no half-deleted
// checkpoint to load. The container root is then removed if nothing else
// is left in it.
func (s *statusStorage) Delete() error {
	dir := filepath.Dir(s.path)
	temp := dir + ".del-" + filepath.Base(s.path)
	if err := os.Rename(s.path, temp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete status of container %q: %w", s.id, err)
	}
	if err := os.RemoveAll(temp); err != nil {
		return fmt.Errorf("delete status of container %q: %w", s.id, err)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) &&
		!errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("delete root of container %q: %w", s.id, err)
	}
	return nil
}

// atomicWriteFile writes data to path through a temp file in the same
// directory: create, chmod, write, fsync, close, rename (as containerd's
// continuity.AtomicWriteFile; no directory fsync). The fsync is real on
// purpose: under I/O pressure it is the slow step, and it runs under the
// status write lock.
func atomicWriteFile(path string, data []byte, perm os.FileMode, beforeSync func() error) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if beforeSync != nil {
		if err := beforeSync(); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}
