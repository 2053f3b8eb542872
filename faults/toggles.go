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
)

// allFixes fixes the order, and its length sizes Toggles.
var allFixes = [...]Fix{FixVolatile, FixStoppingState, FixStoppingStateRefined, FixUpdateOutsideLock, FixShimUpdateNoWait, FixListIndex}

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

// FixInfo says, for people, what a fix changes, where it stands upstream
// and what it costs (the A/B report prints it next to each variant).
type FixInfo struct {
	Changes, Upstream, Cost string
}

// Info describes the fix; the README's "Fix toggles" table says the same.
func (f Fix) Info() FixInfo {
	switch f {
	case FixVolatile:
		return FixInfo{
			Changes:  "new containers' overlay rootfs is mounted volatile: the shim's unmount has nothing to sync, so Delete is fast",
			Upstream: "in containerd >= 1.6.24 as the overlay snapshotter's mount_options (PR #8676); needs kernel >= 5.10",
			Cost:     "writes are never synced: after a host crash a volatile upper dir cannot be mounted again, so the container's writable layer is lost",
		}
	case FixStoppingState:
		return FixInfo{
			Changes:  "on TaskExit the container is marked Stopping before the shim's delete; UpdateContainerResources refuses it without calling the shim",
			Upstream: "the field's fix; upstream precedent PR #9771 (an Exiting state) is not merged, issue #9770 is open",
			Cost:     "every update aimed at a dying container is an error kubelet logs; in the field kubelet also killed and recreated some containers that had finished normally",
		}
	case FixStoppingStateRefined:
		return FixInfo{
			Changes:  "the same Stopping state, but the update of a dying container skips the shim call and succeeds",
			Upstream: "not upstream: this project's refinement of the field's fix",
			Cost:     "the update is reported applied to a container that is exiting and never gets it",
		}
	case FixUpdateOutsideLock:
		return FixInfo{
			Changes:  "the shim's Update runs on a status snapshot outside the status write lock; only recording the new resources takes it",
			Upstream: "containerd PRs #11300/#11304, not merged",
			Cost:     "the update itself still waits for the shim, up to kubelet's 2 min deadline; only the readers stop waiting",
		}
	case FixShimUpdateNoWait:
		return FixInfo{
			Changes:  "the shim answers Update on a process being deleted at once (NotFound: task exited already) instead of queueing behind Delete",
			Upstream: "not done upstream (a shim-side fix the field did not make)",
			Cost:     "needs a new shim on the nodes; the daemon's own 2 s State cap still applies",
		}
	case FixListIndex:
		return FixInfo{
			Changes:  "ListContainers resolves id, sandbox and label filters through an index and reads only the matching containers' statuses",
			Upstream: "not upstream: containerd reads every container's status before filtering",
			Cost:     "an index kept on every create and remove; PLEG's unfiltered relist still reads every status",
		}
	}
	return FixInfo{Changes: "unknown fix"}
}
