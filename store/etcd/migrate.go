package etcd

import (
	"bytes"
	"context"
	"fmt"

	"github.com/flinkpki/flinkpki/store"
)

// copyChunk is how many keys one write transaction of Copy carries. It
// stays below etcd's default --max-txn-ops of 128.
const copyChunk = 100

// Copy copies every bucket and key of from into to, byte for byte, then
// checks with Verify that both hold the same data. It backs
// `flinkpki admin migrate --from bolt:PATH --to etcd:ENDPOINTS` (and the
// way back), and returns the number of keys per bucket.
//
// The source is read at one snapshot. The target must be empty, and is
// written in chunks of copyChunk keys, so run it with the servers stopped:
// a failed copy leaves a partial target, to be cleared (or a new
// --etcd-prefix used) before trying again.
func Copy(ctx context.Context, from, to store.Backend) (map[string]int, error) {
	if err := to.View(ctx, func(tx store.Tx) error {
		for _, bk := range store.Buckets {
			empty := true
			err := tx.Scan(bk, nil, nil, func(_, _ []byte) (bool, error) {
				empty = false
				return false, nil
			})
			if err != nil {
				return err
			}
			if !empty {
				return fmt.Errorf("%w: the migration target is not empty (bucket %q has keys): migrate into an empty store or a new --etcd-prefix", store.ErrExists, bk)
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	err := from.View(ctx, func(src store.Tx) error {
		for _, bk := range store.Buckets {
			if err := copyBucket(ctx, src, to, bk); err != nil {
				return fmt.Errorf("migrate bucket %q: %w", bk, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return Verify(ctx, from, to)
}

func copyBucket(ctx context.Context, src store.Tx, to store.Backend, bucket []byte) error {
	type kv struct{ k, v []byte }
	var chunk []kv
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		err := to.Update(ctx, func(tx store.Tx) error {
			for _, e := range chunk {
				if err := tx.Put(bucket, e.k, e.v); err != nil {
					return err
				}
			}
			return nil
		})
		chunk = chunk[:0]
		return err
	}
	err := src.Scan(bucket, nil, nil, func(k, v []byte) (bool, error) {
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
// difference is an error naming the bucket and key.
func Verify(ctx context.Context, a, b store.Backend) (map[string]int, error) {
	counts := map[string]int{}
	err := a.View(ctx, func(ta store.Tx) error {
		return b.View(ctx, func(tb store.Tx) error {
			for _, bk := range store.Buckets {
				na, err := verifyBucket(ta, tb, bk)
				if err != nil {
					return err
				}
				counts[string(bk)] = na
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
// values.
func verifyBucket(ta, tb store.Tx, bucket []byte) (int, error) {
	want := map[string][]byte{}
	err := tb.Scan(bucket, nil, nil, func(k, v []byte) (bool, error) {
		want[string(k)] = bytes.Clone(v)
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	err = ta.Scan(bucket, nil, nil, func(k, v []byte) (bool, error) {
		n++
		got, ok := want[string(k)]
		switch {
		case !ok:
			return false, fmt.Errorf("migration check failed: %s/%s is missing in the target", bucket, printable(k))
		case !bytes.Equal(got, v):
			return false, fmt.Errorf("migration check failed: %s/%s differs between source and target", bucket, printable(k))
		}
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	if len(want) != n {
		return 0, fmt.Errorf("migration check failed: bucket %q has %d keys in the source and %d in the target", bucket, n, len(want))
	}
	return n, nil
}
