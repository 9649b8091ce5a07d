package bolt_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	bbolt "go.etcd.io/bbolt"

	"github.com/flinkpki/flinkpki/store"
	"github.com/flinkpki/flinkpki/store/bolt"
)

// TestADamagedFileIsRefusedBeforeBboltTouchesIt: bbolt would initialise an
// empty file, panic on a truncated one and silently fall back to the older
// meta page of a damaged one; Open refuses each, without writing.
func TestADamagedFileIsRefusedBeforeBboltTouchesIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flinkpki.db")
	s, err := openStore(t, path, newKEK(t))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	garble := func(from, to int) []byte {
		b := bytes.Clone(good)
		for i := from; i < to; i++ {
			b[i] = byte(i*31 + 7)
		}
		return b
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"an empty file", nil, "is empty"},
		{"a file shorter than a meta page", good[:40], "too short"},
		{"a file truncated to half", good[:len(good)/2], "is truncated"},
		{"a garbage first meta page", garble(0, 4096), "damaged first meta page"},
		{"a garbage second meta page", garble(4096, 8192), "damaged second meta page"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "flinkpki.db")
			os.WriteFile(p, c.data, 0o600)
			_, err := bolt.Open(p, bolt.Options{})
			if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "restore") {
				t.Fatalf("Open = %v, want ErrCorrupt saying %q and how to restore", err, c.want)
			}
			if after, _ := os.ReadFile(p); !bytes.Equal(after, c.data) {
				t.Errorf("a refused Open changed the file")
			}
		})
	}
	if b, err := bolt.Open(path, bolt.Options{}); err != nil {
		t.Fatalf("the intact file no longer opens: %v", err)
	} else {
		b.Close()
	}
}

// TestVerifyRefusesEveryDamagedPageWithoutPanicking: a store file whose
// meta pages are fine but one of whose pages in use (a leaf, a branch, the
// free list) is overwritten is refused by Verify as corrupt, whichever page
// it is; reading such a page panicked bbolt, and admin restore restored the
// file (the server that opened it panicked later). An intact file passes.
func TestVerifyRefusesEveryDamagedPageWithoutPanicking(t *testing.T) {
	good := filepath.Join(t.TempDir(), "good.db")
	db, err := bbolt.Open(good, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	value := bytes.Repeat([]byte("v"), 300)
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range store.Buckets {
			bk, err := tx.CreateBucket(name)
			if err != nil {
				return err
			}
			for i := range 60 {
				if err := bk.Put(fmt.Appendf(nil, "key-%04d", i), value); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Which pages are in use, and how many there are.
	var used []int
	pageSize := db.Info().PageSize
	err = db.Update(func(tx *bbolt.Tx) error {
		for id := 2; ; id++ {
			p, err := tx.Page(id)
			if err != nil || p == nil {
				return err
			}
			if p.Type == "leaf" || p.Type == "branch" || p.Type == "freelist" {
				used = append(used, id)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bolt.Verify(good); err != nil {
		t.Fatalf("Verify of an intact store: %v", err)
	}

	if len(used) < 5 {
		t.Fatalf("only %d pages in use: the store is too small to test", len(used))
	}
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// A free-list page that only the older meta page names (the one before
	// the last commit) is not read: damage there changes nothing.
	metaField := func(m, off int) int { return int(binary.LittleEndian.Uint64(raw[m*pageSize+16+off:])) }
	cur := 0
	if metaField(1, 48) > metaField(0, 48) { // txid
		cur = 1
	}
	used = slices.DeleteFunc(used, func(id int) bool {
		p := raw[id*pageSize:]
		isFreelist := binary.LittleEndian.Uint16(p[8:]) == 0x10
		return isFreelist && id != metaField(cur, 32)
	})
	for _, id := range used {
		bad := bytes.Clone(raw)
		for i := id*pageSize + 16; i < (id+1)*pageSize; i++ {
			bad[i] = 0xAB
		}
		path := filepath.Join(t.TempDir(), "bad.db")
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := bolt.Verify(path); !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), "damaged") {
			t.Errorf("Verify with page %d overwritten: %v, want ErrCorrupt saying it is damaged", id, err)
		}
	}
}
