package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/flinkpki/flinkpki/authority"
	"github.com/flinkpki/flinkpki/store"
)

// newBenchPopulateCmd fills a stopped server's store with many clusters and
// holder records, to measure listing and status at scale.
func newBenchPopulateCmd() *cobra.Command {
	var (
		dataDir, kekFile string
		clusters         int
		holders          int
		bigCluster       int
		yes              bool
		out              outputFormat
	)
	cmd := &cobra.Command{
		Use:   "populate --data-dir DIR --kek-file F [--clusters N] [--holders M]",
		Short: "Fill a stopped server's store with clusters and holders, for scale tests",
		Long: `Create --clusters clusters (each with its own internal and REST CA, made the
normal way) and --holders live holder records spread over them, directly in a
stopped server's store. The first cluster, "scale-00000", gets --big-cluster
of the holders, so 'ca status' can be timed on a cluster with that many live
holders. Holder records are synthetic: they name serials that were never
issued. Use a data directory made for benchmarking.`,
		Example: `  flinkpki serve --dev --data-dir ./scale &   # once, to create the store; then stop it
  flinkpki bench populate --data-dir ./scale --kek-file ./scale/kek --clusters 10000 --holders 1000000
  flinkpki bench populate --data-dir ./scale --kek-file ./scale/kek --clusters 10 --holders 1000 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if holders > 0 && clusters == 0 {
				return usagef("--holders %d needs at least one cluster to hold them: pass --clusters 1 or more", holders)
			}
			ctx := cmd.Context()
			st, _, err := openStoreAt(ctx, dataDir, nil, kekFile, false)
			if err != nil {
				return err
			}
			defer st.Close()
			if !yes {
				if err := refuseRealClusters(ctx, st, dataDir); err != nil {
					return err
				}
			}
			took, err := populate(ctx, cmd, st, clusters, holders, bigCluster)
			if err != nil {
				return err
			}
			st.Close() // the file's size is the closed store's
			if out == "json" {
				return writeJSON(cmd.OutOrStdout(), populateResult(dataDir, clusters, holders, bigCluster, took))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "populated %d clusters and %d holders in %s\n", clusters, holders, took.Round(time.Second))
			fmt.Fprintf(cmd.OutOrStdout(), "database size: %s\n", dbSize(dataDir))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "./flinkpki-data", "data directory of a stopped server")
	f.StringVar(&kekFile, "kek-file", "", "the store's key-encryption key (env FLINKPKI_KEK_FILE)")
	f.Var(newIntFlag(&clusters, 10000, 0, math.MaxInt32), "clusters", "clusters to create")
	f.Var(newIntFlag(&holders, 1000000, 0, math.MaxInt32), "holders", "holder records to create in all")
	f.Var(newIntFlag(&bigCluster, 10000, 0, math.MaxInt32), "big-cluster", "holders of the first cluster")
	f.BoolVar(&yes, "yes", false, "populate even a store that holds clusters of its own (not scale-*): they keep working, beside synthetic CAs and holders")
	addOutputFlag(cmd, &out)
	return cmd
}

// populateJSON is bench populate's -o json result.
type populateJSON struct {
	DataDir           string  `json:"data_dir"`
	Clusters          int     `json:"clusters"`
	Holders           int     `json:"holders"`
	BigClusterHolders int     `json:"big_cluster_holders"`
	Seconds           float64 `json:"seconds"`
	DatabaseBytes     *int64  `json:"database_bytes"` // null when the file cannot be read
}

func populateResult(dataDir string, clusters, holders, big int, took time.Duration) populateJSON {
	r := populateJSON{DataDir: dataDir, Clusters: clusters, Holders: holders, Seconds: took.Seconds()}
	// populate gives the first cluster the first big holders, and all of
	// them when it is the only one.
	r.BigClusterHolders = min(big, holders)
	if clusters == 1 {
		r.BigClusterHolders = holders
	}
	if fi, err := os.Stat(filepath.Join(dataDir, dbFileName)); err == nil {
		n := fi.Size()
		r.DatabaseBytes = &n
	}
	return r
}

// refuseRealClusters refuses a store that holds a cluster bench populate
// did not make (its are named scale-NNNNN): a --data-dir given by mistake
// would fill a production store with synthetic CAs and a million holder
// records.
func refuseRealClusters(ctx context.Context, st *store.Store, dataDir string) error {
	auth, err := authority.New(authority.Config{Store: st})
	if err != nil {
		return err
	}
	for after := ""; ; {
		page, next, err := auth.ListClusters(ctx, after, 1000)
		if err != nil {
			return err
		}
		for _, v := range page {
			if !isPopulated(v.Cluster.Name) {
				return fmt.Errorf("the store in %s holds cluster %q, which bench populate did not make: it adds synthetic clusters and holder records for benchmarks; populate a new --data-dir (serve --dev creates one), or pass --yes to add them to this store anyway", dataDir, v.Cluster.Name)
			}
		}
		if next == "" {
			return nil
		}
		after = next
	}
}

// populatedCluster is the name of the i-th cluster bench populate makes.
func populatedCluster(i int) string { return fmt.Sprintf("scale-%05d", i) }

// isPopulated reports whether name is one populatedCluster gives.
func isPopulated(name string) bool {
	var i int
	n, err := fmt.Sscanf(name, "scale-%05d", &i)
	return err == nil && n == 1 && populatedCluster(i) == name
}

// populate creates the clusters and holders and returns how long it took.
func populate(ctx context.Context, cmd *cobra.Command, st *store.Store, clusters, holders, big int) (time.Duration, error) {
	auth, err := authority.New(authority.Config{Store: st})
	if err != nil {
		return 0, err
	}
	actor := authority.Actor{Kind: authority.ActorSystem, ID: "bench-populate"}
	start := time.Now()
	for i := 0; i < clusters; i++ {
		name := populatedCluster(i)
		if _, err := auth.CreateCluster(ctx, actor, authority.CreateClusterRequest{Name: name}); err != nil {
			if errors.Is(err, authority.ErrExists) {
				return 0, fmt.Errorf("create %s: %w: bench populate fills a store that holds none of its clusters; populate a new --data-dir (serve --dev creates one)", name, err)
			}
			return 0, partial(i, 0, fmt.Errorf("create %s: %w", name, err))
		}
		if i%1000 == 999 {
			fmt.Fprintf(cmd.ErrOrStderr(), "populate: %d clusters (%s)\n", i+1, time.Since(start).Round(time.Second))
		}
	}
	now := time.Now().UTC()
	const perTx = 20000
	for done := 0; done < holders; {
		n := min(perTx, holders-done)
		err := st.Update(ctx, func(tx *store.Txn) error {
			for j := 0; j < n; j++ {
				k := done + j
				cl := 0
				if k >= big && clusters > 1 {
					cl = 1 + (k-big)%(clusters-1)
				}
				h := &store.Holder{
					Cluster: populatedCluster(cl), Purpose: "internal", Name: fmt.Sprintf("tm-%07d", k),
					Role: "taskmanager", Serial: fmt.Sprintf("%032x", k), NotAfter: now.Add(90 * 24 * time.Hour),
					SignedBy: "internal-1", Trusts: []string{"internal-1"}, Issued: now, Actor: "system:bench-populate",
				}
				if err := tx.PutHolder(h); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, partial(clusters, done, err)
		}
		done += n
		fmt.Fprintf(cmd.ErrOrStderr(), "populate: %d holders (%s)\n", done, time.Since(start).Round(time.Second))
	}
	return time.Since(start), nil
}

// partial words a populate that ended part way, with what the store holds
// now: a run again would stop at the first cluster, which exists.
func partial(clusters, holders int, err error) error {
	return fmt.Errorf("the store holds a partial population (%d clusters, %d holders); populate a new --data-dir: %w", clusters, holders, err)
}

// dbSize reports the size of a data directory's database file.
func dbSize(dataDir string) string {
	fi, err := os.Stat(filepath.Join(dataDir, dbFileName))
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.1f MB", float64(fi.Size())/(1<<20))
}
