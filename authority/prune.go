package authority

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/flinkpki/flinkpki/store"
)

// Retention is the actor that prunes expired holder records.
var Retention = Actor{Kind: ActorSystem, ID: "retention"}

// pruneChunk bounds one prune transaction: its reads and deletes, with the
// audit entry, stay under etcd's default --max-txn-ops of 128.
const pruneChunk = 100

type holderRef struct{ purpose, name string }

// PruneHolders deletes the holder records whose leaf expired more than
// retention ago, and returns how many it deleted.
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
	cutoff := a.now().Add(-retention)
	total := 0
	for after := ""; ; {
		var names []string
		next := ""
		err := a.st.View(ctx, func(tx *store.Txn) error {
			names = names[:0]
			cs, n, err := tx.ListClusters(after, 500)
			for _, c := range cs {
				names = append(names, c.Name)
			}
			next = n
			return err
		})
		if err != nil {
			return total, err
		}
		for _, cl := range names {
			n, err := a.pruneCluster(ctx, cl, cutoff)
			total += n
			if err != nil {
				return total, err
			}
		}
		if next == "" {
			return total, nil
		}
		after = next
	}
}

func (a *Authority) pruneCluster(ctx context.Context, cluster string, cutoff time.Time) (int, error) {
	total := 0
	var last holderRef
	for {
		var refs []holderRef
		err := a.st.View(ctx, func(tx *store.Txn) error {
			refs = refs[:0]
			return tx.ForEachHolderAfter(cluster, last.purpose, last.name, func(h *store.Holder) (bool, error) {
				if h.NotAfter.Before(cutoff) {
					refs = append(refs, holderRef{h.Purpose, h.Name})
				}
				return len(refs) < pruneChunk, nil
			})
		})
		if err != nil || len(refs) == 0 {
			return total, err
		}
		n := 0
		err = a.st.Update(ctx, func(tx *store.Txn) error {
			n = 0
			for _, r := range refs {
				h, err := tx.Holder(cluster, r.purpose, r.name)
				if errors.Is(err, store.ErrNotFound) {
					continue // released, or its cluster deleted, since the scan
				}
				if err != nil {
					return err
				}
				if !h.NotAfter.Before(cutoff) {
					continue // enrolled again since the scan
				}
				if err := tx.DeleteHolder(cluster, r.purpose, r.name); err != nil {
					return err
				}
				n++
			}
			if n == 0 {
				return nil
			}
			return a.audit(tx, Retention, cluster, "holder.prune", "ok", "",
				map[string]string{"count": strconv.Itoa(n), "expired_before": cutoff.UTC().Format(time.RFC3339)})
		})
		if err != nil {
			return total, err
		}
		total += n
		if len(refs) < pruneChunk {
			return total, nil
		}
		last = refs[len(refs)-1]
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
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if leader == nil || leader() {
			start := time.Now()
			n, err := a.PruneHolders(ctx, retention)
			switch {
			case err != nil && ctx.Err() == nil:
				a.log.ErrorContext(ctx, "pruning expired holders failed; the next pass goes on", slog.Int("pruned", n), slog.String("error", err.Error()))
			case n > 0:
				a.log.InfoContext(ctx, "pruned expired holders", slog.Int("pruned", n), slog.Duration("retention", retention), slog.Duration("took", time.Since(start)))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
