package store

import (
	"bytes"
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

// EarliestHolderExpiry returns the earliest NotAfter after now among a
// cluster's holders (zero when none) and how many those are: what the
// expiry gauges need, read without decoding each holder in full, which is
// most of the cost of reading a million of them.
func (t *Txn) EarliestHolderExpiry(cluster string, now time.Time) (earliest time.Time, live int, err error) {
	err = t.tx.Scan(bHolders, []byte(cluster+"/"), nil, func(k, v []byte) (bool, error) {
		na, ok := holderNotAfter(v)
		if !ok {
			var h Holder
			if err := decode(bHolders, string(k), v, &h); err != nil {
				return false, err
			}
			na = h.NotAfter
		}
		if na.After(now) {
			live++
			if earliest.IsZero() || na.Before(earliest) {
				earliest = na
			}
		}
		return true, nil
	})
	return earliest, live, err
}
