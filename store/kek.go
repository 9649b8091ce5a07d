package store

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
)

// kKEKRotation marks a rotation of the key-encryption key that re-encrypts
// the CA keys over several transactions and has not finished.
var kKEKRotation = []byte("kek_rotation")

// ErrKEKRotation is returned while a key-encryption key rotation that spans
// several transactions is unfinished: every CA key is under one of two
// keys, and only admin rotate-kek, run again with both, may open the store.
var ErrKEKRotation = errors.New("a key-encryption key rotation was interrupted")

// kekRotation is the marker's record: the IDs (Sealer.ID) of the key the
// store was under and of the key it is moving to.
type kekRotation struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// OpenForKEKRotation is Open for admin rotate-kek: it also opens a store
// whose rotation was interrupted, with the key the store was under.
func OpenForKEKRotation(ctx context.Context, b Backend, seal *Sealer) (*Store, error) {
	s := newStore(b, seal)
	return s, check(ctx, b, seal, checkOptions{rotation: true})
}

// RotateKEKOptions are RotateKEK's optional parts.
type RotateKEKOptions struct {
	// Progress, when not nil, hears the running count of re-encrypted keys
	// after each transaction.
	Progress func(done int)
	// Audit, when not nil, is appended to the audit trail in the
	// transaction that finishes the rotation, with the two key IDs and the
	// count added to its details.
	Audit *AuditEntry
}

// RotateKEK re-encrypts every CA key (the serving CA's too) and the key
// check under next, and returns how many keys it re-encrypted. The caller
// must use a Store opened with next afterwards.
//
// On a backend without a write limit it is one transaction, on a copy of
// the database put in its place when the backend is a Rewriter (bbolt),
// so that the file keeps no key under the old KEK. On one with a
// limit (etcd) a marker is written first, the CA keys are re-encrypted in
// transactions of bounded size, and the last transaction re-encrypts the
// serving CA and the key check and removes the marker. While the marker is
// there, Open refuses the store (ErrKEKRotation); RotateKEK run again with
// the same two keys finishes the work, and only those two; the backend's
// history still holds the old ciphertexts until DropHistory.
func (s *Store) RotateKEK(ctx context.Context, next *Sealer, opts RotateKEKOptions) (int, error) {
	if next.ID() == s.seal.ID() {
		return 0, errors.New("the new key-encryption key is the one the store is under already: make a new one with '(umask 077; head -c 32 /dev/urandom > kek.new)'")
	}
	limit := s.MaxWritesPerTxn()
	var n int
	var err error
	if limit <= 0 {
		rotate := func(b Backend) error {
			return b.Update(ctx, func(tx Tx) error {
				if err := s.checkRotation(tx, next); err != nil {
					return err
				}
				k, _, _, err := s.resealCAs(tx, next, nil, 0)
				if err != nil {
					return err
				}
				n, err = s.finishRotation(tx, next, k, opts.Audit)
				return err
			})
		}
		if rw, ok := s.b.(Rewriter); ok {
			// Else the pages of the keys under the old KEK stay in the
			// file (and its backups) for whoever holds that key.
			err = rw.Rewrite(ctx, rotate)
		} else {
			err = rotate(s.b)
		}
	} else {
		n, err = s.rotateInSteps(ctx, next, limit, opts)
	}
	if err != nil {
		return n, err
	}
	if opts.Progress != nil {
		opts.Progress(n)
	}
	s.seal = next
	return n, nil
}

// rotateInSteps is RotateKEK in transactions of at most limit writes.
func (s *Store) rotateInSteps(ctx context.Context, next *Sealer, limit int, opts RotateKEKOptions) (int, error) {
	err := s.b.Update(ctx, func(tx Tx) error {
		if err := s.checkRotation(tx, next); err != nil {
			return err
		}
		m, err := json.Marshal(kekRotation{From: s.seal.ID(), To: next.ID()})
		if err != nil {
			return err
		}
		return tx.Put(bMeta, kKEKRotation, m)
	})
	if err != nil {
		return 0, err
	}
	n := 0
	// Pass over the CA keys until a pass finds none under the old key:
	// the servers are stopped, so the second pass normally finds nothing.
	for {
		var after string
		resealed := 0
		for done := false; !done; {
			var k int
			var last string
			var end bool
			// The results are taken only once the transaction committed:
			// etcd runs the function again after a conflict, and a second
			// run must start where the committed state is, not after the
			// keys of a run that was rolled back.
			err := s.b.Update(ctx, func(tx Tx) (err error) {
				k, last, end, err = s.resealCAs(tx, next, []byte(keyAfter(after)), limit-1)
				return err
			})
			if err != nil {
				return n, fmt.Errorf("%w (after %d CA keys): %v", ErrKEKRotation, n, err)
			}
			after, done = last, end
			n += k
			resealed += k
			if opts.Progress != nil && k > 0 {
				opts.Progress(n)
			}
		}
		if resealed == 0 {
			break
		}
	}
	total := n
	err = s.b.Update(ctx, func(tx Tx) (err error) {
		total, err = s.finishRotation(tx, next, n, opts.Audit)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("%w (after %d CA keys): %v", ErrKEKRotation, n, err)
	}
	return total, nil
}

// readRotation decodes the marker of an unfinished rotation: ok is false
// when tx holds none.
func readRotation(tx Tx) (m kekRotation, ok bool, err error) {
	raw := tx.Get(bMeta, kKEKRotation)
	if raw == nil {
		return m, false, nil
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, true, fmt.Errorf("%w: the rotation marker: %v", ErrCorrupt, err)
	}
	return m, true, nil
}

// rotationMarker is the marker of an unfinished rotation, if tx holds one
// that decodes.
func rotationMarker(tx Tx) (kekRotation, bool) {
	m, ok, err := readRotation(tx)
	return m, ok && err == nil
}

// checkRotation refuses a rotation that does not match an unfinished one.
func (s *Store) checkRotation(tx Tx, next *Sealer) error {
	m, ok, err := readRotation(tx)
	if !ok || err != nil {
		return err
	}
	if m.From != s.seal.ID() || m.To != next.ID() {
		return fmt.Errorf("%w: it was moving the store from key %s to key %s, and this run moves it from %s to %s: give the same two keys again", ErrKEKRotation, m.From, m.To, s.seal.ID(), next.ID())
	}
	return nil
}

// resealCAs re-encrypts the CA keys under s.seal, from start on in key
// order, at most max of them (0: all), and returns how many it did, the
// last key it looked at, and whether it reached the end.
func (s *Store) resealCAs(tx Tx, next *Sealer, start []byte, max int) (n int, last string, done bool, err error) {
	old := s.seal.ID()
	done = true
	err = tx.Scan(bCAs, nil, start, func(k, v []byte) (bool, error) {
		if max > 0 && n == max {
			done = false
			return false, nil
		}
		last = string(k)
		var ca CA
		if err := json.Unmarshal(v, &ca); err != nil {
			return false, fmt.Errorf("%w: CA %s: %v", ErrCorrupt, k, err)
		}
		switch sealedBy(ca.SealedKey) {
		case next.ID():
			return true, nil // done by an earlier, interrupted run
		case old:
		default:
			return false, fmt.Errorf("%w: the key of CA %s is under neither key-encryption key", ErrWrongKEK, k)
		}
		out, err := s.resealed(&ca, caAAD(ca.Cluster, ca.ID), next)
		if err != nil {
			return false, fmt.Errorf("open CA key %s: %w", k, err)
		}
		n++
		return true, tx.Put(bCAs, k, out)
	})
	return n, last, done, err
}

// finishRotation ends a rotation whose CA keys are re-encrypted (done of
// them by this run): it re-encrypts the serving CA's key and the key check
// under next, removes the rotation marker (which a store copied from etcd
// in the middle of a rotation carries too), appends audit (when not nil)
// with the count, and returns the count with the serving CA.
func (s *Store) finishRotation(tx Tx, next *Sealer, done int, audit *AuditEntry) (int, error) {
	resealed, err := s.resealServingCAs(tx, next)
	if err != nil {
		return done, err
	}
	done += resealed
	check, err := next.Seal([]byte(kekCheckPlaintext), "kek-check")
	if err != nil {
		return done, err
	}
	if err := tx.Put(bMeta, kKEKCheck, check); err != nil {
		return done, err
	}
	if err := tx.Delete(bMeta, kKEKRotation); err != nil {
		return done, err
	}
	if audit == nil {
		return done, nil
	}
	e := *audit
	e.Details = map[string]string{"from": s.seal.ID(), "to": next.ID(), "keys": strconv.Itoa(done)}
	maps.Copy(e.Details, audit.Details)
	return done, (&Txn{tx: tx, s: s}).AppendAudit(&e)
}

// resealServingCAs re-encrypts the keys of the serving CAs (the active one,
// and a prepared one) under next, for those the store has. Without it a
// rotated store would refuse to start: the serving CAs are sealed like
// every cluster CA but live in the meta bucket.
func (s *Store) resealServingCAs(tx Tx, next *Sealer) (int, error) {
	n := 0
	for _, slot := range ServingSlots {
		raw := tx.Get(bMeta, []byte(slot))
		if raw == nil {
			continue
		}
		var rec CA
		if err := json.Unmarshal(raw, &rec); err != nil {
			return n, fmt.Errorf("%w: serving CA (%s): %v", ErrCorrupt, slot, err)
		}
		if rec.SealedKey == nil || sealedBy(rec.SealedKey) == next.ID() {
			continue
		}
		out, err := s.resealed(&rec, "server-ca", next)
		if err != nil {
			return n, fmt.Errorf("open the serving CA key (%s): %w", slot, err)
		}
		if err := tx.Put(bMeta, []byte(slot), out); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// resealed re-encrypts ca's sealed key (bound to aad) from s's key to
// next, and answers the record to write.
func (s *Store) resealed(ca *CA, aad string, next *Sealer) ([]byte, error) {
	key, err := s.seal.Open(ca.SealedKey, aad)
	if err != nil {
		return nil, err
	}
	if ca.SealedKey, err = next.Seal(key, aad); err != nil {
		return nil, err
	}
	return json.Marshal(ca)
}

// sealedBy returns the ID of the key-encryption key a sealed value is
// under (Sealer.ID), or "" when it is not a sealed value.
func sealedBy(sealed []byte) string {
	const idLen = 8
	if len(sealed) < 1+idLen || sealed[0] != sealVersion {
		return ""
	}
	return hex.EncodeToString(sealed[1 : 1+idLen])
}
