package container

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fakecontainerd/fakecontainerd/store"
	"github.com/fakecontainerd/fakecontainerd/store/truncindex"
)

func newTestContainer(t *testing.T, id, sandboxID string, st Status) Container {
	t.Helper()
	root := filepath.Join(t.TempDir(), id)
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	c, err := NewContainer(Metadata{ID: id, Name: "n-" + id, SandboxID: sandboxID}, WithStatus(st, root))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ids(cs []Container) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.ID)
	}
	slices.Sort(out)
	return out
}

func TestNewContainer(t *testing.T) {
	running := newTestContainer(t, "run", "s", Status{CreatedAt: 1, StartedAt: 2})
	exited := newTestContainer(t, "exit", "s", Status{CreatedAt: 1, StartedAt: 2, FinishedAt: 3})
	select {
	case <-running.Stopped():
		t.Fatal("running container's StopCh is closed")
	default:
	}
	select {
	case <-exited.Stopped():
	default:
		t.Fatal("exited container's StopCh is open")
	}
	if running.IsStopSignaledWithTimeout == nil || *running.IsStopSignaledWithTimeout != 0 {
		t.Fatal("IsStopSignaledWithTimeout not initialised to 0")
	}
	if _, err := NewContainer(Metadata{ID: "x"}, WithStatus(Status{}, filepath.Join(t.TempDir(), "missing"))); err == nil {
		t.Fatal("NewContainer with an unwritable root succeeded")
	}
}

func TestStore(t *testing.T) {
	s := NewStore()
	a := newTestContainer(t, "3f2a9c01", "sb1", Status{CreatedAt: 1})
	b := newTestContainer(t, "3f2a9c02", "sb1", Status{CreatedAt: 1})
	c := newTestContainer(t, "77aa", "sb2", Status{CreatedAt: 1})
	for _, x := range []Container{a, b, c} {
		if err := s.Add(x); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Add(a); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("Add duplicate = %v; want ErrAlreadyExists", err)
	}
	if s.Len() != 3 {
		t.Fatalf("Len = %d; want 3", s.Len())
	}

	tests := []struct {
		name     string
		id       string
		want     string
		notFound bool
		amb      bool
	}{
		{name: "exact", id: "3f2a9c02", want: "3f2a9c02"},
		{name: "prefix", id: "77", want: "77aa"},
		{name: "ambiguous", id: "3f2a", amb: true},
		{name: "missing", id: "ffff", notFound: true},
		{name: "empty", id: "", notFound: true},
		{name: "illegal", id: "a b", notFound: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Get(tc.id)
			switch {
			case tc.amb:
				var amb truncindex.ErrAmbiguousPrefix
				if !errors.As(err, &amb) || errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Get(%q) = %v; want only ErrAmbiguousPrefix", tc.id, err)
				}
			case tc.notFound:
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Get(%q) = %v; want ErrNotFound", tc.id, err)
				}
			default:
				if err != nil || got.ID != tc.want {
					t.Fatalf("Get(%q) = %q, %v; want %q", tc.id, got.ID, err, tc.want)
				}
			}
		})
	}

	// A got container shares its status with the stored one.
	got, err := s.Get("77aa")
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Status.Update(func(st Status) (Status, error) { st.Pid = 5; return st, nil }); err != nil {
		t.Fatal(err)
	}
	if c.Status.Get().Pid != 5 {
		t.Fatal("status not shared between copies of a Container")
	}

	// List copies out: changing the slice does not change the store.
	list := s.List()
	if !slices.Equal(ids(list), []string{"3f2a9c01", "3f2a9c02", "77aa"}) {
		t.Fatalf("List = %v", ids(list))
	}
	list[0].ID = "mutated"
	if !slices.Equal(ids(s.List()), []string{"3f2a9c01", "3f2a9c02", "77aa"}) {
		t.Fatal("mutating List's result changed the store")
	}

	if got := ids(s.ListBySandbox("sb1")); !slices.Equal(got, []string{"3f2a9c01", "3f2a9c02"}) {
		t.Fatalf("ListBySandbox(sb1) = %v", got)
	}
	if got := s.ListBySandbox("none"); len(got) != 0 {
		t.Fatalf("ListBySandbox(none) = %v", ids(got))
	}

	s.Delete("3f2a") // ambiguous: nothing happens
	if s.Len() != 3 {
		t.Fatalf("Delete of an ambiguous prefix removed something: Len = %d", s.Len())
	}
	s.Delete("3f2a9c01")
	if _, err := s.Get("3f2a9c01"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Delete = %v; want ErrNotFound", err)
	}
	if got, err := s.Get("3f2a"); err != nil || got.ID != "3f2a9c02" {
		t.Fatalf("Get(3f2a) after deleting its twin = %q, %v", got.ID, err)
	}
	if got := ids(s.ListBySandbox("sb1")); !slices.Equal(got, []string{"3f2a9c02"}) {
		t.Fatalf("ListBySandbox(sb1) after Delete = %v", got)
	}
	s.Delete("3f2a9c02")
	s.Delete("3f2a9c02") // missing: nothing happens
	if got := s.ListBySandbox("sb1"); len(got) != 0 {
		t.Fatalf("ListBySandbox(sb1) after deleting all = %v", ids(got))
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d; want 1", s.Len())
	}
	// The id can be reused once deleted.
	if err := s.Add(a); err != nil {
		t.Fatalf("re-Add after Delete: %v", err)
	}
}

func TestContainerDelete(t *testing.T) {
	root := filepath.Join(t.TempDir(), "c9")
	if err := os.MkdirAll(root, 0o700); err != nil {
		t.Fatal(err)
	}
	c, err := NewContainer(Metadata{ID: "c9"}, WithStatus(Status{CreatedAt: 1}, root))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "status")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("status still exists after Container.Delete: %v", err)
	}
}
