package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// kMigration marks a store that flinkpki admin migrate is copying into. The
// copy is written in many transactions, and the source's meta records
// (schema, key check) arrive long before its holders and audit trail: only
// this marker tells a half-filled target from a store. It is written before
// anything is copied, in a transaction of its own, and removed once the
// copy verified (EndMigration); a migration killed in between leaves it,
// and every opener of the store refuses it (ErrMigration).
var kMigration = []byte("migration")

// ErrMigration is returned for a store that a migration into it did not
// finish: it holds part of another store, and only admin migrate, run
// again, may touch it (it clears the partial copy and copies again).
var ErrMigration = errors.New("a migration into this store did not finish")

// migration is the marker's record: the source the copy is from, as the
// operator named it, for the refusal to repeat, and the source's schema,
// which the target's meta/schema takes only when the migration ends.
type migration struct {
	From   string `json:"from"`
	Schema string `json:"schema,omitempty"`
}

// migratingSchema is the target's meta/schema while a migration copies
// into it: a value no flinkpki reads, so that a flinkpki older than the
// marker (which does not know it) refuses the half-filled target too, as a
// store of an unknown schema, instead of serving it.
const migratingSchema = "migrating"

// isMigrationMarker reports whether bucket/key is the migration marker,
// which a migration writes into its target and never copies: it is not
// part of the store being moved.
func isMigrationMarker(bucket, key []byte) bool {
	return bytes.Equal(bucket, bMeta) && bytes.Equal(key, kMigration)
}

// isSchema reports whether bucket/key is meta/schema, which a migration
// sets in its target when it ends (EndMigration), not while it copies.
func isSchema(bucket, key []byte) bool {
	return bytes.Equal(bucket, bMeta) && bytes.Equal(key, kSchema)
}

// markMigration writes the migration marker in tx, naming the source from
// (as --from gave it) and its schema, and sets the target's schema to one
// no flinkpki reads until EndMigration.
func markMigration(tx Tx, from, schema string) error {
	raw, err := json.Marshal(migration{From: from, Schema: schema})
	if err != nil {
		return err
	}
	if err := tx.Put(bMeta, kSchema, []byte(migratingSchema)); err != nil {
		return err
	}
	return tx.Put(bMeta, kMigration, raw)
}

// migrationFrom reports whether tx's store carries the migration marker,
// and the source it names ("" when it names none).
func migrationFrom(tx Tx) (from string, ok bool) {
	raw := tx.Get(bMeta, kMigration)
	if raw == nil {
		return "", false
	}
	return readMarker(raw).From, true
}

// storedSchema is the schema tx's store has, or, while a migration copies
// into it, the source's, which EndMigration will give it.
func storedSchema(tx Tx) string {
	v := string(tx.Get(bMeta, kSchema))
	if m := tx.Get(bMeta, kMigration); m != nil && v == migratingSchema {
		return readMarker(m).Schema
	}
	return v
}

// readMarker decodes a migration marker's record; a field it lacks, or a
// record that does not decode, is "": a marker is a marker, whatever it
// says.
func readMarker(raw []byte) migration {
	var m migration
	_ = json.Unmarshal(raw, &m)
	return m
}

// restartMigration deletes, in tx, every key of a target an interrupted
// migration wrote into, and marks it for the copy from from: the marker is
// rewritten, never deleted, so the target is refused throughout. (A
// bucket's range delete would take the marker with it, and etcd refuses a
// Put into a range deleted in the same transaction: meta, a few keys, is
// cleared key by key.)
func restartMigration(tx Tx, from, schema string) error {
	for _, bk := range Buckets {
		if !bytes.Equal(bk, bMeta) {
			if err := tx.DeletePrefix(bk, nil); err != nil {
				return err
			}
			continue
		}
		var keys [][]byte
		if err := tx.Scan(bk, nil, nil, func(k, _ []byte) (bool, error) {
			if !bytes.Equal(k, kMigration) {
				keys = append(keys, bytes.Clone(k))
			}
			return true, nil
		}); err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.Delete(bk, k); err != nil {
				return err
			}
		}
	}
	return markMigration(tx, from, schema)
}

// EndMigration removes the migration marker from b and gives it the
// source's schema, in one transaction of its own: the copy is then the
// store. Call it only once the copy verified.
func EndMigration(ctx context.Context, b Backend) error {
	return b.Update(ctx, func(tx Tx) error {
		if string(tx.Get(bMeta, kSchema)) == migratingSchema {
			schema := readMarker(tx.Get(bMeta, kMigration)).Schema
			if schema == "" {
				return fmt.Errorf("%w: the migration target's marker records no schema to end with: run flinkpki admin migrate again", ErrCorrupt)
			}
			if err := tx.Put(bMeta, kSchema, []byte(schema)); err != nil {
				return err
			}
		}
		return tx.Delete(bMeta, kMigration)
	})
}

// OpenMigrationTarget is Open for the checks admin migrate runs on its
// copy before EndMigration: it also opens a store that carries the
// migration marker, and never initialises one (a copy without a schema is
// ErrNoStore).
func OpenMigrationTarget(ctx context.Context, b Backend, seal *Sealer) (*Store, error) {
	s := newStore(b, seal)
	if err := check(ctx, b, seal, checkOptions{migration: true}); err != nil {
		return nil, err
	}
	return s, nil
}

// migrationRefusal is check's error for a store that carries the marker.
func migrationRefusal(raw []byte) error {
	what := readMarker(raw).From
	if what == "" {
		what = "another store"
	}
	return fmt.Errorf("%w (it holds part of a copy of %s): run flinkpki admin migrate again with the same --from and --to, which clears it and copies again", ErrMigration, what)
}
