package bolt_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
