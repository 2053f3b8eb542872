package shim

import "time"

// LockObserver watches the shims' process locks (Init.mu), so the server
// can say who holds one and who waits for it (`fakecontainerd blame`).
type LockObserver interface {
	// Track is called when op asks for the process lock of container id;
	// contended says whether it has to wait. It may return nil.
	Track(id, op string, contended bool) LockToken
}

// LockToken follows one acquisition of a process lock.
type LockToken interface {
	Acquired()
	// Detail says what the holder is doing, e.g. "unmounting rootfs".
	Detail(what string)
	Released()
}

// CallObserver watches the daemon's ttrpc calls to the shims: Start is
// called as a call begins and the returned func when it returns.
type CallObserver interface {
	Start(id, method string) (done func())
}

// UnmountObserver is told, after every rootfs unmount in Delete, how long
// it took (the sync of the dirty bytes and the umount2 itself, faults
// included) and whether the overlay was volatile. It runs under the
// process lock and must be quick.
type UnmountObserver func(id string, volatile bool, took time.Duration)

// lock takes the process lock for op. Without an observer it is just
// mu.Lock; with one, a TryLock first tells whether op had to wait.
func (p *Init) lock(op string) (unlock func(), t LockToken) {
	if p.locks == nil {
		p.mu.Lock()
		return p.mu.Unlock, nil
	}
	taken := p.mu.TryLock()
	t = p.locks.Track(p.id, op, !taken)
	if !taken {
		p.mu.Lock()
	}
	if t == nil {
		return p.mu.Unlock, nil
	}
	t.Acquired()
	return func() {
		p.mu.Unlock()
		t.Released()
	}, t
}
