// Package truncindex resolves an ID from its exact value or a unique prefix,
// as containerd's truncindex does for `crictl inspect 3f2a`.
//
// containerd keeps a patricia trie; here a map answers exact lookups in O(1)
// and a sorted slice answers prefix lookups by binary search in O(log n).
// Insert and delete shift the slice (O(n) memmove), which stays in the
// microseconds at the tens of thousands of ids a node can hold.
package truncindex

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

var (
	// ErrEmptyPrefix is returned for an empty id or prefix.
	ErrEmptyPrefix = errors.New("Prefix can't be empty") // containerd's text
	// ErrIllegalChar is returned for an id or prefix with a character
	// outside [a-zA-Z0-9_.-].
	ErrIllegalChar = errors.New("illegal character: IDs may hold only [a-zA-Z0-9_.-]")
	// ErrNotExist is returned when no id matches.
	ErrNotExist = errors.New("ID does not exist")
)

// ErrAmbiguousPrefix is returned when a prefix matches more than one id.
// Match it with errors.As.
type ErrAmbiguousPrefix struct {
	Prefix string
}

func (e ErrAmbiguousPrefix) Error() string {
	return fmt.Sprintf("Multiple IDs found with provided prefix: %s", e.Prefix) // containerd's text
}

// TruncIndex is a set of ids searchable by prefix. It has its own lock, so
// the stores that use it may call it under their own lock (store lock, then
// index lock; never the other way round).
type TruncIndex struct {
	mu     sync.RWMutex
	ids    map[string]struct{}
	sorted []string // the same ids, ascending, for prefix search
}

// New returns an index holding ids. Like containerd's NewTruncIndex it skips
// ids that could not be added (empty, illegal, duplicate).
func New(ids []string) *TruncIndex {
	idx := &TruncIndex{ids: make(map[string]struct{}, len(ids))}
	for _, id := range ids {
		if validate(id) != nil {
			continue
		}
		idx.ids[id] = struct{}{}
	}
	// Sort once rather than insert one by one: O(n log n) instead of O(n²).
	idx.sorted = make([]string, 0, len(idx.ids))
	for id := range idx.ids {
		idx.sorted = append(idx.sorted, id)
	}
	slices.Sort(idx.sorted)
	return idx
}

// Add inserts id.
func (idx *TruncIndex) Add(id string) error {
	if err := validate(id); err != nil {
		return fmt.Errorf("add id %q: %w", id, err)
	}
	idx.mu.Lock()
	defer idx.mu.Unlock()
	if _, ok := idx.ids[id]; ok {
		return fmt.Errorf("id already exists: %q", id)
	}
	idx.ids[id] = struct{}{}
	i, _ := slices.BinarySearch(idx.sorted, id)
	idx.sorted = slices.Insert(idx.sorted, i, id)
	return nil
}

// Delete removes id. It takes the exact id, not a prefix.
func (idx *TruncIndex) Delete(id string) error {
	idx.mu.Lock()
	defer idx.mu.Unlock()
	if _, ok := idx.ids[id]; !ok || id == "" {
		return fmt.Errorf("delete id %q: %w", id, ErrNotExist)
	}
	delete(idx.ids, id)
	if i, found := slices.BinarySearch(idx.sorted, id); found {
		idx.sorted = slices.Delete(idx.sorted, i, i+1)
	}
	return nil
}

// Get returns the id equal to s or, failing that, the only id starting
// with s.
//
// An exact match wins even when s is also a prefix of a longer id; containerd's
// trie would call that ambiguous, but its ids are fixed-length hex so the case
// never arises there, and an exact id should always resolve.
func (idx *TruncIndex) Get(s string) (string, error) {
	if err := validate(s); err != nil {
		return "", err
	}
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	if _, ok := idx.ids[s]; ok {
		return s, nil
	}
	// The ids starting with s are contiguous in sorted order, beginning at
	// the first id >= s.
	i, _ := slices.BinarySearch(idx.sorted, s)
	if i == len(idx.sorted) || !strings.HasPrefix(idx.sorted[i], s) {
		return "", ErrNotExist
	}
	if i+1 < len(idx.sorted) && strings.HasPrefix(idx.sorted[i+1], s) {
		return "", ErrAmbiguousPrefix{Prefix: s}
	}
	return idx.sorted[i], nil
}

// Iterate calls handler for every id in ascending order. It works on a
// snapshot, so handler may call Add or Delete without deadlocking.
func (idx *TruncIndex) Iterate(handler func(id string)) {
	idx.mu.RLock()
	ids := slices.Clone(idx.sorted)
	idx.mu.RUnlock()
	for _, id := range ids {
		handler(id)
	}
}

// validate checks an id or prefix: non-empty, only [a-zA-Z0-9_.-].
func validate(s string) error {
	if s == "" {
		return ErrEmptyPrefix
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '_', c == '.', c == '-':
		default:
			return ErrIllegalChar
		}
	}
	return nil
}
