// Package store persists flinkpki's state: clusters, CA lineages, holders,
// enrollment and administrator tokens, and the audit trail.
//
// The package owns the database. Backends (bbolt today, etcd for HA later)
// implement the small Backend and Tx interfaces: a transactional
// bucket/key/value store. Typed records, their encoding, the sealing of CA
// private keys and the audit chain live here once, so every backend stores
// the same bytes and callers never change when the backend does.
package store

import (
	"context"
	"errors"
	"io"
)

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrNotFound means the record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means a record with the same key already exists.
	ErrExists = errors.New("already exists")
	// ErrWrongKEK means the key-encryption key does not open this store.
	ErrWrongKEK = errors.New("the key-encryption key does not match this store")
	// ErrNoStore means a backend holds no flinkpki store: no server ever
	// opened it.
	ErrNoStore = errors.New("no flinkpki store")
	// ErrSchema means the store was written by an incompatible version.
	ErrSchema = errors.New("unsupported store schema version")
	// ErrCorrupt means a record could not be decoded.
	ErrCorrupt = errors.New("store record is corrupt")
	// ErrUnavailable means the backend cannot be reached right now; retry.
	ErrUnavailable = errors.New("store unavailable")
	// ErrContended means a transaction lost the race against other
	// writers more often than its backend retries (etcd: writes to what it
	// read, such as issuances into the cluster whose holders a rotation
	// step reads). Errors carrying it also carry ErrUnavailable.
	ErrContended = errors.New("transaction kept conflicting with concurrent writers")
	// ErrChanged reports that a record is no longer what an earlier read
	// saw (Tx.Expect); the caller reads again and decides again.
	ErrChanged = errors.New("the record changed since it was read")
)

// Tx is one backend transaction over named buckets. Values returned by Get
// and passed to Scan callbacks are only valid inside the transaction; the
// typed layer copies what it keeps.
type Tx interface {
	Get(bucket, key []byte) []byte
	Put(bucket, key, value []byte) error
	Delete(bucket, key []byte) error
	// DeletePrefix deletes every key of bucket that starts with prefix: on
	// etcd one range operation, however many keys (a cluster's holders can
	// be thousands, beyond any --max-txn-ops). Later in the same
	// transaction, etcd refuses a Put into that range.
	DeletePrefix(bucket, prefix []byte) error
	// Scan calls fn for each key with the given prefix, in key order,
	// starting at start (inclusive) when start is not nil, until fn returns
	// false or an error.
	Scan(bucket, prefix, start []byte, fn func(k, v []byte) (bool, error)) error
	// Mark returns an opaque mark of key's state (absent included), read
	// in a read-only transaction, for Expect in a later one: the value on
	// bbolt, the key's revision on etcd.
	Mark(bucket, key []byte) []byte
	// Expect fails with ErrChanged unless key is still as mark says at
	// this point of the transaction, and so at its commit. It lets a check
	// made in an earlier read-only transaction hold at the commit without
	// reading again: in an etcd group commit it is a comparison in the
	// commit itself (no round trip), and a failed commit learns in the same
	// round trip which expectations no longer hold.
	Expect(bucket, key, mark []byte) error
}

// Backend is a transactional key/value engine.
type Backend interface {
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction, committed when fn
	// returns nil and rolled back on error or panic.
	Update(ctx context.Context, fn func(Tx) error) error
	// Batch is Update with group commit: many concurrent callers share one
	// commit. fn may run more than once, so it must not change state
	// outside the transaction.
	Batch(ctx context.Context, fn func(Tx) error) error
	// Backup writes a consistent snapshot of the whole database to w.
	Backup(ctx context.Context, w io.Writer) (int64, error)
	Close() error
}

// WriteLimiter is implemented by backends whose transactions hold a
// bounded number of writes (etcd's --max-txn-ops). Work over many records
// (RotateKEK re-encrypting CA keys, PruneAudit removing archived entries)
// goes in transactions of at most MaxWritesPerTxn writes.
type WriteLimiter interface {
	MaxWritesPerTxn() int
}

// LatestReader is implemented by transactions that read at a snapshot
// (etcd): GetLatest reads a key as it is now, and the commit still
// requires it unchanged. For a key every writer changes (the audit head),
// so that a long transaction does not find it changed at its commit.
type LatestReader interface {
	GetLatest(bucket, key []byte) []byte
}

// Rewriter is implemented by backends whose file keeps what a change
// replaced (bbolt's freed pages) and can instead make the change on a copy
// of themselves and put a copy holding only live data in their place.
// RotateKEK uses it, so that no CA key sealed under the old
// key-encryption key is left in the file. Rewrite runs fn on the copy:
// when fn fails, nothing changes.
type Rewriter interface {
	Rewrite(ctx context.Context, fn func(Backend) error) error
}

// ErrReplaced is a Rewriter's error when the rewritten copy is in place
// (fn's change is made) but a step after that failed.
var ErrReplaced = errors.New("the rewritten database is in place")

// HistoryDropper is implemented by backends that keep earlier values of
// every key (etcd's revisions): DropHistory removes them from the
// backend's files, not only from its keyspace.
type HistoryDropper interface {
	DropHistory(ctx context.Context) error
}

// DropHistory drops the backend's history of earlier values
// (HistoryDropper), and reports whether it keeps one.
func (s *Store) DropHistory(ctx context.Context) (bool, error) {
	hd, ok := s.b.(HistoryDropper)
	if !ok {
		return false, nil
	}
	return true, hd.DropHistory(ctx)
}

// MaxWritesPerTxn is the backend's bound on the writes of one transaction
// (WriteLimiter), 0 when it has none.
func (s *Store) MaxWritesPerTxn() int {
	if wl, ok := s.b.(WriteLimiter); ok {
		return wl.MaxWritesPerTxn()
	}
	return 0
}

type attemptsKey struct{}

// WithAttempts bounds, for the Update calls made with the returned
// context, how often a backend that commits optimistically (etcd) runs fn
// while its commit keeps losing to other writers, to n if that is fewer
// than its own bound; the call then fails with ErrContended. It is for a
// caller with a better answer to contention than running again: a
// rotation step that reads thousands of holders holds the issuances that
// change them back instead. A backend whose commits never lose (bbolt)
// ignores it.
func WithAttempts(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, attemptsKey{}, n)
}

// Attempts is the bound WithAttempts put on ctx, 0 for none.
func Attempts(ctx context.Context) int {
	n, _ := ctx.Value(attemptsKey{}).(int)
	return n
}
