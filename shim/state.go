package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// processRecord is a process's on-disk state, the counterpart of runc's
// state.json under /run/containerd/runc/<ns>/<id>. It is what lets a shim
// that was restarted (an in-process shim after a server crash) find its
// containers again.
type processRecord struct {
	ID         string          `json:"id"`
	Bundle     string          `json:"bundle"`
	Group      string          `json:"group"`
	Pid        uint32          `json:"pid"`
	Status     processStatus   `json:"status"`
	ExitStatus uint32          `json:"exit_status"`
	ExitedAt   time.Time       `json:"exited_at"`
	StartedAt  time.Time       `json:"started_at"`
	Resources  json.RawMessage `json:"resources,omitempty"`
	Rootfs     *Rootfs         `json:"rootfs"`
	Behaviour  Behaviour       `json:"behaviour"`
}

func recordPath(runcRoot, id string) string { return filepath.Join(runcRoot, id, "state.json") }

func writeRecord(runcRoot string, r *processRecord) error {
	path := recordPath(runcRoot, r.ID)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create state dir of %s: %w", r.ID, err)
	}
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode state of %s: %w", r.ID, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write state of %s: %w", r.ID, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write state of %s: %w", r.ID, err)
	}
	return nil
}

func removeRecord(runcRoot, id string) error {
	if err := os.RemoveAll(filepath.Join(runcRoot, id)); err != nil {
		return fmt.Errorf("remove state of %s: %w", id, err)
	}
	return nil
}

// readRecords returns the records of one shim group.
func readRecords(runcRoot, group string) ([]*processRecord, error) {
	all, err := readAllRecords(runcRoot)
	return all[group], err
}

// readAllRecords returns every record under runcRoot, by shim group: what a
// restart reads once for all the shims it starts again, rather than once
// per shim (which made recovery quadratic in the number of pods).
func readAllRecords(runcRoot string) (map[string][]*processRecord, error) {
	entries, err := os.ReadDir(runcRoot)
	if errors.Is(err, os.ErrNotExist) {
		return map[string][]*processRecord{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read runc state dir %s: %w", runcRoot, err)
	}
	out := map[string][]*processRecord{}
	for _, e := range entries {
		data, err := os.ReadFile(recordPath(runcRoot, e.Name()))
		if err != nil {
			continue // half-created or half-removed: not ours to restore
		}
		var r processRecord
		if err := json.Unmarshal(data, &r); err != nil {
			// Not restorable (records are not fsync'd: a power cut can
			// leave one empty). Its task is then unknown to the shim and
			// the daemon reports the container as exited, 255.
			continue
		}
		out[r.Group] = append(out[r.Group], &r)
	}
	return out, nil
}

func (p *Init) record(group string) *processRecord {
	return &processRecord{
		ID: p.id, Bundle: p.bundle, Group: group, Pid: p.pid, Status: p.status,
		ExitStatus: p.exitStatus, ExitedAt: p.exitedAt, StartedAt: p.startedAt,
		Resources: p.resources, Rootfs: p.rootfs, Behaviour: p.behaviour,
	}
}
