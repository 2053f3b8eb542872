package faults

import (
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
)

// Fix names a fix toggle. Each is one visible branch at the place the real
// fix changes the code.
type Fix string

const (
	// FixVolatile adds "volatile" to the overlay mount options of new
	// containers: the shim's unmount has nothing to sync (containerd
	// >= 1.6.24 snapshotter mount_options, PR #8676).
	FixVolatile Fix = "volatile"
	// FixStoppingState marks a container Stopping in memory on TaskExit
	// before the shim delete and clears it in the final UpdateSync;
	// UpdateContainerResources refuses a Removing or Stopping container
	// with an error (the field fix; upstream precedent PR #9771).
	FixStoppingState Fix = "stopping_state"
	// FixStoppingStateRefined is the same Stopping state, but
	// UpdateContainerResources on a Stopping container skips the shim call
	// and succeeds instead of returning an error.
	FixStoppingStateRefined Fix = "stopping_state_refined"
	// FixUpdateOutsideLock calls the shim's Update outside the status write
	// lock (the shape of containerd PRs #11300/#11304).
	FixUpdateOutsideLock Fix = "update_outside_lock"
	// FixShimUpdateNoWait makes the shim answer Update on a process being
	// deleted without waiting for the process lock.
	FixShimUpdateNoWait Fix = "shim_update_nowait"
	// FixListIndex makes ListContainers resolve the id, sandbox and label
	// filters through an index and read only the matching containers'
	// statuses; containerd reads every container's status before
	// filtering, so a pod's filtered list waits on any other pod's
	// container whose status write lock is held.
	FixListIndex Fix = "list_index"
	// FixSplitDisk puts new containers' rootfs upper dirs (the overlay
	// snapshotter's directory) on a device of their own, apart from
	// containerd's root (meta.db, status checkpoints): the field's earlier
	// "split the disk" fix. It changes only a node disk layout with a
	// split device; status and bbolt fsyncs then no longer queue behind
	// rootfs writeback, but an unmount's syncfs still writes back every
	// container's dirty pages.
	FixSplitDisk Fix = "split_disk"
)

// allFixes fixes the order, and its length sizes Toggles.
var allFixes = [...]Fix{FixVolatile, FixStoppingState, FixStoppingStateRefined, FixUpdateOutsideLock, FixShimUpdateNoWait, FixListIndex, FixSplitDisk}

// Fixes lists every fix, in a stable order.
var Fixes = allFixes[:]

// ParseFix validates a fix name.
func ParseFix(s string) (Fix, error) {
	for _, f := range Fixes {
		if string(f) == s {
			return f, nil
		}
	}
	names := make([]string, len(Fixes))
	for i, f := range Fixes {
		names[i] = string(f)
	}
	return "", fmt.Errorf("unknown fix %q (want one of %s)", s, strings.Join(names, ", "))
}

// ParseFixes reads a comma-separated list of fix names.
func ParseFixes(s string) ([]Fix, error) {
	var out []Fix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		f, err := ParseFix(part)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// Toggles is the set of fixes switched on. It is safe for concurrent use
// and read on hot paths, so each fix is one atomic flag.
type Toggles struct {
	on [len(allFixes)]atomic.Bool
}

func index(f Fix) int {
	for i, g := range Fixes {
		if g == f {
			return i
		}
	}
	return -1
}

// NewToggles returns toggles with the given fixes on.
func NewToggles(on ...Fix) *Toggles {
	t := &Toggles{}
	for _, f := range on {
		_ = t.Set(f, true)
	}
	return t
}

// Enabled reports whether a fix is on. A nil Toggles has every fix off.
func (t *Toggles) Enabled(f Fix) bool {
	if t == nil {
		return false
	}
	i := index(f)
	return i >= 0 && t.on[i].Load()
}

// Set switches a fix on or off.
func (t *Toggles) Set(f Fix, on bool) error {
	i := index(f)
	if i < 0 {
		_, err := ParseFix(string(f))
		return err
	}
	t.on[i].Store(on)
	return nil
}

// State reports every fix and whether it is on.
func (t *Toggles) State() map[Fix]bool {
	out := make(map[Fix]bool, len(Fixes))
	for _, f := range Fixes {
		out[f] = t.Enabled(f)
	}
	return out
}

// On lists the fixes that are on, sorted.
func (t *Toggles) On() []Fix {
	var out []Fix
	for _, f := range Fixes {
		if t.Enabled(f) {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
