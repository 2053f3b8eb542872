package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/types/task"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fakecontainerd/fakecontainerd/faults"
	"github.com/fakecontainerd/fakecontainerd/faults/clock"
	"github.com/fakecontainerd/fakecontainerd/store/cpu"
	"github.com/fakecontainerd/fakecontainerd/store/disk"
)

// processStatus is the runc init process state machine:
// created -> running -> stopped -> deleted (created -> stopped on kill).
type processStatus string

const (
	statusCreated processStatus = "created"
	statusRunning processStatus = "running"
	statusStopped processStatus = "stopped"
	statusDeleted processStatus = "deleted"
)

// Init is a container's fake init process, the counterpart of runc-shim's
// process.Init. Its mu is the lock at the centre of incident 1: Delete holds
// it across the rootfs unmount, and Update, State, Kill and the exit
// handling all take it, so they wait behind a slow unmount exactly as in
// containerd-shim-runc-v2. Wait does not take it.
type Init struct {
	mu sync.Mutex

	// Immutable after creation.
	id        string
	bundle    string
	pid       uint32
	behaviour Behaviour
	clock     clock.Clock
	// baseLog is the shim's logger; log() adds the id when a line is
	// written (an entry per process, kept for its life, was 0.5 KiB each).
	baseLog *logrus.Entry
	// exited is called (outside mu) when the process has exited, to publish
	// TaskExit; it is the reaper's processExits in the real shim.
	exited func(p *Init)

	// Guarded by mu.
	status     processStatus
	exitStatus uint32
	exitedAt   time.Time
	startedAt  time.Time
	resources  json.RawMessage
	rootfs     *Rootfs
	exitTimer  *clock.Timer
	persist    func(*Init) error

	waitBlock chan struct{} // closed on exit; Wait needs no lock
	waitOnce  sync.Once

	// view is a copy of the state for readers that, like runc-shim's
	// cgroup-based Stats, must not wait on mu.
	view atomic.Pointer[processView]

	// deleting is set while Delete runs, for the shim_update_nowait fix.
	deleting atomic.Bool
	toggles  *faults.Toggles
	locks    LockObserver
	// unmounted, if set, is told every unmount's cost (metrics).
	unmounted UnmountObserver
	// fire fires a fault point for this process.
	fire func(point string) error
	// model is the process's interpreted command (model.go, exec.go).
	model *model
	// cpu is the node's cores (nil: the model off); costs what runc's
	// work takes on them.
	cpu   *cpu.Node
	costs Costs
	// v1 is Defaults.V1DeletedState.
	v1 bool
}

type processView struct {
	status    processStatus
	startedAt time.Time
	exitedAt  time.Time
	rootfs    Rootfs
}

func (p *Init) log() *logrus.Entry { return p.baseLog.WithField("id", p.id) }

func (p *Init) publishViewLocked() {
	p.view.Store(&processView{status: p.status, startedAt: p.startedAt, exitedAt: p.exitedAt, rootfs: *p.rootfs})
}

// Status is the process state as State reports it, read under mu.
func (p *Init) Status(ctx context.Context) (processStatus, error) {
	unlock, _ := p.lock("State")
	defer unlock()
	return p.status, nil
}

func (p *Init) state() *stateSnapshot {
	return &stateSnapshot{
		status: p.status, pid: p.pid, exitStatus: p.exitStatus, exitedAt: p.exitedAt,
	}
}

type stateSnapshot struct {
	status     processStatus
	pid        uint32
	exitStatus uint32
	exitedAt   time.Time
}

func (s *stateSnapshot) taskStatus() task.Status {
	switch s.status {
	case statusCreated:
		return task.Status_CREATED
	case statusRunning:
		return task.Status_RUNNING
	case statusStopped, statusDeleted:
		return task.Status_STOPPED
	}
	return task.Status_UNKNOWN
}

// State takes mu, as runc-shim's Init.Status does.
func (p *Init) State() *stateSnapshot {
	unlock, _ := p.lock("State")
	defer unlock()
	return p.state()
}

// Start moves a created process to running and arms its scripted exit.
func (p *Init) Start(ctx context.Context) error {
	unlock, tok := p.lock("Start")
	defer unlock()
	switch p.status {
	case statusCreated:
	case statusRunning:
		return status.Errorf(codes.FailedPrecondition, "cannot start a running process")
	case statusStopped:
		return status.Errorf(codes.FailedPrecondition, "cannot start a stopped process")
	default:
		return status.Errorf(codes.NotFound, "cannot start a deleted process")
	}
	if err := runc(p.runcCtx(ctx), p.cpu, tok, "runc start", p.costs.RuncStart); err != nil {
		return err
	}
	now := p.clock.Now()
	p.status, p.startedAt = statusRunning, now
	p.rootfs.startWriting(now)
	p.armExitLocked(now)
	p.startModelLocked()
	return p.persistLocked()
}

// armExitLocked schedules the scripted exit (exit-after), counted from the
// start time so a restored process keeps its schedule.
func (p *Init) armExitLocked(now time.Time) {
	if p.behaviour.ExitAfter <= 0 || p.status != statusRunning {
		return
	}
	left := p.behaviour.ExitAfter - now.Sub(p.startedAt)
	p.scheduleExitLocked(left, p.behaviour.ExitCode)
}

func (p *Init) scheduleExitLocked(after time.Duration, code uint32) {
	if p.exitTimer != nil {
		p.exitTimer.Stop()
	}
	if after <= 0 {
		// Exit processing takes mu, so it must not run on this goroutine.
		go p.setExited(code)
		return
	}
	p.exitTimer = p.clock.AfterFunc(after, func() { p.setExited(code) })
}

// Kill delivers a signal. SIGKILL ends the process at once; SIGTERM after the
// stop grace, unless the process ignores it. The exit itself is processed
// asynchronously, as the reaper does after runc kill returns.
func (p *Init) Kill(ctx context.Context, signal uint32) error {
	unlock, tok := p.lock("Kill")
	defer unlock()
	switch {
	case p.status == statusDeleted && p.v1:
		// Before #3244: not NotFound, so the daemon cannot tell the
		// task is gone.
		return status.Errorf(codes.Unknown, "cannot kill a deleted process")
	case p.status == statusStopped, p.status == statusDeleted:
		return status.Errorf(codes.NotFound, "process already finished")
	}
	if err := runc(p.runcCtx(ctx), p.cpu, tok, "runc kill", p.costs.RuncKill); err != nil {
		return err
	}
	if r := p.reaction(syscall.Signal(signal), p.status); r.Exits {
		p.scheduleExitLocked(r.After, r.ExitStatus)
	}
	return nil
}

// Reaction is what a signal does to a fake process.
type Reaction struct {
	// Exits says whether the process dies of the signal; ExitStatus is
	// then what wait reports (128 + the signal, as the shim reports a
	// death by signal) and After how long it takes to get there.
	Exits      bool
	ExitStatus uint32
	After      time.Duration
}

// reaction is how the fake process meets sig: SIGKILL kills at once;
// SIGTERM, SIGINT and SIGQUIT end it after the stop grace unless it is a
// running process that ignores SIGTERM (a pid 1 without a handler); any
// other signal is delivered and ignored.
func (p *Init) reaction(sig syscall.Signal, st processStatus) Reaction {
	switch sig {
	case syscall.SIGKILL:
		return Reaction{Exits: true, ExitStatus: 128 + uint32(sig)}
	case syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT:
		if p.behaviour.IgnoreTerm && st == statusRunning {
			return Reaction{}
		}
		return Reaction{Exits: true, ExitStatus: 128 + uint32(sig), After: p.behaviour.StopGrace}
	}
	return Reaction{}
}

// Signal is kill(2) on the process from outside the shim, the field's
// `kill -9 $CNTR_PID`: the kernel delivers it without any shim lock, so it
// answers at once; the death then reaches the shim's exit processing
// (setExited, which takes mu) exactly as a scripted exit does.
func (p *Init) Signal(sig syscall.Signal) (Reaction, error) {
	st, err := p.alive()
	if err != nil {
		return Reaction{}, err
	}
	r := p.reaction(sig, st)
	if !r.Exits {
		return r, nil
	}
	if r.After <= 0 {
		go p.setExited(r.ExitStatus)
		return r, nil
	}
	// The process's own shutdown takes the grace from now; the timer that
	// ends it is the process's exit timer, which lives under mu.
	at := p.clock.Now().Add(r.After)
	go func() {
		unlock, _ := p.lock("SetExited")
		defer unlock()
		if p.status == statusRunning || p.status == statusCreated {
			p.scheduleExitLocked(at.Sub(p.clock.Now()), r.ExitStatus)
		}
	}()
	return r, nil
}

// Exit makes the process exit by itself now with code, as its own exit(2)
// would: no lock on the way in, the shim's exit processing after.
func (p *Init) Exit(code uint32) error {
	if _, err := p.alive(); err != nil {
		return err
	}
	go p.setExited(code)
	return nil
}

// alive reads the process state without mu (the kernel knows whether a pid
// lives without asking the shim): ESRCH, as kill(2) says, if it is gone.
func (p *Init) alive() (processStatus, error) {
	v := p.view.Load()
	if v == nil || v.status == statusStopped || v.status == statusDeleted {
		return "", status.Errorf(codes.NotFound, "process %s has exited", p.id)
	}
	return v.status, nil
}

// setExited is the shim's exit processing: it takes mu (as Init.SetExited
// does), records the exit and then publishes TaskExit outside the lock.
func (p *Init) setExited(code uint32) {
	unlock, _ := p.lock("SetExited")
	if p.status != statusRunning && p.status != statusCreated {
		unlock()
		return
	}
	now := p.clock.Now()
	p.status, p.exitStatus, p.exitedAt = statusStopped, code, now
	p.stopModelLocked()
	p.rootfs.stopWriting(now)
	if p.exitTimer != nil {
		p.exitTimer.Stop()
		p.exitTimer = nil
	}
	if err := p.persistLocked(); err != nil {
		p.log().WithError(err).Warn("failed to persist process exit")
	}
	p.waitOnce.Do(func() { close(p.waitBlock) })
	unlock()
	p.exited(p)
}

// Wait blocks until the process exits, without taking mu.
func (p *Init) Wait(ctx context.Context) (uint32, time.Time, error) {
	select {
	case <-p.waitBlock:
	case <-ctx.Done():
		return 0, time.Time{}, ctx.Err()
	}
	unlock, _ := p.lock("Wait")
	defer unlock()
	return p.exitStatus, p.exitedAt, nil
}

// Delete holds mu across runc delete and the rootfs unmount, as
// process.Init.Delete does. The unmount ignores ctx, like umount2: the
// caller's deadline can end the call but not the work or the lock.
// lifetime ends the sleep only when the shim itself goes away.
func (p *Init) Delete(ctx, lifetime context.Context) (*stateSnapshot, time.Duration, error) {
	p.deleting.Store(true)
	defer p.deleting.Store(false)
	unlock, tok := p.lock("Delete")
	defer unlock()
	switch p.status {
	case statusRunning:
		return nil, 0, status.Errorf(codes.FailedPrecondition, "cannot delete a running process")
	case statusDeleted:
		if p.v1 {
			return nil, 0, status.Errorf(codes.Unknown, "cannot delete a deleted process")
		}
		return nil, 0, status.Errorf(codes.NotFound, "cannot delete a deleted process")
	}
	start := p.clock.Now()
	// runc delete before the unmount, under the call's deadline (go-runc's
	// exec.CommandContext): if it ends first the process stays stopped and
	// the next Delete does the work again.
	if err := runc(p.runcCtx(ctx), p.cpu, tok, "runc delete", p.costs.RuncDelete); err != nil {
		return nil, p.clock.Since(start), err
	}
	var logger *logrus.Entry
	// The sync is paid inside the first umount2, after a delay injected at
	// its entry (strace's delay_enter): the syncfs joins the disk's queue
	// only then.
	umountErr := p.unmountAll(lifetime, func() {
		// The disk model says what the unmount's syncfs waits for.
		wb := p.rootfs.syncfs(p.clock.Now())
		if tok != nil {
			if p.rootfs.Volatile() {
				tok.Detail("unmounting rootfs (volatile: nothing to sync)")
			} else if wb.Private || wb.Device == "" {
				// A disk of its own: only its own pages, nothing ahead.
				tok.Detail(fmt.Sprintf("unmounting rootfs without volatile (%s dirty)", HumanBytes(wb.Bytes)))
			} else {
				tok.Detail("unmounting rootfs without volatile, " + wb.String())
			}
		}
		logger = p.log().WithFields(logrus.Fields{"dirty_bytes": wb.Bytes, "queued_ahead": wb.Ahead, "volatile": p.rootfs.Volatile()})
		logger.Debug("unmounting rootfs")
		_ = wb.Wait(lifetime, p.clock)
	})
	if logger == nil {
		logger = p.log()
	}
	took := p.clock.Since(start)
	if p.unmounted != nil {
		p.unmounted(p.id, p.rootfs.Volatile(), took)
	}
	if umountErr != nil {
		return nil, took, status.Errorf(status.Code(umountErr), "failed rootfs umount: %v", umountErr)
	}
	logger.WithField("cost", took).Debug("rootfs unmounted")
	if p.status == statusCreated {
		// Deleting a created container kills its waiting init.
		p.exitStatus, p.exitedAt = 128+uint32(syscall.SIGKILL), p.clock.Now()
		p.waitOnce.Do(func() { close(p.waitBlock) })
	}
	p.status = statusDeleted
	p.stopModelLocked()
	p.rootfs.DirtyBase, p.rootfs.WritingSince = 0, time.Time{}
	p.publishViewLocked()
	return p.state(), took, nil
}

// umount2Calls is how many umount2 syscalls runc-shim's mount.UnmountAll
// makes on one rootfs: it repeats umount2 until EINVAL (not a mount point
// any more), so the first call unmounts and the second returns EINVAL. A
// delay injected on the syscall (strace's delay_enter) is paid on each.
const umount2Calls = 2

// unmountAll is mount.UnmountAll(rootfs): the shim.unmount point fires once
// for the whole unmount, shim.umount2 at each syscall's entry. The first
// call pays the sync of the dirty pages (sync); the second finds nothing
// mounted. An injected error ends it as a failed umount2 would.
func (p *Init) unmountAll(lifetime context.Context, sync func()) error {
	if err := p.fireAt(faults.PointShimUnmount); err != nil {
		return err
	}
	for call := range umount2Calls {
		if err := p.fireAt(faults.PointShimUmount2); err != nil {
			return err
		}
		if call == 0 {
			sync()
		}
	}
	return nil
}

func (p *Init) fireAt(point string) error {
	if p.fire == nil {
		return nil
	}
	return p.fire(point)
}

// Update applies new resources. It waits for mu, so an Update that arrives
// while Delete is unmounting waits for the unmount, then fails because the
// process is deleted: the "cannot update a deleted process" of the field logs
// (a plain error, not NotFound, so containerd surfaces it).
func (p *Init) Update(ctx context.Context, resources json.RawMessage) error {
	// The shim-side fix: a process being deleted has exited, so answer at
	// once instead of queueing behind Delete's lock. NotFound is what
	// containerd reads as "task exited already".
	if p.toggles.Enabled(faults.FixShimUpdateNoWait) && p.deleting.Load() {
		return status.Errorf(codes.NotFound, "process %s is being deleted", p.id)
	}
	unlock, tok := p.lock("Update")
	defer unlock()
	switch p.status {
	case statusStopped:
		return status.Errorf(codes.Unknown, "cannot update a stopped container")
	case statusDeleted:
		return status.Errorf(codes.Unknown, "cannot update a deleted process")
	}
	if err := runc(p.runcCtx(ctx), p.cpu, tok, "runc update", p.costs.RuncUpdate); err != nil {
		return err
	}
	p.resources = resources
	return p.persistLocked()
}

func (p *Init) persistLocked() error {
	p.publishViewLocked()
	if p.persist == nil || p.status == statusDeleted {
		return nil
	}
	return p.persist(p)
}

// HumanBytes prints a size the way the blame chain reads it: "1.8 GiB".
func HumanBytes(n int64) string { return disk.HumanBytes(n) }

// runcCtx is the context runc runs under: the call's, which carries the
// daemon's deadline, or, playing the v1 shim of containerd <= 1.2 (whose
// ttrpc sent no deadline), the call's values without its deadline: the
// work goes on after the daemon gave up.
func (p *Init) runcCtx(ctx context.Context) context.Context {
	if p.v1 {
		return context.WithoutCancel(ctx)
	}
	return ctx
}
