package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/fakecontainerd/fakecontainerd/store/metadata"
)

// OwnerMarker is the file fakecontainerd keeps in its --root and --state:
// a directory without it that holds containerd's data is a real
// containerd's, and fakecontainerd refuses it.
const OwnerMarker = "fakecontainerd.marker"

// legacyStateMarker is the scenario clock file that `serve` has always
// written into --state (cmd/fakecontainerd/clock.go): a state dir that has
// it and no marker is fakecontainerd's from before the marker.
const legacyStateMarker = "fakecontainerd-clock.json"

// contentPluginDir is containerd's content store, which fakecontainerd
// never creates.
const contentPluginDir = "io.containerd.content.v1.content"

// containerdStateEntries are what a containerd leaves in its state dir.
var containerdStateEntries = []string{
	"containerd.sock", "containerd.sock.ttrpc", "io.containerd.runtime.v1.linux", "io.containerd.runtime.v2.task", "runc",
}

const useOwnDirs = "pass --root and --state (or set root and state in the config) to directories of fakecontainerd's own, e.g. --root /var/lib/fakecontainerd --state /run/fakecontainerd"

// CheckDirs refuses a root or state directory that holds a real
// containerd's data: serving there would take over its metadata, its task
// bundles and its sockets (`serve --config /etc/containerd/config.toml`
// without --root and --state takes containerd's own /var/lib/containerd
// and /run/containerd from the file). Directories that do not exist, are
// empty, or carry OwnerMarker pass.
func CheckDirs(root, state string) error {
	if err := checkRoot(root); err != nil {
		return err
	}
	return checkState(state)
}

func checkRoot(root string) error {
	if exists(filepath.Join(root, OwnerMarker)) {
		return nil
	}
	refuse := func(why string) error {
		return fmt.Errorf("root %s holds a real containerd's data (%s, and no %s): %s", root, why, OwnerMarker, useOwnDirs)
	}
	if exists(filepath.Join(root, contentPluginDir)) {
		return refuse(contentPluginDir + " is containerd's content store")
	}
	db := filepath.Join(root, metadataPluginDir, "meta.db")
	if !exists(db) {
		return nil
	}
	theirs, err := metadata.IsContainerds(db)
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return fmt.Errorf("root %s: %s is held open by another process (a running containerd?) and has no %s: %s", root, filepath.Join(metadataPluginDir, "meta.db"), OwnerMarker, useOwnDirs)
	case err != nil:
		return fmt.Errorf("root %s: %w", root, err)
	case theirs:
		return refuse(filepath.Join(metadataPluginDir, "meta.db") + " has containerd's schema version")
	}
	return nil
}

func checkState(state string) error {
	if exists(filepath.Join(state, OwnerMarker)) || exists(filepath.Join(state, legacyStateMarker)) {
		return nil
	}
	var found []string
	for _, e := range containerdStateEntries {
		if exists(filepath.Join(state, e)) {
			found = append(found, e)
		}
	}
	if len(found) == 0 {
		return nil
	}
	return fmt.Errorf("state %s holds a real containerd's state (%s, and no %s): %s", state, strings.Join(found, ", "), OwnerMarker, useOwnDirs)
}

// markDirs writes OwnerMarker into root and state, once CheckDirs passed.
func markDirs(root, state string) error {
	for _, d := range []string{root, state} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
		path := filepath.Join(d, OwnerMarker)
		if exists(path) {
			continue
		}
		const text = "This directory is fakecontainerd's (a fake containerd for tests); a real containerd must not use it.\n"
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			return fmt.Errorf("mark %s as fakecontainerd's: %w", d, err)
		}
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
