package store

import (
	"runtime"
	"sync"
)

// scanJSONParallel decodes parallelBatch records at a time; a batch smaller
// than parallelMinBatch (the last one of a scan) is decoded on the calling
// goroutine.
const (
	parallelBatch    = 512
	parallelMinBatch = 64
)

// scanJSONParallel is scanJSON for scans that can be long (every holder of
// a big cluster, for `ca status` and a rotation step's checks; the expiry
// gauges and pruning read each holder's expiry alone, ForEachHolderExpiry):
// JSON decoding is nearly all of their cost, so records are
// decoded a batch at a time on up to GOMAXPROCS goroutines. fn still sees
// them one by one in key order, each a record of its own, and a record
// that does not decode fails the scan only when fn's turn comes to it, as
// in scanJSON. The raw values are used after the backend's Scan moved on,
// which Tx allows: they are valid until the transaction ends.
func scanJSONParallel[T any](t *Txn, bucket []byte, prefix string, fn func(*T) (bool, error)) error {
	type rawRecord struct {
		key string
		val []byte
	}
	workers := runtime.GOMAXPROCS(0)
	pending := make([]rawRecord, 0, parallelBatch)
	flush := func() (bool, error) {
		n := len(pending)
		recs := make([]T, n)
		errs := make([]error, n)
		decodeRange := func(lo, hi int) {
			for i := lo; i < hi; i++ {
				errs[i] = decode(bucket, pending[i].key, pending[i].val, &recs[i])
			}
		}
		if workers == 1 || n < parallelMinBatch {
			decodeRange(0, n)
		} else {
			var wg sync.WaitGroup
			chunk := (n + workers - 1) / workers
			for lo := 0; lo < n; lo += chunk {
				wg.Add(1)
				go func() {
					defer wg.Done()
					decodeRange(lo, min(lo+chunk, n))
				}()
			}
			wg.Wait()
		}
		pending = pending[:0]
		for i := range recs {
			if errs[i] != nil {
				return false, errs[i]
			}
			if more, err := fn(&recs[i]); !more || err != nil {
				return false, err
			}
		}
		return true, nil
	}
	more := true
	err := t.tx.Scan(bucket, []byte(prefix), nil, func(k, v []byte) (bool, error) {
		pending = append(pending, rawRecord{string(k), v})
		if len(pending) < parallelBatch {
			return true, nil
		}
		var err error
		more, err = flush()
		return more, err
	})
	if err != nil || !more || len(pending) == 0 {
		return err
	}
	_, err = flush()
	return err
}
