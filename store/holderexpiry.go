package store

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// notAfterKey is how encoding/json writes Holder.NotAfter's key: never the
// first field, so always after a comma.
var notAfterKey = []byte(`,"not_after":"`)

// holderNotAfter reads Holder.NotAfter from a stored holder record without
// decoding the rest, with Time's own JSON decoder. encoding/json writes a
// '"' inside a string as `\"`, so a comma directly followed by a quote
// never occurs inside a string value: the first match is the key. ok is
// false when the record does not have that shape; the caller then decodes
// it in full, which reports a corrupt record as such.
func holderNotAfter(raw []byte) (na time.Time, ok bool) {
	i := bytes.Index(raw, notAfterKey)
	if i < 0 {
		return time.Time{}, false
	}
	start := i + len(notAfterKey) - 1 // the value's opening quote
	end := bytes.IndexByte(raw[start+1:], '"')
	if end < 0 {
		return time.Time{}, false
	}
	if err := na.UnmarshalJSON(raw[start : start+end+2]); err != nil {
		return time.Time{}, false
	}
	return na, true
}

// ForEachHolderExpiry calls fn with the purpose, name and NotAfter of the
// holders of a cluster that come after (purpose, name) in key order, or of
// all of them when purpose is "", reading each holder's expiry alone: the
// scans that need nothing else (the expiry gauges, pruning) read a million
// holders several times faster than a full decode of each.
func (t *Txn) ForEachHolderExpiry(cluster, purpose, name string, fn func(purpose, name string, notAfter time.Time) (bool, error)) error {
	prefix := cluster + "/"
	return t.scan(bHolders, prefix, holdersAfter(cluster, purpose, name), func(k, v []byte) (bool, error) {
		na, ok := holderNotAfter(v)
		if !ok {
			var h Holder
			if err := decode(bHolders, string(k), v, &h); err != nil {
				return false, err
			}
			na = h.NotAfter
		}
		p, n, ok := strings.Cut(string(k[len(prefix):]), "/")
		if !ok {
			return false, fmt.Errorf("%w: %s/%s: not a holder key", ErrCorrupt, bHolders, k)
		}
		return fn(p, n, na)
	})
}

// EarliestHolderExpiry returns the earliest NotAfter not before now among
// a cluster's holders (zero when none) and how many those are: what the
// expiry gauges need. A leaf is valid through its NotAfter.
func (t *Txn) EarliestHolderExpiry(cluster string, now time.Time) (earliest time.Time, live int, err error) {
	err = t.ForEachHolderExpiry(cluster, "", "", func(_, _ string, na time.Time) (bool, error) {
		if !now.After(na) {
			live++
			if earliest.IsZero() || na.Before(earliest) {
				earliest = na
			}
		}
		return true, nil
	})
	return earliest, live, err
}
