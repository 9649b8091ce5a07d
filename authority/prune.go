package authority

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/flinkpki/flinkpki/ca"
	"github.com/flinkpki/flinkpki/internal/tick"
	"github.com/flinkpki/flinkpki/store"
)

// Retention is the actor that prunes expired holder records.
var Retention = Actor{Kind: ActorSystem, ID: "retention"}

// pruneChunk bounds one prune transaction: its reads and deletes, with the
// audit entry, stay under etcd's default --max-txn-ops of 128.
const pruneChunk = 100

type holderRef struct{ purpose, name string }

// PruneHolders deletes the holder records whose leaf expired more than
// retention ago, and returns how many it deleted. A retention shorter than
// twice ca.MaxClockSkew counts as that: a rotation step still counts a
// leaf as live for its clock-skew grace past its expiry, on a replica
// whose clock may be that much behind this one's, so the record must stay
// until then, or pruning it would let a step through that it blocks.
//
// An expired holder is not live: it blocks no rotation step, and only
// `holder list --all` shows it. In Kubernetes every new pod is a new holder,
// so without pruning the records grow with every restart, for good, and
// every `ca status`, rotation check and metrics refresh reads them all.
//
// Each transaction deletes at most pruneChunk records of one cluster and
// audits them as one "holder.prune" entry (details: count, expired_before).
// A holder enrolled again since the scan is kept. A failure stops the pass;
// what was deleted stays deleted, and the next pass goes on.
func (a *Authority) PruneHolders(ctx context.Context, retention time.Duration) (int, error) {
	if retention <= 0 {
		return 0, nil
	}
	cutoff := a.now().Add(-max(retention, 2*ca.MaxClockSkew))
	total := 0
	name := func(_ *store.Txn, cluster string) (string, error) { return cluster, nil }
	err := forClusterPages(ctx, a, name, func(clusters []string) error {
		for _, cl := range clusters {
			n, err := a.pruneCluster(ctx, cl, cutoff)
			total += n
			if err != nil {
				return err
			}
		}
		return nil
	})
	return total, err
}

func (a *Authority) pruneCluster(ctx context.Context, cluster string, cutoff time.Time) (int, error) {
	find := func(tx *store.Txn, after holderRef, emit func(holderRef) bool) error {
		return tx.ForEachHolderExpiry(cluster, after.purpose, after.name, func(purpose, name string, notAfter time.Time) (bool, error) {
			if notAfter.Before(cutoff) {
				return emit(holderRef{purpose, name}), nil
			}
			return true, nil
		})
	}
	remove := func(tx *store.Txn, r holderRef) (bool, error) {
		h, err := tx.Holder(cluster, r.purpose, r.name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return false, nil // released, or its cluster deleted, since the scan
		case err != nil:
			return false, err
		case !h.NotAfter.Before(cutoff):
			return false, nil // enrolled again since the scan
		}
		return true, tx.DeleteHolder(cluster, r.purpose, r.name)
	}
	audit := func(tx *store.Txn, n int) error {
		return a.audit(tx, Retention, cluster, "holder.prune", "ok", "",
			map[string]string{"count": strconv.Itoa(n), "expired_before": cutoff.UTC().Format(time.RFC3339)})
	}
	return deleteInChunks(ctx, a, find, remove, audit)
}

// deleteInChunks deletes records pruneChunk per write transaction, so each
// stays under etcd's --max-txn-ops, and audits each chunk as one entry.
// find reads, in a read transaction, the candidates after the last one of
// the chunk before (the zero K at first), handing each to emit until emit
// says the chunk is full. remove re-checks one candidate inside the write
// transaction and deletes it, saying whether it did: one that changed since
// the scan is kept. audit records a chunk's n deletions. It returns how
// many it deleted; after a failure, what was deleted stays deleted.
func deleteInChunks[K any](ctx context.Context, a *Authority,
	find func(tx *store.Txn, after K, emit func(K) bool) error,
	remove func(tx *store.Txn, k K) (bool, error),
	audit func(tx *store.Txn, n int) error) (int, error) {
	total := 0
	var last K
	for {
		var ks []K
		err := a.st.View(ctx, func(tx *store.Txn) error {
			ks = ks[:0]
			return find(tx, last, func(k K) bool {
				ks = append(ks, k)
				return len(ks) < pruneChunk
			})
		})
		if err != nil || len(ks) == 0 {
			return total, err
		}
		n := 0
		err = a.st.Update(ctx, func(tx *store.Txn) error {
			n = 0
			for _, k := range ks {
				gone, err := remove(tx, k)
				if err != nil {
					return err
				}
				if gone {
					n++
				}
			}
			if n == 0 {
				return nil
			}
			return audit(tx, n)
		})
		if err != nil {
			return total, err
		}
		total += n
		if len(ks) < pruneChunk {
			return total, nil
		}
		last = ks[len(ks)-1]
	}
}

// RunPruner prunes expired holder records (see PruneHolders) after first,
// then every interval, until ctx ends. In HA only the leader prunes.
func (a *Authority) RunPruner(ctx context.Context, first, interval, retention time.Duration, leader func() bool) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(first):
	}
	prune := func(time.Time) {
		if leader != nil && !leader() {
			return
		}
		start := time.Now()
		n, err := a.PruneHolders(ctx, retention)
		switch {
		case err != nil && ctx.Err() == nil:
			a.log.ErrorContext(ctx, "pruning expired holders failed; the next pass goes on", slog.Int("pruned", n), slog.String("error", err.Error()))
		case n > 0:
			a.log.InfoContext(ctx, "pruned expired holders", slog.Int("pruned", n), slog.Duration("retention", retention), slog.Duration("took", time.Since(start)))
		}
	}
	tick.Call(a.log, prune, time.Now())
	tick.Every(ctx, a.log, interval, prune)
}
