// Package metadata is the bbolt database behind fakecontainerd's
// containers, sandboxes and images, standing in for containerd's metadata
// store (meta.db).
//
// What matters for the incidents is kept: every Update is one bbolt write
// transaction, bbolt allows one writer at a time, and a write transaction
// commits with an fsync and cannot be interrupted once begun. The layout is
// simplified: one bucket per kind under v1/k8s.io/, each record a JSON value
// keyed by id (images: by name).
package metadata

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fakecontainerd/fakecontainerd/store"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

const (
	bucketVersion = "v1"
	// namespace is the containerd namespace the CRI plugin works in.
	namespace        = "k8s.io"
	containersBucket = "containers"
	sandboxesBucket  = "sandboxes"
	imagesBucket     = "images"
)

// openTimeout bounds the wait for bbolt's file lock, so a second server on
// the same root fails fast instead of hanging.
const openTimeout = time.Second

// DB is an open metadata database.
type DB struct {
	bdb        *bbolt.DB
	path       string
	now        func() time.Time
	commitHook func(ctx context.Context, op string) error
	txObserver TxObserver
}

// TxObserver watches bbolt's single writer lock: who holds it and who
// queues for it (incident 2's chain runs through it).
type TxObserver interface {
	// Requesting is called before a write transaction asks for the lock.
	Requesting(ctx context.Context, op string) TxToken
}

// TxToken follows one write transaction.
type TxToken interface {
	Acquired()
	Released()
}

// WithTxObserver reports every write transaction to o.
func WithTxObserver(o TxObserver) Opt {
	return func(db *DB) { db.txObserver = o }
}

// Opt configures Open.
type Opt func(*DB)

// WithNow sets the clock for CreatedAt and UpdatedAt (default time.Now).
func WithNow(now func() time.Time) Opt {
	return func(db *DB) { db.now = now }
}

// WithCommitHook sets a function called inside every write transaction just
// before it commits, with the method name as op ("UpdateContainer"). It is
// the seam for injecting slow or failing commits; an error aborts the
// transaction.
func WithCommitHook(hook func(ctx context.Context, op string) error) Opt {
	return func(db *DB) { db.commitHook = hook }
}

// Open opens or creates the database at path.
func Open(path string, opts ...Opt) (*DB, error) {
	db := &DB{path: path, now: time.Now}
	for _, o := range opts {
		o(db)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open metadata database %q: %w", path, err)
	}
	bdb, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: openTimeout})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("open metadata database %q: %w (is another server using this root?)", path, err)
		}
		return nil, fmt.Errorf("open metadata database %q: %w", path, err)
	}
	err = bdb.Update(func(tx *bbolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists([]byte(bucketVersion))
		if err != nil {
			return err
		}
		ns, err := v1.CreateBucketIfNotExists([]byte(namespace))
		if err != nil {
			return err
		}
		for _, name := range []string{containersBucket, sandboxesBucket, imagesBucket} {
			if _, err := ns.CreateBucketIfNotExists([]byte(name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		bdb.Close()
		return nil, fmt.Errorf("create buckets in metadata database %q: %w", path, err)
	}
	db.bdb = bdb
	return db, nil
}

// Close closes the database, waiting for open transactions.
func (db *DB) Close() error {
	if err := db.bdb.Close(); err != nil {
		return fmt.Errorf("close metadata database %q: %w", db.path, err)
	}
	return nil
}

// Path is the database file.
func (db *DB) Path() string {
	return db.path
}

// bucket returns v1/k8s.io/<name>; Open created it.
func bucket(tx *bbolt.Tx, name string) *bbolt.Bucket {
	return tx.Bucket([]byte(bucketVersion)).Bucket([]byte(namespace)).Bucket([]byte(name))
}

// update runs fn in one write transaction, then the commit hook. ctx is
// checked only before starting: once bbolt has the writer lock the
// transaction runs to the end, as containerd's do.
func (db *DB) update(ctx context.Context, op string, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if db.txObserver != nil {
		t := db.txObserver.Requesting(ctx, op)
		defer t.Released()
		inner := fn
		fn = func(tx *bbolt.Tx) error {
			t.Acquired()
			return inner(tx)
		}
	}
	return db.bdb.Update(func(tx *bbolt.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if db.commitHook != nil {
			if err := db.commitHook(ctx, op); err != nil {
				return fmt.Errorf("%s: commit aborted: %w", op, err)
			}
		}
		return nil
	})
}

// view runs fn in a read transaction.
func (db *DB) view(ctx context.Context, fn func(tx *bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bdb.View(fn)
}

// errNotFound and errExists name the object in the sentinel's wrapping.
func errNotFound(kind, key string) error {
	return fmt.Errorf("%s %q: %w", kind, key, store.ErrNotFound)
}

func errExists(kind, key string) error {
	return fmt.Errorf("%s %q: %w", kind, key, store.ErrAlreadyExists)
}

// dbVersionKey is the key containerd's metadata store keeps its schema
// version under, in the v1 bucket, written at every start
// (metadata/buckets.go bucketKeyDBVersion). fakecontainerd never writes it.
const dbVersionKey = "version"

// IsContainerds reports whether the database at path is a real
// containerd's meta.db: its v1 bucket holds containerd's schema version.
// It opens the file read-only; a file that another process holds open for
// writing (a running containerd, or server) is an error wrapping bbolt's
// timeout.
func IsContainerds(path string) (bool, error) {
	bdb, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: openTimeout, ReadOnly: true})
	if err != nil {
		return false, fmt.Errorf("inspect metadata database %q: %w", path, err)
	}
	defer bdb.Close()
	var theirs bool
	err = bdb.View(func(tx *bbolt.Tx) error {
		if v1 := tx.Bucket([]byte(bucketVersion)); v1 != nil {
			theirs = v1.Get([]byte(dbVersionKey)) != nil
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("inspect metadata database %q: %w", path, err)
	}
	return theirs, nil
}
