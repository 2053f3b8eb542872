// Package image is the CRI plugin's in-memory image store, mirroring
// containerd's pkg/cri/store/image: images by id, a reference cache
// (repo tag or repo digest -> id), and lookup by truncated id.
package image

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/fakecontainerd/fakecontainerd/store"
	"github.com/fakecontainerd/fakecontainerd/store/truncindex"
)

// idPrefix is the algorithm part of every image id.
const idPrefix = "sha256:"

// Config is the part of the image config the CRI plugin uses.
type Config struct {
	User       string
	Env        []string
	Entrypoint []string
	Cmd        []string
	WorkingDir string
	StopSignal string
	Labels     map[string]string
}

// Image is one image, known by its config digest.
type Image struct {
	// ID is "sha256:<64 hex>".
	ID string
	// References are the repo tags and repo digests that name this image,
	// e.g. "docker.io/library/busybox:latest" and
	// "docker.io/library/busybox@sha256:...": tags first, then digests.
	References []string
	ChainID    string
	Size       int64
	Config     Config
	Pinned     bool
}

// clone copies img so that neither side shares slices or maps.
func (img Image) clone() Image {
	c := img
	c.References = slices.Clone(img.References)
	c.Config.Env = slices.Clone(img.Config.Env)
	c.Config.Entrypoint = slices.Clone(img.Config.Entrypoint)
	c.Config.Cmd = slices.Clone(img.Config.Cmd)
	c.Config.Labels = maps.Clone(img.Config.Labels)
	return c
}

// Store holds all images under one lock.
type Store struct {
	lock     sync.RWMutex
	refCache map[string]string // reference -> image id
	images   map[string]Image  // image id -> image
	idIndex  *truncindex.TruncIndex
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{
		refCache: make(map[string]string),
		images:   make(map[string]Image),
		// The index holds the hex part only: ':' is not an index character,
		// and short ids are typed without "sha256:".
		idIndex: truncindex.New(nil),
	}
}

// Add inserts img, or merges its references into the image with the same
// id. A reference that named another image moves to img, and an image left
// with no reference is removed, as when a tag is re-pulled in containerd.
func (s *Store) Add(img Image) error {
	hex, ok := strings.CutPrefix(img.ID, idPrefix)
	if !ok || !isHex64(hex) {
		return fmt.Errorf("add image %q: id must be %s<64 lowercase hex>", img.ID, idPrefix)
	}
	img = img.clone()
	s.lock.Lock()
	defer s.lock.Unlock()
	existing, exists := s.images[img.ID]
	if !exists {
		// Index first: it is the only step that can fail, so nothing has
		// changed if it does.
		if err := s.idIndex.Add(hex); err != nil {
			return fmt.Errorf("index image %q: %w", img.ID, err)
		}
	}
	for _, ref := range img.References {
		if old, ok := s.refCache[ref]; ok && old != img.ID {
			s.dropReference(old, ref)
		}
		s.refCache[ref] = img.ID
	}
	if exists {
		// containerd keeps the stored image and merges only the names.
		existing.References = sortReferences(append(existing.References, img.References...))
		existing.Pinned = existing.Pinned || img.Pinned
		s.images[img.ID] = existing
		return nil
	}
	img.References = sortReferences(img.References)
	s.images[img.ID] = img
	return nil
}

// Resolve returns the id of the image ref names.
func (s *Store) Resolve(ref string) (string, error) {
	s.lock.RLock()
	defer s.lock.RUnlock()
	id, ok := s.refCache[ref]
	if !ok {
		return "", store.ErrNotFound
	}
	return id, nil
}

// Get returns the image with the full id, or whose hex starts with
// idOrPrefix ("sha256:" optional). A prefix matching several images gives an
// error wrapping truncindex.ErrAmbiguousPrefix. As in containerd, the
// errors do not name the image; the callers' messages do.
func (s *Store) Get(idOrPrefix string) (Image, error) {
	hex := strings.TrimPrefix(idOrPrefix, idPrefix)
	s.lock.RLock()
	defer s.lock.RUnlock()
	full, err := s.idIndex.Get(hex)
	if err != nil {
		if errors.As(err, new(truncindex.ErrAmbiguousPrefix)) {
			return Image{}, err
		}
		return Image{}, store.ErrNotFound
	}
	img, ok := s.images[idPrefix+full]
	if !ok {
		return Image{}, store.ErrNotFound
	}
	return img.clone(), nil
}

// List returns every image, ordered by id.
func (s *Store) List() []Image {
	s.lock.RLock()
	defer s.lock.RUnlock()
	out := make([]Image, 0, len(s.images))
	for _, img := range s.images {
		out = append(out, img.clone())
	}
	slices.SortFunc(out, func(a, b Image) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Delete removes the image with the full id id and all its references.
// A missing id is not an error.
func (s *Store) Delete(id string) {
	s.lock.Lock()
	defer s.lock.Unlock()
	img, ok := s.images[id]
	if !ok {
		return
	}
	for _, ref := range img.References {
		delete(s.refCache, ref)
	}
	s.removeImage(id)
}

// RemoveReference removes one reference; its image goes too if that was
// its last. A missing reference is not an error.
func (s *Store) RemoveReference(ref string) {
	s.lock.Lock()
	defer s.lock.Unlock()
	id, ok := s.refCache[ref]
	if !ok {
		return
	}
	delete(s.refCache, ref)
	s.dropReference(id, ref)
}

// dropReference takes ref off image id, removing the image when no
// reference is left. It leaves refCache alone. The caller holds s.lock.
func (s *Store) dropReference(id, ref string) {
	img, ok := s.images[id]
	if !ok {
		return
	}
	refs := make([]string, 0, len(img.References))
	for _, r := range img.References {
		if r != ref {
			refs = append(refs, r)
		}
	}
	if len(refs) == 0 {
		s.removeImage(id)
		return
	}
	img.References = refs
	s.images[id] = img
}

// removeImage drops image id from the map and the index. The caller holds
// s.lock.
func (s *Store) removeImage(id string) {
	delete(s.images, id)
	// Every stored id is in the index: Add indexes before inserting.
	_ = s.idIndex.Delete(strings.TrimPrefix(id, idPrefix))
}

// sortReferences dedups refs and orders them tags first, then digests, so
// that RepoTags and RepoDigests come out stable.
func sortReferences(refs []string) []string {
	slices.SortFunc(refs, func(a, b string) int {
		ad, bd := strings.Contains(a, "@"), strings.Contains(b, "@")
		if ad != bd {
			if ad {
				return 1
			}
			return -1
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(refs)
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
