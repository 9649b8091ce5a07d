package bolt

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"syscall"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/flinkpki/flinkpki/store"
)

// bbolt's on-disk meta page (file format version 2, fixed since 2014): a
// 16-byte page header, then magic, version, page size, flags, the root
// bucket (root page, sequence), the freelist page, the high-water mark, the
// transaction id and an FNV-64a checksum of everything before it.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaSize       = 64
	metaSumOffset  = 56
)

type meta struct {
	pageSize uint32
	pgid     uint64
	txid     uint64
}

func parseMeta(b []byte) (meta, bool) {
	if len(b) < pageHeaderSize+metaSize {
		return meta{}, false
	}
	m := b[pageHeaderSize : pageHeaderSize+metaSize]
	le := binary.LittleEndian
	h := fnv.New64a()
	h.Write(m[:metaSumOffset])
	if le.Uint32(m[0:]) != boltMagic || le.Uint32(m[4:]) != boltVersion || le.Uint64(m[metaSumOffset:]) != h.Sum64() {
		return meta{}, false
	}
	return meta{pageSize: le.Uint32(m[8:]), pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, true
}

// checkFile refuses, before bbolt maps it, a store file that is empty,
// truncated or has a damaged meta page. bbolt itself would initialise an
// empty file (writing to it), panic or fault on pages past the end of a
// truncated one, and silently fall back to the older meta page when one is
// damaged, which may drop the last committed change: for a CA that change
// can be the holder record that keeps a CA from being retired too early.
func checkFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	defer f.Close()
	// A live store is locked by its server, which may be writing a meta
	// page right now: leave that file to bbolt's lock wait and its clear
	// "locked by another process" error.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	size := fi.Size()
	damaged := func(what string) error {
		return fmt.Errorf("%w: store %s %s: %s; it was not changed", store.ErrCorrupt, path, what, RestoreAdvice)
	}
	if size == 0 {
		return damaged("is empty")
	}
	head := make([]byte, pageHeaderSize+metaSize)
	if _, err := io.ReadFull(f, head); err != nil {
		return damaged(fmt.Sprintf("is %d bytes, too short to be a store", size))
	}
	m0, ok := parseMeta(head)
	if !ok {
		return damaged("has a damaged first meta page (page 0)")
	}
	if m0.pageSize < 512 || m0.pageSize&(m0.pageSize-1) != 0 {
		return damaged(fmt.Sprintf("names an impossible page size %d", m0.pageSize))
	}
	if _, err := f.ReadAt(head, int64(m0.pageSize)); err != nil {
		return damaged(fmt.Sprintf("is %d bytes, too short to be a store", size))
	}
	m1, ok := parseMeta(head)
	if !ok {
		return damaged("has a damaged second meta page (page 1)")
	}
	cur := m0
	if m1.txid > m0.txid {
		cur = m1
	}
	hwm := cur.pgid * uint64(m0.pageSize)
	if uint64(size) < hwm {
		return damaged(fmt.Sprintf("is truncated: it holds %d bytes of the %d its pages need", size, hwm))
	}
	return nil
}

// Verify checks every page of the store file at path, not only its meta
// pages (what Open checks): bbolt's consistency check, then a read of every
// key and value of every bucket. A file that only a backup or a restore
// reads once (admin restore, the file admin backup downloads) is checked
// whole, so a damaged page is refused before it replaces a data directory,
// instead of panicking the server that opens it later. bbolt panics on some
// damaged pages; that panic is an error here.
func Verify(path string) (err error) {
	if err := checkFile(path); err != nil {
		return err
	}
	damaged := func(what string) error {
		return fmt.Errorf("%w: store %s is damaged (%s): %s; it was not changed", store.ErrCorrupt, path, what, RestoreAdvice)
	}
	defer func() {
		if p := recover(); p != nil {
			err = damaged(fmt.Sprint(p))
		}
	}()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return openErr(path, err)
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		var first error
		for err := range tx.Check() { // drained whole: the check runs in a goroutine that sends each error
			if first == nil {
				first = damaged(err.Error())
			}
		}
		if first != nil {
			return first
		}
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			return readAll(b)
		})
	})
}

// readAll reads every key and value below b.
func readAll(b *bbolt.Bucket) error {
	return b.ForEach(func(k, v []byte) error {
		if v == nil {
			if sub := b.Bucket(k); sub != nil {
				return readAll(sub)
			}
		}
		return nil
	})
}

// LooksLikeStore reports whether the file at path begins with a valid
// bbolt meta page: a store, or a copy of one cut short (a killed backup
// writes the meta pages first).
func LooksLikeStore(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, pageHeaderSize+metaSize)
	if _, err := io.ReadFull(f, head); err != nil {
		return false
	}
	_, ok := parseMeta(head)
	return ok
}
