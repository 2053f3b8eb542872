package sandbox

import (
	"sync"
	"time"
)

// State is the sandbox state as the CRI plugin tracks it.
type State uint32

const (
	// StateUnknown is the zero value: the sandbox's state could not be
	// recovered.
	StateUnknown State = iota
	// StateReady means the sandbox (pause) container is running.
	StateReady
	// StateNotReady means the sandbox container is not running; its
	// network may still be set up.
	StateNotReady
)

func (s State) String() string {
	switch s {
	case StateReady:
		return "SANDBOX_READY"
	case StateNotReady:
		return "SANDBOX_NOTREADY"
	case StateUnknown:
		return "SANDBOX_UNKNOWN"
	default:
		return "SANDBOX_INVALID"
	}
}

// Status is the mutable part of a sandbox. It is not checkpointed: at
// start-up it is rebuilt from the task, as containerd does.
type Status struct {
	Pid        uint32
	CreatedAt  time.Time
	ExitedAt   time.Time
	ExitStatus uint32
	State      State
}

// UpdateFunc computes a new status from the current one. Returning an error
// leaves the status unchanged.
type UpdateFunc func(Status) (Status, error)

// StatusStorage guards one sandbox's status. Its lock is independent of the
// status locks of the sandbox's containers.
type StatusStorage interface {
	// Get returns a copy of the status.
	Get() Status
	// Update applies fn under the write lock.
	Update(fn UpdateFunc) error
}

// StoreStatus returns in-memory storage holding status.
func StoreStatus(status Status) StatusStorage {
	return &statusStorage{status: status}
}

// statusStorage embeds the lock that guards status, as containerd's does.
type statusStorage struct {
	sync.RWMutex
	status Status
}

func (s *statusStorage) Get() Status {
	s.RLock()
	defer s.RUnlock()
	return s.status
}

func (s *statusStorage) Update(fn UpdateFunc) error {
	s.Lock()
	defer s.Unlock()
	newStatus, err := fn(s.status)
	if err != nil {
		return err
	}
	s.status = newStatus
	return nil
}
