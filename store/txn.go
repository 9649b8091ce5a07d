package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// Cluster returns the named cluster, or ErrNotFound.
func (t *Txn) Cluster(name string) (*Cluster, error) {
	return getCached(t, t.s.clusters, bClusters, name)
}

// PutCluster writes a cluster record.
func (t *Txn) PutCluster(c *Cluster) error {
	if slices.ContainsFunc(c.K8sBindings, func(b K8sBinding) bool { return len(b.Roles) > 0 }) {
		// An older flinkpki would ignore the roles and drop them.
		if err := t.raiseSchema(2); err != nil {
			return err
		}
	}
	return putCached(t, t.s.clusters, bClusters, c.Name, c)
}

// ListClusters returns up to limit clusters whose names sort after after,
// and the name to pass as after for the next page ("" when done).
func (t *Txn) ListClusters(after string, limit int) ([]*Cluster, string, error) {
	var out []*Cluster
	next := ""
	err := scanJSON(t, bClusters, "", keyAfter(after), func(c *Cluster) (bool, error) {
		if limit > 0 && len(out) == limit {
			next = out[len(out)-1].Name
			return false, nil
		}
		out = append(out, c)
		return true, nil
	})
	return out, next, err
}

// DeleteCluster removes a cluster with its CAs, holders and tokens.
func (t *Txn) DeleteCluster(name string) error {
	if t.tx.Get(bClusters, []byte(name)) == nil {
		return ErrNotFound
	}
	for _, b := range [][]byte{bCAs, bHolders} {
		if err := t.tx.DeletePrefix(b, []byte(name+"/")); err != nil {
			return err
		}
	}
	var tokens []string
	err := scanJSON(t, bTokens, "", "", func(tok *Token) (bool, error) {
		if tok.Cluster == name {
			tokens = append(tokens, tok.ID)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, id := range tokens {
		if err := t.tx.Delete(bTokens, []byte(id)); err != nil {
			return err
		}
	}
	return t.tx.Delete(bClusters, []byte(name))
}

// CAs returns every CA of a cluster, of all purposes. Keys stay sealed:
// open one with Store.OpenCAKey when it must sign.
func (t *Txn) CAs(cluster string) ([]*CA, error) {
	var out []*CA
	err := scanJSON(t, bCAs, cluster+"/", "", func(ca *CA) (bool, error) {
		out = append(out, ca)
		return true, nil
	})
	return out, err
}

// OpenCAKey decrypts the private key of a CA record read from the store.
func (s *Store) OpenCAKey(ca *CA) ([]byte, error) {
	key, err := s.seal.Open(ca.SealedKey, caAAD(ca.Cluster, ca.ID))
	if err != nil {
		return nil, fmt.Errorf("open key of CA %s/%s: %w", ca.Cluster, ca.ID, err)
	}
	return key, nil
}

// PutCA writes a CA, sealing its private key.
func (t *Txn) PutCA(ca *CA) error {
	if len(ca.Key) == 0 {
		return errors.New("refusing to store a CA without its private key")
	}
	if err := t.checkSealing(); err != nil {
		return err
	}
	sealed, err := t.s.seal.Seal(ca.Key, caAAD(ca.Cluster, ca.ID))
	if err != nil {
		return err
	}
	rec := *ca
	rec.Key, rec.SealedKey = nil, sealed
	return t.put(bCAs, ca.Cluster+"/"+ca.ID, &rec)
}

// checkSealing refuses to seal a new key while the store's key-encryption
// key is being rotated, or once the store is under another key than this
// process's: a server still running when admin rotate-kek ran (an etcd
// replica whose election key had lapsed) would seal CA keys that no
// server of the rotated store can open. It reads the key check and the
// rotation marker in the transaction that writes, so on etcd a rotation
// that commits meanwhile fails this transaction's commit.
func (t *Txn) checkSealing() error {
	if t.tx.Get(bMeta, kKEKRotation) != nil {
		return fmt.Errorf("%w: a key-encryption key rotation is under way (flinkpki admin rotate-kek): no CA key can be stored until it ends", ErrKEKRotation)
	}
	if by := sealedBy(t.tx.Get(bMeta, kKEKCheck)); by != t.s.seal.ID() {
		return fmt.Errorf("%w: the store is under key-encryption key %s now, not this server's %s (admin rotate-kek ran while it ran): restart it with the new --kek-file", ErrWrongKEK, by, t.s.seal.ID())
	}
	return nil
}

// UpdateCA rewrites a CA record read from the store (its state and times),
// keeping its sealed key as it is.
func (t *Txn) UpdateCA(ca *CA) error {
	if len(ca.SealedKey) == 0 {
		return errors.New("refusing to rewrite a CA record without its sealed key")
	}
	rec := *ca
	rec.Key = nil
	return t.put(bCAs, ca.Cluster+"/"+ca.ID, &rec)
}

// DeleteCA removes one CA from a cluster's lineage.
func (t *Txn) DeleteCA(cluster, id string) error {
	return t.tx.Delete(bCAs, []byte(cluster+"/"+id))
}

func holderKey(cluster, purpose, name string) string { return cluster + "/" + purpose + "/" + name }

// Holder returns a holder record, or ErrNotFound.
func (t *Txn) Holder(cluster, purpose, name string) (*Holder, error) {
	var h Holder
	if err := t.get(bHolders, holderKey(cluster, purpose, name), &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// HolderMark is what one read of a holder record saw, for ExpectHolder.
type HolderMark struct {
	key  string
	mark []byte
}

// MarkHolder is Holder that also returns a mark of what it read (a
// record or its absence, with ErrNotFound), for ExpectHolder in a later
// transaction.
func (t *Txn) MarkHolder(cluster, purpose, name string) (*Holder, HolderMark, error) {
	key := holderKey(cluster, purpose, name)
	m := HolderMark{key: key, mark: t.tx.Mark(bHolders, []byte(key))}
	var h Holder
	if err := t.get(bHolders, key, &h); err != nil {
		return nil, m, err
	}
	return &h, m, nil
}

// ExpectHolder fails with ErrChanged when the holder record m was read
// from is no longer what m saw: a check made on it in an earlier read
// holds at this transaction's commit.
func (t *Txn) ExpectHolder(m HolderMark) error {
	return t.tx.Expect(bHolders, []byte(m.key), m.mark)
}

// PutHolder writes a holder record, superseding an earlier one.
func (t *Txn) PutHolder(h *Holder) error {
	return t.put(bHolders, holderKey(h.Cluster, h.Purpose, h.Name), h)
}

// DeleteHolder removes a holder record.
func (t *Txn) DeleteHolder(cluster, purpose, name string) error {
	return t.tx.Delete(bHolders, []byte(holderKey(cluster, purpose, name)))
}

// ForEachHolder calls fn for every holder of a cluster ("" purpose: all),
// in name order. A big cluster's holders are decoded on all cores.
func (t *Txn) ForEachHolder(cluster, purpose string, fn func(*Holder) (bool, error)) error {
	prefix := cluster + "/"
	if purpose != "" {
		prefix += purpose + "/"
	}
	return scanJSONParallel(t, bHolders, prefix, fn)
}

// ForEachHolderAfter calls fn for the holders of a cluster that come after
// (purpose, name) in key order, or for all of them when purpose is "": a
// scan that resumes where an earlier one stopped.
func (t *Txn) ForEachHolderAfter(cluster, purpose, name string, fn func(*Holder) (bool, error)) error {
	return scanJSON(t, bHolders, cluster+"/", holdersAfter(cluster, purpose, name), fn)
}

// holdersAfter is where a scan of a cluster's holders resumes after
// (purpose, name): "" (the first) when purpose is "".
func holdersAfter(cluster, purpose, name string) string {
	if purpose == "" {
		return ""
	}
	return keyAfter(holderKey(cluster, purpose, name))
}

// Token returns an enrollment token record, or ErrNotFound.
func (t *Txn) Token(id string) (*Token, error) {
	return getCached(t, t.s.tokens, bTokens, id)
}

// PutToken writes an enrollment token record.
func (t *Txn) PutToken(tok *Token) error {
	if len(tok.MadeWith) > 0 {
		// An older flinkpki would prune the tombstones that refuse it,
		// and drop the chain when it spends a use.
		if err := t.raiseSchema(4); err != nil {
			return err
		}
	}
	return putCached(t, t.s.tokens, bTokens, tok.ID, tok)
}

// DeleteToken removes an enrollment token.
func (t *Txn) DeleteToken(id string) error { return t.tx.Delete(bTokens, []byte(id)) }

// ForEachToken calls fn for every enrollment token.
func (t *Txn) ForEachToken(fn func(*Token) (bool, error)) error {
	return t.ForEachTokenAfter("", fn)
}

// ForEachTokenAfter calls fn for every enrollment token whose ID sorts
// after after ("" : from the first), in ID order.
func (t *Txn) ForEachTokenAfter(after string, fn func(*Token) (bool, error)) error {
	return scanJSON(t, bTokens, "", keyAfter(after), fn)
}

// keyAfter is where a scan resumes after key: the smallest key that sorts
// after it ("" for key "": from the first).
func keyAfter(key string) string {
	if key == "" {
		return ""
	}
	return key + "\x00"
}

// AdminToken returns an administrator token record, or ErrNotFound.
func (t *Txn) AdminToken(id string) (*AdminToken, error) {
	return getCached(t, t.s.adminTokens, bAdminTokens, id)
}

// PutAdminToken writes an administrator token record.
func (t *Txn) PutAdminToken(tok *AdminToken) error {
	if !tok.Expires.IsZero() || !tok.Revoked.IsZero() {
		// An older flinkpki would ignore the expiry and take the token
		// for ever, or take the tokens made through a revoked one.
		if err := t.raiseSchema(3); err != nil {
			return err
		}
	}
	return putCached(t, t.s.adminTokens, bAdminTokens, tok.ID, tok)
}

// DeleteAdminToken removes an administrator token record.
func (t *Txn) DeleteAdminToken(id string) error { return t.tx.Delete(bAdminTokens, []byte(id)) }

// AdminTokens returns every administrator token record, in ID order (they
// are bounded: authority.MaxAdminTokens).
func (t *Txn) AdminTokens() ([]*AdminToken, error) {
	var all []*AdminToken
	err := scanJSON(t, bAdminTokens, "", "", func(r *AdminToken) (bool, error) {
		all = append(all, r)
		return true, nil
	})
	return all, err
}

// auditMark names an entry of the trail by its sequence number and hash:
// the head (the newest entry) and the archive mark (the last one removed).
type auditMark struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// auditMark reads the mark at key of bMeta (0 and "" when there is none).
func (t *Txn) auditMark(key []byte, what string) (uint64, string, error) {
	return readAuditMark(t.tx.Get, key, what)
}

// readAuditMark reads the mark at key of bMeta with get.
func readAuditMark(get func(bucket, key []byte) []byte, key []byte, what string) (uint64, string, error) {
	var m auditMark
	if raw := get(bMeta, key); raw != nil {
		if err := json.Unmarshal(raw, &m); err != nil {
			return 0, "", fmt.Errorf("%w: %s: %v", ErrCorrupt, what, err)
		}
	}
	return m.Seq, m.Hash, nil
}

// AuditHead returns the sequence number and hash of the newest audit entry.
func (t *Txn) AuditHead() (uint64, string, error) { return t.auditMark(kAuditHead, "audit head") }

// AppendAudit links e to the chain (setting Seq, Prev and Hash) and writes it.
// It reads the head as it is now (LatestReader): every write of every
// cluster moves it, and it need only hold from here to the commit.
func (t *Txn) AppendAudit(e *AuditEntry) error {
	get := t.tx.Get
	if lr, ok := t.tx.(LatestReader); ok {
		get = lr.GetLatest
	}
	seq, prev, err := readAuditMark(get, kAuditHead, "audit head")
	if err != nil {
		return err
	}
	e.Seq, e.Prev = seq+1, prev
	e.Hash = AuditHash(e)
	if err := t.put(bAudit, string(seqKey(e.Seq)), e); err != nil {
		return err
	}
	return t.put(bMeta, string(kAuditHead), auditMark{Seq: e.Seq, Hash: e.Hash})
}

// ForEachAudit calls fn for every audit entry from sequence number from on.
func (t *Txn) ForEachAudit(from uint64, fn func(*AuditEntry) (bool, error)) error {
	return scanJSON(t, bAudit, "", string(seqKey(from)), fn)
}

// AuditArchived returns the sequence number and hash of the last entry
// removed from the trail by RemoveAuditThrough (0 and "" when none was):
// the trail holds the entries after it, and the first links to that hash.
func (t *Txn) AuditArchived() (uint64, string, error) {
	return t.auditMark(kAuditArchived, "audit archive mark")
}

// RemoveAuditThrough deletes the audit entries after the last removed one
// (AuditArchived) through last, and records last as the last removed. The
// caller has read them in this transaction, verified their links and
// archived them; the head is untouched, so the sequence goes on.
func (t *Txn) RemoveAuditThrough(last *AuditEntry) error {
	from, _, err := t.AuditArchived()
	if err != nil {
		return err
	}
	for seq := from + 1; seq <= last.Seq; seq++ {
		if err := t.tx.Delete(bAudit, seqKey(seq)); err != nil {
			return err
		}
	}
	if err := t.raiseSchema(2); err != nil { // an older flinkpki would call the trail broken
		return err
	}
	return t.put(bMeta, string(kAuditArchived), auditMark{Seq: last.Seq, Hash: last.Hash})
}

// raiseSchema moves the store's schema up to v (SchemaVersion): from then on
// a flinkpki that reads only older layouts refuses it.
func (t *Txn) raiseSchema(v int) error {
	if n, err := strconv.Atoi(string(t.tx.Get(bMeta, kSchema))); err == nil && n >= v {
		return nil
	}
	return t.tx.Put(bMeta, kSchema, []byte(strconv.Itoa(v)))
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// Follows checks that e is entry want of the chain, after an entry whose
// hash is prev: its sequence number, its link and its own hash. The error
// names the first of them that is wrong; audit verify reports it, and an
// archive removes nothing from that entry on.
func (e *AuditEntry) Follows(want uint64, prev string) error {
	switch {
	case e.Seq != want:
		return fmt.Errorf("audit entry %d is missing (found %d next)", want, e.Seq)
	case e.Prev != prev:
		return fmt.Errorf("audit entry %d does not link to entry %d", e.Seq, e.Seq-1)
	case AuditHash(e) != e.Hash:
		return fmt.Errorf("audit entry %d was modified: its hash does not match its content", e.Seq)
	}
	return nil
}

// AuditHash is the SHA-256 over the entry's content and the previous hash.
// It is computed over the JSON of the entry with Hash cleared, so any edit
// of any field breaks the chain from that entry on.
func AuditHash(e *AuditEntry) string {
	c := *e
	c.Hash = ""
	raw, _ := json.Marshal(&c)
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// ServingSlot names where the meta bucket keeps a serving CA: the server's
// own CAs, kept apart from every cluster CA, which clients trust as
// server-ca.crt. Its lifecycle is a cluster lineage's in small: a prepared
// CA is trusted (in the bundle clients hold) before it signs, and the CA it
// replaces stays trusted, without its key, until it is retired.
type ServingSlot string

// The serving CA slots.
const (
	ServingActive   ServingSlot = "server_ca"          // signs the serving certificates
	ServingPrepared ServingSlot = "server_ca_prepared" // trusted, signs once activated
	ServingRetiring ServingSlot = "server_ca_retiring" // trusted until retired; no key
)

// ServingSlots are the slots in the order a trust bundle lists them.
var ServingSlots = []ServingSlot{ServingActive, ServingPrepared, ServingRetiring}

// ServerCA returns the server's own serving CA (kept apart from every
// cluster CA) with its key opened, or ErrNotFound on a new store.
func (t *Txn) ServerCA() (*CA, error) { return t.ServingCA(ServingActive) }

// PutServerCA writes the serving CA, sealing its key.
func (t *Txn) PutServerCA(ca *CA) error { return t.PutServingCA(ServingActive, ca) }

// ServingCA returns the serving CA in slot, with its key opened when it
// has one (a retiring CA has none), or ErrNotFound when the slot is empty.
func (t *Txn) ServingCA(slot ServingSlot) (*CA, error) {
	var rec CA
	if err := t.get(bMeta, string(slot), &rec); err != nil {
		return nil, err
	}
	if rec.SealedKey == nil {
		return &rec, nil
	}
	key, err := t.s.seal.Open(rec.SealedKey, "server-ca")
	if err != nil {
		return nil, fmt.Errorf("open key of the serving CA: %w", err)
	}
	rec.Key, rec.SealedKey = key, nil
	return &rec, nil
}

// PutServingCA writes ca into slot, sealing its key when it has one.
func (t *Txn) PutServingCA(slot ServingSlot, ca *CA) error {
	rec := *ca
	rec.Key, rec.SealedKey = nil, nil
	if ca.Key != nil {
		if err := t.checkSealing(); err != nil {
			return err
		}
		sealed, err := t.s.seal.Seal(ca.Key, "server-ca")
		if err != nil {
			return err
		}
		rec.SealedKey = sealed
	}
	return t.put(bMeta, string(slot), &rec)
}

// DeleteServingCA empties slot.
func (t *Txn) DeleteServingCA(slot ServingSlot) error {
	return t.tx.Delete(bMeta, []byte(slot))
}
