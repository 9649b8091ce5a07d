package store

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzHolderNotAfter: for any holder, the lean read of its expiry gives
// what a full decode of the record gives, whatever its strings hold
// (the seeds put the key itself, quotes and backslashes in every string
// before and after it).
func FuzzHolderNotAfter(f *testing.F) {
	tricky := []string{
		`,"not_after":"1999-01-01T00:00:00Z"`,
		`","not_after":"1999-01-01T00:00:00Z","x":"`,
		`\",\"not_after\":\"1999-01-01T00:00:00Z`,
		`a\`, `\\`, `"`, `<&>`, "\u2028", "ü", "",
	}
	for i, s := range tricky {
		f.Add(s, tricky[(i+1)%len(tricky)], int64(1_900_000_000+i), int64(i*123456789), i*3600)
	}
	f.Fuzz(func(t *testing.T, name, actor string, sec, nsec int64, zone int) {
		na := time.Unix(sec%(1<<34), nsec%1e9).In(time.FixedZone("z", zone%86400))
		raw, err := json.Marshal(&Holder{Cluster: name, Purpose: actor, Name: name, Role: actor, Serial: name,
			NotAfter: na, SignedBy: name, Trusts: []string{name, actor}, Issued: na, Actor: actor})
		if err != nil {
			t.Skip() // not a time JSON can hold
		}
		var full Holder
		if err := json.Unmarshal(raw, &full); err != nil {
			t.Fatal(err)
		}
		lean, ok := holderNotAfter(raw)
		if !ok || !lean.Equal(full.NotAfter) || lean.String() != full.NotAfter.String() {
			t.Fatalf("holderNotAfter(%s) = %v, %v; a full decode gives %v", raw, lean, ok, full.NotAfter)
		}
	})
}

// TestHolderNotAfterLeavesOtherShapesToTheFullDecode: a record without the
// key where encoding/json writes it, or with a value Time does not read,
// is not read by the lean path.
func TestHolderNotAfterLeavesOtherShapesToTheFullDecode(t *testing.T) {
	for _, raw := range []string{
		`{not json`,
		`{"not_after":"2030-01-01T00:00:00Z"}`,
		`{"cluster":"c","not_after":"2030-01-01T00:00:00Z`,
		`{"cluster":"c","not_after":"yesterday"}`,
		`{"cluster":"c","not_after":null}`,
		`{"cluster":"c", "not_after":"2030-01-01T00:00:00Z"}`,
	} {
		if na, ok := holderNotAfter([]byte(raw)); ok {
			t.Errorf("holderNotAfter(%s) = %v; want it left to the full decode", raw, na)
		}
	}
}
