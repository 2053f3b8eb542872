package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
