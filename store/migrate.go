package store

import (
	"bytes"
	"context"
	"fmt"
	"iter"
	"strings"
	"time"
)

// copyChunk is how many keys one write transaction of Copy carries. It
// stays below etcd's default --max-txn-ops of 128.
const copyChunk = 100

// CopyOptions are Copy's optional parts.
type CopyOptions struct {
	// From names the source as the operator gave it (--from). The
	// target's migration marker holds it, for the refusal of an
	// unfinished target to name.
	From string
	// Progress, when not nil, is called after each chunk with the bucket
	// and the keys copied of it so far.
	Progress func(bucket string, keys int)
	// Restarted, when not nil, hears that the target held the partial
	// copy of an interrupted migration (from the source prevFrom, "" when
	// the marker named none), which Copy cleared before copying again.
	Restarted func(prevFrom string)
}

// Copy copies every bucket and key of from into to, byte for byte, then
// checks with Verify that both hold the same data. It backs
// `flinkpki admin migrate --from bolt:PATH --to etcd:ENDPOINTS` (and the
// way back), and returns the number of keys per bucket.
//
// The source is read at one snapshot. The target must be empty, and is
// written in chunks of copyChunk keys, so run it with the servers stopped.
// The transaction that finds it empty marks it (markMigration)
// before anything is copied, and the marker stays when Copy returns: every
// opener of the store refuses it (ErrMigration) until the caller's
// own checks of the copy passed and it calls EndMigration. So a
// migration killed part of the way leaves a target no server serves. A
// target that carries the marker is such an interrupted migration's
// partial copy: the first transaction clears it instead, keeping the
// marker, and Copy copies again. A target without the marker that holds
// data is refused (ErrExists).
//
// A copy that fails after it began writing clears the target again
// (ClearAfter), marker included, so a retry finds it empty; the error says
// if that failed too, and then the marker stays.
func Copy(ctx context.Context, from, to Backend, opts CopyOptions) (map[string]int, error) {
	var schema string
	if err := from.View(ctx, func(tx Tx) error {
		schema = string(tx.Get(bMeta, kSchema))
		return nil
	}); err != nil {
		return nil, err
	}
	if schema == "" || schema == migratingSchema {
		return nil, fmt.Errorf("%w: the migration source has no schema of its own (%q): copy from a store a server opened", ErrNoStore, schema)
	}
	restarted, prevFrom := false, ""
	if err := to.Update(ctx, func(tx Tx) error {
		if prevFrom, restarted = migrationFrom(tx); restarted {
			return restartMigration(tx, opts.From, schema)
		}
		for _, bk := range Buckets {
			empty := true
			err := tx.Scan(bk, nil, nil, func(_, _ []byte) (bool, error) {
				empty = false
				return false, nil
			})
			if err != nil {
				return err
			}
			if !empty {
				return fmt.Errorf("%w: the migration target is not empty (bucket %q has keys): %s", ErrExists, bk, NotEmptyAdvice)
			}
		}
		return markMigration(tx, opts.From, schema)
	}); err != nil {
		return nil, err
	}
	if restarted && opts.Restarted != nil {
		opts.Restarted(prevFrom)
	}
	err := from.View(ctx, func(src Tx) error {
		for _, bk := range Buckets {
			if err := copyBucket(ctx, src, to, bk, opts.Progress); err != nil {
				return fmt.Errorf("migrate bucket %q: %w", bk, err)
			}
		}
		return nil
	})
	var counts map[string]int
	if err == nil {
		counts, err = Verify(ctx, from, to)
	}
	if err != nil {
		return nil, ClearAfter(ctx, to, err)
	}
	return counts, nil
}

// NotEmptyAdvice ends Copy's refusal of a target that holds data. A caller
// whose target is a bbolt file replaces it: --etcd-prefix means nothing there.
const NotEmptyAdvice = "migrate into an empty store or a new --etcd-prefix"

// ClearAfter clears a target that a failed migration wrote into (within
// a minute, whatever ended ctx: a signal may be what failed it), and
// returns err, saying whether the target is empty again.
func ClearAfter(ctx context.Context, to Backend, err error) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if cerr := Clear(cctx, to); cerr != nil {
		return fmt.Errorf("%w; clearing the partial target failed too (%v): empty it (on etcd, or use a new --etcd-prefix) before trying again", err, cerr)
	}
	return fmt.Errorf("%w; the target was cleared again", err)
}

// Clear deletes every key of every bucket of b: what a failed migration
// wrote into a target that was empty before it.
func Clear(ctx context.Context, b Backend) error {
	return b.Update(ctx, func(tx Tx) error {
		for _, bk := range Buckets {
			if err := tx.DeletePrefix(bk, nil); err != nil {
				return err
			}
		}
		return nil
	})
}

func copyBucket(ctx context.Context, src Tx, to Backend, bucket []byte, progress func(string, int)) error {
	type kv struct{ k, v []byte }
	var chunk []kv
	copied := 0
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		err := to.Update(ctx, func(tx Tx) error {
			for _, e := range chunk {
				if err := tx.Put(bucket, e.k, e.v); err != nil {
					return err
				}
			}
			return nil
		})
		copied += len(chunk)
		chunk = chunk[:0]
		if err == nil && progress != nil {
			progress(string(bucket), copied)
		}
		return err
	}
	err := src.Scan(bucket, nil, nil, func(k, v []byte) (bool, error) {
		if isMigrationMarker(bucket, k) || isSchema(bucket, k) {
			return true, nil // the target carries its own; the schema comes last (EndMigration)
		}
		chunk = append(chunk, kv{bytes.Clone(k), bytes.Clone(v)})
		if len(chunk) == copyChunk {
			return true, flush()
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// Verify compares two stores bucket by bucket and key by key, and returns
// the number of keys per bucket when they hold the same bytes. The first
// difference is an error naming the bucket and key. The migration marker
// (markMigration) is no part of the store being moved: Verify skips
// it on both sides. A target that a migration is still copying into has
// the schema its marker records (EndMigration sets it), not its own yet.
func Verify(ctx context.Context, a, b Backend) (map[string]int, error) {
	counts := map[string]int{}
	err := a.View(ctx, func(ta Tx) error {
		return b.View(ctx, func(tb Tx) error {
			for _, bk := range Buckets {
				na, err := verifyBucket(ta, tb, bk)
				if err != nil {
					return err
				}
				counts[string(bk)] = na
			}
			if sa, sb := storedSchema(ta), storedSchema(tb); sa != sb {
				return fmt.Errorf("migration check failed: the target's schema %q is not the source's %q", sb, sa)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return counts, nil
}

// verifyBucket checks that both buckets hold the same keys with the same
// values. Both stores scan in key order, so it walks them side by side and
// holds one key of each at a time, whatever the bucket's size (a million
// holders are about 800 MB).
func verifyBucket(ta, tb Tx, bucket []byte) (int, error) {
	var targetErr error
	next, stop := iter.Pull2(func(yield func(k, v []byte) bool) {
		targetErr = tb.Scan(bucket, nil, nil, func(k, v []byte) (bool, error) {
			return isMigrationMarker(bucket, k) || isSchema(bucket, k) || yield(k, v), nil
		})
	})
	defer stop()
	n := 0
	err := ta.Scan(bucket, nil, nil, func(k, v []byte) (bool, error) {
		if isMigrationMarker(bucket, k) {
			return true, nil
		}
		if isSchema(bucket, k) {
			n++ // compared apart, after the buckets
			return true, nil
		}
		n++
		tk, tv, ok := next()
		switch {
		case !ok && targetErr != nil:
			return false, targetErr
		case !ok || bytes.Compare(tk, k) > 0:
			return false, fmt.Errorf("migration check failed: %s/%s is missing in the target", bucket, PrintableKey(k))
		case bytes.Compare(tk, k) < 0:
			return false, fmt.Errorf("migration check failed: %s/%s is in the target but not in the source", bucket, PrintableKey(tk))
		case !bytes.Equal(tv, v):
			return false, fmt.Errorf("migration check failed: %s/%s differs between source and target", bucket, PrintableKey(k))
		}
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	if tk, _, ok := next(); ok {
		return 0, fmt.Errorf("migration check failed: %s/%s is in the target but not in the source", bucket, PrintableKey(tk))
	}
	if targetErr != nil {
		return 0, targetErr
	}
	return n, nil
}

// PrintableKey shows a key in error messages: text as is, binary keys (the
// audit sequence numbers) in hex.
func PrintableKey(k []byte) string {
	s := string(k)
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0xfffd }) >= 0 {
		return fmt.Sprintf("%x", k)
	}
	return s
}
