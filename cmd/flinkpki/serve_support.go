package main

// What serve reads before it starts (the --config file, the flags' ranges)
// and the bookkeeping of its background work.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// applyConfigFile sets every flag named in a YAML file that was not given on
// the command line.
func applyConfigFile(cmd *cobra.Command, path string) error {
	if path == "" {
		return nil
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read --config: %w", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("--config %s is not a YAML mapping: %w", path, err)
	}
	for k, v := range m {
		f := cmd.Flags().Lookup(k)
		if f == nil || k == "config" {
			return usagef("--config %s: unknown setting %q (settings are serve's flag names)", path, k)
		}
		if f.Changed {
			continue
		}
		vals := []any{v}
		if list, ok := v.([]any); ok {
			if _, slice := f.Value.(pflag.SliceValue); !slice {
				return usagef("--config %s: %s is a list, but --%s takes one value", path, k, k)
			}
			vals = list
		}
		for _, item := range vals {
			switch item.(type) {
			case nil:
				return usagef("--config %s: %s has no value (nothing after the colon, ~ or null): give one, or delete the line for the default", path, k)
			case map[string]any, []any:
				return usagef("--config %s: %s is a mapping or a nested list, but --%s takes a plain value", path, k, k)
			}
			if err := f.Value.Set(fmt.Sprint(item)); err != nil {
				return usagef("--config %s: %s: %v", path, k, err)
			}
		}
	}
	return nil
}

// maxKeyPool bounds --bake-key-pool. Every ready key stays in memory, per
// RSA key type in use, and the pool refills at CPU speed: 10000 RSA-4096
// keys are tens of MiB and hours of key generation.
const maxKeyPool = 10000

// checkRanges refuses numbers serve cannot run with sensibly, before a
// port is bound or anything is written. Each error names the flag, the
// value and what is allowed.
func (o *serveOptions) checkRanges() error {
	switch {
	case o.holderRetention.d < 0:
		return usagef("--holder-retention %s is negative: give how long expired holders are kept (e.g. 30d), or 0 to keep them forever", o.holderRetention.d)
	case o.auditMinAge.d < 0:
		return usagef("--audit-archive-min-age %s is negative: give how old audit entries must be before an archive removes them (e.g. 7d), or 0 for any age", o.auditMinAge.d)
	case o.rotationInterval.d < 0:
		return usagef("--rotation-interval %s is negative: give how often the rotation schedule is checked (e.g. 1m), or 0 to turn it off", o.rotationInterval.d)
	case o.shutdownTimeout.d < 0:
		return usagef("--shutdown-timeout %s is negative: give how long in-flight requests may finish (e.g. 15s), or 0 to cut them off at once", o.shutdownTimeout.d)
	case o.k8sReviewCache.d < 0 || o.k8sReviewCache.d > maxReviewCache:
		return usagef("--k8s-tokenreview-cache %s is out of range: give how long an accepted token's review is reused, up to %s (e.g. 10s), or 0 to review every request", formatDuration(o.k8sReviewCache.d), formatDuration(maxReviewCache))
	case o.rpcTimeout.d <= 0:
		return usagef("--rpc-timeout %s is not above 0: give the longest a request may take (e.g. 30s)", o.rpcTimeout.d)
	case math.IsNaN(o.enrollRate) || math.IsInf(o.enrollRate, 0) || o.enrollRate < 0:
		return usagef("--enroll-rate %v: give enrollment requests per second per identity, a number of 0 or more (0 turns the limit off)", o.enrollRate)
	case o.enrollBurst < 0:
		return usagef("--enroll-burst %d is negative: give 1 or more requests, or 0 for one second's worth of --enroll-rate", o.enrollBurst)
	case o.enrollRate > 0 && o.enrollRate < 1 && o.enrollBurst == 0:
		return usagef("--enroll-burst 0 with --enroll-rate %v allows no enrollment at all: give --enroll-burst 1 or more", o.enrollRate)
	case o.keyPool < 0 || o.keyPool > maxKeyPool:
		return usagef("--bake-key-pool %d is out of range: give 0 (no pool) to %d ready keys per key type", o.keyPool, maxKeyPool)
	case o.maxKeygen < 0:
		return usagef("--max-keygen %d is negative: give 1 or more concurrent key generations, or 0 for the number of CPUs", o.maxKeygen)
	case o.streamsPerAddress < 0:
		return usagef("--max-requests-per-address %d is negative: give 1 or more, or 0 for no bound per address", o.streamsPerAddress)
	case o.connsPerAddress < 0:
		return usagef("--max-connections-per-address %d is negative: give 1 or more, or 0 for no bound per address", o.connsPerAddress)
	case o.etcdBatch < 1:
		return usagef("--etcd-batch %d is out of range: give 1 or more issuances per etcd transaction (above 20 needs etcd's --max-txn-ops raised)", o.etcdBatch)
	}
	return nil
}

// background tracks the server's background work (scheduler, pruner,
// sweepers, watchers, gauge refreshes) so that the store closes only after
// the last of it has returned: a tick cut off by the store's closing would
// fail half-way and log an error on every clean stop.
type background struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Go runs f on a goroutine of its own, unless Wait has begun.
func (b *background) Go(f func()) {
	if b.add() {
		go func() {
			defer b.wg.Done()
			f()
		}()
	}
}

// Do runs f now and tracks it, or refuses it once Wait has begun.
func (b *background) Do(f func() error) error {
	if !b.add() {
		return errors.New("the server is stopping")
	}
	defer b.wg.Done()
	return f()
}

func (b *background) add() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Add(1)
	return true
}

// Wait refuses new work and waits for the running work to return (its
// context must have ended), or for ctx; it reports whether all returned.
func (b *background) Wait(ctx context.Context) bool {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}
