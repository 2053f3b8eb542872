package container

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestRecoverStatusWritesOnlyChanges: recovery keeps an unchanged
// checkpoint as it is on disk and rewrites a changed one.
func TestRecoverStatusWritesOnlyChanges(t *testing.T) {
	res := &runtime.ContainerResources{Linux: &runtime.LinuxContainerResources{CpuShares: 512}}
	base := Status{Pid: 7, CreatedAt: 1, StartedAt: 2, Reason: "r", Message: "m", Resources: res}
	for _, tc := range []struct {
		name    string
		change  func(*Status)
		rewrite bool
	}{
		{"unchanged", func(*Status) {}, false},
		{"in-memory flags only", func(s *Status) { s.Unknown, s.Starting, s.Removing, s.Stopping = true, true, true, true }, false},
		{"pid", func(s *Status) { s.Pid = 8 }, true},
		{"created", func(s *Status) { s.CreatedAt = 9 }, true},
		{"started", func(s *Status) { s.StartedAt = 9 }, true},
		{"finished", func(s *Status) { s.FinishedAt = 9 }, true},
		{"exit code", func(s *Status) { s.ExitCode = 255 }, true},
		{"reason", func(s *Status) { s.Reason = "Unknown" }, true},
		{"message", func(s *Status) { s.Message = "x" }, true},
		{"resources", func(s *Status) {
			s.Resources = &runtime.ContainerResources{Linux: &runtime.LinuxContainerResources{CpuShares: 2}}
		}, true},
		{"resources dropped", func(s *Status) { s.Resources = nil }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if _, err := StoreStatus(root, "c", base); err != nil {
				t.Fatal(err)
			}
			// Mark the file so that a rewrite shows.
			path := filepath.Join(root, statusFile)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			marked := append(bytes.Clone(data), '\n')
			if err := os.WriteFile(path, marked, 0o600); err != nil {
				t.Fatal(err)
			}
			loaded, err := LoadStatus(root, "c")
			if err != nil {
				t.Fatal(err)
			}
			status := deepCopyOf(loaded)
			tc.change(&status)
			st, err := RecoverStatus(root, "c", loaded, status)
			if err != nil {
				t.Fatal(err)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if rewritten := !bytes.Equal(after, marked); rewritten != tc.rewrite {
				t.Errorf("rewritten = %v, want %v", rewritten, tc.rewrite)
			}
			again, err := LoadStatus(root, "c")
			if err != nil {
				t.Fatal(err)
			}
			if !samePersisted(again, status) {
				t.Errorf("on disk after recovery %+v, want %+v", again, status)
			}
			if got := st.Get(); !samePersisted(got, status) || got.Unknown != status.Unknown {
				t.Errorf("in memory after recovery %+v, want %+v", got, status)
			}
		})
	}
}

// TestSamePersistedCoversCheckpoint: samePersisted must compare every
// field the checkpoint holds; a new one must be added there too.
func TestSamePersistedCoversCheckpoint(t *testing.T) {
	if n := reflect.TypeOf(statusJSON{}).NumField(); n != 8 {
		t.Errorf("statusJSON has %d fields; samePersisted compares 8: update it", n)
	}
}
