package keystore

import (
	"encoding/asn1"
	"errors"
	"testing"
)

func TestCheckPKCS12CostCapsIterationCounts(t *testing.T) {
	type pbeParams struct {
		Salt       []byte
		Iterations int
	}
	wrap := func(iter int) []byte {
		params, err := asn1.Marshal(pbeParams{Salt: []byte("saltsalt"), Iterations: iter})
		if err != nil {
			t.Fatal(err)
		}
		// An OCTET STRING that wraps DER, as PKCS#12 content does.
		der, err := asn1.Marshal(struct {
			Version int
			Content []byte
		}{3, params})
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	tests := []struct {
		name string
		iter int
		want error
	}{
		{"the 2048 iterations our encoders use pass", 2048, nil},
		{"keytool's 10,000 iterations pass", 10000, nil},
		{"exactly the cap passes", maxPKCS12Iterations, nil},
		{"one more than the cap is refused", maxPKCS12Iterations + 1, ErrMalformed},
		{"two billion iterations are refused", 2_000_000_000, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkPKCS12Cost(wrap(tt.iter)); !errors.Is(err, tt.want) {
				t.Fatalf("checkPKCS12Cost = %v, want %v", err, tt.want)
			}
		})
	}
}
