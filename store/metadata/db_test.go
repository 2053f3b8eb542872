package metadata

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fakecontainerd/fakecontainerd/store"
	bolterrors "go.etcd.io/bbolt/errors"
)

// fakeNow returns a clock that advances one second per call.
func fakeNow() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

func openTest(t *testing.T, opts ...Opt) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "io.containerd.metadata.v1.bolt", "meta.db"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// ops adapts one kind's five methods to a common shape for the table test;
// "marker" is a label value that update changes.
type ops struct {
	create func(db *DB, key string) error
	get    func(db *DB, key string) (marker string, created, updated time.Time, err error)
	update func(db *DB, key, marker string) error
	del    func(db *DB, key string) error
	list   func(db *DB) ([]string, error)
}

func kinds() map[string]ops {
	ctx := context.Background()
	return map[string]ops{
		"container": {
			create: func(db *DB, key string) error {
				return db.CreateContainer(ctx, Container{ID: key, SandboxID: "s1", Image: "busybox",
					Spec: json.RawMessage(`{"ociVersion":"1.0.2"}`), Labels: map[string]string{"m": "0"},
					Extensions: map[string]json.RawMessage{"io.cri-containerd.container.metadata": json.RawMessage(`{"Version":"v1"}`)}})
			},
			get: func(db *DB, key string) (string, time.Time, time.Time, error) {
				c, err := db.GetContainer(ctx, key)
				if err == nil && (string(c.Spec) != `{"ociVersion":"1.0.2"}` || c.SandboxID != "s1" ||
					string(c.Extensions["io.cri-containerd.container.metadata"]) != `{"Version":"v1"}`) {
					err = errors.New("fields lost in round trip")
				}
				return c.Labels["m"], c.CreatedAt, c.UpdatedAt, err
			},
			update: func(db *DB, key, m string) error {
				return db.UpdateContainer(ctx, key, func(c *Container) error { c.Labels["m"] = m; return nil })
			},
			del: func(db *DB, key string) error { return db.DeleteContainer(ctx, key) },
			list: func(db *DB) ([]string, error) {
				cs, err := db.ListContainers(ctx)
				var keys []string
				for _, c := range cs {
					keys = append(keys, c.ID)
				}
				return keys, err
			},
		},
		"sandbox": {
			create: func(db *DB, key string) error {
				return db.CreateSandbox(ctx, Sandbox{ID: key, Runtime: "io.containerd.runc.v2", Labels: map[string]string{"m": "0"}})
			},
			get: func(db *DB, key string) (string, time.Time, time.Time, error) {
				s, err := db.GetSandbox(ctx, key)
				if err == nil && s.Runtime != "io.containerd.runc.v2" {
					err = errors.New("fields lost in round trip")
				}
				return s.Labels["m"], s.CreatedAt, s.UpdatedAt, err
			},
			update: func(db *DB, key, m string) error {
				return db.UpdateSandbox(ctx, key, func(s *Sandbox) error { s.Labels["m"] = m; return nil })
			},
			del: func(db *DB, key string) error { return db.DeleteSandbox(ctx, key) },
			list: func(db *DB) ([]string, error) {
				ss, err := db.ListSandboxes(ctx)
				var keys []string
				for _, s := range ss {
					keys = append(keys, s.ID)
				}
				return keys, err
			},
		},
		"image": {
			create: func(db *DB, key string) error {
				return db.CreateImage(ctx, Image{Name: key, Labels: map[string]string{"m": "0"},
					Target: Descriptor{MediaType: "application/vnd.oci.image.index.v1+json", Digest: "sha256:ab", Size: 9}})
			},
			get: func(db *DB, key string) (string, time.Time, time.Time, error) {
				i, err := db.GetImage(ctx, key)
				if err == nil && (i.Target.Digest != "sha256:ab" || i.Target.Size != 9) {
					err = errors.New("fields lost in round trip")
				}
				return i.Labels["m"], i.CreatedAt, i.UpdatedAt, err
			},
			update: func(db *DB, key, m string) error {
				return db.UpdateImage(ctx, key, func(i *Image) error { i.Labels["m"] = m; return nil })
			},
			del: func(db *DB, key string) error { return db.DeleteImage(ctx, key) },
			list: func(db *DB) ([]string, error) {
				is, err := db.ListImages(ctx)
				var keys []string
				for _, i := range is {
					keys = append(keys, i.Name)
				}
				return keys, err
			},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	for name, k := range kinds() {
		t.Run(name, func(t *testing.T) {
			db := openTest(t, WithNow(fakeNow()))
			for _, key := range []string{"b", "a", "docker.io/library/busybox:latest"} {
				if err := k.create(db, key); err != nil {
					t.Fatal(err)
				}
			}
			if err := k.create(db, "a"); !errors.Is(err, store.ErrAlreadyExists) {
				t.Fatalf("create duplicate = %v; want ErrAlreadyExists", err)
			}
			m, created, updated, err := k.get(db, "a")
			if err != nil || m != "0" || created.IsZero() || !created.Equal(updated) {
				t.Fatalf("get = %q, %v, %v, %v", m, created, updated, err)
			}
			if err := k.update(db, "a", "1"); err != nil {
				t.Fatal(err)
			}
			m, created2, updated2, err := k.get(db, "a")
			if err != nil || m != "1" || !created2.Equal(created) || !updated2.After(updated) {
				t.Fatalf("after update: %q, created %v (was %v), updated %v (was %v), %v", m, created2, created, updated2, updated, err)
			}
			if err := k.update(db, "missing", "1"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("update missing = %v; want ErrNotFound", err)
			}
			keys, err := k.list(db)
			if err != nil || !slices.Equal(keys, []string{"a", "b", "docker.io/library/busybox:latest"}) {
				t.Fatalf("list = %q, %v", keys, err)
			}
			if err := k.del(db, "a"); err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := k.get(db, "a"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("get after delete = %v; want ErrNotFound", err)
			}
			if err := k.del(db, "a"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("second delete = %v; want ErrNotFound", err)
			}
		})
	}
}

func TestUpdateContainerFnErrorAborts(t *testing.T) {
	ctx := t.Context()
	db := openTest(t)
	if err := db.CreateContainer(ctx, Container{ID: "c1", Image: "old"}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := db.UpdateContainer(ctx, "c1", func(c *Container) error {
		c.Image = "new"
		return boom
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), `update container "c1"`) {
		t.Fatalf("UpdateContainer = %v; want wrapped fn error", err)
	}
	if c, err := db.GetContainer(ctx, "c1"); err != nil || c.Image != "old" {
		t.Fatalf("after aborted update: %+v, %v", c, err)
	}
	err = db.UpdateContainer(ctx, "c1", func(c *Container) error { c.ID = "c2"; return nil })
	if err == nil {
		t.Fatal("UpdateContainer changing the id succeeded")
	}
	if _, err := db.GetContainer(ctx, "c2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("id change leaked: %v", err)
	}
}

type ctxKey struct{}

func TestCommitHook(t *testing.T) {
	ctx := t.Context()
	boom := errors.New("injected")
	var mu sync.Mutex
	var seen []string
	hook := func(ctx context.Context, op string) error {
		mu.Lock()
		seen = append(seen, op)
		mu.Unlock()
		if ctx.Value(ctxKey{}) == "fail" {
			return boom
		}
		return nil
	}
	db := openTest(t, WithCommitHook(hook))
	failCtx := context.WithValue(ctx, ctxKey{}, "fail")

	if err := db.CreateContainer(ctx, Container{ID: "c1", Image: "old"}); err != nil {
		t.Fatal(err)
	}
	err := db.UpdateContainer(failCtx, "c1", func(c *Container) error { c.Image = "new"; return nil })
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "UpdateContainer") {
		t.Fatalf("UpdateContainer with failing hook = %v; want wrapped hook error naming the op", err)
	}
	if c, err := db.GetContainer(ctx, "c1"); err != nil || c.Image != "old" {
		t.Fatalf("hook error did not abort: %+v, %v", c, err)
	}
	if err := db.CreateSandbox(failCtx, Sandbox{ID: "s1"}); !errors.Is(err, boom) {
		t.Fatalf("CreateSandbox with failing hook = %v", err)
	}
	if _, err := db.GetSandbox(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("aborted create left a record: %v", err)
	}
	if err := db.PutImage(ctx, Image{Name: "i"}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteImage(ctx, "i"); err != nil {
		t.Fatal(err)
	}
	want := []string{"CreateContainer", "UpdateContainer", "CreateSandbox", "PutImage", "DeleteImage"}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, want) {
		t.Fatalf("hook saw %q; want %q", seen, want)
	}
}

func TestCanceledContext(t *testing.T) {
	ctx := t.Context()
	db := openTest(t)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := db.CreateContainer(cctx, Container{ID: "c1"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("CreateContainer with done ctx = %v; want context.Canceled", err)
	}
	if _, err := db.GetContainer(ctx, "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("canceled create wrote: %v", err)
	}
	if _, err := db.ListImages(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("ListImages with done ctx = %v; want context.Canceled", err)
	}
}

// TestUpdateHoldsWriterLock shows why a slow UpdateContainer matters: any
// other write waits for its whole transaction.
func TestUpdateHoldsWriterLock(t *testing.T) {
	ctx := t.Context()
	db := openTest(t)
	if err := db.CreateContainer(ctx, Container{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	updateDone := make(chan error, 1)
	go func() {
		updateDone <- db.UpdateContainer(ctx, "c1", func(c *Container) error {
			close(entered)
			<-release
			return nil
		})
	}()
	<-entered
	createDone := make(chan error, 1)
	go func() { createDone <- db.CreateSandbox(ctx, Sandbox{ID: "s1"}) }()
	select {
	case err := <-createDone:
		t.Fatalf("CreateSandbox finished (%v) while UpdateContainer's fn held the transaction", err)
	case <-time.After(100 * time.Millisecond):
	}
	// Reads are not blocked by a writer in bbolt.
	if _, err := db.GetContainer(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	close(release)
	for _, ch := range []chan error{updateDone, createDone} {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("write did not finish after the update was released")
		}
	}
}

func TestPutImage(t *testing.T) {
	ctx := t.Context()
	db := openTest(t, WithNow(fakeNow()))
	if err := db.PutImage(ctx, Image{Name: "busybox:latest", Target: Descriptor{Digest: "sha256:01"}}); err != nil {
		t.Fatal(err)
	}
	first, err := db.GetImage(ctx, "busybox:latest")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutImage(ctx, Image{Name: "busybox:latest", Target: Descriptor{Digest: "sha256:02"}}); err != nil {
		t.Fatal(err)
	}
	second, err := db.GetImage(ctx, "busybox:latest")
	if err != nil {
		t.Fatal(err)
	}
	if second.Target.Digest != "sha256:02" || !second.CreatedAt.Equal(first.CreatedAt) || !second.UpdatedAt.After(first.UpdatedAt) {
		t.Fatalf("after replace: %+v (first %+v)", second, first)
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if db.Path() != path {
		t.Fatalf("Path() = %q; want %q", db.Path(), path)
	}
	if err := db.CreateContainer(ctx, Container{ID: "c1", Image: "busybox"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if c, err := db.GetContainer(ctx, "c1"); err != nil || c.Image != "busybox" {
		t.Fatalf("after reopen: %+v, %v", c, err)
	}
}

func TestSecondOpenFails(t *testing.T) {
	db := openTest(t)
	start := time.Now()
	second, err := Open(db.Path())
	elapsed := time.Since(start)
	if err == nil {
		second.Close()
		t.Fatal("second Open of an open database succeeded")
	}
	if !errors.Is(err, bolterrors.ErrTimeout) || !strings.Contains(err.Error(), "open metadata database") ||
		!strings.Contains(err.Error(), db.Path()) {
		t.Fatalf("second Open = %v; want a timeout naming the database", err)
	}
	if elapsed > 5*time.Second {
		t.Fatalf("second Open took %v; want about %v", elapsed, openTimeout)
	}
}
