package truncindex

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"testing"
)

func TestGet(t *testing.T) {
	idx := New([]string{
		"3f2a9c01", "3f2a9c02", "3f2b0000", "abcdef", "abc", "x_y.z-1",
	})
	tests := []struct {
		name    string
		prefix  string
		want    string
		wantErr error
		wantAmb bool
	}{
		{name: "exact", prefix: "3f2a9c01", want: "3f2a9c01"},
		{name: "unique prefix", prefix: "3f2b", want: "3f2b0000"},
		{name: "one char unique", prefix: "x", want: "x_y.z-1"},
		{name: "exact wins over longer id", prefix: "abc", want: "abc"},
		{name: "prefix of exact and longer", prefix: "ab", wantAmb: true},
		{name: "ambiguous", prefix: "3f2a9c", wantAmb: true},
		{name: "ambiguous short", prefix: "3", wantAmb: true},
		{name: "empty", prefix: "", wantErr: ErrEmptyPrefix},
		{name: "space", prefix: "3f2a 9c", wantErr: ErrIllegalChar},
		{name: "slash", prefix: "3f/", wantErr: ErrIllegalChar},
		{name: "missing", prefix: "ffff", wantErr: ErrNotExist},
		{name: "past the end", prefix: "zzz", wantErr: ErrNotExist},
		{name: "longer than an id", prefix: "3f2a9c011", wantErr: ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := idx.Get(tc.prefix)
			switch {
			case tc.wantAmb:
				var amb ErrAmbiguousPrefix
				if !errors.As(err, &amb) || amb.Prefix != tc.prefix {
					t.Fatalf("Get(%q) = %q, %v; want ErrAmbiguousPrefix{%q}", tc.prefix, got, err, tc.prefix)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Get(%q) = %q, %v; want %v", tc.prefix, got, err, tc.wantErr)
				}
			default:
				if err != nil || got != tc.want {
					t.Fatalf("Get(%q) = %q, %v; want %q", tc.prefix, got, err, tc.want)
				}
			}
		})
	}
}

func TestAddDelete(t *testing.T) {
	idx := New(nil)
	tests := []struct {
		name    string
		id      string
		wantErr error
	}{
		{name: "empty", id: "", wantErr: ErrEmptyPrefix},
		{name: "space", id: "a b", wantErr: ErrIllegalChar},
		{name: "colon", id: "sha256:ab", wantErr: ErrIllegalChar},
		{name: "ok", id: "abc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := idx.Add(tc.id)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Add(%q) = %v; want %v", tc.id, err, tc.wantErr)
			}
		})
	}
	if err := idx.Add("abc"); err == nil {
		t.Fatal("Add of a duplicate id succeeded")
	}
	if err := idx.Add("abd"); err != nil {
		t.Fatal(err)
	}
	if _, err := idx.Get("ab"); !errors.As(err, new(ErrAmbiguousPrefix)) {
		t.Fatalf("Get(ab) with abc, abd = %v; want ambiguous", err)
	}
	if err := idx.Delete("abd"); err != nil {
		t.Fatal(err)
	}
	if got, err := idx.Get("ab"); err != nil || got != "abc" {
		t.Fatalf("Get(ab) after deleting abd = %q, %v; want abc", got, err)
	}
	if err := idx.Delete("abd"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("second Delete(abd) = %v; want ErrNotExist", err)
	}
	if err := idx.Delete("ab"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("Delete of a prefix = %v; want ErrNotExist (Delete takes exact ids)", err)
	}
}

func TestNewSkipsInvalid(t *testing.T) {
	idx := New([]string{"b", "", "a b", "a", "b"})
	var got []string
	idx.Iterate(func(id string) { got = append(got, id) })
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Iterate = %q; want [a b]", got)
	}
}

func TestIterateMayMutate(t *testing.T) {
	idx := New([]string{"a", "b", "c"})
	// Deleting from inside the handler would deadlock if Iterate held the lock.
	idx.Iterate(func(id string) {
		if err := idx.Delete(id); err != nil {
			t.Errorf("Delete(%q) inside Iterate: %v", id, err)
		}
	})
	if _, err := idx.Get("a"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("Get(a) after deleting all = %v; want ErrNotExist", err)
	}
}

func randomIDs(t testing.TB, n int) []string {
	ids := make([]string, n)
	buf := make([]byte, 32)
	for i := range ids {
		if _, err := rand.Read(buf); err != nil {
			t.Fatal(err)
		}
		ids[i] = hex.EncodeToString(buf)
	}
	return ids
}

// TestTenThousand checks that prefix resolution stays correct at the scale
// of a busy node, and that both constructors agree.
func TestTenThousand(t *testing.T) {
	ids := randomIDs(t, 10000)
	bulk := New(ids)
	incr := New(nil)
	for _, id := range ids {
		if err := incr.Add(id); err != nil {
			t.Fatal(err)
		}
	}
	for _, idx := range []*TruncIndex{bulk, incr} {
		for _, id := range ids {
			// 16 hex chars are unique among 10k random ids with overwhelming odds.
			if got, err := idx.Get(id[:16]); err != nil || got != id {
				t.Fatalf("Get(%q) = %q, %v; want %q", id[:16], got, err, id)
			}
			if got, err := idx.Get(id); err != nil || got != id {
				t.Fatalf("Get(exact %q) = %q, %v", id, got, err)
			}
		}
	}
	for _, id := range ids[:5000] {
		if err := incr.Delete(id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := incr.Get(ids[0]); !errors.Is(err, ErrNotExist) {
		t.Fatalf("Get(deleted) = %v; want ErrNotExist", err)
	}
	if got, err := incr.Get(ids[9999][:16]); err != nil || got != ids[9999] {
		t.Fatalf("Get(kept) = %q, %v", got, err)
	}
}

func BenchmarkGetPrefix10k(b *testing.B) {
	ids := randomIDs(b, 10000)
	idx := New(ids)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := idx.Get(ids[i%len(ids)][:12]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAddDelete10k(b *testing.B) {
	ids := randomIDs(b, 10001)
	idx := New(ids[:10000])
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := idx.Add(ids[10000]); err != nil {
			b.Fatal(err)
		}
		if err := idx.Delete(ids[10000]); err != nil {
			b.Fatal(err)
		}
	}
}
