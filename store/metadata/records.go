package metadata

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fakecontainerd/fakecontainerd/store"
	"go.etcd.io/bbolt"
)

// record is what the generic helpers need from *Container, *Sandbox and
// *Image.
type record interface {
	key() string
	createdAt() time.Time
	stamp(created, updated time.Time)
}

// kind names a bucket and how its objects appear in ops and errors.
type kind struct {
	bucket string
	noun   string // "container", in error text
	title  string // "Container", in op names given to the commit hook
}

func (k kind) wrap(verb, key string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s %s %q: %w", verb, k.noun, key, err)
}

func put(b *bbolt.Bucket, key string, rec record) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	return b.Put([]byte(key), data)
}

// decode unmarshals one stored value into a fresh record.
func decode[T any, P interface {
	*T
	record
}](data []byte) (P, error) {
	p := P(new(T))
	if err := json.Unmarshal(data, p); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return p, nil
}

func create(ctx context.Context, db *DB, k kind, rec record) error {
	key := rec.key()
	if key == "" {
		return fmt.Errorf("create %s: empty key", k.noun)
	}
	return k.wrap("create", key, db.update(ctx, "Create"+k.title, func(tx *bbolt.Tx) error {
		b := bucket(tx, k.bucket)
		if b.Get([]byte(key)) != nil {
			return store.ErrAlreadyExists
		}
		now := db.now()
		rec.stamp(now, now)
		return put(b, key, rec)
	}))
}

// putRecord creates or replaces, keeping CreatedAt of a replaced record.
func putRecord[T any, P interface {
	*T
	record
}](ctx context.Context, db *DB, k kind, rec P) error {
	key := rec.key()
	if key == "" {
		return fmt.Errorf("put %s: empty key", k.noun)
	}
	return k.wrap("put", key, db.update(ctx, "Put"+k.title, func(tx *bbolt.Tx) error {
		b := bucket(tx, k.bucket)
		now := db.now()
		created := now
		if data := b.Get([]byte(key)); data != nil {
			old, err := decode[T, P](data)
			if err != nil {
				return err
			}
			created = old.createdAt()
		}
		rec.stamp(created, now)
		return put(b, key, rec)
	}))
}

func get[T any, P interface {
	*T
	record
}](ctx context.Context, db *DB, k kind, key string) (T, error) {
	var out T
	err := db.view(ctx, func(tx *bbolt.Tx) error {
		data := bucket(tx, k.bucket).Get([]byte(key))
		if data == nil {
			return store.ErrNotFound
		}
		p, err := decode[T, P](data)
		if err != nil {
			return err
		}
		out = *p
		return nil
	})
	if err != nil {
		var zero T
		return zero, k.wrap("get", key, err)
	}
	return out, nil
}

// updateRecord runs fn on the stored record inside one write transaction,
// so fn's duration is the time the bbolt writer lock is held. An error
// from fn aborts the transaction. fn may not change the key; CreatedAt is
// kept and UpdatedAt set.
func updateRecord[T any, P interface {
	*T
	record
}](ctx context.Context, db *DB, k kind, key string, fn func(P) error) error {
	return k.wrap("update", key, db.update(ctx, "Update"+k.title, func(tx *bbolt.Tx) error {
		b := bucket(tx, k.bucket)
		data := b.Get([]byte(key))
		if data == nil {
			return store.ErrNotFound
		}
		p, err := decode[T, P](data)
		if err != nil {
			return err
		}
		created := p.createdAt()
		if err := fn(p); err != nil {
			return err
		}
		if p.key() != key {
			return fmt.Errorf("key cannot change (to %q)", p.key())
		}
		p.stamp(created, db.now())
		return put(b, key, p)
	}))
}

func deleteRecord(ctx context.Context, db *DB, k kind, key string) error {
	return k.wrap("delete", key, db.update(ctx, "Delete"+k.title, func(tx *bbolt.Tx) error {
		b := bucket(tx, k.bucket)
		if b.Get([]byte(key)) == nil {
			return store.ErrNotFound
		}
		return b.Delete([]byte(key))
	}))
}

// list returns every record of a kind, ordered by key.
func list[T any, P interface {
	*T
	record
}](ctx context.Context, db *DB, k kind) ([]T, error) {
	var out []T
	err := db.view(ctx, func(tx *bbolt.Tx) error {
		return bucket(tx, k.bucket).ForEach(func(key, data []byte) error {
			p, err := decode[T, P](data)
			if err != nil {
				return fmt.Errorf("%s %q: %w", k.noun, key, err)
			}
			out = append(out, *p)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list %ss: %w", k.noun, err)
	}
	return out, nil
}
