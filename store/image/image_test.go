package image

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/fakecontainerd/fakecontainerd/store"
	"github.com/fakecontainerd/fakecontainerd/store/truncindex"
)

// id returns a valid image id whose hex starts with prefix.
func id(prefix string) string {
	return idPrefix + prefix + strings.Repeat("0", 64-len(prefix))
}

const (
	busyboxTag    = "docker.io/library/busybox:latest"
	busyboxOldTag = "docker.io/library/busybox:1.36"
	busyboxDigest = "docker.io/library/busybox@sha256:d07e1c0a7c6fe8e6f5a4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e"
	pauseTag      = "registry.k8s.io/pause:3.9"
)

func mustAdd(t *testing.T, s *Store, img Image) {
	t.Helper()
	if err := s.Add(img); err != nil {
		t.Fatal(err)
	}
}

func refsOf(t *testing.T, s *Store, imgID string) []string {
	t.Helper()
	img, err := s.Get(imgID)
	if err != nil {
		t.Fatalf("Get(%q): %v", imgID, err)
	}
	return img.References
}

func TestAddMergesReferences(t *testing.T) {
	s := NewStore()
	a := id("aa")
	mustAdd(t, s, Image{ID: a, References: []string{busyboxDigest, busyboxTag}, Size: 10})
	mustAdd(t, s, Image{ID: a, References: []string{busyboxOldTag, busyboxTag}, Size: 99, Pinned: true})
	img, err := s.Get(a)
	if err != nil {
		t.Fatal(err)
	}
	// Tags before digests, each sorted, no duplicates.
	want := []string{busyboxOldTag, busyboxTag, busyboxDigest}
	if !slices.Equal(img.References, want) {
		t.Fatalf("References = %q; want %q", img.References, want)
	}
	if !img.Pinned || img.Size != 10 {
		t.Fatalf("merged image = %+v; want Pinned and the first Size kept", img)
	}
	for _, ref := range want {
		if got, err := s.Resolve(ref); err != nil || got != a {
			t.Fatalf("Resolve(%q) = %q, %v; want %q", ref, got, err, a)
		}
	}
}

func TestAddMovesReference(t *testing.T) {
	s := NewStore()
	oldID, newID, keptID := id("01"), id("02"), id("03")
	mustAdd(t, s, Image{ID: oldID, References: []string{busyboxTag}})
	mustAdd(t, s, Image{ID: keptID, References: []string{busyboxOldTag, pauseTag}})
	// busybox:latest now points at a new image: the old one loses its only
	// name and goes; keptID keeps pause:3.9.
	mustAdd(t, s, Image{ID: newID, References: []string{busyboxTag, busyboxOldTag}})
	if got, err := s.Resolve(busyboxTag); err != nil || got != newID {
		t.Fatalf("Resolve(%q) = %q, %v; want %q", busyboxTag, got, err, newID)
	}
	if _, err := s.Get(oldID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(old) = %v; want ErrNotFound (no references left)", err)
	}
	if got := refsOf(t, s, keptID); !slices.Equal(got, []string{pauseTag}) {
		t.Fatalf("kept image refs = %q; want only %q", got, pauseTag)
	}
	if got := refsOf(t, s, newID); !slices.Equal(got, []string{busyboxOldTag, busyboxTag}) {
		t.Fatalf("new image refs = %q", got)
	}
	var ids []string
	for _, img := range s.List() {
		ids = append(ids, img.ID)
	}
	if !slices.Equal(ids, []string{newID, keptID}) {
		t.Fatalf("List ids = %q; want [%s %s] in order", ids, newID, keptID)
	}
}

func TestAddRejectsBadID(t *testing.T) {
	s := NewStore()
	for _, bad := range []string{"", "abc", "sha256:abc", "sha512:" + strings.Repeat("a", 64), idPrefix + strings.Repeat("A", 64)} {
		if err := s.Add(Image{ID: bad, References: []string{"x"}}); err == nil {
			t.Errorf("Add(%q) succeeded", bad)
		}
	}
	if _, err := s.Resolve("x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a rejected Add left a reference behind: %v", err)
	}
}

func TestGet(t *testing.T) {
	s := NewStore()
	mustAdd(t, s, Image{ID: id("abc1"), References: []string{"r1"}})
	mustAdd(t, s, Image{ID: id("abc2"), References: []string{"r2"}})
	mustAdd(t, s, Image{ID: id("ff"), References: []string{"r3"}})
	tests := []struct {
		name     string
		in       string
		want     string
		notFound bool
		amb      bool
	}{
		{name: "full id", in: id("abc1"), want: id("abc1")},
		{name: "full hex", in: strings.TrimPrefix(id("abc2"), idPrefix), want: id("abc2")},
		{name: "short", in: "ff", want: id("ff")},
		{name: "short with algorithm", in: "sha256:abc2", want: id("abc2")},
		{name: "ambiguous", in: "abc", amb: true},
		{name: "missing", in: "0123", notFound: true},
		{name: "algorithm only", in: "sha256:", notFound: true},
		{name: "empty", in: "", notFound: true},
		{name: "a reference is not an id", in: "r1", notFound: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Get(tc.in)
			switch {
			case tc.amb:
				if !errors.As(err, new(truncindex.ErrAmbiguousPrefix)) {
					t.Fatalf("Get(%q) = %v; want ErrAmbiguousPrefix", tc.in, err)
				}
			case tc.notFound:
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Get(%q) = %v; want ErrNotFound", tc.in, err)
				}
			default:
				if err != nil || got.ID != tc.want {
					t.Fatalf("Get(%q) = %q, %v; want %q", tc.in, got.ID, err, tc.want)
				}
			}
		})
	}
}

func TestGetReturnsCopy(t *testing.T) {
	s := NewStore()
	a := id("aa")
	mustAdd(t, s, Image{ID: a, References: []string{"r1"}, Config: Config{Env: []string{"A=1"}, Labels: map[string]string{"k": "v"}}})
	img, err := s.Get(a)
	if err != nil {
		t.Fatal(err)
	}
	img.References[0] = "mutated"
	img.Config.Env[0] = "mutated"
	img.Config.Labels["k"] = "mutated"
	again, err := s.Get(a)
	if err != nil {
		t.Fatal(err)
	}
	if again.References[0] != "r1" || again.Config.Env[0] != "A=1" || again.Config.Labels["k"] != "v" {
		t.Fatalf("mutating a Get result changed the store: %+v", again)
	}
}

func TestDeleteAndRemoveReference(t *testing.T) {
	s := NewStore()
	a, b := id("aa"), id("bb")
	mustAdd(t, s, Image{ID: a, References: []string{busyboxTag, busyboxDigest}})
	mustAdd(t, s, Image{ID: b, References: []string{pauseTag}})

	s.RemoveReference(busyboxTag)
	if _, err := s.Resolve(busyboxTag); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Resolve(removed ref) = %v; want ErrNotFound", err)
	}
	if got := refsOf(t, s, a); !slices.Equal(got, []string{busyboxDigest}) {
		t.Fatalf("refs after RemoveReference = %q", got)
	}
	s.RemoveReference(busyboxDigest)
	if _, err := s.Get(a); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after removing last ref = %v; want ErrNotFound", err)
	}
	s.RemoveReference("never-added") // no-op

	s.Delete(b)
	if _, err := s.Get(b); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Delete = %v; want ErrNotFound", err)
	}
	if _, err := s.Resolve(pauseTag); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Resolve after Delete = %v; want ErrNotFound", err)
	}
	s.Delete(b) // no-op
	if n := len(s.List()); n != 0 {
		t.Fatalf("List after deleting all = %d images", n)
	}
	// The id is free again.
	mustAdd(t, s, Image{ID: b, References: []string{pauseTag}})
	if got, err := s.Get("bb"); err != nil || got.ID != b {
		t.Fatalf("Get(bb) after re-Add = %q, %v", got.ID, err)
	}
}
