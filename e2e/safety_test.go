package e2e

import (
	varint "encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// TestSecondServeLeavesFirstReachable: a second serve on the address of a
// running server fails, and on its way out removes none of the first
// server's sockets, whether it shares the first one's root and state (it
// fails on the metadata lock) or has its own (it fails on the sockets).
func TestSecondServeLeavesFirstReachable(t *testing.T) {
	t.Parallel()
	d := newDaemon(t)
	cases := []struct {
		name        string
		root, state string
		want        string
	}{
		{"same root and state", d.root, d.state, "another server"},
		{"own root and state", filepath.Join(d.dir, "root2"), filepath.Join(d.dir, "state2"), "in use by another server"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, code := fcd(t, 20*time.Second, "serve", "--address", d.sock, "--root", c.root, "--state", c.state)
			if code == 0 || code == -1 {
				t.Fatalf("second serve on %s: exit %d, want it to fail at once\n%s", d.sock, code, out)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("second serve: message does not say %q:\n%s", c.want, out)
			}
			for _, s := range []string{d.sock, d.sock + ".ttrpc", d.sock + ".admin"} {
				if _, err := os.Stat(s); err != nil {
					t.Errorf("the first server's socket %s is gone after the second serve failed: %v", s, err)
				}
			}
			// A new crictl connection still reaches the first server.
			d.disconnect()
			if err := d.connect(); err != nil {
				t.Fatalf("crictl version against the first server after the second serve failed: %v", err)
			}
			if _, err := d.rt.Version(d.ctx(), "v1"); err != nil {
				t.Fatalf("crictl version: %v", err)
			}
			var list []faultInfo
			d.on(t).adminCall("GET", "/v1/faults", nil, &list)
		})
	}
}

// TestServeRefusesContainerdDirs: `serve --config` with a node's
// config.toml, whose root and state are a real containerd's, refuses to
// start and writes nothing there, saying to pass --root and --state; with
// them it serves.
func TestServeRefusesContainerdDirs(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "fcde")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// A containerd's root: meta.db with containerd's schema version.
	root, state := filepath.Join(dir, "var-lib-containerd"), filepath.Join(dir, "run-containerd")
	if err := os.MkdirAll(filepath.Join(root, "io.containerd.metadata.v1.bolt"), 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := bbolt.Open(filepath.Join(root, "io.containerd.metadata.v1.bolt", "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists([]byte("v1"))
		if err != nil {
			return err
		}
		return v1.Put([]byte("version"), varint.AppendVarint(nil, 3))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(state, "io.containerd.runtime.v2.task", "k8s.io"), 0o711); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, dir, "config.toml", fmt.Sprintf("version = 2\nroot = %q\nstate = %q\n", root, state))
	sock := filepath.Join(dir, "cri.sock")

	out, code := fcd(t, 20*time.Second, "serve", "--config", cfg, "--address", sock)
	if code == 0 || code == -1 {
		t.Fatalf("serve on a containerd's root: exit %d, want a refusal\n%s", code, out)
	}
	for _, want := range []string{root, "real containerd's data", "pass --root and --state"} {
		if !strings.Contains(out, want) {
			t.Errorf("refusal does not say %q:\n%s", want, out)
		}
	}
	for _, p := range []string{filepath.Join(root, "fakecontainerd.marker"), filepath.Join(state, "fakecontainerd-clock.json"), filepath.Join(root, "io.containerd.grpc.v1.cri"), sock} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("the refused serve wrote %s", p)
		}
	}
	// The state alone is refused too.
	out, code = fcd(t, 20*time.Second, "serve", "--config", cfg, "--address", sock, "--root", filepath.Join(dir, "own-root"))
	if code == 0 || code == -1 || !strings.Contains(out, "state "+state) || !strings.Contains(out, "pass --root and --state") {
		t.Errorf("serve on a containerd's state: exit %d, want a refusal naming it\n%s", code, out)
	}
}
