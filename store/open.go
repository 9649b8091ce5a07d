package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// SchemaVersion is the newest record layout this code reads and writes. A
// store starts at baseSchema and moves to 2 the first time it holds what a
// flinkpki that reads 1 alone would misread: an audit trail whose oldest
// entries were archived and removed (it would call the trail broken) or a
// Kubernetes binding with roles (it would ignore them, and drop them at its
// next write of the cluster). It moves to 3 the first time it holds an
// administrator token with an expiry, which a flinkpki that reads 2 at most
// would take for ever, or a revoked one, whose made tokens it would take.
// It moves to 4 the first time it holds an enrollment token that records
// the administrator tokens it was made through: a flinkpki that reads 3 at
// most would prune the tombstones that refuse it, and drop the chain at the
// token's next use. Such a flinkpki then refuses the store, on a
// downgrade, instead.
const SchemaVersion = 4

// baseSchema is the layout a new store starts at: what every flinkpki since
// the first reads.
const baseSchema = 1

var (
	bMeta        = []byte("meta")
	bClusters    = []byte("clusters")
	bCAs         = []byte("cas")
	bHolders     = []byte("holders")
	bTokens      = []byte("tokens")
	bAdminTokens = []byte("admin_tokens")
	bAudit       = []byte("audit")

	// Buckets lists every bucket; backends create them on first open.
	Buckets = [][]byte{bMeta, bClusters, bCAs, bHolders, bTokens, bAdminTokens, bAudit}
	// AppendOnly lists the buckets whose keys only ever grow (the audit
	// trail's sequence numbers). A B+tree backend can fill their pages
	// before it splits them: half-full pages are room for inserts that
	// never come.
	AppendOnly = [][]byte{bAudit}
	// MostlyInOrder lists the buckets whose new keys mostly land next to
	// the last ones: a cluster's holders are its pods, and Flink names a
	// native Kubernetes cluster's TaskManager pods in order
	// (<cluster-id>-taskmanager-<attempt>-<n>). A B+tree backend can fill
	// their pages fuller before it splits them, short of what suits keys
	// in random order (a standalone cluster's Deployment pods).
	MostlyInOrder = [][]byte{bHolders}

	kSchema    = []byte("schema")
	kKEKCheck  = []byte("kek_check")
	kAuditHead = []byte("audit_head")
	// kAuditArchived marks where the trail starts after an archive.
	kAuditArchived = []byte("audit_archived")
)

const kekCheckPlaintext = "flinkpki key-encryption key check"

// Store is the typed view of a Backend.
type Store struct {
	b    Backend
	seal *Sealer

	tokens      *decodeCache[Token]
	clusters    *decodeCache[Cluster]
	adminTokens *decodeCache[AdminToken]
}

// newStore is a Store on b sealed with seal, its decode caches empty.
func newStore(b Backend, seal *Sealer) *Store {
	return &Store{b: b, seal: seal, tokens: newDecodeCache(cloneToken), clusters: newDecodeCache(cloneCluster), adminTokens: newDecodeCache(cloneAdminToken)}
}

// Open checks the schema version and the key-encryption key, and records
// both on a new store. A wrong key fails with ErrWrongKEK before anything
// is written.
func Open(ctx context.Context, b Backend, seal *Sealer) (*Store, error) {
	s := newStore(b, seal)
	err := Check(ctx, b, seal)
	if !errors.Is(err, ErrNoStore) {
		return s, err
	}
	check, err := seal.Seal([]byte(kekCheckPlaintext), "kek-check")
	if err != nil {
		return nil, err
	}
	won := false
	err = b.Update(ctx, func(tx Tx) error {
		won = false
		if m := tx.Get(bMeta, kMigration); m != nil {
			return migrationRefusal(m) // admin migrate began copying into it
		}
		if tx.Get(bMeta, kSchema) != nil {
			return nil // another replica initialised it first: checked below
		}
		if err := tx.Put(bMeta, kSchema, []byte(strconv.Itoa(baseSchema))); err != nil {
			return err
		}
		won = true
		return tx.Put(bMeta, kKEKCheck, check)
	})
	if err == nil && !won {
		// The store another replica made holds its key-encryption key's
		// check: this replica must have the same key, or every CA key it
		// sealed would open nowhere else.
		err = Check(ctx, b, seal)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Check runs Open's checks and writes nothing: ErrNoStore when no server
// ever opened b, ErrSchema for another schema version, ErrWrongKEK when
// seal does not open the store (a nil seal skips that check), and
// ErrMigration for a store a migration into did not finish, so that an
// offline tool can refuse a wrong source before it copies anything.
func Check(ctx context.Context, b Backend, seal *Sealer) error {
	return check(ctx, b, seal, checkOptions{})
}

// checkOptions are the unfinished operations a check lets pass.
type checkOptions struct {
	rotation  bool // a key-encryption key rotation (OpenForKEKRotation)
	migration bool // a migration into the store (OpenMigrationTarget)
}

// check is Check, letting the unfinished operations in allow pass. A
// store a migration is copying into is refused first, whatever else it
// holds: its meta records may be there before the rest, or not yet.
func check(ctx context.Context, b Backend, seal *Sealer, allow checkOptions) error {
	return b.View(ctx, func(tx Tx) error {
		if m := tx.Get(bMeta, kMigration); m != nil && !allow.migration {
			return migrationRefusal(m)
		}
		if tx.Get(bMeta, kSchema) == nil {
			return ErrNoStore
		}
		v := storedSchema(tx)
		n, err := strconv.Atoi(v)
		if err != nil || n < baseSchema || n > SchemaVersion {
			return fmt.Errorf("%w: store has schema %q, this flinkpki reads %d to %d: run a flinkpki as new as the one that last wrote it", ErrSchema, v, baseSchema, SchemaVersion)
		}
		if seal == nil {
			return nil
		}
		if _, err := seal.Open(tx.Get(bMeta, kKEKCheck), "kek-check"); err != nil {
			// The key an interrupted rotation was moving to: the check
			// moves to it last. Its holder followed rotate-kek's advice
			// to start with it, and must finish the rotation instead.
			if m, ok := rotationMarker(tx); ok && m.To == seal.ID() && !allow.rotation {
				return fmt.Errorf("%w: this is the key it was moving the store to, but some CA keys are under the old key still: run flinkpki admin rotate-kek again with the same --kek-file (the old key) and --new-kek-file (this one) to finish it before starting a server", ErrKEKRotation)
			}
			return fmt.Errorf("%w: start the server with the key-encryption key this store was created with (--kek-file), or, after admin rotate-kek, with that command's --new-kek-file", ErrWrongKEK)
		}
		if tx.Get(bMeta, kKEKRotation) != nil && !allow.rotation {
			return fmt.Errorf("%w: some CA keys are under the new key already: run flinkpki admin rotate-kek again with the same --kek-file and --new-kek-file before starting a server", ErrKEKRotation)
		}
		return nil
	})
}

// Close closes the backend.
func (s *Store) Close() error { return s.b.Close() }

// Backup writes a consistent snapshot to w.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) { return s.b.Backup(ctx, w) }

// View runs fn in a read-only transaction.
func (s *Store) View(ctx context.Context, fn func(*Txn) error) error {
	return s.b.View(ctx, func(tx Tx) error { return fn(&Txn{tx: tx, s: s}) })
}

// Update runs fn as one logical change: all of it is committed or none.
func (s *Store) Update(ctx context.Context, fn func(*Txn) error) error {
	return s.b.Update(ctx, func(tx Tx) error { return fn(&Txn{tx: tx, s: s}) })
}

// Batch is Update with group commit, for the issuance hot path. fn may run
// more than once and must not change state outside the transaction.
func (s *Store) Batch(ctx context.Context, fn func(*Txn) error) error {
	return s.b.Batch(ctx, func(tx Tx) error { return fn(&Txn{tx: tx, s: s}) })
}

func caAAD(cluster, id string) string { return "ca-key/" + cluster + "/" + id }

// Txn is one transaction with typed accessors.
type Txn struct {
	tx Tx
	s  *Store
}

func (t *Txn) get(bucket []byte, key string, v any) error {
	raw := t.tx.Get(bucket, []byte(key))
	if raw == nil {
		return ErrNotFound
	}
	return decode(bucket, key, raw, v)
}

// decode decodes one stored record; a record that does not decode is
// ErrCorrupt.
func decode(bucket []byte, key string, raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %s/%s: %v", ErrCorrupt, bucket, key, err)
	}
	return nil
}

func (t *Txn) put(bucket []byte, key string, v any) error {
	_, err := t.write(bucket, key, v)
	return err
}

// write encodes and writes one record and returns the bytes written.
func (t *Txn) write(bucket []byte, key string, v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return raw, t.tx.Put(bucket, []byte(key), raw)
}

// scan calls fn for the raw records of bucket under prefix, in key order,
// from start on ("": the first).
func (t *Txn) scan(bucket []byte, prefix, start string, fn func(k, v []byte) (bool, error)) error {
	var st []byte
	if start != "" {
		st = []byte(start)
	}
	return t.tx.Scan(bucket, []byte(prefix), st, fn)
}

func scanJSON[T any](t *Txn, bucket []byte, prefix, start string, fn func(*T) (bool, error)) error {
	return t.scan(bucket, prefix, start, func(k, v []byte) (bool, error) {
		var rec T
		if err := decode(bucket, string(k), v, &rec); err != nil {
			return false, err
		}
		return fn(&rec)
	})
}
