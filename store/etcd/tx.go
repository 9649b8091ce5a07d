package etcd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/flinkpki/flinkpki/store"
)

// scanPage is how many keys one range request fetches while scanning.
const scanPage = 256

// txn is one store.Tx on etcd. Its first read fixes the snapshot revision
// and every later read uses it. It records what it read (the keys with
// their ModRevision, and the scanned ranges), buffers its writes, and
// commits them in one etcd transaction guarded by that read set.
type txn struct {
	b        *Backend
	ctx      context.Context
	readOnly bool
	rev      int64              // snapshot revision; 0 until the first read
	reads    map[string]readKey // key → what was read there
	ranges   map[keyRange]bool
	guards   map[string]bool   // buckets scanned: their delete guard is compared
	writes   map[string]*write // key → buffered write
	dels     []rangeDel        // DeletePrefix ranges, applied at commit
	err      error             // first failed read; fails the transaction
	// optimistic: Expect on a key this transaction has not touched
	// becomes a comparison in the commit instead of a read (group commits
	// only). A failed commit reads the expected keys in its else branch, in
	// the same round trip, and stale records what no longer holds; the
	// group's next attempt starts with those values in its read set, so a
	// stale expectation fails its own call alone, and the others keep
	// their comparisons without a read.
	optimistic bool
	expects    map[string]int64   // key → expected ModRevision (0: absent)
	stale      map[string]readKey // after a failed commit: expected keys that changed, as they are now
}

// rangeDel is one DeletePrefix: the keys in [lo, hi) of bucket.
type rangeDel struct {
	bucket string
	keyRange
}

// deletedByRange reports whether a DeletePrefix of this transaction covers k.
func (t *txn) deletedByRange(k string) bool {
	for _, d := range t.dels {
		if k >= d.lo && k < d.hi {
			return true
		}
	}
	return false
}

type keyRange struct{ lo, hi string }

// readKey is one key of the read set: the ModRevision the commit compares
// (0: absent) and the value, which later reads of the key return.
type readKey struct {
	modRev int64
	val    []byte // nil: absent
}

type write struct {
	bucket string
	val    []byte
	del    bool
}

func (b *Backend) newTxn(ctx context.Context, readOnly bool) *txn {
	return &txn{
		b: b, ctx: ctx, readOnly: readOnly,
		reads:  map[string]readKey{},
		ranges: map[keyRange]bool{},
		guards: map[string]bool{},
		writes: map[string]*write{},
	}
}

func (b *Backend) bucketPrefix(bucket string) string { return b.cfg.Prefix + bucket + "/" }

// deleteGuard is the key every commit that deletes from bucket rewrites.
// A range comparison only sees keys that still exist, so scanners compare
// this key to notice a deletion in the range they read. The leading "."
// keeps it outside every bucket's range.
func (b *Backend) deleteGuard(bucket string) string { return b.cfg.Prefix + ".deleted/" + bucket }

func (t *txn) checkBucket(bucket []byte) error {
	if !t.b.buckets[string(bucket)] {
		return fmt.Errorf("%w: missing bucket %q", store.ErrCorrupt, bucket)
	}
	return nil
}

// get reads opts-shaped ranges at the snapshot revision, fixing it on the
// first read, or as they are now when latest.
func (t *txn) get(what, key string, latest bool, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if t.rev > 0 && !latest {
		opts = append(opts, clientv3.WithRev(t.rev))
	}
	ctx, cancel := t.b.opCtx(t.ctx)
	defer cancel()
	resp, err := t.b.cli.Get(ctx, key, opts...)
	if err != nil {
		return nil, t.b.wrap(t.ctx, what, err)
	}
	if t.rev == 0 {
		t.rev = resp.Header.Revision
	}
	return resp, nil
}

// Get implements store.Tx. A failed read returns nil and fails the whole
// transaction, since the interface has no error to return here.
func (t *txn) Get(bucket, key []byte) []byte {
	if t.err != nil || !t.b.buckets[string(bucket)] {
		return nil
	}
	k := t.b.bucketPrefix(string(bucket)) + string(key)
	if w, ok := t.writes[k]; ok {
		if w.del {
			return nil
		}
		return w.val
	}
	if t.deletedByRange(k) {
		return nil
	}
	// Every read after the first is at the snapshot revision, so a key
	// read before reads the same again: one round trip per key, however
	// many calls of a group commit read it (the cluster record, the token).
	// Without this a group's read window grew with its size, and a large
	// group never won the race against another replica's small ones.
	if r, ok := t.reads[k]; ok {
		return r.val
	}
	return t.fetch(bucket, key, k, false)
}

// fetch reads k (bucket's key) into the read set and returns its value:
// at the snapshot revision, or as it is now when latest.
func (t *txn) fetch(bucket, key []byte, k string, latest bool) []byte {
	resp, err := t.get("read "+string(bucket)+"/"+store.PrintableKey(key), k, latest)
	if err != nil {
		t.err = err
		return nil
	}
	var r readKey
	if len(resp.Kvs) > 0 {
		r = readKey{modRev: resp.Kvs[0].ModRevision, val: resp.Kvs[0].Value}
	}
	t.reads[k] = r
	return r.val
}

// GetLatest implements store.LatestReader: key as it is now, not at the
// snapshot revision, kept in the read set and compared at commit like any
// read. A key every writer changes (the audit head) read at the snapshot
// of a long transaction (a rotation step scanning thousands of holders)
// would have changed by its commit whenever any cluster enrolls meanwhile;
// read last, it only has to hold for the commit's round trip. A key this
// transaction has read or written already keeps what Get gives.
func (t *txn) GetLatest(bucket, key []byte) []byte {
	k := t.b.bucketPrefix(string(bucket)) + string(key)
	_, read := t.reads[k]
	_, written := t.writes[k]
	if t.err != nil || !t.b.buckets[string(bucket)] || read || written || t.deletedByRange(k) || t.rev == 0 {
		return t.Get(bucket, key)
	}
	return t.fetch(bucket, key, k, true)
}

// Mark implements store.Tx: the key's ModRevision at the snapshot
// revision (0: absent), as 8 bytes.
func (t *txn) Mark(bucket, key []byte) []byte {
	_ = t.Get(bucket, key)
	m := make([]byte, 8)
	binary.BigEndian.PutUint64(m, uint64(t.reads[t.b.bucketPrefix(string(bucket))+string(key)].modRev))
	return m
}

// Expect implements store.Tx.
func (t *txn) Expect(bucket, key, mark []byte) error {
	if t.err != nil {
		return t.err
	}
	if err := t.checkBucket(bucket); err != nil {
		return err
	}
	if len(mark) != 8 {
		return fmt.Errorf("%w: a mark of %d bytes is not an etcd mark", store.ErrChanged, len(mark))
	}
	rev := int64(binary.BigEndian.Uint64(mark))
	k := t.b.bucketPrefix(string(bucket)) + string(key)
	if _, written := t.writes[k]; written || t.deletedByRange(k) {
		return store.ErrChanged // this transaction changed it since the mark
	}
	if prior, expected := t.expects[k]; expected {
		if prior != rev {
			return store.ErrChanged
		}
		return nil
	}
	if _, read := t.reads[k]; !read && t.optimistic {
		if t.expects == nil {
			t.expects = map[string]int64{}
		}
		t.expects[k] = rev
		return nil
	}
	_ = t.Get(bucket, key)
	if t.err != nil {
		return t.err
	}
	if t.reads[k].modRev != rev {
		return store.ErrChanged
	}
	return nil
}

// Put implements store.Tx: the write is buffered until commit.
func (t *txn) Put(bucket, key, value []byte) error {
	return t.buffer(bucket, key, &write{bucket: string(bucket), val: bytes.Clone(value)})
}

// Delete implements store.Tx: the delete is buffered until commit.
func (t *txn) Delete(bucket, key []byte) error {
	return t.buffer(bucket, key, &write{bucket: string(bucket), del: true})
}

func (t *txn) buffer(bucket, key []byte, w *write) error {
	if t.readOnly {
		return errors.New("write in a read-only transaction: use Update")
	}
	if err := t.checkBucket(bucket); err != nil {
		return err
	}
	if len(key) == 0 {
		return errors.New("empty store key")
	}
	if w.val == nil && !w.del {
		w.val = []byte{}
	}
	k := t.b.bucketPrefix(w.bucket) + string(key)
	if t.deletedByRange(k) {
		if w.del {
			return nil // already deleted
		}
		// etcd refuses a transaction that puts a key inside a range it deletes.
		return fmt.Errorf("put %s/%s: the key's range was deleted earlier in this transaction", w.bucket, store.PrintableKey(key))
	}
	t.writes[k] = w
	return nil
}

// DeletePrefix implements store.Tx: one range delete at commit, whatever
// the number of keys. It drops the buffered writes in the range.
func (t *txn) DeletePrefix(bucket, prefix []byte) error {
	if t.readOnly {
		return errors.New("write in a read-only transaction: use Update")
	}
	if err := t.checkBucket(bucket); err != nil {
		return err
	}
	lo := t.b.bucketPrefix(string(bucket)) + string(prefix)
	hi := clientv3.GetPrefixRangeEnd(lo)
	for k := range t.writes {
		if k >= lo && k < hi {
			delete(t.writes, k)
		}
	}
	t.dels = append(t.dels, rangeDel{string(bucket), keyRange{lo, hi}})
	return nil
}

// Scan implements store.Tx. It reads the range page by page at the
// snapshot revision, merged with this transaction's buffered writes, and
// records in the read set the part of the range it read: from start to
// the key fn stopped at, or to the end of the prefix.
func (t *txn) Scan(bucket, prefix, start []byte, fn func(k, v []byte) (bool, error)) error {
	if t.err != nil {
		return t.err
	}
	if err := t.checkBucket(bucket); err != nil {
		return err
	}
	bp := t.b.bucketPrefix(string(bucket))
	lo := bp + string(prefix)
	hi := clientv3.GetPrefixRangeEnd(lo)
	t.guards[string(bucket)] = true
	from := lo
	if start != nil && bytes.Compare(start, prefix) > 0 {
		from = bp + string(start)
	}
	// The read set holds what the scan saw: the keys from where it
	// started to where fn stopped it (that key included), or to the end of
	// the prefix. A key written beyond where fn stopped changes nothing
	// this transaction read, so it must not fail its commit: a prune of
	// the audit trail's oldest entries would otherwise conflict with every
	// entry appended at its head meanwhile.
	seen := keyRange{from, hi}
	defer func() { t.ranges[seen] = true }()
	stop := func(k, v []byte) (bool, error) {
		more, err := fn(k, v)
		if err == nil && !more {
			seen.hi = bp + string(k) + "\x00"
		}
		return more, err
	}
	overlay := t.pending(from, hi)
	for {
		resp, err := t.get("scan "+string(bucket), from, false, clientv3.WithRange(hi), clientv3.WithLimit(scanPage))
		if err != nil {
			t.err = err
			return err
		}
		pageHi := hi
		if resp.More && len(resp.Kvs) > 0 {
			pageHi = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
		more, err := t.emit(bp, resp.Kvs, &overlay, pageHi, stop)
		if err != nil || !more || pageHi == hi {
			return err
		}
		from = pageHi
	}
}

// emit merges one page of stored keys with the buffered writes below
// pageHi and hands the live ones to fn, in key order.
func (t *txn) emit(bp string, kvs []*mvccpb.KeyValue, overlay *[]string, pageHi string, fn func(k, v []byte) (bool, error)) (bool, error) {
	ov := *overlay
	defer func() { *overlay = ov }()
	call := func(k string, v []byte) (bool, error) {
		return fn([]byte(k[len(bp):]), v)
	}
	i := 0
	for i < len(kvs) || (len(ov) > 0 && ov[0] < pageHi) {
		var k string
		var v []byte
		switch {
		case i < len(kvs) && (len(ov) == 0 || ov[0] >= pageHi || string(kvs[i].Key) < ov[0]):
			k, v = string(kvs[i].Key), kvs[i].Value
			i++
		default:
			k = ov[0]
			ov = ov[1:]
			if i < len(kvs) && string(kvs[i].Key) == k {
				i++ // the buffered write shadows the stored value
			}
		}
		if w, ok := t.writes[k]; ok {
			if w.del {
				continue
			}
			v = w.val
		} else if t.deletedByRange(k) {
			continue
		}
		more, err := call(k, v)
		if err != nil || !more {
			return false, err
		}
	}
	return true, nil
}

// pending returns the buffered keys in [lo, hi), sorted.
func (t *txn) pending(lo, hi string) []string {
	var out []string
	for k := range t.writes {
		if k >= lo && k < hi {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// commit applies the buffered writes if the read set is unchanged, or
// returns errConflict.
func (t *txn) commit() error {
	if len(t.writes) == 0 && len(t.dels) == 0 {
		return nil
	}
	cmps, expected, orElse := t.conditions()
	ops := t.ops()
	ctx, cancel := t.b.opCtx(t.ctx)
	defer cancel()
	resp, err := t.b.cli.Txn(ctx).If(cmps...).Then(ops...).Else(orElse...).Commit()
	if err != nil {
		return t.b.wrap(t.ctx, "commit", err)
	}
	if !resp.Succeeded {
		t.stale = map[string]readKey{}
		for i, k := range expected {
			var now readKey
			if i < len(resp.Responses) {
				if kvs := resp.Responses[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
					now = readKey{modRev: kvs[0].ModRevision, val: kvs[0].Value}
				}
			}
			if now.modRev != t.expects[k] {
				t.stale[k] = now
			}
		}
		return errConflict
	}
	return nil
}

// conditions are what commit compares: the read set (the scanned ranges,
// the delete guards of the buckets scanned, the keys read outside them)
// unchanged since the transaction's revision, and each expected key at
// its expected ModRevision. expected lists those keys, sorted, in the
// order of orElse, which reads them when a comparison fails, so that the
// failed commit can tell which expectations no longer hold.
func (t *txn) conditions() (cmps []clientv3.Cmp, expected []string, orElse []clientv3.Op) {
	for r := range t.ranges {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(r.lo), "<", t.rev+1).WithRange(r.hi))
	}
	for bk := range t.guards {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(t.b.deleteGuard(bk)), "<", t.rev+1))
	}
	for k, r := range t.reads {
		if !t.covered(k) {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", r.modRev))
		}
	}
	expected = make([]string, 0, len(t.expects))
	for k := range t.expects {
		expected = append(expected, k)
	}
	sort.Strings(expected)
	for _, k := range expected {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", t.expects[k]))
		orElse = append(orElse, clientv3.OpGet(k))
	}
	return cmps, expected, orElse
}

// ops are the buffered writes as etcd operations: the range deletions,
// then the writes in key order, then a put of the delete guard of each
// bucket something was deleted from, which fails the commit of any
// transaction that scanned that bucket meanwhile.
func (t *txn) ops() []clientv3.Op {
	keys := make([]string, 0, len(t.writes))
	for k := range t.writes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	deleted := map[string]bool{}
	ops := make([]clientv3.Op, 0, len(keys)+len(t.dels)+1)
	for _, d := range t.dels {
		ops = append(ops, clientv3.OpDelete(d.lo, clientv3.WithRange(d.hi)))
		deleted[d.bucket] = true
	}
	for _, k := range keys {
		w := t.writes[k]
		if w.del {
			ops = append(ops, clientv3.OpDelete(k))
			deleted[w.bucket] = true
			continue
		}
		ops = append(ops, clientv3.OpPut(k, string(w.val)))
	}
	for bk := range deleted {
		ops = append(ops, clientv3.OpPut(t.b.deleteGuard(bk), ""))
	}
	return ops
}

// covered reports whether a scanned range already guards key k.
func (t *txn) covered(k string) bool {
	for r := range t.ranges {
		if k >= r.lo && k < r.hi {
			return true
		}
	}
	return false
}
