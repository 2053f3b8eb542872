package server

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/fakecontainerd/fakecontainerd/store/metadata"
)

// containerdMetaDB writes a meta.db as containerd's metadata store leaves
// it: v1 holds the schema version, namespaces hold buckets.
func containerdMetaDB(t *testing.T, root string) {
	t.Helper()
	path := filepath.Join(root, metadataPluginDir, "meta.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists([]byte("v1"))
		if err != nil {
			return err
		}
		if err := v1.Put([]byte("version"), binary.AppendVarint(nil, 3)); err != nil {
			return err
		}
		_, err = v1.CreateBucketIfNotExists([]byte("k8s.io"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRefusesContainerdDirs: a root or state holding a real containerd's
// data is refused before anything is written there, with a message that
// says to pass --root and --state; fakecontainerd's own dirs (marked, or
// from before the marker) and fresh ones pass, and get the marker.
func TestRefusesContainerdDirs(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, root, state string)
		want  string // "" passes
	}{
		{"fresh", func(t *testing.T, root, state string) {}, ""},
		{"containerd meta.db", func(t *testing.T, root, state string) { containerdMetaDB(t, root) }, "meta.db has containerd's schema version"},
		{"containerd content store", func(t *testing.T, root, state string) {
			mkdir(t, filepath.Join(root, contentPluginDir, "blobs"))
		}, "content store"},
		{"containerd state", func(t *testing.T, root, state string) {
			mkdir(t, filepath.Join(state, "io.containerd.runtime.v2.task", "k8s.io"))
			mkdir(t, filepath.Join(state, "runc", "k8s.io"))
		}, "state " + "%STATE%" + " holds a real containerd's state (io.containerd.runtime.v2.task, runc"},
		{"marked despite containerd files", func(t *testing.T, root, state string) {
			containerdMetaDB(t, root)
			mkdir(t, filepath.Join(state, "runc"))
			touch(t, filepath.Join(root, OwnerMarker))
			touch(t, filepath.Join(state, OwnerMarker))
		}, ""},
		{"fakecontainerd's from before the marker", func(t *testing.T, root, state string) {
			db, err := metadata.Open(filepath.Join(root, metadataPluginDir, "meta.db"))
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
			mkdir(t, filepath.Join(state, "runc", "k8s.io"))
			touch(t, filepath.Join(state, legacyStateMarker))
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "fcd")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			root, state := filepath.Join(dir, "root"), filepath.Join(dir, "state")
			c.setup(t, root, state)
			want := strings.ReplaceAll(c.want, "%STATE%", state)
			err = CheckDirs(root, state)
			if want == "" {
				if err != nil {
					t.Fatalf("CheckDirs: %v", err)
				}
				if err := markDirs(root, state); err != nil {
					t.Fatal(err)
				}
				for _, d := range []string{root, state} {
					if !exists(filepath.Join(d, OwnerMarker)) {
						t.Errorf("%s has no %s after a start", d, OwnerMarker)
					}
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "pass --root and --state") {
				t.Fatalf("CheckDirs = %v, want an error saying %q and to pass --root and --state", err, want)
			}
			// Nothing was written: the marker is not there.
			if exists(filepath.Join(root, OwnerMarker)) || exists(filepath.Join(state, OwnerMarker)) {
				t.Errorf("a refused directory got the marker")
			}
		})
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o711); err != nil {
		t.Fatal(err)
	}
}

func touch(t *testing.T, p string) {
	t.Helper()
	mkdir(t, filepath.Dir(p))
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}
